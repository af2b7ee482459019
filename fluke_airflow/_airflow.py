"""What the installed Airflow does, where this provider must behave differently because of it.

Each fact names the Airflow change it depends on; the docs' version table (docs/installation.rst)
is the same list, seen by users.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from airflow.sdk import BaseHook, TriggerRule, conf
    from airflow.sdk.exceptions import AirflowException

__all__ = ["AirflowException", "BaseHook", "TriggerRule", "aget_connection", "amask_secret", "conf", "run_blocking"]

T = TypeVar("T")


@cache
def version() -> tuple[int, int]:
    """The installed Airflow's (major, minor)."""
    from airflow import __version__

    major, minor, *_ = (int("".join(c for c in part if c.isdigit()) or 0) for part in __version__.split("."))
    return major, minor


def has_shared_streams() -> bool:
    """Airflow 3.3 added shared streams in ack mode: one poll per queue, deletes after the asset
    events are stored (``airflow.triggers.shared_stream``)."""
    return version() >= (3, 3)


def has_asset_state_store() -> bool:
    """Airflow 3.3 added the asset state store (AIP-103), which watchers can read and write."""
    return version() >= (3, 3)


def retries_keep_deferral() -> bool:
    """Airflow 3.0's execution API keeps a task's ``next_method``/``next_kwargs`` when a try fails
    after it resumed from a deferral: the retry resumes into ``execute_complete`` with the previous
    try's event. Airflow 3.1 clears them with the state (a retry starts at ``execute``)."""
    return version() < (3, 1)


def scheduler_strands_events() -> bool:
    """Whether an asset event stored while the consumer DAG already has one waiting, or is at
    ``max_active_runs``, waits for a later event before any run consumes it.

    Airflow 3.0 to 3.3 build an asset-triggered run from the events up to the moment the first
    queued one arrived (apache/airflow#56050); apache/airflow#70972, on Airflow's main branch and
    in no release yet, makes the run queue reference its events. Taken to hold for every release
    before 3.4 until a release shows otherwise.
    """
    return version() < (3, 4)


# -- names the task SDK took over after 3.0 ------------------------------------------------------------
_MOVED: dict[str, tuple[str, str]] = {
    # name: (where Airflow has it now, where releases before that keep it)
    "BaseHook": ("airflow.sdk", "airflow.hooks.base"),  # airflow.sdk from 3.1
    "TriggerRule": ("airflow.sdk", "airflow.utils.trigger_rule"),  # airflow.sdk from 3.1
    "conf": ("airflow.sdk", "airflow.configuration"),  # airflow.sdk from 3.2
    "AirflowException": ("airflow.sdk.exceptions", "airflow.exceptions"),  # airflow.sdk.exceptions from 3.1
}


def __getattr__(name: str) -> Any:
    """``from fluke_airflow._airflow import BaseHook`` (and the others of ``_MOVED``): the task SDK's
    name where the installed Airflow has it, the older home otherwise; imported when first asked for."""
    if name not in _MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    for module in _MOVED[name]:
        found = getattr(importlib.import_module(module), name, None)
        if found is not None:
            globals()[name] = found
            return found
    raise ImportError(f"cannot import {name} from {' or '.join(_MOVED[name])} (Airflow {version()})")


def not_found_error() -> type[Exception]:
    """The exception a missing connection raises: ``airflow.sdk.exceptions.AirflowNotFoundException``
    from 3.1 on, ``airflow.exceptions``' before."""
    try:
        from airflow.sdk.exceptions import AirflowNotFoundException
    except ImportError:  # pragma: no cover - task SDKs that keep it in airflow.exceptions
        from airflow.exceptions import AirflowNotFoundException  # type: ignore[no-redef]
    return AirflowNotFoundException


def has_async_connections() -> bool:
    """Airflow 3.1 added ``BaseHook.aget_connection``: a trigger reads its connection without
    blocking the triggerer's event loop."""
    return version() >= (3, 1)


async def aget_connection(conn_id: str) -> Any:
    """The connection ``conn_id``, read from a coroutine (a trigger).

    Airflow 3.1+: ``BaseHook.aget_connection``. Airflow 3.0 has only the blocking lookup: it runs
    through :func:`run_blocking`, in asgiref's worker thread, as 3.0's own triggers do; so does
    reading its extra, since 3.0's ``extra_dejson`` masks its values with a blocking request.
    """
    hook: Any = __getattr__("BaseHook")
    if has_async_connections():
        return await hook.aget_connection(conn_id)

    def read() -> _ReadConnection:
        conn = hook.get_connection(conn_id)
        return _ReadConnection(conn, conn.extra_dejson)

    return await run_blocking(read)


class _ReadConnection:
    """An Airflow 3.0 connection whose extra was parsed (and masked) once, off the event loop."""

    def __init__(self, conn: Any, extra: dict[str, Any]) -> None:
        self._conn = conn
        self.extra_dejson = extra

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def has_thread_safe_comms() -> bool:
    """Airflow 3.2 made the triggerer's blocking requests (``TriggerCommsDecoder.send``) safe from
    any thread: a worker thread hands the request to the event loop. Airflow 3.0 and 3.1 send it
    through asgiref's ``async_to_sync``, which reaches the triggerer's loop only from a thread that
    asgiref's ``sync_to_async`` started (from the loop itself it raises, from another thread it
    runs the request on a loop of its own)."""
    return version() >= (3, 2)


async def run_blocking(call: Callable[..., T], *args: Any) -> T:
    """Run a blocking call that may ask the supervisor (a connection, a secret to mask) off the
    event loop: ``asyncio.to_thread`` from Airflow 3.2 on, asgiref's ``sync_to_async`` before."""
    if has_thread_safe_comms():
        return await asyncio.to_thread(call, *args)
    from asgiref.sync import sync_to_async

    return await sync_to_async(call, thread_sensitive=False)(*args)


def has_async_masking() -> bool:
    """Airflow 3.3 added ``airflow.sdk.log.amask_secret``: a trigger tells the supervisor about a
    secret without a blocking request."""
    return version() >= (3, 3)


async def amask_secret(secret: str) -> None:
    """Mask ``secret`` in this process's logs and the supervisor's, from a coroutine."""
    if has_async_masking():
        from airflow.sdk.log import amask_secret as amask

        await amask(secret)
        return
    from airflow.sdk.log import mask_secret

    await run_blocking(mask_secret, secret)
