"""Late deletes on SQS's real receipt semantics (issue 20, "at most once means at most once"), end to end:
our SQS queues through the proxy with ``sqs_receipts=True`` (see ``devtools.proxy.SQSReceipts``), moto behind.

SQS API Reference, DeleteMessage: "If you use an old ReceiptHandle, the request will succeed, but the
message might not be deleted"; receipt handles "become invalid ... after the message visibility timeout
expires". A ``Latency`` fault on ``DeleteMessageBatch`` makes a delete reach the service (before forwarding)
or its answer reach us (``after=True``) past the 1 s visibility timeout. Nothing here asserts a duration:
the delays only order events (a 1.5 s delay is after a 1 s deadline whatever the machine's load).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest

from devtools.admin import SQSService
from devtools.emulators import MotoSQS
from devtools.proxy import Latency, Timeout
from fluke_airflow.queues.flows import collect_flow
from fluke_airflow.queues.options import DeliveryOptions

from .support import ProxiedService, body, number_of

ATTEMPTS = 60
"""Polls, 0.25 s apart, to wait for a message to come back (1 s visibility timeout) before failing."""


def held_upstream(moto: MotoSQS, queue: Any) -> int:
    """Messages moto holds, visible or in flight (asked directly, not through the proxy)."""
    with SQSService(moto) as admin:
        counts = admin.counts(queue.get_name())
    return counts["visible"] + counts["in_flight"]


def poll_until_delivered(queue: Any, *, pre_delivery_delete: bool = True) -> list[int | None]:
    """Poll until a batch comes (the message came back), at most :data:`ATTEMPTS` times; the numbers."""
    for _ in range(ATTEMPTS):
        kwargs = {"pre_delivery_delete": pre_delivery_delete, "visibility_timeout": 1, "wait_time_seconds": 0}
        got = [number_of(b) for batch in queue.poll(**kwargs) for b in batch]
        if got:
            return got
        time.sleep(0.25)
    raise AssertionError(f"the message did not come back within {ATTEMPTS} polls 0.25 s apart")


@pytest.mark.parametrize("direct", ["1", "0"], ids=["direct", "botocore"])
def test_a_delete_that_reaches_sqs_late_is_not_delivered_and_comes_back_once(
    moto: MotoSQS, sqs: ProxiedService, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, direct: str
) -> None:
    monkeypatch.setenv("FLUKE_AIRFLOW_SQS_DIRECT", direct)
    with sqs.open(sqs.new_queue()) as queue:
        queue.push(body(1))
        sqs.proxy.inject(Latency(operation="DeleteMessageBatch", first=1, seconds=1.5))
        with caplog.at_level(logging.WARNING, logger="fluke_airflow.queues"):
            first = list(queue.poll(pre_delivery_delete=True, visibility_timeout=1, wait_time_seconds=0))
        assert first == []  # success was answered, after the deadline: not delivered
        assert sqs.proxy.receipts is not None and sqs.proxy.receipts.ignored_deletes == {"expired": 1}
        assert queue.metrics.totals()["messages.late_delete"] == 1
        assert "NOT delivered" in caplog.text and "Raise visibility_timeout" in caplog.text

        # SQS did not delete it: it comes back, and is delivered once
        assert poll_until_delivered(queue) == [1]
        assert held_upstream(moto, queue) == 0
        assert queue.metrics.totals()["messages.late_delete"] == 1


def test_a_delete_answered_late_is_not_delivered_though_sqs_did_it(moto: MotoSQS, sqs: ProxiedService) -> None:
    """At most once: the service deleted in time but its answer came after the deadline, so the client
    cannot tell it from the case above and does not deliver. The message is gone (the loss at most once
    allows), never delivered twice."""
    with sqs.open(sqs.new_queue()) as queue:
        queue.push(body(1))
        sqs.proxy.inject(Latency(operation="DeleteMessageBatch", first=1, seconds=1.5, after=True))
        assert list(queue.poll(pre_delivery_delete=True, visibility_timeout=1, wait_time_seconds=0)) == []
        assert sqs.proxy.receipts is not None and not sqs.proxy.receipts.ignored_deletes
        assert held_upstream(moto, queue) == 0
        assert queue.metrics.totals()["messages.late_delete"] == 1


def test_a_late_delete_after_delivery_is_reported_and_the_duplicate_explained(
    sqs: ProxiedService, caplog: pytest.LogCaptureFixture
) -> None:
    with sqs.open(sqs.new_queue()) as queue:
        queue.push(body(1))
        sqs.proxy.inject(Latency(operation="DeleteMessageBatch", first=1, seconds=1.5))
        with caplog.at_level(logging.WARNING, logger="fluke_airflow.queues"):
            delivered = [b for batch in queue.poll(visibility_timeout=1, wait_time_seconds=0) for b in batch]
        assert [number_of(b) for b in delivered] == [1]
        assert queue.metrics.totals()["messages.late_delete"] == 1
        assert "may not have deleted" in caplog.text
        # ...and indeed it comes back: the duplicate that warning announced
        assert poll_until_delivered(queue, pre_delivery_delete=False) == [1]


def test_a_late_delete_through_delete_messages_is_reported(moto: MotoSQS, sqs: ProxiedService) -> None:
    """The sensor's post-delivery delete goes through ``delete_messages``: judged the same way."""
    with sqs.open(sqs.new_queue()) as queue:
        queue.push(body(1))
        flow = collect_flow(DeliveryOptions(queue.get_name(), num_messages=1, visibility_timeout=1, wait_seconds=0))
        messages = queue.run_flow(flow)
        sqs.proxy.inject(Latency(operation="DeleteMessageBatch", first=1, seconds=1.5))
        assert queue.delete_messages(messages) == [True]  # what the service answered
        assert queue.metrics.totals()["messages.late_delete"] == 1
        assert held_upstream(moto, queue) == 1  # ...and indeed nothing was deleted


