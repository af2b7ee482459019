"""A ``delete_on_dag_success`` watcher's shared-stream producer against moto and Azurite.

The producer is told outcomes through ``advance()`` as the triggerer tells it; the test plays the
scheduler and this provider's listener: it starts runs, writes the listener's record of which run
took which delivery into the asset state store, and sets the run's and its task instances' states
(:class:`~airflow_support.TriggererSupervisor` answers ``GetDagRunState`` and ``GetTaskStates``
from them). A stored delivery stays in the queue, hidden, until its run ends; then each message is
deleted or released by its mapped task instance; a new producer (a restarted triggerer) holds a
message that comes back while its run is still going instead of firing it again.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import pytest_asyncio
from airflow_support import Service, TriggererSupervisor, supervised, wait_until

from fluke_airflow.delivery.payloads import TOKEN
from fluke_airflow.plugins.runs import run_key
from fluke_airflow.triggers import QueuePollTrigger

_shared = pytest.importorskip("airflow.triggers.shared_stream", reason="shared streams need Airflow 3.3+")
AdvanceItem, AdvanceOutcome = _shared.AdvanceItem, _shared.AdvanceOutcome

from fluke_airflow.triggers import kept as kept_module  # noqa: E402 - needs the shared stream
from fluke_airflow.triggers import stream as stream_module  # noqa: E402
from fluke_airflow.triggers.stream import QueueStreamProducer  # noqa: E402

pytestmark = pytest.mark.usefixtures("airflow_env")

CONSUMER = "consumer_dag"
ASSET = "orders_asset"


@pytest_asyncio.fixture(loop_scope="function", autouse=True)
async def supervisor(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(kept_module, "CHECK_INTERVAL", 0.2)
    monkeypatch.setattr(kept_module, "FINISHED_INTERVAL", 0.5)
    with supervised(asyncio.get_running_loop()) as answering:
        yield answering


def producer_for(service: Service, queue: str, **kwargs: Any) -> QueueStreamProducer:
    kwargs = {"visibility_timeout": 300, "dag_ids": [CONSUMER], "delete_on_dag_success": True, "retry_delay": 0,
              "message_task_id": "process", **kwargs}  # fmt: skip
    trigger = QueuePollTrigger(conn_id=service.conn_id, queue=queue, wait_time_seconds=1, poke_interval=0.2, **kwargs)
    producer = QueuePollTrigger.create_shared_stream_producer(trigger.serialize()[1])
    assert isinstance(producer, QueueStreamProducer)
    return producer  # type: ignore[no-any-return]


def stored(payload: Any) -> AdvanceItem:
    return AdvanceItem(payload, AdvanceOutcome(acked=1, failed=0, rejected=0))


def take_run(supervisor: TriggererSupervisor, raw: dict[str, Any], run_id: str, state: str = "running") -> None:
    """What the scheduler and the listener do when a run takes the delivery ``raw``."""
    messages = raw["messages"]
    supervisor.start_run(CONSUMER)
    supervisor.store[(ASSET, run_key(raw[TOKEN], CONSUMER))] = {
        "dag_id": CONSUMER, "run_id": run_id, "messages": {m.id: i for i, m in enumerate(messages)},
        "total": len(messages),
    }  # fmt: skip
    supervisor.run_states[(CONSUMER, run_id)] = state


def end_run(supervisor: TriggererSupervisor, run_id: str, state: str, *mapped: str) -> None:
    supervisor.task_states[(CONSUMER, run_id)] = {f"process_{i}": s for i, s in enumerate(mapped)}
    supervisor.run_states[(CONSUMER, run_id)] = state


async def until(what: str, probe: Any, timeout: float = 60) -> None:
    await asyncio.to_thread(wait_until, probe, timeout=timeout, interval=0.3, what=what)


async def test_a_stored_delivery_waits_for_its_run_then_each_message_goes_by_its_task_instance(
    service: Service, queue: str, supervisor: TriggererSupervisor
) -> None:
    service.send(queue, ["a", "b", "c"])
    producer = producer_for(service, queue)
    with stream_module.watchers(producer.key).join(object(), [CONSUMER], [ASSET]):
        stream = producer.open_stream()
        raw, payload = await asyncio.wait_for(stream.__anext__(), timeout=60)
        try:
            assert raw[TOKEN] and sorted(m.body for m in raw["messages"]) == ["a", "b", "c"]
            await producer.advance([stored(payload)])
            take_run(supervisor, raw, "r1")
            await asyncio.sleep(1.0)  # several looks at a running run
            assert service.total(queue) == 3 and service.drain(queue) == [], "kept, hidden, while the run goes"
            failing = raw["messages"][1].body
            end_run(supervisor, "r1", "failed", "success", "failed", "success")
            await until("the two that succeeded deleted", lambda: service.total(queue) == 1)
            assert await asyncio.to_thread(service.collect, queue, 1) == [failing], "the failed one released"
        finally:
            await stream.aclose()
            await producer.aclose()


async def test_a_restarted_producer_holds_a_message_whose_run_is_still_going_and_deletes_it_when_it_succeeds(
    service: Service, queue: str, supervisor: TriggererSupervisor
) -> None:
    """The triggerer dies while a run goes: the message comes back after its visibility timeout,
    and the next producer holds it (no second event) until the run succeeds, then deletes it."""
    service.send(queue, ["once"])
    first = producer_for(service, queue, visibility_timeout=2)
    with stream_module.watchers(first.key).join(object(), [CONSUMER], [ASSET]):
        stream = first.open_stream()
        raw, payload = await asyncio.wait_for(stream.__anext__(), timeout=60)
        await first.advance([stored(payload)])
        take_run(supervisor, raw, "r1")
        await stream.aclose()
        await first.aclose()  # killed: nothing released, the renewals stop

        again = producer_for(service, queue, visibility_timeout=2)
        stream = again.open_stream()
        pending = asyncio.ensure_future(stream.__anext__())
        try:
            await until("the message back and held again", lambda: again.in_flight() == 1)
            assert service.total(queue) == 1 and not pending.done(), "held, not a second event"
            end_run(supervisor, "r1", "success", "success")
            await until("the message deleted once its run succeeded", lambda: service.total(queue) == 0)
            assert not pending.done()

            def records() -> list[str]:
                keys = [k for (asset, k) in list(supervisor.store) if asset == ASSET]
                return [k for k in keys if k.startswith("fluke_airflow.kept.") and k.count(".") > 2]

            await until("the delivery's record dropped once settled", lambda: not records())
        finally:
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)
            await stream.aclose()
            await again.aclose()


async def test_a_failed_run_cleared_and_succeeded_by_hand_deletes_the_released_messages(
    service: Service, queue: str, supervisor: TriggererSupervisor
) -> None:
    service.send(queue, ["x", "y"])
    producer = producer_for(service, queue, message_task_id=None, retry_delay=600)
    with stream_module.watchers(producer.key).join(object(), [CONSUMER], [ASSET]):
        stream = producer.open_stream()
        raw, payload = await asyncio.wait_for(stream.__anext__(), timeout=60)
        try:
            await producer.advance([stored(payload)])
            take_run(supervisor, raw, "r1")
            end_run(supervisor, "r1", "failed")
            await until("the batch released for its retry delay", lambda: producer.in_flight() == 0)
            assert service.total(queue) == 2 and service.drain(queue) == [], "hidden for the retry delay (600 s)"
            supervisor.run_states[(CONSUMER, "r1")] = "queued"  # cleared by hand
            await asyncio.sleep(1.0)
            end_run(supervisor, "r1", "success")
            await until("the released messages deleted", lambda: service.total(queue) == 0)
        finally:
            await stream.aclose()
            await producer.aclose()


async def test_a_run_deleted_from_airflow_counts_as_failed(
    service: Service, queue: str, supervisor: TriggererSupervisor
) -> None:
    """A deleted run is in no count of ended runs: the watcher still asks each run now and then,
    and releases the messages of one Airflow no longer knows."""
    service.send(queue, ["orphan"])
    producer = producer_for(service, queue, message_task_id=None)
    with stream_module.watchers(producer.key).join(object(), [CONSUMER], [ASSET]):
        stream = producer.open_stream()
        raw, payload = await asyncio.wait_for(stream.__anext__(), timeout=60)
        try:
            await producer.advance([stored(payload)])
            take_run(supervisor, raw, "r1")
            await until("the watcher to follow the run", lambda: producer.in_flight() == 1)
            del supervisor.run_states[(CONSUMER, "r1")]  # deleted by a user
            assert await asyncio.to_thread(service.collect, queue, 1) == ["orphan"]
        finally:
            await stream.aclose()
            await producer.aclose()
