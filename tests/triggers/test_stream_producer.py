"""QueuePollTrigger's shared stream (Airflow 3.3 ack mode) against moto and Azurite.

First the producer alone, told outcomes through ``advance()`` the way the triggerer's
shared-stream group tells it: messages are deleted only for clean outcomes and released
(visible again at once, despite a long visibility timeout) otherwise; after a stored event it
takes no more messages until the consumer DAGs have started a run; a message that comes back
after it was handed over starts no second event. Then Airflow's own ``SharedStreamManager``
drives watchers of one queue, as the triggerer does. The triggerer's supervisor (run counts,
asset state store) is a :class:`~airflow_support.TriggererSupervisor`; the test plays the scheduler.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Any

import pytest
import pytest_asyncio
from airflow_support import TriggererSupervisor, run_count_checks, supervised

from devtools.admin import Service, SQSService
from devtools.support import wait_until_async
from fluke_airflow.queues import lifecycle
from fluke_airflow.triggers import QueuePollTrigger

# Before Airflow 3.3 there is no shared stream: the triggerer runs each watcher's own run(), the
# path test_poll_trigger.py's watch-mode tests take (and test_the_triggerer_takes_the_path_...).
_shared = pytest.importorskip("airflow.triggers.shared_stream", reason="shared streams need Airflow 3.3+")
AdvanceItem, AdvanceOutcome = _shared.AdvanceItem, _shared.AdvanceOutcome
SharedStreamManager = _shared.SharedStreamManager

from fluke_airflow.triggers import stream as stream_module  # noqa: E402 - needs the shared stream
from fluke_airflow.triggers.stream import QueueStreamProducer  # noqa: E402

pytestmark = pytest.mark.usefixtures("airflow_env")

HOLD = 300  # a visibility timeout long enough that only a release makes messages visible again
CONSUMER = "consumer_dag"
ASSET = "orders_asset"


@pytest_asyncio.fixture(loop_scope="function", autouse=True)
async def supervisor() -> Any:
    with supervised(asyncio.get_running_loop()) as answering:
        yield answering


def producer_for(service: Service, queue: str, **kwargs: Any) -> QueueStreamProducer:
    kwargs = {"visibility_timeout": HOLD, "dag_ids": [CONSUMER], **kwargs}
    trigger = QueuePollTrigger(conn_id=service.conn_id, queue=queue, wait_time_seconds=1, poke_interval=0.2, **kwargs)
    producer = QueuePollTrigger.create_shared_stream_producer(trigger.serialize()[1])
    assert isinstance(producer, QueueStreamProducer)
    return producer  # type: ignore[no-any-return]


async def deliveries(producer: QueueStreamProducer, count: int) -> tuple[Any, list[tuple[Any, Any]]]:
    stream = producer.open_stream()
    got = [await asyncio.wait_for(stream.__anext__(), timeout=60) for _ in range(count)]
    return stream, got


def bodies(raw: dict[str, Any]) -> list[str]:
    return sorted(m.body for m in raw["messages"])


def item(payload: Any, acked: int = 0, failed: int = 0, rejected: int = 0) -> AdvanceItem:
    return AdvanceItem(payload, AdvanceOutcome(acked=acked, failed=failed, rejected=rejected))


async def close(producer: QueueStreamProducer, stream: Any) -> None:
    await stream.aclose()
    await producer.aclose()


@pytest.mark.compat
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
async def test_unclean_outcome_releases_at_once_without_a_retry_delay(
    service: Service, queue: str, outcome: dict[str, int]
) -> None:
    service.send(queue, ["x", "y"])
    producer = producer_for(service, queue, retry_delay=0)
    stream, [(_, payload)] = await deliveries(producer, 1)
    try:
        assert service.drain(queue) == []  # hidden for HOLD seconds...
        await producer.advance([item(payload, **outcome)])
        assert sorted(service.drain(queue)) == ["x", "y"]  # ...but released: visible again right away
    finally:
        await close(producer, stream)


async def test_unclean_outcome_releases_after_the_retry_delay(service: Service, queue: str) -> None:
    """What was not handed to Airflow comes back after the retry delay (30 s by default, doubling with
    each receive), not in a tight loop against a triggerer that cannot store events, nor when the
    visibility timeout ends. No clock: a control message the test hides for the same 5 s after the
    outcome comes back while the released ones stay hidden (for 600 s: a bound, not a margin)."""
    assert producer_for(service, queue).settings.retry_delay == 30  # the default
    service.send(queue, ["x", "y"])
    producer = producer_for(service, queue, visibility_timeout=5, retry_delay=600)
    stream, [(_, payload)] = await deliveries(producer, 1)
    try:
        await producer.advance([item(payload, acked=1, failed=1)])
        service.send(queue, ["control"])
        assert [body for body, _ in service.receive(queue, visibility_timeout=5)] == ["control"]
        await wait_until_async(lambda: service.visible(queue) > 0, what="the control message", timeout=60)
        assert service.drain(queue) == ["control"] and service.total(queue) == 2
    finally:
        await close(producer, stream)


async def test_a_stored_event_holds_further_messages_until_the_consumer_runs(
    service: Service, queue: str, supervisor: TriggererSupervisor
) -> None:
    service.send(queue, ["1", "2", "3", "4"])
    producer = producer_for(service, queue, batch_size=2, retry_delay=0)
    with stream_module.watchers(producer.key).join(object(), [CONSUMER], [ASSET]):
        stream, [(raw1, payload1)] = await deliveries(producer, 1)
        try:
            await producer.advance([item(payload1, acked=1)])  # stored: deleted
            assert service.total(queue) == 2
            following = asyncio.ensure_future(stream.__anext__())
            await run_count_checks(supervisor, CONSUMER)
            assert not following.done(), "no new event before the consumer DAG has a run for the last one"
            assert service.total(queue) == 2  # the rest waits in the queue...
            if isinstance(service, SQSService):
                assert service.in_flight(queue) == 0  # ...visible, not received by the producer
            supervisor.start_run(CONSUMER)
            raw2, payload2 = await asyncio.wait_for(following, timeout=60)
            await producer.advance([item(payload2, failed=1)])  # not stored: released, no wait for a run
            assert sorted(service.drain(queue)) == bodies(raw2)
            assert sorted(bodies(raw1) + bodies(raw2)) == ["1", "2", "3", "4"]
        finally:
            await close(producer, stream)


async def test_the_ids_are_recorded_before_the_delete_and_a_redelivery_starts_no_event(
    service: Service, queue: str, supervisor: TriggererSupervisor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The triggerer dies after the event was stored and recorded, before the delete: the message
    comes back, and the next producer deletes it instead of firing again."""
    service.send(queue, ["once"])
    producer = producer_for(service, queue, visibility_timeout=2)
    with stream_module.watchers(producer.key).join(object(), [CONSUMER], [ASSET]):
        stream, [(raw, payload)] = await deliveries(producer, 1)

        def crash_before_delete(messages: Any, queue: str, **kwargs: Any) -> Any:
            return []
            yield  # a flow that deletes nothing

        monkeypatch.setattr(lifecycle, "delete", crash_before_delete)
        await producer.advance([item(payload, acked=1)])
        await close(producer, stream)
        (stored,) = [v for (asset, _), v in supervisor.store.items() if asset == ASSET]
        assert stored["queue"] == queue and stored["ids"] == [raw["messages"][0].id]
        monkeypatch.undo()

        supervisor.start_run(CONSUMER)
        again = producer_for(service, queue, visibility_timeout=2)
        stream = again.open_stream()
        pending = asyncio.ensure_future(stream.__anext__())
        try:
            await wait_until_async(lambda: service.total(queue) == 0, what="the delete", timeout=60)
            # The next event is the next message's: "once" started none (it would have come first).
            service.send(queue, ["next"])
            raw_next, _ = await asyncio.wait_for(pending, timeout=60)
            assert bodies(raw_next) == ["next"], "a message already handed to Airflow must not become a second event"
        finally:
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)
            await close(again, stream)


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

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self.manager.stop_all()