def test_the_heartbeat_keeps_a_slow_batch_s_delete_in_time(moto: MotoSQS, sqs: ProxiedService) -> None:
    """A consumer that takes longer than the visibility timeout: the heartbeat's renewals move the
    deadline (on the proxy too: ChangeMessageVisibilityBatch), so the delete counts and deletes."""
    with sqs.open(sqs.new_queue()) as queue:
        queue.push(body(1))
        for batch in queue.poll(visibility_timeout=3, wait_time_seconds=0):
            assert [number_of(b) for b in batch] == [1]
            time.sleep(4.5)  # the work: longer than the 3 s timeout
        assert sqs.proxy.total("ChangeMessageVisibilityBatch") >= 1
        assert sqs.proxy.receipts is not None and not sqs.proxy.receipts.ignored_deletes
        assert queue.metrics.totals()["messages.late_delete"] == 0
        assert held_upstream(moto, queue) == 0


@pytest.mark.parametrize("direct", ["1", "0"], ids=["direct", "botocore"])
def test_a_retried_receive_counts_from_the_attempt_that_answered(
    sqs: ProxiedService, monkeypatch: pytest.MonkeyPatch, direct: str
) -> None:
    """The first receive attempt hangs 2.5 s and is dropped, longer than the 2 s timeout; the SDK sends
    it again. The messages were handed out by that second attempt, so their delete is in time."""
    monkeypatch.setenv("FLUKE_AIRFLOW_SQS_DIRECT", direct)
    with sqs.open(sqs.new_queue()) as queue:
        queue.push(body(1))
        sqs.proxy.inject(Timeout(operation="ReceiveMessage", first=1, seconds=2.5))
        delivered = [number_of(b) for batch in queue.poll(pre_delivery_delete=True, visibility_timeout=2,
                                                          wait_time_seconds=0) for b in batch]  # fmt: skip
        assert sqs.proxy.fired() == {"Timeout ReceiveMessage": 1}
        assert delivered == [1] and queue.metrics.totals()["messages.late_delete"] == 0


@pytest.mark.parametrize("direct", ["1", "0"], ids=["direct", "aiobotocore"])
async def test_a_retried_async_receive_counts_from_the_attempt_that_answered(
    sqs: ProxiedService, monkeypatch: pytest.MonkeyPatch, direct: str
) -> None:
    """As above, through the asyncio driver and aiobotocore."""
    monkeypatch.setenv("FLUKE_AIRFLOW_SQS_DIRECT", direct)
    async with sqs.open_async(sqs.new_queue()) as queue:
        await queue.push(body(1))
        sqs.proxy.inject(Timeout(operation="ReceiveMessage", first=1, seconds=2.5))
        delivered = [number_of(b) async for batch in queue.poll(pre_delivery_delete=True, visibility_timeout=2,
                                                                wait_time_seconds=0) for b in batch]  # fmt: skip
        assert sqs.proxy.fired() == {"Timeout ReceiveMessage": 1}
        assert delivered == [1] and queue.metrics.totals()["messages.late_delete"] == 0
