"""Who else polls this queue: a heartbeat per poller in an Airflow Variable, seen by every triggerer.

Airflow may run the watchers of one queue on different triggerers (with two or more, it places
triggers by capacity, not by queue), and a shared stream lives inside one triggerer process. Two
poll loops of one queue then compete: each message reaches only one of them, and the assets behind
each miss what the other takes, silently. Each poll loop therefore writes a heartbeat into the
Variable ``fluke_airflow.pollers.<digest>`` of its queue every :data:`INTERVAL` seconds (what it
is, where it runs, which assets and DAGs it serves), reads the others', and says what it finds:
an ERROR for a loop with the same settings in another process (a split Airflow made), a WARNING
for one with other settings (watchers that compete by configuration). Variables are reachable
from every triggerer (through the supervisor) on every Airflow 3 release.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("fluke_airflow.triggers")

INTERVAL = 60.0
"""Seconds between heartbeats (``[fluke_airflow] poller_heartbeat_interval``)."""
STALE_AFTER = 3 * INTERVAL
"""A heartbeat older than this many seconds, or three intervals, is a poller that is gone."""
REPEAT_AFTER = 600.0
"""An unchanged finding is said again this often."""


def configured_interval() -> float:
    try:
        from fluke_airflow._airflow import conf

        return max(1.0, conf.getfloat("fluke_airflow", "poller_heartbeat_interval", fallback=INTERVAL))
    except Exception:  # an unreadable setting must not stop a watcher
        return INTERVAL


def variable_key(conn_id: str, queue: str) -> str:
    return "fluke_airflow.pollers." + hashlib.sha256(f"{conn_id}\0{queue}".encode()).hexdigest()[:16]


def settings_digest(stream_key: Any) -> str:
    return hashlib.sha256(repr(stream_key).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Poller:
    """One poll loop of a queue, as its heartbeat describes it."""

    id: str
    process: str
    settings: str
    assets: tuple[str, ...]
    dag_ids: tuple[str, ...]
    seen: float

    @classmethod
    def read(cls, poller_id: str, data: dict[str, Any]) -> Poller:
        return cls(
            id=poller_id,
            process=str(data.get("process", "?")),
            settings=str(data.get("settings", "")),
            assets=tuple(data.get("assets", ())),
            dag_ids=tuple(data.get("dag_ids", ())),
            seen=float(data.get("seen", 0)),
        )

    def written(self) -> dict[str, Any]:
        return {
            "process": self.process,
            "settings": self.settings,
            "assets": list(self.assets),
            "dag_ids": list(self.dag_ids),
            "seen": self.seen,
        }

    def describe(self) -> str:
        assets = ", ".join(self.assets) or "no asset yet"
        return f"{self.process} (assets {assets}; DAGs {', '.join(self.dag_ids) or '-'})"


async def _get(key: str) -> str | None:
    from airflow.sdk.execution_time import task_runner
    from airflow.sdk.execution_time.comms import GetVariable, VariableResult

    answer = await task_runner.SUPERVISOR_COMMS.asend(GetVariable(key=key))
    return answer.value if isinstance(answer, VariableResult) else None


async def _put(key: str, value: str) -> None:
    from airflow.sdk.execution_time import task_runner
    from airflow.sdk.execution_time.comms import PutVariable

    description = "fluke-airflow: heartbeats of the poll loops of one queue (written by watchers; safe to delete)"
    await task_runner.SUPERVISOR_COMMS.asend(PutVariable(key=key, value=value, description=description))


class PollerRegistry:
    """The heartbeats of the poll loops of one queue."""

    def __init__(
        self,
        conn_id: str,
        queue: str,
        stream_key: Any,
        members: Callable[[], tuple[tuple[str, ...], tuple[str, ...]]],
        *,
        process: str | None = None,
        get: Callable[[str], Any] = _get,
        put: Callable[[str, str], Any] = _put,
        clock: Callable[[], float] = time.time,
        interval: float | None = None,
    ) -> None:
        """``members()``: the (assets, dag_ids) this loop serves now."""
        self.interval = configured_interval() if interval is None else interval
        self.stale_after = max(STALE_AFTER, 3 * self.interval)
        self.queue = queue
        self.conn_id = conn_id
        self.key = variable_key(conn_id, queue)
        self.id = uuid.uuid4().hex[:12]
        self.process = process or f"{socket.gethostname()}:{os.getpid()}"
        self.settings = settings_digest(stream_key)
        self._members = members
        self._get, self._put, self._clock = get, put, clock
        self._said: dict[str, float] = {}

    def _me(self) -> Poller:
        assets, dag_ids = self._members()
        return Poller(self.id, self.process, self.settings, assets, dag_ids, self._clock())

    async def _read(self) -> dict[str, Any]:
        raw = await self._get(self.key)
        try:
            data = json.loads(raw) if raw else {}
        except ValueError:
            data = {}
        return data if isinstance(data, dict) else {}

    async def beat(self) -> list[Poller]:
        """Write this loop's heartbeat; the other live loops of the queue."""
        data = await self._read()
        now = self._clock()
        pollers = {pid: p for pid, p in (data.get("pollers") or {}).items() if isinstance(p, dict) and pid != self.id}
        others = [Poller.read(pid, p) for pid, p in pollers.items() if now - float(p.get("seen", 0)) < self.stale_after]
        written = {p.id: p.written() for p in others}
        written[self.id] = self._me().written()
        await self._put(self.key, json.dumps({"queue": self.queue, "connection": self.conn_id, "pollers": written}))
        self._report(others)
        return others

    async def leave(self) -> None:
        data = await self._read()
        pollers = dict(data.get("pollers") or {})
        if pollers.pop(self.id, None) is not None:
            await self._put(self.key, json.dumps({**data, "pollers": pollers}))

    def _report(self, others: Sequence[Poller]) -> None:
        now = self._clock()
        me = self._me()
        for other in others:
            if now - self._said.get(other.id, -REPEAT_AFTER) < REPEAT_AFTER:
                continue
            self._said[other.id] = now
            if other.settings == self.settings and set(other.assets) == set(me.assets):
                # The same watcher elsewhere: the one that ran it before a failover or restart,
                # whose last heartbeat has not aged out yet. Not a split.
                log.debug("Queue %r: %s ran this watcher before", self.queue, other.describe())
            elif other.settings == self.settings and other.process != self.process:
                log.error(
                    "Queue %r (connection %r) is polled by two triggerers with the same watcher settings: here, %s, "
                    "and %s. Airflow placed this queue's watchers on different triggerers, so the two poll loops "
                    "compete and each message reaches only one of them: each set of assets misses the messages the "
                    "other takes. To give every pipeline every message whatever the placement, schedule the DAGs "
                    "on one asset with one watcher (dag_ids listing them all), or fan out before the queue (SNS to "
                    "one SQS queue per pipeline)",
                    self.queue,
                    self.conn_id,
                    me.describe(),
                    other.describe(),
                )
            elif other.settings != self.settings:
                log.warning(
                    "Queue %r (connection %r) is also polled by a watcher with other settings: %s, besides this one, "
                    "%s. They compete: each message reaches only one of them",
                    self.queue,
                    self.conn_id,
                    other.describe(),
                    me.describe(),
                )


@contextlib.asynccontextmanager
async def presence(registry: PollerRegistry) -> AsyncIterator[PollerRegistry]:
    """Announce this poll loop in the queue's Variable while the block runs (its heartbeat there:
    "heartbeat" in this module is that presence, never a visibility renewal); a failing Variable
    store is logged once and never stops the watcher."""

    async def loop() -> None:
        failed = False
        while True:
            try:
                await registry.beat()
                failed = False
            except asyncio.CancelledError:
                raise
            except Exception as error:
                if not failed:
                    log.warning("Queue %r: cannot write the poller heartbeat (%s); a split goes unnoticed",
                                registry.queue, error)  # fmt: skip
                failed = True
            await asyncio.sleep(registry.interval)

    task = asyncio.ensure_future(loop())
    try:
        yield registry
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        with contextlib.suppress(Exception):
            await asyncio.wait_for(registry.leave(), 5)