def watcher(service: Service, queue: str, **kwargs: Any) -> QueuePollTrigger:
    kwargs = {"dag_ids": [CONSUMER], **kwargs}
    return QueuePollTrigger(
        conn_id=service.conn_id, queue=queue, wait_time_seconds=1, poke_interval=0.2, visibility_timeout=HOLD, **kwargs
    )


@pytest.mark.compat
async def test_two_watchers_get_every_message_and_deletes_wait_for_persistence(
    service: Service, queue: str, supervisor: TriggererSupervisor
) -> None:
    service.send(queue, ["o-1", "o-2", "o-3"])
    watchers = Watchers(
        SharedStreamManager(ack_timeout=120),
        [watcher(service, queue, dag_ids=["first"]), watcher(service, queue, dag_ids=["second"])],
    )
    try:
        await wait_until_async(
            lambda: len(watchers.events[0]) == 1 and len(watchers.events[1]) == 1,
            what="the events",
            interval=0.1,
            blocking=False,
        )
        # One poll for both assets: neither took messages away from the other.
        for i in (0, 1):
            assert sorted(m["body"] for m in watchers.events[i][0].payload["messages"]) == ["o-1", "o-2", "o-3"]
        assert len(watchers.seqs) == 2
        assert service.total(queue) == 3  # the asset events are not persisted yet: nothing deleted
        watchers.manager.confirm_persisted(watchers.seqs)  # what the triggerer does once they are stored
        await wait_until_async(lambda: service.total(queue) == 0, what="the deletes", timeout=60)
        # The next event waits for a run of both consumer DAGs.
        service.send(queue, ["o-4"])
        await run_count_checks(supervisor, "second")
        assert len(watchers.events[0]) == 1
        supervisor.start_run("first")
        await run_count_checks(supervisor, "second")
        assert len(watchers.events[0]) == 1, "the second DAG has no run yet"
        supervisor.start_run("second")
        await wait_until_async(
            lambda: len(watchers.events[0]) == 2 and len(watchers.events[1]) == 2,
            what="the next event",
            interval=0.1,
            blocking=False,
        )
        assert not watchers.failures
    finally:
        await watchers.stop()


