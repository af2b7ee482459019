"""Checks for operator, sensor and trigger arguments that may arrive through templates.

A value that is still a template (a Jinja string or an ``XComArg``) is checked after
rendering; anything else is checked when the DAG file is parsed, so mistakes show up as
import errors in the UI instead of failed runs.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from fluke_airflow.queues import validation as check
from fluke_airflow.queues.arguments import is_template

__all__ = ["as_int", "check_message_arg", "connection_overrides", "deprecated_alias", "is_template", "messages_from",
           "optional_int", "ported", "reject_misspelt"]  # fmt: skip


def ported(ours: str, value: Any, theirs: str, their_value: Any, *, default: Any = None, hint: str = "") -> Any:
    """An argument given under our name or the amazon provider's (``theirs``), not both; required
    (``hint`` completes the error when it is missing)."""
    if value is not None and their_value is not None:
        raise TypeError(f"give {ours} or {theirs} (the amazon provider's name for it), not both")
    found = value if value is not None else their_value if their_value is not None else default
    if found is None:
        raise TypeError(f"{ours} is required (or {theirs}, the amazon provider's name for it){hint}")
    return found


def executor_queue_hint(kwargs: dict[str, Any]) -> str:
    """What to add to "queue_name is required" when the task was given ``queue`` (directly or through
    ``default_args``): that is Airflow's executor queue, never the message queue."""
    if kwargs.get("queue") is None:
        return ""
    return (
        f"; queue={kwargs['queue']!r} is Airflow's executor queue (BaseOperator's, often set by default_args for "
        "Celery), not the message queue: name the message queue with queue_name="
    )


def reject_misspelt(cls: type, kwargs: dict[str, Any]) -> None:
    """Fail on an argument ``cls`` does not take that is close to one it does (``num_message``),
    naming the one meant; Airflow's own error only lists the arguments it did not know."""
    import difflib

    known = _known_arguments(cls)
    wrong = [name for name in kwargs if name not in known and not name.startswith("_")]  # Airflow's own: _airflow_...
    meant = {name: difflib.get_close_matches(name, known, n=1, cutoff=0.8) for name in wrong}
    typos = [f"{name} (did you mean {match[0]}?)" for name, match in meant.items() if match]
    if typos:
        raise TypeError(f"{cls.__name__} does not take {', '.join(typos)}")


def _known_arguments(cls: type) -> list[str]:
    """Every named argument of ``cls``'s ``__init__`` and of those it passes ``**kwargs`` on to."""
    import inspect

    names: dict[str, None] = {}
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        for name, parameter in inspect.signature(init).parameters.items():
            if name != "self" and parameter.kind not in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL):
                names[name] = None
    return list(names)


def deprecated_alias(theirs: str, value: Any, ours: str, our_value: Any) -> Any:
    """The amazon provider's deprecated name for one of our arguments: taken, with its warning."""
    import warnings

    if our_value is not None:
        raise TypeError(f"give {ours} or {theirs} (the amazon provider's deprecated name for it), not both")
    warnings.warn(f"{theirs} is deprecated (in the amazon provider too); use {ours}", DeprecationWarning, stacklevel=4)
    return value


def connection_overrides(region_name: Any, verify: Any, botocore_config: Any) -> dict[str, Any]:
    """The amazon provider's hook arguments a task gives beside its connection (SQS only), checked."""
    from fluke_airflow.queues.arguments import DeliverySettings

    values = {"region_name": region_name, "verify": verify, "botocore_config": botocore_config}
    fields = {f.name: f.metadata["argument"] for f in dataclasses.fields(DeliverySettings) if f.name in values}
    checked = {name: fields[name].check(name, value) for name, value in values.items() if value is not None}
    return {"config" if name == "botocore_config" else name: value for name, value in checked.items()}


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
