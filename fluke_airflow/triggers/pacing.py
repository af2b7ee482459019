"""Back-pressure for watchers: the next asset event only once the consumer DAGs have taken the last.

Airflow 3.3.2's scheduler hands an asset-triggered run the events stored up to the moment the
first waiting one arrived; an event stored while another waits, or while the DAG is at
``max_active_runs``, is consumed by no run until some later event arrives (apache/airflow#56050).
A watcher that fires one event, waits until every consumer DAG has *created a run* (its run count
went up), and only then receives the next batch makes each event arrive at an empty run queue:
every event gets a run, at most one event waits per consumer DAG, and the messages meanwhile stay
in the queue, where they are visible to other consumers and cost Airflow nothing.

The run counts come from the triggerer's supervisor (``GetDRCount``), as every trigger may ask.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

log = logging.getLogger("fluke_airflow.triggers")

CountRuns = Callable[[str], Awaitable[int]]


async def dag_run_count(dag_id: str) -> int:
    """How many runs ``dag_id`` has (any state), from the triggerer's supervisor."""
    from airflow.sdk.execution_time import task_runner
    from airflow.sdk.execution_time.comms import DRCount, GetDRCount

    comms = getattr(task_runner, "SUPERVISOR_COMMS", None)
    if comms is None:
        raise RuntimeError("counting DAG runs needs the triggerer (no supervisor to ask in this process)")
    answer = await comms.asend(GetDRCount(dag_id=dag_id))
    if not isinstance(answer, DRCount):
        raise RuntimeError(f"the triggerer's supervisor could not count the runs of DAG {dag_id!r}: {answer!r}")
    return answer.count


class RunGate:
    """Waits, after an event, until each of ``dag_ids`` has started a run since it was fired."""

    def __init__(
        self,
        dag_ids: Sequence[str],
        queue: str,
        *,
        count_runs: CountRuns = dag_run_count,
        interval: float = 1.0,
        notice_after: float = 10.0,
        warn_every: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.dag_ids = tuple(dag_ids)
        self._queue = queue
        self._count = count_runs
        self._interval = interval
        self._notice_after = notice_after
        self._warn_every = warn_every
        self._clock = clock

    async def snapshot(self) -> dict[str, int]:
        """The run counts now: take them right before firing an event."""
        counts = await asyncio.gather(*map(self._count, self.dag_ids))
        return dict(zip(self.dag_ids, counts, strict=True))

    async def consumed(self, before: dict[str, int]) -> None:
        """Return once every DAG of ``before`` has more runs than then."""
        started = self._clock()
        noticed = False
        warned_at = started
        waiting = [dag_id for dag_id in before]
        while True:
            counts = await asyncio.gather(*map(self._count, waiting))
            waiting = [d for d, n in zip(waiting, counts, strict=True) if n <= before[d]]
            if not waiting:
                if noticed:
                    log.info(
                        "Queue %r: the consumer DAG(s) started their run after %.0fs; taking messages again",
                        self._queue,
                        self._clock() - started,
                    )
                return
            waited = self._clock() - started
            if not noticed and waited >= self._notice_after:
                noticed = True
                log.info(
                    "Queue %r: holding further messages in the queue until DAG(s) %s start a run for the last "
                    "event (at max_active_runs, paused, or waiting for other assets)",
                    self._queue,
                    ", ".join(map(repr, waiting)),
                )
            if self._clock() - warned_at >= self._warn_every:
                warned_at = self._clock()
                log.warning(
                    "Queue %r: DAG(s) %s have not started a run for the event fired %.0f min ago; no message is "
                    "taken from the queue until they do. If a DAG is not scheduled on this watcher's asset, "
                    "remove it from dag_ids",
                    self._queue,
                    ", ".join(map(repr, waiting)),
                    waited / 60,
                )
            await asyncio.sleep(self._interval)
