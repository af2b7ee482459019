"""Which received messages a consumer takes: the amazon provider's ``SqsSensor`` filters, and more.

The parameters keep the amazon provider's names and meaning, so DAGs move over as they are:

* ``message_filtering="literal"``: the body equals one of ``message_filtering_match_values``;
* ``message_filtering="jsonpath"`` / ``"jsonpath-ext"``: the body is JSON and the JSONPath
  expression ``message_filtering_config`` finds something in it (``jsonpath-ext``: jsonpath-ng's
  extended grammar, with filters and arithmetic); with ``message_filtering_match_values``, one of
  the values found must be among them;
* ``message_filtering_attributes`` (an addition): SQS message attributes that must hold one of the
  given values, ``{"name": "value"}`` or ``{"name": ["value", ...]}``; every name must match.

Where the amazon provider fails the task on a body that is not JSON, a JSONPath filter here just
does not match it. A filter only reads a message: what happens to the messages it leaves out is
the caller's ``unmatched`` policy (:data:`UNMATCHED`). Free of I/O, like the flows that use it.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fluke_airflow.queues.message import Message

KINDS = ("literal", "jsonpath", "jsonpath-ext")
UNMATCHED = ("leave", "delete", "dead_letter")
"""What becomes of a message no filter takes: ``leave`` it in the queue (hidden for the visibility
timeout, then visible to other consumers; its receive count grows with every look), ``delete`` it,
or move it to the ``dead_letter_queue``."""

_Matcher = Callable[[Message], bool]


def _hashable(value: Any) -> Any:
    return json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else value


def _values(name: str, values: Any) -> frozenset[Any]:
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise TypeError(f"{name} must be a list (or set) of values, got {type(values).__name__} {values!r}")
    found = frozenset(_hashable(v) for v in values)
    if not found:
        raise ValueError(f"{name} must hold at least one value")
    return found


def _jsonpath(kind: str, expression: Any) -> Any:
    if not isinstance(expression, str) or not expression.strip():
        raise ValueError(
            f"message_filtering_config must be a JSONPath expression (a non-empty str, e.g. 'order.status') for "
            f"message_filtering={kind!r}, got {expression!r}"
        )
    # Imported here: a DAG file that filters pays for jsonpath-ng (its grammar builds on import), others not.
    grammar = importlib.import_module("jsonpath_ng" if kind == "jsonpath" else "jsonpath_ng.ext")
    try:
        return grammar.parse(expression)
    except Exception as error:  # jsonpath-ng raises its own lexer and parser errors
        raise ValueError(f"message_filtering_config {expression!r} is not a valid {kind} expression: {error}") from None


def _attribute_values(attribute: Mapping[str, Any]) -> Any:
    if "StringValue" in attribute:
        return attribute["StringValue"]
    return attribute.get("BinaryValue")


@dataclass(frozen=True)
class MessageFilter:
    """The filters of one consumer; :meth:`matches` says whether it takes a message."""

    message_filtering: str | None = None
    message_filtering_match_values: frozenset[Any] | None = None
    message_filtering_config: Any = None
    message_filtering_attributes: Mapping[str, frozenset[str]] = field(default_factory=dict)
    _match: _Matcher | None = field(default=None, repr=False, compare=False)

    @classmethod
    def build(
        cls,
        message_filtering: Any = None,
        message_filtering_match_values: Any = None,
        message_filtering_config: Any = None,
        message_filtering_attributes: Any = None,
    ) -> MessageFilter:
        """A filter from the arguments, each checked with an error naming it and what is allowed."""
        if message_filtering not in (None, *KINDS):
            raise ValueError(
                f"message_filtering must be one of {', '.join(map(repr, KINDS))} or None, got {message_filtering!r}"
            )
        values = (
            None
            if message_filtering_match_values is None
            else _values("message_filtering_match_values", message_filtering_match_values)
        )
        checks: list[_Matcher] = []
        if message_filtering is None and (values is not None or message_filtering_config is not None):
            raise ValueError(
                "message_filtering_match_values and message_filtering_config need message_filtering "
                "('literal', 'jsonpath' or 'jsonpath-ext')"
            )
        if message_filtering == "literal":
            if values is None:
                raise TypeError("message_filtering_match_values must be given for message_filtering='literal'")
            checks.append(lambda m: m.body in values)
        elif message_filtering in ("jsonpath", "jsonpath-ext"):
            expression = _jsonpath(message_filtering, message_filtering_config)

            def by_path(message: Message) -> bool:
                try:
                    found = expression.find(json.loads(message.body))
                except (ValueError, TypeError):
                    return False  # not JSON: no match (the amazon provider would fail the task)
                if not found:
                    return False
                return values is None or any(_hashable(r.value) in values for r in found)

            checks.append(by_path)
        attributes: dict[str, frozenset[str]] = {}
        if message_filtering_attributes is not None:
            if not isinstance(message_filtering_attributes, Mapping) or not message_filtering_attributes:
                raise TypeError(
                    "message_filtering_attributes must be a non-empty dict of attribute name to value(s), e.g. "
                    f"{{'event_type': ['created', 'updated']}}, got {message_filtering_attributes!r}"
                )
            for name, wanted in message_filtering_attributes.items():
                if not isinstance(name, str) or not name:
                    raise TypeError(f"message_filtering_attributes names must be non-empty strings, got {name!r}")
                allowed = [wanted] if isinstance(wanted, str) else wanted
                attributes[name] = _values(f"message_filtering_attributes[{name!r}]", allowed)

            def by_attributes(message: Message) -> bool:
                held = message.message_attributes
                return all(name in held and _attribute_values(held[name]) in ok for name, ok in attributes.items())

            checks.append(by_attributes)

        def match(message: Message) -> bool:
            return all(check(message) for check in checks)

        return cls(message_filtering, values, message_filtering_config, attributes, match if checks else None)

    @property
    def active(self) -> bool:
        return self._match is not None

    @property
    def uses_attributes(self) -> bool:
        return bool(self.message_filtering_attributes)

    def matches(self, message: Message) -> bool:
        return self._match is None or self._match(message)

    def split(self, messages: list[Message]) -> tuple[list[Message], list[Message]]:
        """(taken, left out), each in the order received."""
        if self._match is None:
            return messages, []
        taken = [m for m in messages if self._match(m)]
        kept = {id(m) for m in taken}
        return taken, [m for m in messages if id(m) not in kept]


NO_FILTER = MessageFilter()


def check_unmatched(unmatched: Any, dead_letter_queue: Any) -> str:
    if unmatched not in UNMATCHED:
        raise ValueError(f"unmatched must be one of {', '.join(map(repr, UNMATCHED))}, got {unmatched!r}")
    if unmatched == "dead_letter" and not dead_letter_queue:
        raise ValueError("unmatched='dead_letter' needs dead_letter_queue: the queue (same connection) that takes them")
    return str(unmatched)
