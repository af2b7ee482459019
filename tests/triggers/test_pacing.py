"""The run gate on its own: runs, DAGs and clock are the test's (no triggerer, no emulator), and the
consumer checks through a fake of the triggerer's supervisor (tests/airflow_support.py)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from airflow_support import TriggererSupervisor, supervised

from devtools.support import wait_until_async
from fluke_airflow.delivery.health import health_lines
from fluke_airflow.queues import metrics
from fluke_airflow.triggers.consumers import PROBE_GROUP, SupervisorRuns, dag_found
from fluke_airflow.triggers.pacing import RunGate, dag_run_count

pytestmark = pytest.mark.unit
LOGGER = "fluke_airflow.triggers"


class Scheduler:
    """Runs of DAGs (all, and queued or running), the DAGs Airflow knows, and a clock that moves
    when the test says."""

    def __init__(self, **runs: int) -> None:
        self.runs = dict(runs)
        self.busy_runs: dict[str, int] = {}
        self.missing: set[str] = set()
        self.now = 0.0
        self.asked: list[str] = []
        self.checked: list[str] = []

    async def count(self, dag_id: str) -> int:
        self.asked.append(dag_id)
        return self.runs.get(dag_id, 0)

    async def busy(self, dag_id: str) -> int:
        return self.busy_runs.get(dag_id, 0)

    async def exists(self, dag_id: str) -> bool | None:
        self.checked.append(dag_id)
        await asyncio.sleep(0.01)  # the supervisor takes a moment to answer
        return dag_id not in self.missing

    def start_run(self, dag_id: str) -> None:
        self.runs[dag_id] = self.runs.get(dag_id, 0) + 1

    def clock(self) -> float:
        return self.now


class Gauges:
    """A queue's metrics as the gate uses them: the last value of each gauge."""

    def __init__(self) -> None:
        self.values: dict[str, float] = {}

    def gauge(self, name: str, value: float) -> None:
        self.values[name] = value


def gate(scheduler: Scheduler, *dag_ids: str, gauges: Gauges | None = None, **kwargs: float) -> RunGate:
    return RunGate(dag_ids, "orders", runs=scheduler, queue_metrics=gauges, interval=0.01, clock=scheduler.clock,
                   **{"grace": 60.0, **kwargs})  # fmt: skip


async def settle_down() -> None:
    """Let the gate's loop go round a few times (its interval is 0.01 s)."""
    await asyncio.sleep(0.05)


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.INFO, logger=LOGGER):
        yield caplog


# -- pacing ------------------------------------------------------------------------------------------------
async def test_the_gate_opens_once_every_dag_has_a_new_run() -> None:
    scheduler = Scheduler(a=3, b=7)
    g = gate(scheduler, "a", "b")
    before = await g.snapshot()
    assert before == {"a": 3, "b": 7}
    waiting = asyncio.ensure_future(g.consumed(before))
    await settle_down()
    scheduler.runs["a"] = 4
    await settle_down()
    assert not waiting.done(), "b has no new run yet"
    scheduler.runs["b"] = 8
    await asyncio.wait_for(waiting, 5)


async def test_a_busy_dag_is_waited_for_said_once_then_warned_about(logs: pytest.LogCaptureFixture) -> None:
    scheduler = Scheduler(slow=1)
    scheduler.busy_runs["slow"] = 1  # at max_active_runs: a run queued or running all along
    g = gate(scheduler, "slow", notice_after=10, warn_every=600)
    before = await g.snapshot()
    waiting = asyncio.ensure_future(g.consumed(before))
    for now in (5, 11, 300, 606, 900, 1207):  # the wait starts at 5
        scheduler.now = now
        await asyncio.sleep(0.03)
    assert not waiting.done(), "a busy DAG is not stalled: the gate waits for its run"
    scheduler.runs["slow"] = 2
    await asyncio.wait_for(waiting, 5)
    messages = [r.getMessage() for r in logs.records]
    holding = [m for m in messages if "holding further messages in the queue until DAG(s) 'slow'" in m]
    warnings = [r for r in logs.records if r.levelno == logging.WARNING]
    assert len(holding) == 1
    assert len(warnings) == 2 and "'slow' have not started a run for the event fired" in warnings[0].getMessage()
    assert "at max_active_runs" in warnings[0].getMessage()
    assert any("taking messages again" in m for m in messages)
    assert not errors(logs), "a busy DAG is not an error"


