"""Back-pressure for watchers: the next asset event only once the consumer DAGs have taken the last,
and consumers checked, not trusted.

Airflow 3.3.2's scheduler hands an asset-triggered run the events stored up to the moment the
first waiting one arrived; an event stored while another waits, or while the DAG is at
``max_active_runs``, is consumed by no run until some later event arrives (apache/airflow#56050).
A watcher that fires one event, waits until every consumer DAG has *created a run* (its run count
went up), and only then receives the next batch makes each event arrive at an empty run queue:
every event gets a run, at most one event waits per consumer DAG, and the messages meanwhile stay
in the queue, where they are visible to other consumers and cost Airflow nothing.

A consumer named in ``dag_ids`` may not be able to take events at all, and the watcher says so
(an ERROR naming it and what to change, the gauges ``consumers.unknown``/``consumers.stalled``, and
a health line at once) instead of holding the queue in silence:

* **unknown** (a typo, a DAG renamed, deleted, or not parsed yet): checked when the watcher
  starts, on each health line, and again every ``recheck`` seconds while it is unknown. It is left
  out of the pacing; with no consumer DAG that exists, the watcher takes no messages (it could not
  tell that its events reach a run).
* **stalled**: after an event, it started no run for ``[fluke_airflow] consumer_start_grace``
  seconds while it had no run queued or running: paused (Airflow queues no event for a paused
  DAG), not scheduled on this asset, or waiting for its other assets. It is left out of the
  pacing until it starts a run again: its next run gets every event stored since its previous one
  (the scheduler's event window). While every consumer is stalled the watcher fires one event per
  grace period, so that a DAG unpaused meanwhile gets an event that starts it again; without a
  shared stream (Airflow before 3.3) only a run shows that an event was stored, so the watcher
  then holds its batch until one starts.

The counts come from the triggerer's supervisor (:mod:`~fluke_airflow.triggers.consumers`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fluke_airflow.queues import metrics
from fluke_airflow.triggers.consumers import SUPERVISOR, Runs

log = logging.getLogger("fluke_airflow.triggers")

DEFAULT_START_GRACE = 60.0
CAUSES = (
    "paused (unpause it: Airflow queues no event for a paused DAG, and its first run after the next event gets "
    "every event stored since its previous run), not scheduled on this watcher's asset (schedule it on the asset, "
    "or remove it from dag_ids), or waiting for its other assets (schedule it on this asset alone, or remove it "
    "from dag_ids)"
)


def start_grace() -> float:
    """``[fluke_airflow] consumer_start_grace``: seconds an idle consumer DAG may take to start a run."""
    try:
        from fluke_airflow._airflow import conf

        return max(1.0, conf.getfloat("fluke_airflow", "consumer_start_grace", fallback=DEFAULT_START_GRACE))
    except Exception:
        return DEFAULT_START_GRACE


async def dag_run_count(dag_id: str) -> int:
    """How many runs ``dag_id`` has (any state), from the triggerer's supervisor."""
    return await SUPERVISOR.count(dag_id)


def _names(dag_ids: Iterable[str]) -> str:
    return ", ".join(map(repr, dag_ids))


@dataclass
class _Stall:
    runs: int
    """The DAG's run count when it stalled: one more, and it is back."""
    event_at: float
    """When the first event it started no run for was fired (the gate's clock)."""


