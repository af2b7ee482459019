"""QueuePollTrigger driven for real: ``run()`` on an event loop against moto and Azurite.

Watch mode is what an ``AssetWatcher`` runs (on Airflow releases without shared-stream ack
mode, and whenever the triggerer calls ``run()``); task mode is what a deferred
``QueuePollSensor`` runs. The connection comes from an ``AIRFLOW_CONN_*`` variable. In watch mode
the trigger talks to the triggerer's supervisor (run counts of its consumer DAG): a
:class:`~airflow_support.TriggererSupervisor` answers, and the test plays the scheduler.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from airflow.triggers.base import TriggerEvent
from airflow_support import TriggererSupervisor, run_count_checks, set_connection, sqs_connection, supervised

from devtools.admin import Service
from devtools.emulators import MotoSQS
from devtools.proxy import Proxy
from devtools.support import fresh_name, wait_until_async
from fluke_airflow import _airflow
from fluke_airflow.exceptions import QueueNotFoundError
from fluke_airflow.triggers import QueuePollTrigger

pytestmark = pytest.mark.usefixtures("airflow_env")

FAST = {"wait_time_seconds": 1, "poke_interval": 0.2}
CONSUMER = "consumer_dag"


def trigger_for(service: Service, queue: str, **kwargs: Any) -> QueuePollTrigger:
    if not kwargs.get("single_event"):
        kwargs.setdefault("dag_ids", [CONSUMER])
    return QueuePollTrigger(conn_id=service.conn_id, queue=queue, **{**FAST, **kwargs})


@pytest_asyncio.fixture(loop_scope="function")
async def supervisor() -> Any:
    with supervised(asyncio.get_running_loop()) as answering:
        yield answering


async def next_event(events: AsyncIterator[TriggerEvent]) -> TriggerEvent:
    return await asyncio.wait_for(events.__anext__(), timeout=60)


def bodies_of(event: TriggerEvent) -> list[str]:
    return sorted(m["body"] for m in event.payload["messages"])


async def first_receive_done(caplog: pytest.LogCaptureFixture) -> None:
    """Until the trigger logged that its first receive came back (the deliveries loop's INFO line)."""
    await wait_until_async(
        lambda: any(r.getMessage().startswith("First receive from ") for r in caplog.records), what="the first receive"
    )


# -- watch mode -----------------------------------------------------------------------------------------------
@pytest.mark.compat
async def test_watch_mode_event_has_the_bodies_and_deletes_once_the_consumer_runs(
    service: Service, queue: str, supervisor: TriggererSupervisor
) -> None:
    sent = [f"w-{i}" for i in range(3)]
    service.send(queue, sent)
    events = trigger_for(service, queue).run()
    try:
        event = await next_event(events)
        assert event.payload["queue"] == queue
        assert bodies_of(event) == sent
        assert all("receipt" not in m and m["metadata"] for m in event.payload["messages"])  # no receipts
        # Handed over, but the consumer DAG has no run for it yet: nothing deleted, nothing new taken.
        pending = asyncio.ensure_future(events.__anext__())
        service.send(queue, ["later"])
        await run_count_checks(supervisor, CONSUMER)
        assert not pending.done() and service.total(queue) == 4
        assert service.visible(queue) == 1  # "later" waits in the queue, not received
        # The scheduler starts the run (which only a stored event does): deleted, polling goes on.
        supervisor.start_run(CONSUMER)
        await wait_until_async(lambda: service.total(queue) <= 1, what="the delivered messages to be deleted")
        later = await asyncio.wait_for(pending, timeout=60)
        assert bodies_of(later) == ["later"]
        assert "GetDRCount" in supervisor.requests
    finally:
        await events.aclose()


@pytest.mark.compat
async def test_watch_mode_takes_nothing_without_a_consumer_that_exists_and_paces_on_those_that_do(
    service: Service, queue: str, supervisor: TriggererSupervisor, caplog: pytest.LogCaptureFixture
) -> None:
    """Airflow before 3.3 runs a watcher's own ``run()``: an unknown consumer DAG is an ERROR there
    too; with none that exists nothing is taken, otherwise the others are served."""
    caplog.set_level(logging.INFO, logger="fluke_airflow.triggers")
    supervisor.missing.add("nc_on_typo_WRONG")
    service.send(queue, ["kept"])
    events = trigger_for(service, queue, dag_ids=["nc_on_typo_WRONG"]).run()
    pending = asyncio.ensure_future(events.__anext__())
    try:
        await wait_until_async(lambda: "the watcher takes no messages" in caplog.text, what="the ERROR")
        await asyncio.sleep(2.5)
        assert not pending.done() and service.total(queue) == 1
    finally:
        pending.cancel()
        await asyncio.gather(pending, return_exceptions=True)
        await events.aclose()
    assert service.drain(queue) == ["kept"], "never received: visible to other consumers all along"

    service.send(queue, ["served"])
    events = trigger_for(service, queue, dag_ids=[CONSUMER, "nc_on_typo_WRONG"]).run()
    try:
        assert bodies_of(await next_event(events)) == ["served"]
        assert f"Meanwhile the watcher paces on '{CONSUMER}' only" in caplog.text
        pending = asyncio.ensure_future(events.__anext__())
        supervisor.start_run(CONSUMER)  # the unknown DAG is not waited for
        await wait_until_async(
            lambda: service.total(queue) == 0, what="the delete once the consumer that exists has run"
        )
        pending.cancel()
        await asyncio.gather(pending, return_exceptions=True)
    finally:
        await events.aclose()


@pytest.mark.compat
async def test_watch_mode_waits_for_messages_that_arrive_later(
    service: Service, queue: str, supervisor: TriggererSupervisor, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="fluke_airflow.delivery")
    events = trigger_for(service, queue).run()
    try:
        pending = asyncio.ensure_future(events.__anext__())
        await first_receive_done(caplog)  # it polled the empty queue...
        assert not pending.done()  # ...and goes on waiting
        await asyncio.to_thread(service.send, queue, ["arrived"])
        event = await asyncio.wait_for(pending, timeout=60)
        assert bodies_of(event) == ["arrived"]
    finally:
        await events.aclose()


@pytest.mark.compat
async def test_event_per_message_fires_the_next_only_after_a_run_for_the_last(
    service: Service, queue: str, supervisor: TriggererSupervisor
) -> None:
    sent = [f"m-{i}" for i in range(4)]
    service.send(queue, sent)
    events = trigger_for(service, queue, event_per_message=True).run()
    try:
        got = [await next_event(events)]
        for _ in sent[1:]:
            pending = asyncio.ensure_future(events.__anext__())
            await run_count_checks(supervisor, CONSUMER)
            assert not pending.done(), "the next message must wait for a run of the last one"
            supervisor.start_run(CONSUMER)
            got.append(await asyncio.wait_for(pending, timeout=60))
        assert all("messages" not in e.payload for e in got)
        assert sorted(e.payload["message"]["body"] for e in got) == sent
        assert len({e.payload["message"]["id"] for e in got}) == 4
        pending = asyncio.ensure_future(events.__anext__())
        supervisor.start_run(CONSUMER)
        await wait_until_async(lambda: service.total(queue) == 0, what="the four messages to be deleted")
        pending.cancel()
        await asyncio.gather(pending, return_exceptions=True)
    finally:
        await events.aclose()


async def test_a_batching_window_gathers_messages_that_arrive_meanwhile(
    service: Service, queue: str, supervisor: TriggererSupervisor
) -> None:
    """The window closes when the batch is full (batch_size=3) or after max_batching_window: a window
    far longer than the test's steps, so only the full batch can close it."""
    events = trigger_for(service, queue, batch_size=3, max_batching_window=240, visibility_timeout=300).run()
    try:
        pending = asyncio.ensure_future(next_event(events))
        await asyncio.to_thread(service.send, queue, ["first"])
        await wait_until_async(
            lambda: service.total(queue) == 1 and service.visible(queue) == 0, what="the trigger to take 'first'"
        )
        assert not pending.done(), "the window is still open"
        await asyncio.to_thread(service.send, queue, ["second", "third"])
        event = await pending
        assert bodies_of(event) == ["first", "second", "third"]
    finally:
        await events.aclose()


async def test_pre_delivery_delete_deletes_before_the_event(
    service: Service, queue: str, supervisor: TriggererSupervisor
) -> None:
    service.send(queue, ["p-0", "p-1"])
    events = trigger_for(service, queue, pre_delivery_delete=True).run()
    try:
        event = await next_event(events)
        assert bodies_of(event) == ["p-0", "p-1"]
        assert service.total(queue) == 0  # already gone when the event fires
    finally:
        await events.aclose()


async def test_num_messages_gathers_one_delivery_from_several_receives(
    service: Service, queue: str, supervisor: TriggererSupervisor
) -> None:
    service.send(queue, [f"n-{i}" for i in range(25)])
    events = trigger_for(service, queue, batch_size=10, num_messages=20).run()
    try:
        event = await next_event(events)
        assert len(event.payload["messages"]) == 20
    finally:
        await events.aclose()
    assert service.total(queue) == 25  # closed before asking for more: nothing deleted


async def test_a_message_that_wakes_the_trigger_goes_out_at_once(
    moto: MotoSQS, sqs: Service, monkeypatch: pytest.MonkeyPatch, supervisor: TriggererSupervisor
) -> None:
    """The long poll that a message wakes came back short of its 10: the queue is drained for
    now, so the delivery takes only what else has already arrived (a 0 s receive) instead of
    waiting a second for more."""
    queue = fresh_name()
    sqs.create(queue)
    with Proxy(moto.endpoint_url) as proxy:
        conn_id = set_connection(monkeypatch, "fluke_sqs_counted", sqs_connection(moto, endpoint_url=proxy.url))
        trigger = QueuePollTrigger(
            conn_id=conn_id, queue=queue, batch_size=10, wait_time_seconds=20, dag_ids=[CONSUMER]
        )
        events = trigger.run()
        pending = asyncio.ensure_future(next_event(events))
        try:
            await wait_until_async(lambda: proxy.counts["ReceiveMessage"] >= 1, what="the trigger's first long poll")
            sqs.send(queue, ["wake up"])
            event = await pending
            assert bodies_of(event) == ["wake up"]
            receives = proxy.records("ReceiveMessage")
            fill_ups = [r for r in receives if r.max_messages != 10]
            assert [(r.max_messages, r.wait_seconds) for r in fill_ups] == [(9, 0)], receives
            assert {r.wait_seconds for r in receives if r.max_messages == 10} == {20}, receives
        finally:
            pending.cancel()
            await events.aclose()
            sqs.delete_queue(queue)


@pytest.mark.compat
async def test_triggers_of_one_connection_share_one_client(service: Service) -> None:
    """A triggerer runs many triggers on one loop: one client per connection, not one each."""
    from fluke_airflow.hooks import azure, sqs

    SHARED_AUTHS = sqs.SHARED_AUTHS if service.kind == "sqs" else azure.SHARED_AUTHS
    names = [fresh_name() for _ in range(4)]
    for name in names:
        service.create(name)
    triggers = [trigger_for(service, name, single_event=True, wait_time_seconds=20) for name in names]
    runs = [t.run() for t in triggers]
    tasks = [asyncio.ensure_future(next_event(run)) for run in runs]
    try:

        def sharing() -> list[Any]:
            return [a._share for a in SHARED_AUTHS.values() if a._share is not None and a._share.users()]

        await wait_until_async(
            lambda: sum(share.users() for share in sharing()) == len(names),
            what=f"the {len(names)} triggers to share one auth",
            timeout=30,
            interval=0.1,
            blocking=False,
        )
        shares = sharing()
        assert len(shares) == 1 and shares[0].clients() == 1 and shares[0].users() == len(names)
        for name in names:
            service.send(name, [f"for {name}"])
        events = await asyncio.gather(*tasks)
        assert [bodies_of(e) for e in events] == [[f"for {name}"] for name in names]
        for run in runs:
            await run.aclose()  # as the triggerer ends a task-mode trigger after its event
        assert shares[0].clients() == 0  # the last trigger closed it
    finally:
        for task in tasks:
            task.cancel()
        for name in names:
            service.delete_queue(name)


async def test_closing_the_trigger_between_events_deletes_nothing(
    service: Service, queue: str, supervisor: TriggererSupervisor
) -> None:
    """The triggerer stopping (cancel/shutdown) after an event: that delivery comes back, it is not lost."""
    service.send(queue, ["c-0"])
    events = trigger_for(service, queue, visibility_timeout=1).run()
    await next_event(events)
    await events.aclose()
    assert await asyncio.to_thread(service.collect, queue, 1) == ["c-0"]


@pytest.mark.parametrize(
    "mode", [{}, {"event_per_message": True}, {"single_event": True}], ids=["batch", "per-msg", "task"]
)
async def test_event_payload_repr_leaves_out_bodies(
    service: Service, queue: str, mode: dict[str, Any], supervisor: TriggererSupervisor
) -> None:
    service.send(queue, ["secret-body-1", "secret-body-2"])
    events = trigger_for(service, queue, **mode).run()
    try:
        event = await next_event(events)
    finally:
        await events.aclose()
    assert "secret-body" in json.dumps(dict(event.payload))  # the payload carries them...
    assert "secret-body" not in repr(event.payload)  # ...its repr (what the triggerer logs) does not
    assert "secret-body" not in repr(event) and "secret-body" not in str(event)


# -- task mode (a deferred sensor) -------------------------------------------------------------------------------
@pytest.mark.compat
async def test_task_mode_fires_once_with_receipts_and_deletes_nothing(service: Service, queue: str) -> None:
    service.send(queue, ["t-0", "t-1", "t-2"])
    events = trigger_for(service, queue, single_event=True, visibility_timeout=300).run()
    event = await next_event(events)
    with pytest.raises(StopAsyncIteration):
        await next_event(events)
    assert event.payload["status"] == "success"
    assert event.payload["pre_delivery_delete"] is False
    assert bodies_of(event) == ["t-0", "t-1", "t-2"]
    assert all(m["receipt"] for m in event.payload["messages"])  # the worker deletes with these
    assert service.total(queue) == 3  # the sensor deletes once the XCom is stored, not the trigger
    assert service.drain(queue) == []  # and they are hidden meanwhile


async def test_task_mode_missing_queue_is_an_error_event(service: Service) -> None:
    name = fresh_name("missing")
    event = await next_event(trigger_for(service, name, single_event=True).run())
    assert event.payload["status"] == "error"
    assert name in event.payload["message"]


async def test_watch_mode_missing_queue_raises(service: Service, supervisor: TriggererSupervisor) -> None:
    with pytest.raises(QueueNotFoundError, match="does not exist"):
        await next_event(trigger_for(service, fresh_name("missing")).run())


@pytest.mark.parametrize("single_event", [False, True])
async def test_missing_connection(single_event: bool) -> None:
    watch = {} if single_event else {"dag_ids": [CONSUMER]}
    events = QueuePollTrigger(conn_id="fluke_no_such_conn", queue="q", single_event=single_event, **watch).run()
    if single_event:
        event = await next_event(events)
        assert event.payload["status"] == "error"
        message = event.payload["message"]
    else:
        with pytest.raises(Exception) as raised:
            await next_event(events)
        message = str(raised.value)
    assert "'fluke_no_such_conn' is not defined" in message
    assert "'aws'" in message and "'azure_storage_queue'" in message and "'wasb'" in message


@pytest.mark.parametrize("single_event", [False, True])
async def test_wrong_connection_type(monkeypatch: pytest.MonkeyPatch, single_event: bool) -> None:
    set_connection(monkeypatch, "fluke_http", {"conn_type": "http", "host": "example.com"})
    watch = {} if single_event else {"dag_ids": [CONSUMER]}
    events = QueuePollTrigger(conn_id="fluke_http", queue="q", single_event=single_event, **watch).run()
    if single_event:
        message = (await next_event(events)).payload["message"]
    else:
        with pytest.raises(ValueError) as raised:
            await next_event(events)
        message = str(raised.value)
    assert "'fluke_http' has type 'http'" in message
    assert "'aws'" in message and "'azure_storage_queue'" in message and "'wasb'" in message


# -- construction -------------------------------------------------------------------------------------------------
@pytest.mark.compat
def test_serialize_round_trips_through_the_constructor() -> None:
    from airflow.serialization.serialized_objects import BaseSerialization

    trigger = QueuePollTrigger(
        conn_id="c",
        queue="q",
        batch_size=7,
        num_messages=21,
        pre_delivery_delete=True,
        visibility_timeout=45,
        poke_interval=2.5,
        wait_time_seconds=3,
        message_encoding="base64",
        event_per_message=True,
        single_event=False,
        dag_ids=["a", "b"],
        max_batching_window=5,
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "fluke_airflow.triggers.poll.QueuePollTrigger"
    assert kwargs["batch_size"] == 7 and kwargs["message_encoding"] == "base64" and kwargs["event_per_message"]
    assert kwargs["dag_ids"] == ["a", "b"] and kwargs["max_batching_window"] == 5
    # The triggerer stores kwargs serialised and rebuilds the trigger with them.
    try:
        from airflow.sdk._shared.module_loading import import_string
    except ImportError:  # Airflow 3.0
        from airflow.utils.module_loading import import_string

    stored = BaseSerialization.deserialize(BaseSerialization.serialize(kwargs))
    rebuilt = import_string(classpath)(**stored)
    assert rebuilt.serialize() == (classpath, kwargs)
    assert rebuilt.shared_stream_key() == trigger.shared_stream_key()
    if _airflow.has_shared_streams():  # the shared-stream producer is built from the same kwargs
        producer = QueuePollTrigger.create_shared_stream_producer(kwargs)
        assert producer.settings == trigger.settings and producer.watch == trigger.watch


@pytest.mark.compat
def test_the_triggerer_takes_the_path_its_airflow_has_for_watchers() -> None:
    """Airflow 3.3+: the triggerer subscribes a watcher to a shared stream (its key), and the
    producer polls. Before 3.3 there is no shared stream: the triggerer runs the trigger's own
    run() (the watch-mode tests above: deletes once the consumer DAGs ran), and nothing here
    imports the 3.3 API."""
    import importlib.util
    import inspect
    import sys

    from airflow.jobs import triggerer_job_runner

    source = inspect.getsource(triggerer_job_runner)
    trigger = QueuePollTrigger(conn_id="c", queue="q", dag_ids=["x"])
    if _airflow.has_shared_streams():
        assert "filter_shared_stream" in source and "shared_stream_key" in source
        from fluke_airflow.triggers.stream import QueueStreamProducer

        producer = QueuePollTrigger.create_shared_stream_producer(trigger.serialize()[1])
        assert isinstance(producer, QueueStreamProducer)
    else:
        assert importlib.util.find_spec("airflow.triggers.shared_stream") is None
        assert "shared_stream" not in source  # every trigger goes through run()
        assert trigger.shared_stream_key() is not None  # harmless: nothing asks for it
        assert "fluke_airflow.triggers.stream" not in sys.modules


@pytest.mark.compat
def test_watchers_of_one_queue_share_a_stream_and_task_mode_does_not() -> None:
    a = QueuePollTrigger(conn_id="c", queue="q", dag_ids=["x"])
    b = QueuePollTrigger(conn_id="c", queue="q", dag_ids=["y"])  # other consumers, the same poll
    assert a.shared_stream_key() == b.shared_stream_key() is not None
    # One event per message needs its own poll loop (one message per delivery, one run each).
    per_message = QueuePollTrigger(conn_id="c", queue="q", dag_ids=["x"], event_per_message=True)
    assert per_message.shared_stream_key() != a.shared_stream_key()
    assert QueuePollTrigger(conn_id="c", queue="other", dag_ids=["x"]).shared_stream_key() != a.shared_stream_key()
    assert QueuePollTrigger(conn_id="c", queue="q", single_event=True).shared_stream_key() is None


@pytest.mark.compat
def test_a_watcher_without_dag_ids_is_refused_on_airflow_before_3_4() -> None:
    from fluke_airflow import _airflow

    assert _airflow.scheduler_strands_events()  # the Airflow this suite pins (3.3)
    with pytest.raises(ValueError, match=r"dag_ids is required .* e\.g\. dag_ids=\['process_orders'\]"):
        QueuePollTrigger(conn_id="c", queue="q")
    QueuePollTrigger(conn_id="c", queue="q", single_event=True)  # task mode needs none


@pytest.mark.parametrize(
    ("kwargs", "error", "names"),
    [
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"batch_size": "10"}, TypeError, "batch_size"),
        ({"num_messages": -1}, ValueError, "num_messages"),
        ({"visibility_timeout": -1}, ValueError, "visibility_timeout"),
        ({"visibility_timeout": 8 * 24 * 3600}, ValueError, "visibility_timeout"),
        ({"wait_time_seconds": 21}, ValueError, "wait_time_seconds"),
        ({"poke_interval": -1}, ValueError, "poke_interval"),
        ({"pre_delivery_delete": "yes"}, TypeError, "pre_delivery_delete"),
        ({"event_per_message": 1}, TypeError, "event_per_message"),
        ({"message_encoding": "utf-8"}, ValueError, "message_encoding"),
        ({"dag_ids": []}, TypeError, "dag_ids must be a non-empty list"),
        ({"dag_ids": ["ok", ""]}, ValueError, r"dag_ids\[1\] must be a non-empty string"),
        ({"max_batching_window": 301}, ValueError, "max_batching_window must be a number of seconds from 0 to 300"),
        ({"max_batching_window": 60, "visibility_timeout": 30}, ValueError, "shorter than visibility_timeout"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs: dict[str, Any], error: type[Exception], names: str) -> None:
    kwargs = {"dag_ids": ["consumer"], **kwargs}
    with pytest.raises(error, match=names):
        QueuePollTrigger(conn_id="c", queue="q", **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"dag_id": ["consumer"]}, "QueuePollTrigger does not take dag_id (did you mean dag_ids?)"),
        ({"dag_ids": ["consumer"], "visiblity_timeout": 60, "batchsize": 5},
         "QueuePollTrigger does not take visiblity_timeout (did you mean visibility_timeout?), batchsize (did you "
         "mean batch_size?)"),
    ],
)  # fmt: skip
def test_a_misspelt_argument_names_the_one_meant(kwargs: dict[str, Any], expected: str) -> None:
    """In a DAG file, an import error the UI shows: as for the operators and the sensor."""
    with pytest.raises(TypeError) as raised:
        QueuePollTrigger(conn_id="c", queue="q", **kwargs)
    assert str(raised.value) == expected


def test_an_unknown_argument_without_a_likely_meaning_is_pythons_error() -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument 'colour'"):
        QueuePollTrigger(conn_id="c", queue="q", dag_ids=["consumer"], colour="blue")
