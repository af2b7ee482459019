"""The fault-injecting proxy itself, checked with plain SDK clients against the real emulators:
what it names and records, and that each fault does what the chaos scenarios rely on."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from azure.core.exceptions import HttpResponseError
from azure.storage.queue import QueueClient
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError
from botocore.retries.standard import RetryContext, ThrottledRetryableChecker

from devtools.emulators import AzuriteQueue, MotoSQS
from devtools.proxy import EntryFailure, ErrorStatus, Latency, Proxy, Reset, Throttle, Timeout

from .support import number_of

# azure-storage's retry policy without its pauses
NO_BACKOFF: dict[str, Any] = {"initial_backoff": 0, "increment_base": 0, "random_jitter_range": 0}


@pytest.fixture
def sqs_proxy(moto: MotoSQS) -> Iterator[Proxy]:
    with Proxy(moto.endpoint_url, seed=7) as proxy:
        yield proxy


def sqs_client(moto: MotoSQS, endpoint: str, attempts: int = 3) -> Any:
    """A plain boto3 client; ``attempts`` in all (few, so that exhausting them is quick)."""
    return boto3.client(
        "sqs",
        endpoint_url=endpoint,
        aws_access_key_id=moto.access_key_id,
        aws_secret_access_key=moto.secret_access_key,
        region_name=moto.region,
        config=Config(retries={"mode": "standard", "total_max_attempts": attempts}),
    )


def new_sqs_queue(moto: MotoSQS, name: str) -> str:
    return str(sqs_client(moto, moto.endpoint_url).create_queue(QueueName=name)["QueueUrl"])


def upstream_count(moto: MotoSQS, url: str) -> int:
    attributes = sqs_client(moto, moto.endpoint_url).get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])


def test_sqs_requests_are_named_and_measured(moto: MotoSQS, sqs_proxy: Proxy) -> None:
    client = sqs_client(moto, sqs_proxy.url)
    url = new_sqs_queue(moto, "proxy-names")
    entries = [{"Id": str(i), "MessageBody": f"{i}|"} for i in range(3)]
    client.send_message_batch(QueueUrl=url, Entries=entries)
    client.receive_message(QueueUrl=url, MaxNumberOfMessages=5, WaitTimeSeconds=0)

    send, receive = sqs_proxy.records()
    assert (send.operation, send.service, send.entries, send.status) == ("SendMessageBatch", "sqs", 3, 200)
    assert (receive.operation, receive.max_messages, receive.upstream_status) == ("ReceiveMessage", 5, 200)
    assert sqs_proxy.counts == {"SendMessageBatch": 1, "ReceiveMessage": 1}


def test_azure_requests_are_named(azurite: AzuriteQueue) -> None:
    with Proxy(azurite.account_url) as proxy:
        conn = azurite.connection_string.replace(azurite.account_url, proxy.endpoint)
        with QueueClient.from_connection_string(conn, "proxy-names") as queue:
            queue.create_queue()
            queue.send_message("a")
            queue.peek_messages(max_messages=4)
            received = next(iter(queue.receive_messages(messages_per_page=3, visibility_timeout=5)))
            updated = queue.update_message(received, visibility_timeout=5)
            queue.delete_message(received.id, updated.pop_receipt)
            queue.get_queue_properties()
            queue.clear_messages()
            queue.delete_queue()
        assert [r.operation for r in proxy.records()] == [
            "PUT queue",
            "POST messages",
            "GET messages peekonly",
            "GET messages",
            "PUT message",
            "DELETE message",
            "GET queue metadata",
            "DELETE messages",
            "DELETE queue",
        ]
        assert [r.max_messages for r in proxy.records() if r.operation.startswith("GET messages")] == [4, 3]
        assert all(r.path.startswith(f"/{azurite.account}/") for r in proxy.records())


def test_before_the_emulator_or_after_it(moto: MotoSQS, sqs_proxy: Proxy) -> None:
    """A fault before forwarding: the emulator never saw the attempt. After: it carried it out,
    so the SDK's retry sends the message a second time."""
    client = sqs_client(moto, sqs_proxy.url)
    before, after = new_sqs_queue(moto, "proxy-before"), new_sqs_queue(moto, "proxy-after")

    sqs_proxy.inject(Reset(operation="SendMessage", first=1))
    client.send_message(QueueUrl=before, MessageBody="x")
    sqs_proxy.inject(Reset(operation="SendMessage", first=1, after=True))
    client.send_message(QueueUrl=after, MessageBody="x")

    assert (upstream_count(moto, before), upstream_count(moto, after)) == (1, 2)
    first_attempts = [r for r in sqs_proxy.records() if r.faults]
    assert [(r.faults, r.status, r.upstream_status) for r in first_attempts] == [
        (["Reset"], None, None),
        (["Reset(after)"], None, 200),
    ]