async def test_one_event_per_message_is_one_run_per_message(
    service: Service, queue: str, supervisor: TriggererSupervisor
) -> None:
    service.send(queue, ["e-1", "e-2", "e-3"])
    watchers = Watchers(SharedStreamManager(ack_timeout=120), [watcher(service, queue, event_per_message=True)])
    try:
        for n in (1, 2, 3):
            await wait_until_async(
                lambda n=n: len(watchers.events[0]) == n, what=f"event {n}", interval=0.1, blocking=False
            )
            watchers.manager.confirm_persisted(watchers.seqs)
            await run_count_checks(supervisor, CONSUMER)
            assert len(watchers.events[0]) == n, "the next message waits for a run of the last one"
            supervisor.start_run(CONSUMER)
        got = [e.payload["message"]["body"] for e in watchers.events[0]]
        assert sorted(got) == ["e-1", "e-2", "e-3"]
        await wait_until_async(lambda: service.total(queue) == 0, what="the deletes", timeout=60)
        assert not watchers.failures
    finally:
        await watchers.stop()


async def test_unpersisted_events_are_released_after_the_ack_timeout(service: Service, queue: str) -> None:
    service.send(queue, ["u-1", "u-2"])
    watchers = Watchers(SharedStreamManager(ack_timeout=1.0), [watcher(service, queue)])
    try:
        await wait_until_async(lambda: watchers.events[0], what="the event", interval=0.1, blocking=False)
        # Never confirmed persisted (the triggerer died before storing it): the subscriber fails at the
        # ack timeout, and the messages are released, visible again long before their visibility timeout.
        collected = await asyncio.to_thread(service.collect, queue, 2, timeout=60)
        assert sorted(collected) == ["u-1", "u-2"]
        await wait_until_async(
            lambda: watchers.failures, what="the subscriber to be failed", interval=0.1, blocking=False
        )
    finally:
        await watchers.stop()


