"""QueuePollTrigger's shared stream (Airflow 3.3 ack mode) against moto and Azurite.

First the producer alone, told outcomes through ``advance()`` the way the triggerer's
shared-stream group tells it: messages are deleted only for clean outcomes and released
(visible again at once, despite a long visibility timeout) otherwise. Then Airflow's own
``SharedStreamManager`` drives two watchers of one queue, as the triggerer does.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import Any

import pytest
from airflow.triggers.shared_stream import AdvanceItem, AdvanceOutcome, SharedStreamManager
from airflow_support import Service, wait_until

from fluke_airflow.triggers import QueuePollTrigger
from fluke_airflow.triggers.stream import QueueStreamProducer

pytestmark = pytest.mark.usefixtures("airflow_env")

HOLD = 300  # a visibility timeout long enough that only a release makes messages visible again


def producer_for(service: Service, queue: str, **kwargs: Any) -> QueueStreamProducer:
    trigger = QueuePollTrigger(
        conn_id=service.conn_id, queue=queue, wait_time_seconds=1, poke_interval=0.2, visibility_timeout=HOLD, **kwargs
    )
    producer = QueuePollTrigger.create_shared_stream_producer(trigger.serialize()[1])
    assert isinstance(producer, QueueStreamProducer)
    return producer  # type: ignore[no-any-return]


async def deliveries(producer: QueueStreamProducer, count: int) -> tuple[Any, list[tuple[Any, Any]]]:
    stream = producer.open_stream()
    got = [await asyncio.wait_for(stream.__anext__(), timeout=60) for _ in range(count)]
    return stream, got


def bodies(raw: dict[str, Any]) -> list[str]:
    return sorted(m["body"] for m in raw["messages"])


def item(payload: Any, acked: int = 0, failed: int = 0, rejected: int = 0) -> AdvanceItem:
    return AdvanceItem(payload, AdvanceOutcome(acked=acked, failed=failed, rejected=rejected))


async def close(producer: QueueStreamProducer, stream: Any) -> None:
    await stream.aclose()
    await producer.aclose()


async def test_clean_outcome_deletes(service: Service, queue: str) -> None:
    service.send(queue, ["a", "b", "c"])
    producer = producer_for(service, queue)
    stream, [(raw, payload)] = await deliveries(producer, 1)
    try:
        assert bodies(raw) == ["a", "b", "c"]
        assert service.total(queue) == 3  # nothing deleted before the asset events are persisted
        await producer.advance([item(payload, acked=2)])
        assert service.total(queue) == 0
    finally:
        await close(producer, stream)


@pytest.mark.parametrize(
    "outcome",
    [{"acked": 1, "failed": 1}, {"acked": 0, "failed": 0}, {"acked": 1, "rejected": 1}],
    ids=["failed", "no-subscriber", "rejected"],
)
async def test_unclean_outcome_releases_at_once(service: Service, queue: str, outcome: dict[str, int]) -> None:
    service.send(queue, ["x", "y"])
    producer = producer_for(service, queue)
    stream, [(_, payload)] = await deliveries(producer, 1)
    try:
        assert service.drain(queue) == []  # hidden for HOLD seconds...
        await producer.advance([item(payload, **outcome)])
        assert sorted(service.drain(queue)) == ["x", "y"]  # ...but released: visible again right away
    finally:
        await close(producer, stream)


async def test_one_batch_with_both_outcomes(service: Service, queue: str) -> None:
    service.send(queue, ["1", "2", "3", "4"])
    producer = producer_for(service, queue, batch_size=2)
    stream, [(raw1, payload1), (raw2, payload2)] = await deliveries(producer, 2)
    try:
        await producer.advance([item(payload1, acked=1), item(payload2, failed=1)])
        assert sorted(service.drain(queue)) == bodies(raw2)
        assert sorted(bodies(raw1) + bodies(raw2)) == ["1", "2", "3", "4"]
        assert service.total(queue) == 0  # the first delivery was deleted, the second drained above
    finally:
        await close(producer, stream)


async def test_pre_delivery_delete_has_nothing_to_advance(service: Service, queue: str) -> None:
    service.send(queue, ["p"])
    producer = producer_for(service, queue, pre_delivery_delete=True)
    stream, [(raw, payload)] = await deliveries(producer, 1)
    try:
        assert bodies(raw) == ["p"]
        assert service.total(queue) == 0  # deleted before the event
        await producer.advance([item(payload, failed=1)])  # and a failure cannot bring it back
        assert service.total(queue) == 0
    finally:
        await close(producer, stream)


# -- Airflow's SharedStreamManager, the way the triggerer drives it ---------------------------------------------
class Watchers:
    """Watchers subscribed to one shared stream, each consuming like TriggerRunner.run_trigger."""

    def __init__(self, manager: SharedStreamManager, triggers: Iterable[QueuePollTrigger]) -> None:
        self.manager = manager
        self.triggers = list(triggers)
        self.key = self.triggers[0].shared_stream_key()
        assert all(t.shared_stream_key() == self.key for t in self.triggers)
        self.events: dict[int, list[Any]] = {i: [] for i in range(len(self.triggers))}
        self.seqs: list[int] = []
        self.failures: dict[int, BaseException] = {}
        self.tasks = [asyncio.ensure_future(self._consume(i, t)) for i, t in enumerate(self.triggers)]

    async def _consume(self, trigger_id: int, trigger: QueuePollTrigger) -> None:
        stream = self.manager.subscribe(trigger_id=trigger_id, trigger=trigger, key=self.key)
        try:
            async for event in trigger.filter_shared_stream(stream):
                seq = self.manager.bind_pending_event(trigger_id=trigger_id, key=self.key)
                self.events[trigger_id].append(event)
                if seq is not None:
                    self.seqs.append(seq)
        except Exception as error:
            self.failures[trigger_id] = error
        finally:
            await self.manager.unsubscribe(trigger_id, self.key)

    async def wait(self, condition: Any, what: str) -> None:
        for _ in range(600):
            if condition():
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"gave up waiting for {what}")

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self.manager.stop_all()


def watcher(service: Service, queue: str, **kwargs: Any) -> QueuePollTrigger:
    return QueuePollTrigger(
        conn_id=service.conn_id, queue=queue, wait_time_seconds=1, poke_interval=0.2, visibility_timeout=HOLD, **kwargs
    )


async def test_two_watchers_get_every_message_and_deletes_wait_for_persistence(service: Service, queue: str) -> None:
    service.send(queue, ["o-1", "o-2", "o-3"])
    watchers = Watchers(
        SharedStreamManager(ack_timeout=120),
        [watcher(service, queue), watcher(service, queue, event_per_message=True)],
    )
    try:
        await watchers.wait(lambda: len(watchers.events[0]) == 1 and len(watchers.events[1]) == 3, "the events")
        # One poll for both assets: neither took messages away from the other.
        assert sorted(m["body"] for m in watchers.events[0][0].payload["messages"]) == ["o-1", "o-2", "o-3"]
        assert sorted(e.payload["message"]["body"] for e in watchers.events[1]) == ["o-1", "o-2", "o-3"]
        assert len(watchers.seqs) == 4
        assert service.total(queue) == 3  # the asset events are not persisted yet: nothing deleted
        watchers.manager.confirm_persisted(watchers.seqs)  # what the triggerer does once they are stored
        await asyncio.to_thread(wait_until, lambda: service.total(queue) == 0, timeout=60, what="the deletes")
        assert not watchers.failures
    finally:
        await watchers.stop()


async def test_unpersisted_events_are_released_after_the_ack_timeout(service: Service, queue: str) -> None:
    service.send(queue, ["u-1", "u-2"])
    watchers = Watchers(SharedStreamManager(ack_timeout=1.0), [watcher(service, queue)])
    try:
        await watchers.wait(lambda: watchers.events[0], "the event")
        # Never confirmed persisted (the triggerer died before storing it): the subscriber fails at the
        # ack timeout, and the messages are released, visible again long before their visibility timeout.
        collected = await asyncio.to_thread(service.collect, queue, 2, timeout=60)
        assert sorted(collected) == ["u-1", "u-2"]
        await watchers.wait(lambda: watchers.failures, "the subscriber to be failed")
    finally:
        await watchers.stop()
