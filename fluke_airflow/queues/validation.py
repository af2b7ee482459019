"""Argument checks shared by every queue, run before any request is sent.

Each error names the parameter, the value received and what is allowed, because the
person reading it is usually looking at a DAG file, not at this code.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from functools import cache
from typing import Any, Literal, overload

# Characters SQS accepts in a message body, and that XML 1.0 (Azure's wire format) can carry.
# Compiled on first use: its Unicode ranges take ~5 ms, paid by every DAG file that imports
# an operator otherwise.
_INVALID_CHARS = "[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"


@cache
def _invalid_chars() -> re.Pattern[str]:
    return re.compile(_INVALID_CHARS)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@overload
def integer(
    name: str, value: Any, *, minimum: int = 0, maximum: int | None = None, allow_none: Literal[False] = False
) -> int: ...
@overload
def integer(name: str, value: Any, *, minimum: int = 0, maximum: int | None = None, allow_none: bool) -> int | None: ...
def integer(
    name: str, value: Any, *, minimum: int = 0, maximum: int | None = None, allow_none: bool = False
) -> int | None:
    """``value`` if it is an int (not a bool) from ``minimum`` to ``maximum``; else an error naming
    ``name`` and the allowed range."""
    if value is None and allow_none:
        return None
    upper = f" and at most {maximum}" if maximum is not None else ""
    none = " (or None)" if allow_none else ""
    allowed = f"{name} must be an integer >= {minimum}{upper}{none}"
    if not _is_int(value):
        raise TypeError(f"{allowed}, got {type(value).__name__} {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        raise ValueError(f"{allowed}, got {value!r}")
    return int(value)


@overload
def non_negative_number(name: str, value: Any, *, allow_none: Literal[False] = False) -> float: ...
@overload
def non_negative_number(name: str, value: Any, *, allow_none: bool) -> float | None: ...
def non_negative_number(name: str, value: Any, *, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    none = " (or None)" if allow_none else ""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds >= 0{none}, got {type(value).__name__} {value!r}")
    if value < 0 or value != value:  # NaN fails the second test
        raise ValueError(f"{name} must be a number of seconds >= 0{none}, got {value!r}")
    return float(value)


@overload
def seconds(name: str, value: Any, *, maximum: float | None = None, allow_none: Literal[False] = False) -> float: ...
@overload
def seconds(name: str, value: Any, *, maximum: float | None = None, allow_none: bool) -> float | None: ...
def seconds(name: str, value: Any, *, maximum: float | None = None, allow_none: bool = False) -> float | None:
    """A duration given as a ``timedelta`` or a number of seconds (as Airflow's ``retry_delay``), in seconds."""
    if value is None and allow_none:
        return None
    if hasattr(value, "total_seconds") and not isinstance(value, (int, float)):
        value = value.total_seconds()
    upper = f" and at most {maximum:g}" if maximum is not None else ""
    allowed = f"{name} must be a timedelta or a number of seconds >= 0{upper}" + (" (or None)" if allow_none else "")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{allowed}, got {type(value).__name__} {value!r}")
    if value < 0 or value != value or (maximum is not None and value > maximum):
        raise ValueError(f"{allowed}, got {value!r}")
    return float(value)


def backoff_multiplier(name: str, value: Any) -> float:
    """Airflow's ``retry_exponential_backoff`` as a multiplier: ``True`` doubles (Airflow 3.0's
    boolean), ``False`` or 0 keeps the delay, a number >= 1 multiplies (Airflow 3.1's float)."""
    if value is True:
        return 2.0
    if value is False or value == 0:
        return 1.0
    if isinstance(value, (int, float)) and value >= 1 and value == value and value != float("inf"):
        return float(value)
    raise (TypeError if not isinstance(value, (int, float)) else ValueError)(
        f"{name} must be True (double the delay after each receive), False or 0 (keep it), or a multiplier >= 1, "
        f"got {type(value).__name__} {value!r}"
    )


def boolean(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return value


def non_empty_str(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise (TypeError if not isinstance(value, str) else ValueError)(
            f"{name} must be a non-empty string, got {type(value).__name__} {value!r}"
        )
    return value


def utf8_size(value: str) -> int:
    return len(value.encode("utf-8", "surrogatepass"))


def base64_size(value: str) -> int:
    return 4 * ((utf8_size(value) + 2) // 3)


def message_body(
    value: Any,
    *,
    max_bytes: int,
    service: str,
    position: int | None = None,
    size_of: Callable[[str], int] = utf8_size,
    text_only: bool = True,
) -> str:
    """Check one outgoing body; ``position`` names it inside a ``push_many`` list.

    ``size_of`` measures the body as the service counts it (after any encoding);
    ``text_only`` is off where the body travels base64-encoded and may hold any character.
    """
    name = "message" if position is None else f"messages[{position}]"
    if not isinstance(value, str):
        raise TypeError(
            f"{name} must be a str (serialise other data first, e.g. json.dumps), got {type(value).__name__}"
        )
    size = size_of(value)
    if size > max_bytes:
        raise ValueError(f"{name} is {size} bytes as sent; {service} accepts at most {max_bytes} bytes per message")
    bad = invalid_character(value) if text_only else re.search("[\ud800-\udfff]", value)
    if bad:
        raise ValueError(
            f"{name} contains the character U+{ord(bad.group()):04X} at index {bad.start()}, which {service} "
            "cannot carry in a text message (allowed: tab, newlines and Unicode from U+0020 except "
            "surrogates and U+FFFE/U+FFFF); encode binary data, e.g. with base64"
        )
    return value


def invalid_character(value: str) -> re.Match[str] | None:
    """The first character a text message (or attribute) cannot carry, if any."""
    return _invalid_chars().search(value)


def message_list(values: Any, *, single: bool = False, **rules: Any) -> list[str]:
    """Check a ``push_many`` list; ``rules`` are those of :func:`message_body`.

    ``single``: the list wraps the one ``message`` of ``push``, and errors name it so.
    """
    if single:
        return [message_body(values[0], **rules)]
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise TypeError(f"messages must be a list of str, got {type(values).__name__}")
    items = list(values)
    if not items:
        raise ValueError("messages must contain at least one message, got an empty list")
    return [message_body(v, position=i, **rules) for i, v in enumerate(items)]


def optional_str_list(name: str, values: Sequence[Any] | None, length: int) -> list[str] | None:
    if values is None:
        return None
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise TypeError(f"{name} must be a list of str with one entry per message, got {type(values).__name__}")
    if len(values) != length:
        raise ValueError(f"{name} must have one entry per message ({length}), got {len(values)}")
    for i, v in enumerate(values):
        non_empty_str(f"{name}[{i}]", v)
    return list(values)
