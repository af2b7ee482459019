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


# -- the real SQS's receipt handles (Proxy(sqs_receipts=True)) ---------------------------------------------
# SQS API Reference, DeleteMessage
# (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_DeleteMessage.html):
# "If you use an old ReceiptHandle, the request will succeed, but the message might not be deleted";
# ReceiptHandle: "Receipt handles are opaque strings that become invalid after the message is deleted or
# after the message visibility timeout expires". ChangeMessageVisibility: the new timeout counts "from the
# time that you make the ChangeMessageVisibility call", and a later change or delete "might result in an
# error". moto deletes with any handle a message ever had; these check that the proxy does not.
class ManualClock:
    """The receipts' clock, moved on by the test (so no test waits for a visibility timeout)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def receipts_proxy(moto: MotoSQS) -> Iterator[tuple[Proxy, ManualClock]]:
    with Proxy(moto.endpoint_url, sqs_receipts=True) as proxy:
        clock = ManualClock()
        assert proxy.receipts is not None
        proxy.receipts.clock = clock
        yield proxy, clock


def held_upstream(moto: MotoSQS, url: str) -> int:
    """Messages moto still holds, visible or in flight."""
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attributes = sqs_client(moto, moto.endpoint_url).get_queue_attributes(QueueUrl=url, AttributeNames=names)
    return sum(int(attributes["Attributes"][n]) for n in names)


def receive_one(client: Any, url: str, **kwargs: Any) -> dict[str, Any]:
    messages = client.receive_message(QueueUrl=url, MaxNumberOfMessages=1, WaitTimeSeconds=0, **kwargs)["Messages"]
    assert len(messages) == 1
    return messages[0]  # type: ignore[no-any-return]


def test_a_delete_with_an_expired_receipt_succeeds_and_deletes_nothing(
    moto: MotoSQS, receipts_proxy: tuple[Proxy, ManualClock]
) -> None:
    proxy, clock = receipts_proxy
    client = sqs_client(moto, proxy.url)
    url = new_sqs_queue(moto, "receipts-expired")
    client.send_message(QueueUrl=url, MessageBody="1|")
    handle = receive_one(client, url, VisibilityTimeout=30)["ReceiptHandle"]
    clock.now += 30  # the visibility timeout has run out (moto still hides the message: its clock did not move)

    client.delete_message(QueueUrl=url, ReceiptHandle=handle)  # success, as the reference says
    batch = client.delete_message_batch(QueueUrl=url, Entries=[{"Id": "a", "ReceiptHandle": handle}])

    assert [e["Id"] for e in batch["Successful"]] == ["a"] and not batch.get("Failed")
    assert held_upstream(moto, url) == 1  # ...and nothing was deleted
    deletes = [r for r in proxy.records() if r.operation.startswith("DeleteMessage")]
    assert [(r.stale_receipts, r.upstream_status, r.status) for r in deletes] == [(1, None, 200), (1, None, 200)]
    assert proxy.receipts is not None and proxy.receipts.ignored_deletes == {"expired": 2}


def test_a_delete_in_time_deletes(moto: MotoSQS, receipts_proxy: tuple[Proxy, ManualClock]) -> None:
    proxy, clock = receipts_proxy
    client = sqs_client(moto, proxy.url)
    url = new_sqs_queue(moto, "receipts-in-time")
    client.send_message(QueueUrl=url, MessageBody="1|")
    handle = receive_one(client, url, VisibilityTimeout=30)["ReceiptHandle"]
    clock.now += 29.9
    client.delete_message_batch(QueueUrl=url, Entries=[{"Id": "a", "ReceiptHandle": handle}])
    assert held_upstream(moto, url) == 0


def test_a_superseded_receipt_deletes_nothing(moto: MotoSQS, receipts_proxy: tuple[Proxy, ManualClock]) -> None:
    proxy, _ = receipts_proxy
    client = sqs_client(moto, proxy.url)
    url = new_sqs_queue(moto, "receipts-superseded")
    client.send_message(QueueUrl=url, MessageBody="1|")
    old = receive_one(client, url, VisibilityTimeout=0)["ReceiptHandle"]  # visible again at once on moto too
    new = receive_one(client, url, VisibilityTimeout=30)["ReceiptHandle"]
    assert old != new

    client.delete_message(QueueUrl=url, ReceiptHandle=old)
    assert held_upstream(moto, url) == 1
    client.delete_message(QueueUrl=url, ReceiptHandle=new)
    assert held_upstream(moto, url) == 0
    assert proxy.receipts is not None and proxy.receipts.ignored_deletes == {"superseded": 1}


def test_a_batch_delete_carries_out_only_its_live_entries(
    moto: MotoSQS, receipts_proxy: tuple[Proxy, ManualClock]
) -> None:
    proxy, clock = receipts_proxy
    client = sqs_client(moto, proxy.url)
    url = new_sqs_queue(moto, "receipts-batch")
    client.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": f"{i}|"} for i in range(2)])
    first = receive_one(client, url, VisibilityTimeout=30)
    clock.now += 20
    second = receive_one(client, url, VisibilityTimeout=30)
    clock.now += 15  # the first handle expired 5 s ago, the second has 15 s left

    entries = [{"Id": "first", "ReceiptHandle": first["ReceiptHandle"]},
               {"Id": "second", "ReceiptHandle": second["ReceiptHandle"]}]  # fmt: skip
    answer = client.delete_message_batch(QueueUrl=url, Entries=entries)

    assert sorted(e["Id"] for e in answer["Successful"]) == ["first", "second"] and not answer.get("Failed")
    assert held_upstream(moto, url) == 1  # the first: moto still holds it
    assert proxy.records("DeleteMessageBatch")[0].stale_receipts == 1


def test_a_visibility_change_moves_the_deadline_and_one_too_late_fails(
    moto: MotoSQS, receipts_proxy: tuple[Proxy, ManualClock]
) -> None:
    proxy, clock = receipts_proxy
    client = sqs_client(moto, proxy.url, attempts=1)
    url = new_sqs_queue(moto, "receipts-visibility")
    client.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": f"{i}|"} for i in range(2)])
    kept = receive_one(client, url, VisibilityTimeout=30)["ReceiptHandle"]
    late = receive_one(client, url, VisibilityTimeout=30)["ReceiptHandle"]
    clock.now += 20
    client.change_message_visibility(QueueUrl=url, ReceiptHandle=kept, VisibilityTimeout=30)  # until 50
    clock.now += 20  # 40 s after the receive: kept has 10 s left, late expired 10 s ago

    with pytest.raises(ClientError) as caught:
        client.change_message_visibility(QueueUrl=url, ReceiptHandle=late, VisibilityTimeout=30)
    assert caught.value.response["Error"]["Code"] == "AWS.SimpleQueueService.MessageNotInflight"
    answer = client.change_message_visibility_batch(
        QueueUrl=url, Entries=[{"Id": "late", "ReceiptHandle": late, "VisibilityTimeout": 30}]
    )
    assert [(f["Id"], f["Code"]) for f in answer["Failed"]] == [("late", "MessageNotInflight")]
    client.delete_message(QueueUrl=url, ReceiptHandle=kept)
    assert held_upstream(moto, url) == 1  # kept is gone; late was never deleted
    assert proxy.receipts is not None and proxy.receipts.refused_changes == {"expired": 2}


def test_the_queue_s_own_visibility_timeout_applies_when_a_receive_names_none(
    moto: MotoSQS, receipts_proxy: tuple[Proxy, ManualClock]
) -> None:
    proxy, clock = receipts_proxy
    client = sqs_client(moto, proxy.url)
    url = client.create_queue(QueueName="receipts-default", Attributes={"VisibilityTimeout": "5"})["QueueUrl"]
    client.send_message(QueueUrl=url, MessageBody="1|")
    handle = receive_one(client, url)["ReceiptHandle"]
    clock.now += 5
    client.delete_message(QueueUrl=url, ReceiptHandle=handle)
    assert held_upstream(moto, url) == 1


def test_a_delete_delayed_past_the_deadline_deletes_nothing(moto: MotoSQS) -> None:
    """A ``Latency`` before forwarding is a delete that reaches the service late: it is judged when it
    would reach the service (real clock: the delete is held 1.5 s, longer than the 1 s timeout)."""
    with Proxy(moto.endpoint_url, sqs_receipts=True) as proxy:
        client = sqs_client(moto, proxy.url)
        url = new_sqs_queue(moto, "receipts-latency")
        client.send_message(QueueUrl=url, MessageBody="1|")
        handle = receive_one(client, url, VisibilityTimeout=1)["ReceiptHandle"]
        proxy.inject(Latency(operation="DeleteMessageBatch", seconds=1.5))
        answer = client.delete_message_batch(QueueUrl=url, Entries=[{"Id": "a", "ReceiptHandle": handle}])
        assert [e["Id"] for e in answer["Successful"]] == ["a"]
        assert proxy.records("DeleteMessageBatch")[0].stale_receipts == 1
        assert held_upstream(moto, url) == 1


def test_the_direct_path_meets_the_same_receipts(moto: MotoSQS, receipts_proxy: tuple[Proxy, ManualClock]) -> None:
    """fluke_airflow's direct requests (queues/sqs_direct.py) send botocore's JSON bytes: same semantics."""
    from fluke_airflow.queues import sqs_direct

    proxy, clock = receipts_proxy
    client = sqs_client(moto, proxy.url)
    direct = sqs_direct.for_client(client)
    assert direct is not None
    url = new_sqs_queue(moto, "receipts-direct")
    client.send_message(QueueUrl=url, MessageBody="1|")
    received = direct.call(client, "ReceiveMessage", {"QueueUrl": url, "VisibilityTimeout": 30, "WaitTimeSeconds": 0})
    assert received is not None
    handle = received["Messages"][0]["ReceiptHandle"]
    clock.now += 31
    entries = [{"Id": "0", "ReceiptHandle": handle}]
    answer = direct.call(client, "DeleteMessageBatch", {"QueueUrl": url, "Entries": entries})
    assert answer is not None and [e["Id"] for e in answer["Successful"]] == ["0"]
    assert held_upstream(moto, url) == 1