async def test_counting_outside_a_triggerer_says_why() -> None:
    with pytest.raises(RuntimeError, match="needs the triggerer"):
        await dag_run_count("anything")


# -- unknown consumers ---------------------------------------------------------------------------------------
async def test_an_unknown_dag_gets_an_error_a_gauge_and_is_left_out_of_the_pacing(
    logs: pytest.LogCaptureFixture,
) -> None:
    scheduler = Scheduler(orders=2)
    scheduler.missing.add("orders_TYPO")
    gauges = Gauges()
    g = gate(scheduler, "orders", "orders_TYPO", gauges=gauges)
    await asyncio.wait_for(g.ready(), 5)  # one consumer exists: the watcher takes messages
    (error,) = errors(logs)
    assert "'orders_TYPO' in this watcher's dag_ids do not exist in Airflow" in error
    assert "Set dag_ids to the DAG(s) scheduled on the watcher's asset" in error
    assert "paces on 'orders' only" in error
    assert gauges.values[metrics.CONSUMERS_UNKNOWN] == 1 and gauges.values[metrics.CONSUMERS_STALLED] == 0
    assert g.changed.is_set(), "the health line comes at once"
    assert g.status() == "stalled consumers: 'orders_TYPO' not found in Airflow (left out of the pacing)"
    before = await g.snapshot()
    assert before == {"orders": 2}
    scheduler.start_run("orders")
    await asyncio.wait_for(g.consumed(before), 5)
    await g.check()
    assert len(errors(logs)) == 1, "said once, not on every event"


async def test_with_no_consumer_that_exists_the_watcher_takes_nothing_until_one_does(
    logs: pytest.LogCaptureFixture,
) -> None:
    scheduler = Scheduler()
    scheduler.missing.add("nc_on_typo_WRONG")
    g = gate(scheduler, "nc_on_typo_WRONG")
    ready = asyncio.ensure_future(g.ready())
    await wait_until_async(lambda: errors(logs), what="the gate's ERROR")  # its first check, however busy the machine
    assert not ready.done(), "no consumer exists: no message may be taken"
    (error,) = errors(logs)
    assert "'nc_on_typo_WRONG' in this watcher's dag_ids do not exist in Airflow" in error
    assert "the watcher takes no messages" in error
    status = g.status()
    assert status is not None and status.startswith("stalled: taking no messages, no DAG of dag_ids exists")
    scheduler.missing.clear()  # the DAG file is fixed (or parsed at last)
    await settle_down()
    assert not ready.done(), "checked again every 30 s, not on every turn of the loop"
    scheduler.now = 30
    await asyncio.wait_for(ready, 5)
    assert any("consumer DAG 'nc_on_typo_WRONG' exists now" in r.getMessage() for r in logs.records)
    assert g.status() is None


async def test_a_health_line_and_the_loop_checking_at_once_ask_about_a_dag_once() -> None:
    """Each existence check is an ERROR line in the triggerer's log (the supervisor logs the 404)."""
    scheduler = Scheduler()
    g = gate(scheduler, "never_ran")
    await asyncio.gather(g.ready(), g.recheck())
    assert scheduler.checked == ["never_ran"]


async def test_a_gate_without_dag_ids_is_always_ready() -> None:
    g = gate(Scheduler())
    await asyncio.wait_for(g.ready(), 5)
    assert await g.snapshot() == {}
    await asyncio.wait_for(g.consumed({}), 5)


