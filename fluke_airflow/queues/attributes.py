"""SQS message attributes, in the amazon provider's format, checked before anything is sent.

``{"name": {"DataType": "String" | "Number" | "Binary" (optionally ".label"), "StringValue": ... |
"BinaryValue": ...}}``: at most 10 per message, names of up to 256 letters, digits, ``_``, ``-``
and ``.`` (not starting with ``AWS.`` or ``Amazon.``, no leading, trailing or doubled period),
values as SQS allows them (a Number is a decimal number in ``StringValue``). Every part counts
towards the message size limit, with the body.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from fluke_airflow.queues import validation as check

MAX_ATTRIBUTES = 10
MAX_NAME = 256
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_TYPES = ("String", "Number", "Binary")
_ALLOWED = "'String', 'Number' or 'Binary', optionally with a custom label after a period (e.g. 'Number.float')"


def _check_name(where: str, name: Any) -> str:
    if not isinstance(name, str) or not name:
        raise TypeError(f"{where}: attribute names must be non-empty strings, got {name!r}")
    problem = None
    if len(name) > MAX_NAME:
        problem = f"is {len(name)} characters long; at most {MAX_NAME} are allowed"
    elif not _NAME.match(name):
        problem = "may only contain letters, digits, '_', '-' and '.'"
    elif name.lower().startswith(("aws.", "amazon.")):
        problem = "must not start with 'AWS.' or 'Amazon.' (reserved by AWS)"
    elif name.startswith(".") or name.endswith(".") or ".." in name:
        problem = "must not start or end with a period or hold two in a row"
    if problem:
        raise ValueError(f"{where}: attribute name {name!r} {problem}")
    return name


def _check_value(where: str, name: str, attribute: Any) -> int:
    """The attribute's size in bytes as SQS counts it (name, type and value)."""
    if not isinstance(attribute, Mapping):
        raise TypeError(
            f"{where}[{name!r}] must be a dict like {{'DataType': 'String', 'StringValue': '...'}}, "
            f"got {type(attribute).__name__}"
        )
    unknown = set(attribute) - {"DataType", "StringValue", "BinaryValue"}
    if unknown:
        raise ValueError(f"{where}[{name!r}] has unknown key(s) {sorted(unknown)}; allowed: DataType, StringValue, "
                         "BinaryValue")  # fmt: skip
    data_type = attribute.get("DataType")
    if not isinstance(data_type, str) or data_type.split(".", 1)[0] not in _TYPES or data_type.endswith("."):
        raise ValueError(f"{where}[{name!r}]['DataType'] must be {_ALLOWED}, got {data_type!r}")
    base = data_type.split(".", 1)[0]
    if base == "Binary":
        value = attribute.get("BinaryValue")
        if not isinstance(value, (bytes, bytearray)) or not value or "StringValue" in attribute:
            raise ValueError(f"{where}[{name!r}]: a Binary attribute carries non-empty bytes in 'BinaryValue' only")
        size = len(value)
    else:
        value = attribute.get("StringValue")
        if not isinstance(value, str) or not value or "BinaryValue" in attribute:
            raise ValueError(f"{where}[{name!r}]: a {base} attribute carries a non-empty str in 'StringValue' only")
        if base == "Number":
            try:
                number = Decimal(value)
            except InvalidOperation:
                number = None
            if number is None or not number.is_finite():
                raise ValueError(f"{where}[{name!r}]: a Number attribute's StringValue must be a number, got {value!r}")
        bad = check.invalid_character(value)
        if bad:
            raise ValueError(
                f"{where}[{name!r}]['StringValue'] contains the character U+{ord(bad.group()):04X} at index "
                f"{bad.start()}, which SQS cannot carry (the same characters as a message body are allowed)"
            )
        size = check.utf8_size(value)
    return len(name.encode()) + len(data_type.encode()) + size


def check_attributes(attributes: Any, *, where: str = "message_attributes") -> tuple[dict[str, Any], int]:
    """The attributes of one message, checked, and their size in bytes as SQS counts it."""
    if not isinstance(attributes, Mapping):
        raise TypeError(f"{where} must be a dict of attribute name to value dict, got {type(attributes).__name__}")
    if len(attributes) > MAX_ATTRIBUTES:
        raise ValueError(f"{where} has {len(attributes)} attributes; SQS allows at most {MAX_ATTRIBUTES} per message")
    size = 0
    for name, attribute in attributes.items():
        _check_name(where, name)
        size += _check_value(where, name, attribute)
    return dict(attributes), size


def per_message(attributes: Any, count: int) -> list[tuple[dict[str, Any], int]]:
    """``message_attributes`` for ``count`` messages: one dict for all, or a list with one per message."""
    if isinstance(attributes, Mapping):
        one = check_attributes(attributes)
        return [one] * count
    if isinstance(attributes, (list, tuple)):
        if len(attributes) != count:
            raise ValueError(f"message_attributes must be one dict for all messages or a list with one per message "
                             f"({count}), got a list of {len(attributes)}")  # fmt: skip
        return [check_attributes(a, where=f"message_attributes[{i}]") for i, a in enumerate(attributes)]
    raise TypeError(
        f"message_attributes must be a dict (for every message) or a list of dicts (one per message), "
        f"got {type(attributes).__name__}"
    )


def size_of(attributes: Mapping[str, Any] | None) -> int:
    """The bytes checked attributes add to a message (for the batch size limit)."""
    if not attributes:
        return 0
    total = 0
    for name, value in attributes.items():
        payload = value.get("BinaryValue") if "BinaryValue" in value else value.get("StringValue", "")
        size = len(payload) if isinstance(payload, (bytes, bytearray)) else check.utf8_size(str(payload))
        total += len(name.encode()) + len(str(value.get("DataType", "")).encode()) + size
    return total


DEAD_LETTER_ATTRIBUTES = ("fluke.dead_letter.reason", "fluke.dead_letter.source", "fluke.dead_letter.receive_count")
"""What a message moved to a dead-letter queue by this package carries besides its own attributes
(SQS): why (``max_receive_count=N`` or ``unmatched``), the queue it came from, and how often it had
been received there. A redrive takes them off again."""


def with_dead_letter_reason(message: Any, reason: str, source: str, max_bytes: int) -> dict[str, Any]:
    """``message``'s attributes plus :data:`DEAD_LETTER_ATTRIBUTES`, if SQS's limits leave room
    (10 attributes, ``max_bytes`` with the body); else its own attributes alone."""
    own = dict(message.message_attributes)
    if not reason:
        return own
    extra = {
        DEAD_LETTER_ATTRIBUTES[0]: {"DataType": "String", "StringValue": reason},
        DEAD_LETTER_ATTRIBUTES[1]: {"DataType": "String", "StringValue": source or "unknown"},
        DEAD_LETTER_ATTRIBUTES[2]: {"DataType": "Number", "StringValue": str(message.receive_count)},
    }
    merged = {**own, **extra}
    body = len(message.body.encode("utf-8", "surrogatepass"))
    if len(merged) > MAX_ATTRIBUTES or body + size_of(merged) > max_bytes:
        return own
    return merged


def without_dead_letter_reason(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """Attributes as they were before a dead-letter move (for a redrive)."""
    return {name: value for name, value in attributes.items() if name not in DEAD_LETTER_ATTRIBUTES}