class RunGate:
    """Waits, after an event, until each consumer DAG has started a run since it was fired; knows
    which consumers are unknown or stalled, and says so."""

    def __init__(
        self,
        dag_ids: Sequence[str] | Callable[[], Sequence[str]],
        queue: str,
        *,
        runs: Runs = SUPERVISOR,
        queue_metrics: Any = None,
        interval: float = 1.0,
        notice_after: float = 10.0,
        warn_every: float = 600.0,
        grace: float | None = None,
        recheck: float = 30.0,
        need_a_run: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        fixed = tuple(dag_ids) if not callable(dag_ids) else ()
        self._dag_ids: Callable[[], Sequence[str]] = dag_ids if callable(dag_ids) else (lambda: fixed)
        self._queue = queue
        self._runs = runs
        self._metrics = queue_metrics
        self._interval = interval
        self._notice_after = notice_after
        self._warn_every = warn_every
        self._grace = start_grace() if grace is None else grace
        self._recheck = recheck
        self._need_a_run = need_a_run
        """Only a run shows that the event was stored (no shared stream's acknowledgement, Airflow
        before 3.3): while no consumer started one, stalled ones are waited for too."""
        self._clock = clock
        self._known: set[str] = set()
        self._unknown: dict[str, float] = {}
        """Unknown DAGs and when they were last checked."""
        self._stalled: dict[str, _Stall] = {}
        self._checking = asyncio.Lock()
        """One check at a time: a health line's and the loop's would ask about the same DAGs twice."""
        self._fired_at: float | None = None
        """When the last snapshot was taken: the event was fired right after."""
        self.changed = asyncio.Event()
        """Set when a consumer became unknown, stalled, or came back: the health line comes at once."""

    @property
    def dag_ids(self) -> tuple[str, ...]:
        return tuple(self._dag_ids())

    # -- which consumers exist ------------------------------------------------------------------------------
    async def check(self, *, again: bool = False) -> None:
        """Find out which consumers exist: those never checked, and the unknown ones again every
        ``recheck`` seconds (``again``: now)."""
        async with self._checking:
            await self._check(again)

    async def _check(self, again: bool) -> None:
        now = self._clock()
        todo = [
            d
            for d in self.dag_ids
            if d not in self._known and (d not in self._unknown or again or now - self._unknown[d] >= self._recheck)
        ]
        if not todo:
            return
        found = await asyncio.gather(*map(self._exists, todo))
        missing = []
        for dag_id, exists in zip(todo, found, strict=True):
            if exists is False:
                if dag_id not in self._unknown:
                    missing.append(dag_id)
                self._unknown[dag_id] = now
            else:
                self._known.add(dag_id)
                if self._unknown.pop(dag_id, None) is not None:
                    log.info("Queue %r: consumer DAG %r exists now; the watcher paces on it", self._queue, dag_id)
                    self._changed()
        if missing:
            self._say_unknown(missing)
        self._gauge()

    async def _exists(self, dag_id: str) -> bool | None:
        if await self._runs.count(dag_id) > 0:  # it has runs: it exists, or existed (then it stalls)
            return True
        return await self._runs.exists(dag_id)

    def _say_unknown(self, missing: list[str]) -> None:
        serving = [d for d in self.dag_ids if d not in self._unknown]
        meanwhile = (
            f"Meanwhile the watcher paces on {_names(serving)} only."
            if serving
            else "Meanwhile the watcher takes no messages (with no consumer DAG to wait for it could not tell that "
            f"its events reach a run); it checks again every {self._recheck:.0f} s."
        )
        log.error(
            "Queue %r: DAG(s) %s in this watcher's dag_ids do not exist in Airflow (a typo, a DAG renamed or deleted, "
            "or a DAG file not parsed yet). Set dag_ids to the DAG(s) scheduled on the watcher's asset. %s",
            self._queue,
            _names(missing),
            meanwhile,
        )
        self._changed()

    async def ready(self) -> None:
        """Return once some consumer DAG exists (at once without ``dag_ids``): a watcher with none
        takes no messages."""
        await self.check()
        while self.dag_ids and all(d in self._unknown for d in self.dag_ids):
            await asyncio.sleep(self._interval)  # a health line may find one meanwhile
            await self.check()

    # -- one event ------------------------------------------------------------------------------------------
    async def snapshot(self) -> dict[str, int]:
        """The run counts of the consumers that exist, now: take them right before firing an event."""
        await self.check()
        dag_ids = [d for d in self.dag_ids if d not in self._unknown]
        counts = dict(zip(dag_ids, await asyncio.gather(*map(self._runs.count, dag_ids)), strict=True))
        for dag_id, n in counts.items():
            self._back_if_started(dag_id, n)
        self._fired_at = self._clock()
        return counts

    async def consumed(self, before: Mapping[str, int]) -> None:
        """Return once every consumer of ``before`` (a :meth:`snapshot`) has more runs than then, or
        stalled (see the module's doc)."""
        started = self._clock() if self._fired_at is None else self._fired_at
        waiting = [d for d in before if d not in self._stalled] or list(before)
        watched = [d for d in before if d not in waiting]  # stalled: only seen for coming back
        noticed = False
        warned_at = started
        idle_since: dict[str, float] = {}
        ran = False
        while True:
            asked = waiting + watched
            counts = dict(zip(asked, await asyncio.gather(*map(self._runs.count, asked)), strict=True))
            ran = ran or any(counts[d] > before[d] for d in asked)
            for dag_id in asked:
                self._back_if_started(dag_id, counts[dag_id])
            watched = [d for d in watched if d in self._stalled]
            waiting = [d for d in waiting if counts[d] <= before[d]]
            now = self._clock()
            waited = now - started
            stalled_out = False
            if waiting and waited >= self._grace / 2:
                remaining = await self._without_stalled(waiting, before, idle_since, now, started)
                if remaining or ran or not self._need_a_run:
                    stalled_out, waiting = len(remaining) < len(waiting), remaining
            if not waiting:
                if noticed and not stalled_out:  # a stall said what the watcher does meanwhile
                    log.info("Queue %r: the consumer DAG(s) started their run after %.0fs; taking messages again",
                             self._queue, waited)  # fmt: skip
                return
            if not noticed and waited >= self._notice_after:
                noticed = True
                log.info(
                    "Queue %r: holding further messages in the queue until DAG(s) %s start a run for the last event",
                    self._queue,
                    _names(waiting),
                )
            if now - warned_at >= self._warn_every and any(d not in self._stalled for d in waiting):
                warned_at = now
                log.warning(
                    "Queue %r: DAG(s) %s have not started a run for the event fired %.0f min ago, with a run queued "
                    "or running all along (at max_active_runs); no message is taken from the queue until they do",
                    self._queue,
                    _names(d for d in waiting if d not in self._stalled),
                    waited / 60,
                )
            await asyncio.sleep(self._interval)

    async def _without_stalled(
        self, waiting: list[str], before: Mapping[str, int], idle_since: dict[str, float], now: float, fired: float
    ) -> list[str]:
        """``waiting`` without the DAGs idle (no run queued or running) for the last half of the grace
        period, once it is over: those stall."""
        busy = await asyncio.gather(*map(self._runs.busy, waiting))
        for dag_id, n in zip(waiting, busy, strict=True):
            if n:
                idle_since.pop(dag_id, None)
            else:
                idle_since.setdefault(dag_id, now)
        if now - fired < self._grace:
            return waiting
        stalled = [d for d in waiting if d in idle_since and now - idle_since[d] >= self._grace / 2]
        for dag_id in stalled:
            self._stall(dag_id, before[dag_id], fired)
        return [d for d in waiting if d not in stalled]

    def _stall(self, dag_id: str, runs: int, fired: float) -> None:
        if dag_id in self._stalled:  # every consumer stalled: the watcher fires one event per grace period
            return
        self._stalled[dag_id] = _Stall(runs, fired)
        others = [d for d in self.dag_ids if d not in self._stalled and d not in self._unknown]
        meanwhile = f"The watcher paces on {_names(others)} meanwhile" if others else f"{self._alone()} meanwhile"
        log.error(
            "Queue %r: consumer DAG %r started no run for the event fired %.0f s ago and has no run queued or "
            "running. It is %s. %s, and paces on %r again once it starts a run.",
            self._queue,
            dag_id,
            self._clock() - fired,
            CAUSES,
            meanwhile,
            dag_id,
        )
        self._gauge()
        self._changed()

    def _back_if_started(self, dag_id: str, runs: int) -> None:
        stall = self._stalled.get(dag_id)
        if stall is None or runs <= stall.runs:
            return
        del self._stalled[dag_id]
        log.info("Queue %r: consumer DAG %r started a run again; the watcher paces on it again", self._queue, dag_id)
        self._gauge()
        self._changed()

    # -- what the health line says --------------------------------------------------------------------------
    def status(self) -> str | None:
        """The consumers' part of the health line: None while every consumer takes its events."""
        dag_ids = self.dag_ids
        unknown = [d for d in dag_ids if d in self._unknown]
        stalled = [d for d in dag_ids if d in self._stalled]
        if dag_ids and len(unknown) == len(dag_ids):
            return f"stalled: taking no messages, no DAG of dag_ids exists in Airflow ({_names(unknown)})"
        parts = []
        if unknown:
            parts.append(f"{_names(unknown)} not found in Airflow (left out of the pacing)")
        if stalled:
            ago = self._clock() - min(self._stalled[d].event_at for d in stalled)
            parts.append(
                f"{_names(stalled)} started no run for an event of {ago:.0f} s ago, with none queued or running "
                "(paused, not scheduled on this asset, or waiting for other assets)"
            )
        if not parts:
            return None
        if len(unknown) + len(stalled) == len(dag_ids):
            parts.append(self._alone().replace("With no other consumer, the watcher ", "", 1))
        return "stalled consumers: " + "; ".join(parts)

    def _alone(self) -> str:
        """What the watcher does while every consumer that exists is stalled."""
        if self._need_a_run:  # a stalled DAG may mean an event that was never stored: nothing is deleted
            return (
                "With no other consumer, the watcher holds the last batch until one of them starts a run (without "
                "a shared stream, only a run shows that Airflow stored the event)"
            )
        return f"With no other consumer, the watcher fires one event per {self._grace:.0f} s"

    async def recheck(self) -> str | None:
        """For each health line: check the unknown consumers again, and say how the consumers are."""
        await self.check(again=True)
        return self.status()

    def _changed(self) -> None:
        self.changed.set()

    def _gauge(self) -> None:
        if self._metrics is not None:
            dag_ids = self.dag_ids
            self._metrics.gauge(metrics.CONSUMERS_UNKNOWN, sum(1 for d in dag_ids if d in self._unknown))
            self._metrics.gauge(metrics.CONSUMERS_STALLED, sum(1 for d in dag_ids if d in self._stalled))
