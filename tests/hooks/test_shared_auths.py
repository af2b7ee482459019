"""One auth per connection for async queues that share a client (triggers), a new one when the
connection changes; the fingerprint that tells them apart gives nothing away; and many triggers
starting at once on one event loop (a restarted triggerer) never block it."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import greenback
import pytest
from airflow.sdk import Connection
from airflow_support import TriggererSupervisor, azure_connection, set_connection, sqs_connection, supervised

from devtools.emulators import AzuriteQueue, MotoSQS
from devtools.support import fresh_name
from fluke_airflow.hooks.base import SharedAuths, connection_fingerprint

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY"


def conn(password: str = SECRET, **extra: Any) -> Connection:
    return Connection(
        conn_id="q", conn_type="aws", login="AKIAEXAMPLE", password=password, extra=json.dumps(extra) if extra else None
    )


@pytest.mark.unit
def test_fingerprint_changes_with_any_field_and_hides_the_secret() -> None:
    base = connection_fingerprint(conn())
    assert connection_fingerprint(conn()) == base
    assert connection_fingerprint(conn(password=SECRET + "2")) != base
    assert connection_fingerprint(conn(region_name="eu-west-1")) != base
    assert SECRET not in base and "AKIAEXAMPLE" not in base


@pytest.mark.unit
async def test_shared_auths_one_per_key_and_the_oldest_forgotten() -> None:
    auths: SharedAuths[object] = SharedAuths(limit=2)
    built: list[object] = []

    def build() -> object:
        built.append(object())
        return built[-1]

    first = await auths.aget(("q", "a"), build)
    assert await auths.aget(("q", "a"), build) is first and len(built) == 1
    rotated = await auths.aget(("q", "b"), build)  # the same conn_id, changed connection: a new auth
    assert rotated is not first
    await auths.aget(("q", "c"), build)
    assert auths.values() == [rotated, built[-1]]  # more than 2: the oldest went


@pytest.mark.unit
async def test_concurrent_askers_await_one_build_in_a_worker_thread() -> None:
    auths: SharedAuths[object] = SharedAuths()
    threads: list[int] = []
    building, loop_ran = threading.Event(), threading.Event()

    def build() -> object:
        threads.append(threading.get_ident())
        building.set()
        # A slow build (an STS call) that ends only once the loop has run meanwhile: a build that
        # blocked the loop would wait here in vain.
        assert loop_ran.wait(60), "the event loop did not run while the build went on"
        return object()

    async def loop_runs_meanwhile() -> None:
        while not building.is_set():
            await asyncio.sleep(0.01)
        loop_ran.set()

    meanwhile = asyncio.ensure_future(loop_runs_meanwhile())
    got = await asyncio.gather(*(auths.aget("k", build) for _ in range(20)))
    await meanwhile
    assert len(threads) == 1 and threads[0] != threading.get_ident()
    assert all(auth is got[0] for auth in got)


@pytest.mark.unit
async def test_a_failed_build_fails_its_askers_and_the_next_ask_builds_again() -> None:
    auths: SharedAuths[object] = SharedAuths()
    calls = 0

    def build() -> object:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("STS is down")
        return object()

    results = await asyncio.gather(auths.aget("k", build), auths.aget("k", build), return_exceptions=True)
    assert [type(r) for r in results] == [RuntimeError, RuntimeError] and calls == 1
    assert await auths.aget("k", build) is not None and calls == 2


# -- many triggers starting together, talking to the triggerer's supervisor ---------------------------------
def run_as_triggers(open_queue: Callable[[], Awaitable[Any]], count: int, timeout: float = 60.0) -> TriggererSupervisor:
    """Run ``count`` coroutines the way the triggerer runs triggers (greenback portal, supervisor
    comms) on an event loop of their own thread; fail if that loop does not finish in time."""
    outcome: dict[str, Any] = {}

    async def trigger() -> None:
        await greenback.ensure_portal()
        queue = await open_queue()
        async with queue:
            await queue.count()

    async def main() -> None:
        with supervised(asyncio.get_running_loop(), delay=0.05) as supervisor:
            outcome["supervisor"] = supervisor
            await asyncio.gather(*(trigger() for _ in range(count)))

    def loop_thread() -> None:
        try:
            asyncio.run(main())
        except BaseException as error:
            outcome["error"] = error

    thread = threading.Thread(target=loop_thread, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"the event loop of {count} starting triggers is stuck (deadlocked) after {timeout}s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["supervisor"]  # type: ignore[no-any-return]


@pytest.mark.usefixtures("airflow_env")
def test_azure_triggers_starting_together_do_not_deadlock(
    azurite: AzuriteQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The restarted-triggerer deadlock: building the shared auth masked the connection's secrets
    with a blocking supervisor call while holding a threading lock; the next trigger then blocked
    the event loop's thread on that lock for good."""
    from azure.storage.queue import QueueClient

    from fluke_airflow.hooks import AzureStorageQueueHook

    conn_id = set_connection(monkeypatch, f"az_start_{fresh_name('x')[-8:]}", azure_connection(azurite))
    name = fresh_name()
    QueueClient.from_connection_string(azurite.connection_string, name).create_queue()
    supervisor = run_as_triggers(lambda: AzureStorageQueueHook(conn_id).aget_queue(name, share_client=True), count=20)
    assert "MaskSecret" in supervisor.requests  # the secrets reached the supervisor's masker


@pytest.mark.usefixtures("airflow_env")
def test_sqs_triggers_starting_together_do_not_deadlock(moto: MotoSQS, monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3

    from fluke_airflow.hooks import AmazonSQSQueueHook

    conn_id = set_connection(monkeypatch, f"aws_start_{fresh_name('x')[-8:]}", sqs_connection(moto))
    name = fresh_name()
    boto3.client(
        "sqs",
        endpoint_url=moto.endpoint_url,
        region_name=moto.region,
        aws_access_key_id=moto.access_key_id,
        aws_secret_access_key=moto.secret_access_key,
    ).create_queue(QueueName=name)
    run_as_triggers(lambda: AmazonSQSQueueHook(aws_conn_id=conn_id).aget_queue(name, share_client=True), count=20)