@pytest.mark.parametrize("code", ["RequestThrottled", "ThrottlingException"])
def test_throttling_is_throttling_to_botocore(moto: MotoSQS, sqs_proxy: Proxy, code: str) -> None:
    client = sqs_client(moto, sqs_proxy.url, attempts=2)
    url = new_sqs_queue(moto, "proxy-throttle")
    sqs_proxy.inject(Throttle(operation="ReceiveMessage", code=code))
    with pytest.raises(ClientError) as caught:
        client.receive_message(QueueUrl=url, WaitTimeSeconds=0)
    response = caught.value.response
    assert response["Error"]["Code"] == code
    assert response["ResponseMetadata"]["RetryAttempts"] == 1
    context = RetryContext(attempt_number=1, parsed_response=response)
    assert ThrottledRetryableChecker().is_retryable(context)


def test_retries_make_a_call_fail_for_good(moto: MotoSQS, sqs_proxy: Proxy) -> None:
    """``retries`` follows the SDK's repeats of one request, and only those."""
    client = sqs_client(moto, sqs_proxy.url, attempts=3)
    url = new_sqs_queue(moto, "proxy-sticky")
    sqs_proxy.inject(ErrorStatus(operation="GetQueueAttributes", first=1, retries=2, status=503))
    with pytest.raises(ClientError, match="ServiceUnavailable"):
        client.get_queue_attributes(QueueUrl=url)
    client.get_queue_attributes(QueueUrl=url)
    assert [r.status for r in sqs_proxy.records()] == [503, 503, 503, 200]


def test_timeout_and_latency(moto: MotoSQS, sqs_proxy: Proxy) -> None:
    client = sqs_client(moto, sqs_proxy.url, attempts=1)
    url = new_sqs_queue(moto, "proxy-timeout")
    sqs_proxy.inject(Timeout(operation="GetQueueAttributes", seconds=0.2))
    with pytest.raises(ConnectionClosedError):
        client.get_queue_attributes(QueueUrl=url)
    sqs_proxy.inject(Latency(operation="GetQueueAttributes", seconds=0.1, after=True))
    client.get_queue_attributes(QueueUrl=url)
    assert [r.faults for r in sqs_proxy.records()] == [["Timeout"], ["Latency(after)"]]


def test_entry_failures(moto: MotoSQS, sqs_proxy: Proxy) -> None:
    client = sqs_client(moto, sqs_proxy.url)
    url = new_sqs_queue(moto, "proxy-entries")
    entries = [{"Id": str(i), "MessageBody": f"{i}|"} for i in range(4)]

    sqs_proxy.inject(EntryFailure(operation="SendMessageBatch", first=1))
    response = client.send_message_batch(QueueUrl=url, Entries=entries)
    assert [f["Code"] for f in response["Failed"]] == ["InternalError"] * 4
    assert upstream_count(moto, url) == 0

    sqs_proxy.inject(EntryFailure(operation="SendMessageBatch", first=1, after=True, entries=1))
    response = client.send_message_batch(QueueUrl=url, Entries=entries)
    assert (len(response["Successful"]), len(response["Failed"])) == (3, 1)
    assert upstream_count(moto, url) == 4  # the emulator took all four


def test_azure_server_busy_is_retried(azurite: AzuriteQueue) -> None:
    with Proxy(azurite.account_url) as proxy:
        conn = azurite.connection_string.replace(azurite.account_url, proxy.endpoint)
        with QueueClient.from_connection_string(conn, "proxy-busy", **NO_BACKOFF) as queue:
            queue.create_queue()
            proxy.inject(Throttle(operation="POST messages", first=1))
            queue.send_message("1|")
            proxy.inject(ErrorStatus(operation="POST messages", first=1, retries=3, status=500))
            with pytest.raises(HttpResponseError) as caught:
                queue.send_message("2|")
            assert getattr(caught.value, "error_code", None) == "InternalError"
            assert [number_of(m.content) for m in queue.peek_messages(max_messages=5)] == [1]
            queue.delete_queue()
        sends = proxy.records("POST messages")
        assert [r.status for r in sends] == [503, 201, 500, 500, 500, 500]