# -- stalled consumers ---------------------------------------------------------------------------------------
async def test_an_idle_dag_that_starts_no_run_stalls_within_one_check_after_the_grace(
    logs: pytest.LogCaptureFixture,
) -> None:
    scheduler = Scheduler(a=0, paused=0)
    gauges = Gauges()
    g = gate(scheduler, "a", "paused", gauges=gauges)
    await g.ready()
    before = await g.snapshot()
    waiting = asyncio.ensure_future(g.consumed(before))
    scheduler.start_run("a")
    for now in (10, 31, 59):
        scheduler.now = now
        await settle_down()
        assert not waiting.done() and not errors(logs), f"within the grace period (at {now} s) nothing is said"
    scheduler.now = 61
    await asyncio.wait_for(waiting, 5)  # the gate goes on without the stalled DAG
    assert "taking messages again" not in logs.text, "the stalled DAG did not start its run"
    (error,) = errors(logs)
    assert "consumer DAG 'paused' started no run for the event fired 61 s ago and has no run queued or running" in error
    for cause in ("paused (unpause it", "not scheduled on this watcher's asset (schedule it on the asset, or remove "
                  "it from dag_ids)", "waiting for its other assets (schedule it on this asset alone"):  # fmt: skip
        assert cause in error
    assert "The watcher paces on 'a' meanwhile, and paces on 'paused' again once it starts a run" in error
    assert gauges.values[metrics.CONSUMERS_STALLED] == 1
    status = g.status()
    assert status is not None and status.startswith("stalled consumers: 'paused' started no run for an event of")
    assert "(paused, not scheduled on this asset, or waiting for other assets)" in status

    # The next event: the stalled DAG is not waited for.
    before = await g.snapshot()
    waiting = asyncio.ensure_future(g.consumed(before))
    scheduler.start_run("a")
    await asyncio.wait_for(waiting, 5)

    # It is unpaused; the next event starts it: it is back in the pacing.
    before = await g.snapshot()
    waiting = asyncio.ensure_future(g.consumed(before))
    scheduler.start_run("a")
    scheduler.start_run("paused")
    await asyncio.wait_for(waiting, 5)
    assert any("consumer DAG 'paused' started a run again" in r.getMessage() for r in logs.records)
    assert g.status() is None and gauges.values[metrics.CONSUMERS_STALLED] == 0
    before = await g.snapshot()
    waiting = asyncio.ensure_future(g.consumed(before))
    scheduler.start_run("a")
    await settle_down()
    assert not waiting.done(), "back in the pacing: the gate waits for it again"
    scheduler.start_run("paused")
    await asyncio.wait_for(waiting, 5)
    assert len(errors(logs)) == 1


async def test_a_dag_whose_run_finishes_late_in_the_grace_period_is_given_time(logs: pytest.LogCaptureFixture) -> None:
    scheduler = Scheduler(slow=1)
    scheduler.busy_runs["slow"] = 1
    g = gate(scheduler, "slow")
    before = await g.snapshot()
    waiting = asyncio.ensure_future(g.consumed(before))
    scheduler.now = 50
    await settle_down()
    scheduler.busy_runs["slow"] = 0  # its run ended at 50 s: seen idle from the next check, at 61 s
    for now in (61, 75, 90):
        scheduler.now = now
        await settle_down()
        assert not waiting.done(), f"seen idle for {now - 61} s only, less than half the grace period"
    scheduler.now = 92
    await asyncio.wait_for(waiting, 5)
    assert len(errors(logs)) == 1


async def test_when_every_consumer_is_stalled_each_event_waits_one_grace_period(
    logs: pytest.LogCaptureFixture,
) -> None:
    scheduler = Scheduler(only=0)
    g = gate(scheduler, "only")
    for start in (0, 100):
        scheduler.now = start
        before = await g.snapshot()
        waiting = asyncio.ensure_future(g.consumed(before))
        scheduler.now = start + 30
        await settle_down()
        assert not waiting.done(), "a stalled DAG is waited for one grace period when it is the only consumer"
        scheduler.now = start + 61
        await asyncio.wait_for(waiting, 5)
    assert len(errors(logs)) == 1, "stalled once, said once"
    assert "With no other consumer, the watcher fires one event per 60 s meanwhile" in errors(logs)[0]
    status = g.status()
    assert status is not None and status.endswith("; fires one event per 60 s"), status


