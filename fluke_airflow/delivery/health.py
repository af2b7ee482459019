"""A trigger's health line: every few minutes, at INFO, what its queue did since the last line.

A watcher that stops firing should be visible in its log before anyone misses a DAG run
(apache/airflow#51213 is a watcher that went quiet after half an hour, with nothing to show it).
The line is logged from a task of its own, so it also comes while the watcher waits for DAG runs,
and it says when the last receive succeeded: a line with "last receive 40 min ago" is the alarm.
A watcher's line also says which consumer DAGs are stalled, and why; it comes at once when one
stalls or comes back (:mod:`~fluke_airflow.triggers.pacing`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from fluke_airflow.queues import metrics

log = logging.getLogger("fluke_airflow.triggers")

DEFAULT_INTERVAL = 300.0
SHOWN = (
    (metrics.RECEIVED, "received"),
    (metrics.DELIVERED, "delivered"),
    (metrics.DELETED, "deleted"),
    (metrics.RELEASED, "released"),
    (metrics.DEAD_LETTERED, "dead-lettered"),
    (metrics.FILTERED_OUT, "filtered out"),
    (metrics.DELETE_FAILED, "delete failures"),
    (metrics.RECEIVE_ERRORS, "receive errors"),
    (metrics.RECEIVE_STALLED, "stalled receives"),
)
SHOWN_ALWAYS = {metrics.RECEIVED, metrics.DELIVERED, metrics.DELETED, metrics.RELEASED, metrics.RECEIVE_ERRORS}
"""Shown even when 0; the others only when something happened."""


class Consumers(Protocol):
    """What a watcher's health line asks about its consumer DAGs (a :class:`~fluke_airflow.triggers.pacing.RunGate`)."""

    changed: asyncio.Event
    """Set when a consumer stalled or came back: a line at once."""

    async def recheck(self) -> str | None:
        """Check the consumers again; what the line says about them (None: nothing wrong)."""
        ...


def watcher_name(queue: Any, settings: Any) -> str:
    """How a watcher's health line names it."""
    return f"Watcher of {queue.service} queue {settings.queue!r} (connection {settings.conn_id!r})"


def interval() -> float:
    """``[fluke_airflow] health_log_interval`` (seconds; 0 turns the line off)."""
    try:
        from fluke_airflow._airflow import conf

        return max(0.0, conf.getfloat("fluke_airflow", "health_log_interval", fallback=DEFAULT_INTERVAL))
    except Exception:
        return DEFAULT_INTERVAL


def health_line(
    what: str,
    since: float,
    before: Counter[str],
    now_totals: Counter[str],
    last_receive: float | None,
    held: int,
    consumers: str | None = None,
) -> str:
    """The text of one line (pure, for tests): counts since ``before``, last receive, messages held,
    and what is wrong with the consumer DAGs, if anything."""
    counts = {name: now_totals[name] - before[name] for name, _ in SHOWN}
    parts = [f"{label} {counts[name]}" for name, label in SHOWN if name in SHOWN_ALWAYS or counts[name]]
    ago = "never" if last_receive is None else f"{max(0.0, time.time() - last_receive):.0f} s ago"
    line = f"{what}, last {since:.0f} s: {', '.join(parts)}; holding {held}; last successful receive {ago}"
    return f"{line}; {consumers}" if consumers else line


@contextlib.asynccontextmanager
async def health_lines(
    queue: Any, what: str, held: Callable[[], int] = lambda: 0, consumers: Consumers | None = None
) -> AsyncIterator[None]:
    """Log :func:`health_line` for ``queue`` every :func:`interval` seconds while the block runs, and
    at once when ``consumers`` change."""
    every = interval()
    if not every:
        yield
        return

    async def run() -> None:
        before, started = queue.metrics.totals(), time.monotonic()
        while True:
            if consumers is None:
                await asyncio.sleep(every)
            else:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(consumers.changed.wait(), every)
                consumers.changed.clear()
            status = await _consumers_status(consumers)
            totals, now = queue.metrics.totals(), time.monotonic()
            line = health_line(what, now - started, before, totals, queue.metrics.last_receive, held(), status)
            log.info("%s", line)
            before, started = totals, now

    task = asyncio.ensure_future(run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _consumers_status(consumers: Consumers | None) -> str | None:
    if consumers is None:
        return None
    try:
        return await consumers.recheck()
    except Exception as error:  # the line still comes, without the consumers
        log.debug("Could not check the consumer DAGs: %s", error)
        return None
