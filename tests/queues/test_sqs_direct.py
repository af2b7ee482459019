"""The direct ``ReceiveMessage`` and ``DeleteMessageBatch`` of the SQS transports
(fluke_airflow/queues/sqs_direct.py).

They must be indistinguishable from botocore's path where it matters: the same parsed answers
(binary attributes decoded, per-entry delete failures), the same request bytes (so a fault that
follows one request's repeats follows botocore's retries of it), botocore's retries for what
botocore retries, and the client's own exception, once, for what it does not. Counted at a
proxy in front of moto.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

from devtools.emulators import MotoSQS
from devtools.proxy import Proxy, Reset, Throttle
from fluke_airflow.auth import AWSAuth
from fluke_airflow.exceptions import QueueError
from fluke_airflow.queues import AmazonSQSQueue, AsyncAmazonSQSQueue, sqs_direct

if TYPE_CHECKING:
    from conftest import SQSBackend

ATTRIBUTES = {
    "kind": {"DataType": "String", "StringValue": "probe"},
    "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01\xfe"},
}


@pytest.fixture
def proxy(moto: MotoSQS) -> Iterator[Proxy]:
    with Proxy(moto.endpoint_url) as proxy:
        yield proxy


def _queue(backend: SQSBackend, bodies: int = 0) -> tuple[str, str]:
    """A new queue on moto (created directly, not through the proxy) holding ``bodies`` messages."""
    name = backend.new_queue(f"direct-{uuid.uuid4().hex[:12]}")
    url = backend.url(name)
    for i in range(bodies):
        backend.client.send_message(QueueUrl=url, MessageBody=f"body {i}", MessageAttributes=ATTRIBUTES)
    return name, url


def _auth(moto: MotoSQS, proxy: Proxy, attempts: int | None = None) -> AWSAuth:
    config = Config(retries={"mode": "standard", "total_max_attempts": attempts}) if attempts else None
    return AWSAuth(
        moto.access_key_id,
        moto.secret_access_key,
        region=moto.region,
        endpoint_url=proxy.url,
        botocore_config=config,
    )


@pytest.fixture
async def client(moto: MotoSQS, proxy: Proxy) -> AsyncIterator[Any]:
    async with await _auth(moto, proxy).create_async_client("sqs") as client:
        yield client


def _params(url: str, visibility: int = 30) -> dict[str, Any]:
    return {
        "QueueUrl": url,
        "MaxNumberOfMessages": 10,
        "VisibilityTimeout": visibility,
        "WaitTimeSeconds": 0,
        "MessageSystemAttributeNames": ["All"],
        "MessageAttributeNames": ["All"],
    }


def _comparable(response: dict[str, Any]) -> list[dict[str, Any]]:
    """The messages without what changes from one receive to the next."""
    messages = []
    for m in response["Messages"]:
        attributes = {k: v for k, v in m["Attributes"].items() if k != "ApproximateReceiveCount"}
        messages.append({**{k: v for k, v in m.items() if k != "ReceiptHandle"}, "Attributes": attributes})
    return messages


async def test_the_direct_receive_parses_what_botocore_parses(
    moto: MotoSQS, sqs_backend: SQSBackend, proxy: Proxy, client: Any
) -> None:
    _, url = _queue(sqs_backend, bodies=3)
    direct = sqs_direct.for_client(client)
    assert direct is not None and sqs_direct.for_client(client) is direct  # one per client

    ours = await direct.acall(client, "ReceiveMessage", _params(url, visibility=0))
    theirs = await client.receive_message(**_params(url, visibility=0))

    assert ours is not None and len(ours["Messages"]) == 3
    assert _comparable(ours) == _comparable(theirs)
    assert ours["Messages"][0]["MessageAttributes"]["blob"]["BinaryValue"] == b"\x00\x01\xfe"
    assert ours["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert proxy.counts["ReceiveMessage"] == 2


async def test_a_trigger_queue_receives_and_deletes_without_botocore(
    moto: MotoSQS, sqs_backend: SQSBackend, proxy: Proxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    name, _ = _queue(sqs_backend, bodies=25)
    async with AsyncAmazonSQSQueue(_auth(moto, proxy), name, share_client=True, suppress_output=True) as queue:
        client = queue._driver.transport.client  # type: ignore[union-attr]
        through_botocore: list[str] = []
        for method in ("receive_message", "delete_message_batch"):
            original = getattr(client, method)

            async def counted(*, _name: str = method, _original: Any = original, **params: Any) -> Any:
                through_botocore.append(_name)
                return await _original(**params)

            monkeypatch.setattr(client, method, counted)
        received = []
        async for batch in queue.poll(num_messages=25, batch_size=10, wait_time_seconds=0):
            received += batch

    assert sorted(received) == sorted(f"body {i}" for i in range(25))
    assert through_botocore == []
    assert proxy.counts["ReceiveMessage"] == 3 and proxy.counts["DeleteMessageBatch"] == 3
    assert sqs_backend.total(name) == 0


def test_a_blocking_poll_receives_and_deletes_without_botocore(
    moto: MotoSQS, sqs_backend: SQSBackend, proxy: Proxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    name, _ = _queue(sqs_backend, bodies=25)
    queue = AmazonSQSQueue(_auth(moto, proxy), name, suppress_output=True)
    try:
        client = queue._driver.transport.client  # type: ignore[attr-defined]
        through_botocore: list[str] = []
        for method in ("receive_message", "delete_message_batch"):
            original = getattr(client, method)

            def counted(*, _name: str = method, _original: Any = original, **params: Any) -> Any:
                through_botocore.append(_name)
                return _original(**params)

            monkeypatch.setattr(client, method, counted)
        received = [body for batch in queue.poll(batch_size=100, wait_time_seconds=0) for body in batch]
    finally:
        queue.close()
    assert sorted(received) == sorted(f"body {i}" for i in range(25))
    assert through_botocore == []
    assert sqs_backend.total(name) == 0


def test_a_delete_reports_each_entry_as_botocore_does(moto: MotoSQS, sqs_backend: SQSBackend, proxy: Proxy) -> None:
    _, url = _queue(sqs_backend, bodies=2)
    client = _auth(moto, proxy).create_client("sqs")
    direct = sqs_direct.for_client(client)
    assert direct is not None
    handles = [m["ReceiptHandle"] for m in client.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]]
    entries = [{"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(handles)]
    entries.append({"Id": "bad", "ReceiptHandle": "not-a-receipt"})
    response = direct.call(client, "DeleteMessageBatch", {"QueueUrl": url, "Entries": entries})
    assert response is not None
    assert sorted(e["Id"] for e in response["Successful"]) == ["0", "1"]
    assert [e["Id"] for e in response["Failed"]] == ["bad"]
    assert proxy.counts["DeleteMessageBatch"] == 1
    client.close()


async def test_a_retryable_failure_goes_through_botocore_and_its_retries(
    moto: MotoSQS, sqs_backend: SQSBackend, proxy: Proxy, client: Any
) -> None:
    _, url = _queue(sqs_backend, bodies=1)
    direct = sqs_direct.for_client(client)
    assert direct is not None
    proxy.inject(Throttle(operation="ReceiveMessage", first=1))
    assert await direct.acall(client, "ReceiveMessage", _params(url)) is None  # the caller sends it to botocore
    response = await client.receive_message(**_params(url))
    assert [m["Body"] for m in response["Messages"]] == ["body 0"]
    assert [r.status for r in proxy.records("ReceiveMessage")] == [400, 200]


async def test_a_receive_that_always_fails_fails_after_botocores_attempts(
    moto: MotoSQS, sqs_backend: SQSBackend, proxy: Proxy
) -> None:
    """The fault follows one request's repeats by its bytes: botocore's attempts are repeats of the
    direct attempt, so the body is byte for byte the one botocore builds."""
    name, _ = _queue(sqs_backend)
    async with AsyncAmazonSQSQueue(_auth(moto, proxy, attempts=3), name, suppress_output=True) as queue:
        proxy.inject(Reset(operation="ReceiveMessage", first=1, retries=3))
        with pytest.raises(QueueError, match="receive"):
            async for _ in queue.poll(num_messages=1, wait_time_seconds=0):
                pass
    assert [r.faults for r in proxy.records("ReceiveMessage")] == [["Reset"]] * 4  # 1 direct + 3 botocore


async def test_an_error_botocore_does_not_retry_is_the_clients_own_and_sent_once(
    moto: MotoSQS, sqs_backend: SQSBackend, proxy: Proxy, client: Any
) -> None:
    _, url = _queue(sqs_backend)
    direct = sqs_direct.for_client(client)
    assert direct is not None
    gone = url.rsplit("/", 1)[0] + "/never-created-" + uuid.uuid4().hex[:8]
    with pytest.raises(client.exceptions.QueueDoesNotExist) as caught:
        await direct.acall(client, "ReceiveMessage", _params(gone))
    assert isinstance(caught.value, ClientError)
    assert caught.value.response["Error"]["Code"] in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")
    assert proxy.counts["ReceiveMessage"] == 1


@pytest.mark.unit
async def test_only_plain_clients_take_the_direct_path(monkeypatch: pytest.MonkeyPatch) -> None:
    auth = AWSAuth("AKIDEXAMPLE", "not-a-secret", region="eu-west-1", endpoint_url="http://127.0.0.1:9")
    async with await auth.create_async_client("sqs") as plain:
        assert sqs_direct.DirectCalls.usable(plain)
        monkeypatch.setenv(sqs_direct.SWITCH, "0")
        assert not sqs_direct.DirectCalls.usable(plain)
    monkeypatch.delenv(sqs_direct.SWITCH)
    unsigned = AWSAuth(
        region="eu-west-1", endpoint_url="http://127.0.0.1:9", botocore_config=Config(signature_version=UNSIGNED)
    )
    async with await unsigned.create_async_client("sqs") as client:
        assert not sqs_direct.DirectCalls.usable(client)
        assert sqs_direct.for_client(client) is None