# -- consumers checked, not trusted (issue 20) ------------------------------------------------------------------
async def test_a_watcher_naming_only_an_unknown_dag_takes_no_message_and_says_so(
    service: Service,
    queue: str,
    supervisor: TriggererSupervisor,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("AIRFLOW__FLUKE_AIRFLOW__HEALTH_LOG_INTERVAL", "1")
    caplog.set_level(logging.INFO, logger="fluke_airflow.triggers")
    supervisor.missing.add("nc_on_typo_WRONG")
    service.send(queue, ["t-1", "t-2"])
    watchers = Watchers(SharedStreamManager(ack_timeout=120), [watcher(service, queue, dag_ids=["nc_on_typo_WRONG"])])
    try:
        await wait_until_async(
            lambda: "stalled: taking no messages" in caplog.text, what="the health line", interval=0.1, blocking=False
        )
        error = next(r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)
        assert "'nc_on_typo_WRONG' in this watcher's dag_ids do not exist in Airflow" in error
        assert "Set dag_ids to the DAG(s) scheduled on the watcher's asset" in error
        assert not watchers.events[0] and service.total(queue) == 2
        if isinstance(service, SQSService):
            assert service.in_flight(queue) == 0, "not received: the messages stay visible to other consumers"
        supervisor.missing.clear()  # the DAG file fixed: the next health line finds it, the watcher starts
        await wait_until_async(
            lambda: watchers.events[0], what="the event once the DAG exists", interval=0.1, blocking=False
        )
        assert sorted(m["body"] for m in watchers.events[0][0].payload["messages"]) == ["t-1", "t-2"]
        assert not watchers.failures
    finally:
        await watchers.stop()


async def test_a_consumer_that_starts_no_run_stalls_and_is_paced_on_again_once_it_runs(
    service: Service,
    queue: str,
    supervisor: TriggererSupervisor,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """'second' is paused: Airflow queues no event for it, so it starts no run and has none queued
    or running. The watcher says so, serves 'first' meanwhile, and waits for 'second' again once
    it starts a run (unpaused, the next event starts it)."""
    monkeypatch.setenv("AIRFLOW__FLUKE_AIRFLOW__CONSUMER_START_GRACE", "1")
    caplog.set_level(logging.INFO, logger="fluke_airflow.triggers")
    watchers = Watchers(SharedStreamManager(ack_timeout=120), [watcher(service, queue, dag_ids=["first", "second"])])

    async def event(n: int, body: str) -> None:
        service.send(queue, [body])
        await wait_until_async(lambda: len(watchers.events[0]) == n, what=f"event {n}", interval=0.1, blocking=False)
        watchers.manager.confirm_persisted(watchers.seqs)

    try:
        await event(1, "s-1")
        supervisor.start_run("first")
        await wait_until_async(
            lambda: "consumer DAG 'second' started no run" in caplog.text,
            what="the stall's ERROR",
            interval=0.1,
            blocking=False,
        )
        error = next(r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)
        assert "It is paused (unpause it" in error and "The watcher paces on 'first' meanwhile" in error
        await event(2, "s-2")  # served without a run of 'second'
        supervisor.start_run("first")
        await event(3, "s-3")  # 'second' is unpaused: this event starts it
        supervisor.start_run("first")
        supervisor.start_run("second")
        await wait_until_async(
            lambda: "consumer DAG 'second' started a run again" in caplog.text,
            what="'second' back",
            interval=0.1,
            blocking=False,
        )
        await event(4, "s-4")
        supervisor.busy["second"] = 1  # its run for event 3 goes on: busy, not stalled
        supervisor.start_run("first")
        service.send(queue, ["s-5"])
        await asyncio.sleep(2.5)
        assert len(watchers.events[0]) == 4, "'second' is paced on again: the next event waits for its run"
        supervisor.start_run("second")
        await wait_until_async(lambda: len(watchers.events[0]) == 5, what="event 5", interval=0.1, blocking=False)
        got = [m["body"] for e in watchers.events[0] for m in e.payload["messages"]]
        assert got == ["s-1", "s-2", "s-3", "s-4", "s-5"]
        assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 1
        assert not watchers.failures
    finally:
        await watchers.stop()


async def test_the_health_line_counts_what_no_watcher_filter_took(
    service: Service,
    queue: str,
    supervisor: TriggererSupervisor,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue 20, item 5: the messages no filter takes are left in the queue (hidden for their
    visibility timeout, from every consumer); the watcher's health line says how many."""
    monkeypatch.setenv("AIRFLOW__FLUKE_AIRFLOW__HEALTH_LOG_INTERVAL", "1")
    caplog.set_level(logging.INFO, logger="fluke_airflow.triggers")
    service.send(queue, ["keep-1", "other-1", "other-2"])
    filtered = watcher(service, queue, message_filtering="literal", message_filtering_match_values=["keep-1"])
    watchers = Watchers(SharedStreamManager(ack_timeout=120), [filtered])
    try:
        await wait_until_async(lambda: watchers.events[0], what="the event", interval=0.1, blocking=False)
        assert [m["body"] for m in watchers.events[0][0].payload["messages"]] == ["keep-1"]
        watchers.manager.confirm_persisted(watchers.seqs)
        await wait_until_async(
            lambda: "filtered out 2" in caplog.text,
            what="a health line with the unmatched count",
            interval=0.1,
            blocking=False,
        )
        assert service.total(queue) == 2, "unmatched='leave': left in the queue"
    finally:
        await watchers.stop()
