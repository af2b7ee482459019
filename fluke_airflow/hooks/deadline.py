"""What a running task has left: the deadline that bounds the SDK's retries of its queue requests.

Airflow checks a sensor's ``timeout`` only between pokes, so a poke whose request the SDK retries
for a minute and a half outlasts a 30 s timeout by that much. Given the deadline, the SDK starts
no retry after it (:mod:`fluke_airflow.auth.retrying`), and the poke fails within the timeout
plus one request, with an error that says so.

The clock starts where Airflow's does: the task instance's start (a sensor in reschedule mode:
its first poke, as ``BaseSensorOperator`` counts it). ``execution_timeout`` counts too, whichever
ends first.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

from fluke_airflow.auth.retrying import Deadline

log = logging.getLogger(__name__)


def _seconds(value: Any) -> float | None:
    if value is None:
        return None
    seconds = value.total_seconds() if hasattr(value, "total_seconds") else float(value)
    return seconds if seconds > 0 else None


def _started(task: Any, context: Any) -> datetime | None:
    ti: Any = context.get("ti") if hasattr(context, "get") else None
    start = getattr(ti, "start_date", None)
    if getattr(task, "reschedule", False) and context.get("task_reschedule_count", 0):
        try:  # what BaseSensorOperator counts its timeout from in reschedule mode
            start = ti.get_first_reschedule_date(context) or start
        except Exception as error:  # the supervisor could not say: the try's own start is a fair bound
            log.debug("could not read the first reschedule date (%s)", type(error).__name__)
    return start if isinstance(start, datetime) else None


def task_deadline(task: Any) -> Deadline | None:
    """The deadline of ``task``, running now (a sensor's ``timeout``, ``execution_timeout``), or
    ``None`` outside a running task or where neither is set."""
    try:
        from airflow.sdk import get_current_context

        context = get_current_context()
    except Exception:  # not inside a running task
        return None
    started = _started(task, context)
    if started is None:
        return None
    limits = []
    timeout = _seconds(getattr(task, "timeout", None))
    if timeout is not None and hasattr(task, "poke"):
        limits.append((timeout, f"the sensor's timeout of {timeout:g} s"))
    execution_timeout = _seconds(getattr(task, "execution_timeout", None))
    if execution_timeout is not None:
        limits.append((execution_timeout, f"the task's execution_timeout of {execution_timeout:g} s"))
    if not limits:
        return None
    seconds, reason = min(limits)
    elapsed = (datetime.now(timezone.utc) - started).total_seconds()
    return Deadline.within(seconds - max(0.0, elapsed), reason)
