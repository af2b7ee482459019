"""The run gate on its own: counts and clock are the test's (no triggerer, no emulator)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from fluke_airflow.triggers.pacing import RunGate, dag_run_count

pytestmark = pytest.mark.unit


class Scheduler:
    """Run counts of DAGs, and a clock that moves when the gate sleeps."""

    def __init__(self, **runs: int) -> None:
        self.runs = dict(runs)
        self.now = 0.0
        self.asked: list[str] = []

    async def count(self, dag_id: str) -> int:
        self.asked.append(dag_id)
        return self.runs.get(dag_id, 0)

    def clock(self) -> float:
        return self.now


def gate(scheduler: Scheduler, *dag_ids: str, **kwargs: float) -> RunGate:
    return RunGate(dag_ids, "orders", count_runs=scheduler.count, interval=0.01, clock=scheduler.clock, **kwargs)


async def test_the_gate_opens_once_every_dag_has_a_new_run() -> None:
    scheduler = Scheduler(a=3, b=7)
    g = gate(scheduler, "a", "b")
    before = await g.snapshot()
    assert before == {"a": 3, "b": 7}
    waiting = asyncio.ensure_future(g.consumed(before))
    await asyncio.sleep(0.05)
    scheduler.runs["a"] = 4
    await asyncio.sleep(0.05)
    assert not waiting.done(), "b has no new run yet"
    scheduler.runs["b"] = 8
    await asyncio.wait_for(waiting, 5)


async def test_a_long_wait_is_said_once_then_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    scheduler = Scheduler(slow=0)
    g = gate(scheduler, "slow", notice_after=10, warn_every=600)
    before = await g.snapshot()
    waiting = asyncio.ensure_future(g.consumed(before))
    with caplog.at_level(logging.INFO, logger="fluke_airflow.triggers"):
        for now in (5, 11, 300, 606, 900, 1207):  # the wait starts at 5
            scheduler.now = now
            await asyncio.sleep(0.03)
        scheduler.runs["slow"] = 1
        await asyncio.wait_for(waiting, 5)
    messages = [r.getMessage() for r in caplog.records]
    holding = [m for m in messages if "holding further messages in the queue until DAG(s) 'slow'" in m]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(holding) == 1
    assert len(warnings) == 2 and "'slow' have not started a run for the event fired" in warnings[0].getMessage()
    assert any("taking messages again" in m for m in messages)


async def test_counting_outside_a_triggerer_says_why() -> None:
    with pytest.raises(RuntimeError, match="needs the triggerer"):
        await dag_run_count("anything")
