"""Cancelled means released (issue 20): a trigger or shared stream that is cancelled (moved to another
triggerer, its task cleared, the triggerer stopping) or closed makes the messages it received but
did not hand to Airflow visible again at once, on both services; what Airflow stored as an event,
or may have stored, is never released (that would start a second run).

Every queue here hides received messages for 300 s, so a message that is visible again within the
test was released. The states a watcher can be stopped in:

* received, the batch still gathering (``max_batching_window``) or being filled: released;
* received, waiting for the triggerer's supervisor (run counts, delivered ids) before the event is
  yielded: released;
* yielded to the shared stream, never taken by a watcher: released, without the retry delay;
* yielded and taken by a watcher (its event may be stored; Airflow calls ``on_kill`` on a moved
  trigger too, apache/airflow#73454): hidden, with a WARNING;
* before Airflow 3.3 (the trigger's own ``run()``): released before its events are yielded,
  hidden after.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio
from airflow_support import (
    TriggererSupervisor,
    proxied_connection,
    supervised,
)
from statsd_support import StatsdListener, statsd_in_this_process

from devtools.admin import Service
from devtools.emulators import AzuriteQueue, MotoSQS
from devtools.proxy import Latency, Proxy
from devtools.support import fresh_name, wait_until_async
from fluke_airflow.triggers import QueuePollTrigger

pytestmark = pytest.mark.usefixtures("airflow_env")

HOLD = 300  # received messages stay hidden this long unless released
CONSUMER = "consumer_dag"
WINDOW = 120  # a batching window no test waits out: the batch is still gathering when it is cancelled


@pytest_asyncio.fixture(loop_scope="function")
async def supervisor() -> AsyncIterator[TriggererSupervisor]:
    with supervised(asyncio.get_running_loop()) as answering:
        yield answering


@pytest.fixture
def statsd(monkeypatch: pytest.MonkeyPatch) -> Iterator[StatsdListener]:
    with statsd_in_this_process(monkeypatch) as listener:
        yield listener


def holding(statsd: StatsdListener, queue: str, n: int) -> bool:
    """Whether the watcher's ``messages.in_flight`` gauge says it holds ``n`` messages of ``queue``."""
    shown = statsd.of("messages.in_flight", queue=queue)
    return bool(shown) and shown[-1].value == n


