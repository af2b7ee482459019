"""A trigger in production (issue 10): the metrics a watcher sends, its health line, and its
recovery from a receive that hangs (through the test proxy, on both services)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator

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
from devtools.proxy import Proxy, Timeout
from devtools.support import fresh_name, wait_until_async
from fluke_airflow.triggers import QueuePollTrigger

pytestmark = pytest.mark.usefixtures("airflow_env")
CONSUMER = "consumer_dag"


@pytest.fixture
def statsd(monkeypatch: pytest.MonkeyPatch) -> Iterator[StatsdListener]:
    with statsd_in_this_process(monkeypatch) as listener:
        yield listener


@pytest_asyncio.fixture(loop_scope="function")
async def supervisor() -> AsyncIterator[TriggererSupervisor]:
    with supervised(asyncio.get_running_loop()) as answering:
        yield answering


async def test_a_watcher_reports_its_messages_and_logs_a_health_line(
    service: Service,
    queue: str,
    supervisor: TriggererSupervisor,
    statsd: StatsdListener,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("AIRFLOW__FLUKE_AIRFLOW__HEALTH_LOG_INTERVAL", "1")
    caplog.set_level(logging.INFO, logger="fluke_airflow.triggers")
    service.send(queue, [f"w-{i:02d}" for i in range(30)])
    trigger = QueuePollTrigger(conn_id=service.conn_id, queue=queue, dag_ids=[CONSUMER], wait_time_seconds=1,
                               poke_interval=0.2)  # fmt: skip
    events = trigger.run()
    try:
        event = await asyncio.wait_for(events.__anext__(), timeout=60)
        assert len(event.payload["messages"]) == 30
        pending = asyncio.ensure_future(events.__anext__())
        await wait_until_async(
            lambda: "holding 30" in caplog.text, what="a health line while the watcher holds the batch"
        )
        supervisor.start_run(CONSUMER)
        await wait_until_async(lambda: service.total(queue) == 0, what="the batch to be deleted")
        tags = {"queue": queue, "service": service.kind, "conn_id": service.conn_id}
        expected = {"messages.received": 30, "messages.delivered": 30, "messages.deleted": 30}

        def arrived() -> bool:
            counts = statsd.counts(**tags)
            return all(counts[k] == v for k, v in expected.items())

        await wait_until_async(arrived, what=f"{expected} in {statsd.counts(**tags)}", timeout=60)
        # Up as the receives bring the batch in (held from the receive on: a cancelled watcher
        # releases them), 30 while the event waits for its run, 0 once deleted; sent on change only.
        shown = [m.value for m in statsd.of("messages.in_flight", **tags)]
        assert shown[-2:] == [30, 0] and shown[:-1] == sorted(set(shown[:-1])), shown
        deletes_counted = ("received 0, delivered 0, deleted 30", "received 30, delivered 30, deleted 30")
        await wait_until_async(
            lambda: any(line in caplog.text for line in deletes_counted), what="a health line with the deletes"
        )
        line = next(r.getMessage() for r in caplog.records if "holding 30" in r.getMessage())
        assert line.startswith(f"Watcher of {'Amazon SQS' if service.kind == 'sqs' else 'Azure Queue Storage'} queue")
        assert "last successful receive" in line and "ago" in line
        pending.cancel()
        await asyncio.gather(pending, return_exceptions=True)
    finally:
        await events.aclose()


@pytest.mark.parametrize("kind", ["sqs", "azure"])
async def test_a_trigger_whose_receive_hangs_rebuilds_its_client_and_carries_on(
    kind: str,
    moto: MotoSQS,
    azurite: AzuriteQueue,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    statsd: StatsdListener,
) -> None:
    service: Service = request.getfixturevalue(kind)
    queue = fresh_name("stall")
    service.create(queue)
    upstream = moto.endpoint_url if kind == "sqs" else azurite.account_url
    receive = "ReceiveMessage" if kind == "sqs" else "GET messages"
    monkeypatch.setenv("AIRFLOW__FLUKE_AIRFLOW__RECEIVE_STALL_GRACE", "2")
    caplog.set_level(logging.INFO, logger="fluke_airflow")
    with Proxy(upstream) as proxy:
        conn_id = proxied_connection(monkeypatch, f"fluke_{kind}_stall", kind, moto, azurite, proxy)
        # The first receive never gets an answer: a hung connection (the proxy holds it for 10 minutes).
        proxy.inject(Timeout(operation=receive, first=1, seconds=600))
        trigger = QueuePollTrigger(conn_id=conn_id, queue=queue, single_event=True, wait_time_seconds=1,
                                   poke_interval=0.2)  # fmt: skip
        events = trigger.run()
        pending = asyncio.ensure_future(events.__anext__())
        try:
            await wait_until_async(
                lambda: "Rebuilding the client" in caplog.text, what="the trigger to give up on the receive"
            )
            await asyncio.to_thread(service.send, queue, ["after the hang"])
            event = await asyncio.wait_for(pending, timeout=60)
            assert [m["body"] for m in event.payload["messages"]] == ["after the hang"]
        finally:
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)
            await events.aclose()
        assert proxy.fired()[f"Timeout {receive}"] == 1
    warning = next(r for r in caplog.records if "Rebuilding the client" in r.getMessage())
    assert warning.levelno == logging.WARNING
    wait = 1 if kind == "sqs" else 0  # Azure has no long polling: its receives do not wait
    assert f"did not answer within {wait + 2} s (its {wait} s wait plus 2 s)" in warning.getMessage()
    assert sum("Rebuilding the client" in r.getMessage() for r in caplog.records) == 1
    await wait_until_async(lambda: statsd.counts(queue=queue)["receive.stalled"] == 1, what="the stall to be counted")
    service.delete_queue(queue)