async def test_without_a_shared_stream_a_batch_no_consumer_ran_for_is_held(logs: pytest.LogCaptureFixture) -> None:
    """Before Airflow 3.3 only a run shows that the event was stored: a batch is deleted after the
    gate opens, so with every consumer stalled it must not open (the store may have failed)."""
    scheduler = Scheduler(only=0)
    g = gate(scheduler, "only", need_a_run=True)
    before = await g.snapshot()
    waiting = asyncio.ensure_future(g.consumed(before))
    for now in (30, 61, 200, 700):
        scheduler.now = now
        await settle_down()
        assert not waiting.done(), f"no run at {now} s: the event may not be stored"
    await wait_until_async(lambda: errors(logs), what="the gate's ERROR")
    (error,) = errors(logs)
    assert "the watcher holds the last batch until one of them starts a run" in error
    assert not [r for r in logs.records if r.levelno == logging.WARNING], "a stalled DAG is not called busy"
    scheduler.start_run("only")
    await asyncio.wait_for(waiting, 5)
    assert g.status() is None


# -- the health line -----------------------------------------------------------------------------------------
class Totals:
    def __init__(self) -> None:
        self.metrics = self
        self.last_receive = None

    def totals(self) -> Any:
        from collections import Counter

        return Counter()


async def test_the_health_line_says_stalled_and_why_at_once(
    logs: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__FLUKE_AIRFLOW__HEALTH_LOG_INTERVAL", "3600")  # only a change brings a line
    scheduler = Scheduler(orders=1)
    scheduler.missing.add("orders_TYPO")
    g = gate(scheduler, "orders", "orders_TYPO")
    async with health_lines(Totals(), "Watcher of Amazon SQS queue 'orders'", lambda: 0, g):
        await g.ready()
        for _ in range(100):
            lines = [r.getMessage() for r in logs.records if r.getMessage().startswith("Watcher of")]
            if lines:
                break
            await asyncio.sleep(0.02)
    (line,) = lines
    assert line.endswith("; stalled consumers: 'orders_TYPO' not found in Airflow (left out of the pacing)"), line


# -- through the triggerer's supervisor ------------------------------------------------------------------------
async def test_the_supervisor_tells_an_unknown_dag_from_one_it_knows() -> None:
    with supervised(asyncio.get_running_loop()) as supervisor:
        assert isinstance(supervisor, TriggererSupervisor)
        supervisor.missing.add("nc_on_typo_WRONG")
        supervisor.runs["orders"] = 3
        supervisor.busy["orders"] = 1
        runs = SupervisorRuns()
        assert await runs.count("orders") == 3 and await runs.busy("orders") == 1
        assert await runs.count("nc_on_typo_WRONG") == 0, "Airflow counts 0 runs for an unknown DAG, no error"
        assert await runs.exists("nc_on_typo_WRONG") is False
        assert await runs.exists("never_ran") is True
        asked = supervisor.requests.count("GetTaskStates")
        assert await runs.exists("never_ran") is True
        assert supervisor.requests.count("GetTaskStates") == asked, "a DAG found is not asked about again"


def test_the_answers_of_airflow_3_3_are_read_as_they_are_worded() -> None:
    def answer(message: str) -> dict[str, Any]:
        return {"status_code": 404, "message": "Server returned error",
                "detail": {"detail": {"reason": "not_found", "message": message}}}  # fmt: skip

    class Error:
        def __init__(self, detail: Any) -> None:
            self.detail = detail

    assert dag_found(Error(answer("The Dag with ID: `x` was not found"))) is False
    assert dag_found(Error(answer(f"Task group {PROBE_GROUP} not found in DAG x"))) is True
    assert dag_found(Error({"status_code": None, "message": "ConnectError", "exception_type": "ConnectError"})) is None
    assert dag_found(None) is None