async def cancel(task: asyncio.Future[Any]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def visible_now(service: Service, queue: str) -> list[str]:
    """Receive and delete what is visible: only released messages can be, within ``HOLD``."""
    return sorted(service.drain(queue))


def watcher(service: Service, queue: str, **kwargs: Any) -> QueuePollTrigger:
    kwargs = {"dag_ids": [CONSUMER], "visibility_timeout": HOLD, "wait_time_seconds": 1, "poke_interval": 0.2,
              **kwargs}  # fmt: skip
    return QueuePollTrigger(conn_id=service.conn_id, queue=queue, **kwargs)


def released_line(caplog: pytest.LogCaptureFixture) -> str:
    return next(r.getMessage() for r in caplog.records if "not yet handed to Airflow; releasing" in r.getMessage())


# -- the shared stream (Airflow 3.3+) ------------------------------------------------------------------------
shared = pytest.importorskip("airflow.triggers.shared_stream", reason="shared streams need Airflow 3.3+")


def producer_for(trigger: QueuePollTrigger) -> Any:
    return QueuePollTrigger.create_shared_stream_producer(trigger.serialize()[1])


async def test_a_watcher_cancelled_while_its_batch_gathers_releases_it(
    service: Service,
    queue: str,
    supervisor: TriggererSupervisor,
    statsd: StatsdListener,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Through Airflow's SharedStreamManager, as the triggerer cancels a trigger it moves away."""
    caplog.set_level(logging.INFO, logger="fluke_airflow")
    trigger = watcher(service, queue, max_batching_window=WINDOW)
    manager = shared.SharedStreamManager(ack_timeout=120)
    key = trigger.shared_stream_key()
    events: list[Any] = []

    async def run_trigger() -> None:  # TriggerRunner.run_trigger's shared-stream path
        stream = manager.subscribe(trigger_id=1, trigger=trigger, key=key)
        try:
            async for event in trigger.filter_shared_stream(stream):
                events.append(event)
        finally:
            await manager.unsubscribe(1, key)

    task = asyncio.ensure_future(run_trigger())
    try:
        await wait_until_async(lambda: "done: polling" in caplog.text, what="the watcher to poll")
        await asyncio.to_thread(service.send, queue, ["g-1", "g-2", "g-3"])
        # Received (hidden for HOLD s) and gathering for WINDOW s.
        await wait_until_async(
            lambda: holding(statsd, queue, 3), what="the watcher to hold the three messages it received"
        )
    finally:
        await cancel(task)
    assert not events
    assert visible_now(service, queue) == ["g-1", "g-2", "g-3"]
    assert "the poll was cancelled" in released_line(caplog) and "3 received message(s)" in released_line(caplog)


async def test_a_watcher_stopped_while_the_supervisor_is_frozen_releases_what_it_received(
    service: Service, queue: str, supervisor: TriggererSupervisor, caplog: pytest.LogCaptureFixture
) -> None:
    """The issue's case: received, then waiting for the triggerer's supervisor (the run counts, the
    delivered ids) when Airflow hands the watcher to another triggerer."""
    from fluke_airflow.triggers import stream as stream_module

    caplog.set_level(logging.INFO, logger="fluke_airflow")
    producer = producer_for(watcher(service, queue))
    stream = producer.open_stream()
    with stream_module.watchers(producer.key).join(object(), [CONSUMER], ["orders_asset"]):
        pending = asyncio.ensure_future(stream.__anext__())
        try:
            await wait_until_async(lambda: "done: polling" in caplog.text, what="the producer to poll")
            supervisor.delay = 3600  # the supervisor stops answering
            await asyncio.to_thread(service.send, queue, ["f-1"])
            await wait_until_async(
                lambda: producer.in_flight() == 1, what="the producer to hold the message it received"
            )
            await asyncio.sleep(0.5)
            assert not pending.done(), "no event while the supervisor does not answer"
            assert supervisor.requests, "the producer is waiting for the supervisor"
        finally:
            await cancel(pending)
            supervisor.delay = 0
            await stream.aclose()
            await producer.aclose()
    assert visible_now(service, queue) == ["f-1"]
    assert producer.in_flight() == 0
    assert "the poll was cancelled" in released_line(caplog)


@pytest.mark.parametrize("taken", [False, True], ids=["no-watcher-took-it", "a-watcher-took-it"])
async def test_a_yielded_batch_is_released_on_close_only_if_no_watcher_took_it(
    service: Service, queue: str, supervisor: TriggererSupervisor, caplog: pytest.LogCaptureFixture, taken: bool
) -> None:
    """A watcher that took the batch has yielded its event, which Airflow may have stored: those
    messages stay hidden (a release would start a second run). A batch no watcher took is in no event."""
    from fluke_airflow.triggers import stream as stream_module

    caplog.set_level(logging.INFO, logger="fluke_airflow")
    await asyncio.to_thread(service.send, queue, ["y-1", "y-2"])
    producer = producer_for(watcher(service, queue))
    stream = producer.open_stream()
    raw, _ = await asyncio.wait_for(stream.__anext__(), timeout=60)
    if taken:
        stream_module.watchers(producer.key).took(raw["delivery"], object(), [m.id for m in raw["messages"]])
    pending = asyncio.ensure_future(stream.__anext__())  # waits for advance(), which never comes
    await asyncio.sleep(0.5)
    await cancel(pending)
    await stream.aclose()
    await producer.aclose()
    if taken:
        assert visible_now(service, queue) == [] and service.total(queue) == 2
        warning = next(r for r in caplog.records if "stopped before Airflow confirmed" in r.getMessage())
        assert warning.levelno == logging.WARNING and "2 message(s)" in warning.getMessage()
    else:
        assert visible_now(service, queue) == ["y-1", "y-2"]
        assert "the poll was closed" in released_line(caplog)


async def test_a_stopping_producer_releases_a_batch_no_watcher_saw_without_the_retry_delay(
    service: Service, queue: str, supervisor: TriggererSupervisor
) -> None:
    """Airflow resolves a batch still waiting in a leaving watcher's queue as failed; it was never
    tried, so it comes back at once, not after the 30 s retry delay of a failed hand-over."""
    await asyncio.to_thread(service.send, queue, ["u-1"])
    producer = producer_for(watcher(service, queue))  # the default retry_delay: 30 s
    stream = producer.open_stream()
    _, payload = await asyncio.wait_for(stream.__anext__(), timeout=60)
    pending = asyncio.ensure_future(stream.__anext__())
    await asyncio.sleep(0.5)
    await cancel(pending)  # the poll is cancelled; the pump then drains what Airflow resolved
    await producer.advance([shared.AdvanceItem(payload, shared.AdvanceOutcome(acked=0, failed=1))])
    await stream.aclose()
    await producer.aclose()
    assert visible_now(service, queue) == ["u-1"]


# -- a trigger's own run(): task mode, and watch mode before Airflow 3.3 -------------------------------------------
@pytest.mark.parametrize("kind", ["sqs", "azure"])
async def test_a_deferred_sensors_trigger_cancelled_while_filling_its_delivery_releases_it(
    kind: str,
    moto: MotoSQS,
    azurite: AzuriteQueue,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Task mode: the first receive came back full, the next one (through the test proxy) takes
    its time, and the task is cleared meanwhile."""
    service: Service = request.getfixturevalue(kind)
    queue = fresh_name("fill")
    service.create(queue)
    upstream = moto.endpoint_url if kind == "sqs" else azurite.account_url
    receive, full = ("ReceiveMessage", 10) if kind == "sqs" else ("GET messages", 32)
    caplog.set_level(logging.INFO, logger="fluke_airflow")
    bodies = [f"t-{i:02d}" for i in range(full)]
    service.send(queue, bodies)
    with Proxy(upstream) as proxy:
        conn_id = proxied_connection(monkeypatch, f"fluke_{kind}_fill", kind, moto, azurite, proxy)
        proxy.inject(Latency(operation=receive, skip=1, seconds=600))  # every receive after the first
        trigger = QueuePollTrigger(conn_id=conn_id, queue=queue, single_event=True, num_messages=2 * full,
                                   visibility_timeout=HOLD, wait_time_seconds=1, poke_interval=0.2)  # fmt: skip
        events = trigger.run()
        pending = asyncio.ensure_future(events.__anext__())
        try:
            await wait_until_async(
                lambda: proxy.fired()[f"Latency {receive}"] >= 1, what="the trigger's second receive"
            )
            assert not pending.done()
        finally:
            await cancel(pending)
            await events.aclose()
    try:
        assert visible_now(service, queue) == bodies
        assert f"holding {full} received message(s)" in released_line(caplog)
    finally:
        service.delete_queue(queue)


async def test_a_watchers_own_run_releases_a_gathering_batch_and_keeps_a_yielded_one(
    service: Service,
    queue: str,
    supervisor: TriggererSupervisor,
    statsd: StatsdListener,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Watch mode without a shared stream (Airflow before 3.3; any Airflow calling run()): cancelled
    while gathering, the batch is released; cancelled after its event was yielded (waiting for the
    consumer's run), it stays hidden: the event may be stored."""
    caplog.set_level(logging.INFO, logger="fluke_airflow")
    trigger = watcher(service, queue, max_batching_window=WINDOW)
    events = trigger.run()
    pending = asyncio.ensure_future(events.__anext__())
    try:
        await wait_until_async(lambda: "done: polling" in caplog.text, what="the watcher to poll")
        await asyncio.to_thread(service.send, queue, ["w-1", "w-2"])
        await wait_until_async(
            lambda: holding(statsd, queue, 2), what="the watcher to hold the two messages it received"
        )
    finally:
        await cancel(pending)
        await events.aclose()
    assert visible_now(service, queue) == ["w-1", "w-2"]

    await asyncio.to_thread(service.send, queue, ["w-3"])
    trigger = watcher(service, queue)
    events = trigger.run()
    event = await asyncio.wait_for(events.__anext__(), timeout=60)
    assert [m["body"] for m in event.payload["messages"]] == ["w-3"]
    pending = asyncio.ensure_future(events.__anext__())  # waits for the consumer DAG's run
    await asyncio.sleep(0.5)
    await cancel(pending)
    await events.aclose()
    assert visible_now(service, queue) == [] and service.total(queue) == 1


async def test_a_release_waits_out_the_long_poll_its_cancellation_cut(
    sqs: Service, supervisor: TriggererSupervisor, caplog: pytest.LogCaptureFixture
) -> None:
    """SQS keeps a long-poll receive open after its client went away and hands it the next message
    that becomes visible, whose answer nobody reads (aws/aws-sdk-js#2350, aws/aws-sdk-java#2083;
    moto does the same, looking again every second). A watcher cancelled in the middle of its
    batching window's 20 s long poll releases its messages only once that receive's wait is over;
    released at once, they would go to the dead receive and stay hidden for their visibility timeout."""
    caplog.set_level(logging.INFO, logger="fluke_airflow")
    queue = fresh_name("cut")
    sqs.create(queue)
    try:
        trigger = watcher(sqs, queue, max_batching_window=WINDOW)
        producer = producer_for(trigger)
        stream = producer.open_stream()
        pending = asyncio.ensure_future(stream.__anext__())
        try:
            await wait_until_async(lambda: "done: polling" in caplog.text, what="the producer to poll")
            await asyncio.to_thread(sqs.send, queue, ["c-1", "c-2", "c-3"])

            def long_polling() -> float | None:  # holding the three, in a long poll with 10 s or more to go
                ends = producer._watch.received.long_poll_ends  # white box: when the receive in flight ends at SQS
                return ends if producer.in_flight() == 3 and ends and ends - time.monotonic() > 10 else None

            await wait_until_async(long_polling, what="the producer to long-poll within its batching window")
            ends = long_polling() or time.monotonic()
        finally:
            await cancel(pending)
            await stream.aclose()
            await producer.aclose()
        # Past the cut receive's wait: had the release come earlier, that receive would hold them now.
        await asyncio.sleep(max(0.0, ends - time.monotonic()))
        assert visible_now(sqs, queue) == ["c-1", "c-2", "c-3"]
        assert "first waiting" in caplog.text
    finally:
        sqs.delete_queue(queue)


@pytest.mark.parametrize("kind", ["sqs", "azure"])
async def test_a_release_goes_to_its_end_while_the_triggerer_cancels_again_and_again(
    kind: str,
    moto: MotoSQS,
    azurite: AzuriteQueue,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Airflow's triggerer cancels a trigger it was told to cancel again on each loop until the
    trigger has ended (``cancelling_triggers`` goes with every sync). Seen on a busy machine: the
    release of a cancelled trigger's batch took longer than a loop, and the second cancellation cut
    it after 26 of 32 messages; the other 6 stayed hidden for the visibility timeout. Here every
    release request takes 0.3 s at the proxy, and the trigger is cancelled again every 50 ms until
    it ends: every message must be visible again."""
    service: Service = request.getfixturevalue(kind)
    queue = fresh_name("recancel")
    service.create(queue)
    upstream = moto.endpoint_url if kind == "sqs" else azurite.account_url
    receive, release, full = (
        ("ReceiveMessage", "ChangeMessageVisibilityBatch", 10) if kind == "sqs" else ("GET messages", "PUT message", 32)
    )
    caplog.set_level(logging.INFO, logger="fluke_airflow")
    bodies = [f"r-{i:02d}" for i in range(full)]
    service.send(queue, bodies)
    with Proxy(upstream) as proxy:
        conn_id = proxied_connection(monkeypatch, f"fluke_{kind}_recancel", kind, moto, azurite, proxy)
        # Every receive after the first waits; every release request takes 0.3 s.
        proxy.inject(Latency(operation=receive, skip=1, seconds=600), Latency(operation=release, seconds=0.3))
        trigger = QueuePollTrigger(conn_id=conn_id, queue=queue, single_event=True, num_messages=2 * full,
                                   visibility_timeout=HOLD, wait_time_seconds=1, poke_interval=0.2)  # fmt: skip
        events = trigger.run()
        pending = asyncio.ensure_future(events.__anext__())
        try:
            await wait_until_async(
                lambda: proxy.fired()[f"Latency {receive}"] >= 1, what="the trigger's second receive"
            )
            cancellations = 0
            while not pending.done():  # as the triggerer's loop does
                pending.cancel()
                cancellations += 1
                await asyncio.sleep(0.05)
            await asyncio.gather(pending, return_exceptions=True)
        finally:
            await cancel(pending)
            await events.aclose()
    try:
        assert visible_now(service, queue) == bodies, "a cancellation during the release cut it"
        assert f"holding {full} received message(s)" in released_line(caplog)
        assert cancellations > 1, "the release ended before a second cancellation: nothing tested"
    finally:
        service.delete_queue(queue)
