"""Checks for operator, sensor and trigger arguments that may arrive through templates.

A value that is still a template (a Jinja string or an ``XComArg``) is checked after
rendering; anything else is checked when the DAG file is parsed, so mistakes show up as
import errors in the UI instead of failed runs.
"""

from __future__ import annotations

from typing import Any

from fluke_airflow.queues import validation as check


def is_template(value: Any) -> bool:
    """True for a value Airflow will resolve later: Jinja text or an XComArg-like object."""
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    return hasattr(value, "resolve") and hasattr(value, "iter_references")


def contains_template(value: Any) -> bool:
    """True if ``value`` or anything inside it (dict keys and values, list items) is a template."""
    if is_template(value):
        return True
    if isinstance(value, dict):
        return any(contains_template(k) or contains_template(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(contains_template(v) for v in value)
    return False


def messages_from(value: Any, name: str = "message") -> list[str]:
    """A rendered ``message`` argument as a list of bodies (a str is one message)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        if not value:
            raise ValueError(f"{name} rendered to an empty list; give at least one message")
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise TypeError(
                    f"{name} must be a str or a list of str; {name}[{i}] is {type(item).__name__}. "
                    "Serialise structured data first, e.g. with json.dumps"
                )
        return list(value)
    raise TypeError(
        f"{name} must be a str or a list of str, got {type(value).__name__}. "
        "Serialise structured data first, e.g. with json.dumps"
    )


def check_message_arg(value: Any, name: str = "message") -> None:
    """Parse-time check of ``message`` unless it is still a template."""
    if is_template(value):
        return
    if isinstance(value, (list, tuple)) and any(is_template(v) for v in value):
        return
    messages_from(value, name)


def as_int(name: str, value: Any, *, minimum: int, maximum: int | None = None, allow_none: bool = False) -> Any:
    """A rendered int argument: Jinja renders numbers as text, so ``"10"`` is taken as 10."""
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value.strip())
    return check.integer(name, value, minimum=minimum, maximum=maximum, allow_none=allow_none)


def optional_int(name: str, value: Any, *, minimum: int, maximum: int | None = None) -> None:
    """Parse-time check of an int argument unless it is None or still a template."""
    if value is None or is_template(value):
        return
    as_int(name, value, minimum=minimum, maximum=maximum)


DEAD_LETTER_RULES = (
    "max_receive_count moves messages received more often than that to dead_letter_queue (on Azure, "
    "without dead_letter_queue, to the queue's '<queue>-poison' queue, created if missing); dead_letter_queue "
    "alone is for unmatched='dead_letter'"
)


def check_dead_letter_args(max_receive_count: Any, dead_letter_queue: Any, unmatched: Any = "leave") -> None:
    if dead_letter_queue is not None and max_receive_count is None and unmatched != "dead_letter":
        raise ValueError(f"dead_letter_queue needs max_receive_count (or unmatched='dead_letter'): {DEAD_LETTER_RULES}")
