"""Requests per message, counted at the server side by a proxy in front of the emulator (issue 4).

Requests are what a cloud bill counts, and unlike throughput they do not depend on how fast
the machine is, so this check is exact and belongs in ``make test``. On a full queue of
200 messages of ~200 bytes:

* SQS: ``push_many`` <= 0.10 requests per message (10 per ``SendMessageBatch``); poll with
  post-delivery delete at ``batch_size=100`` <= 0.21 (10 per ``ReceiveMessage`` and per
  ``DeleteMessageBatch``, plus the one empty receive that ends the poll).
* Azure (no batch API): push exactly 1.0; poll+delete <= 1.05 (32 per receive, one delete each).

Opening a queue (``GetQueueUrl`` + ``GetQueueAttributes`` / ``GetQueueProperties``) is a fixed
cost per queue object, not per message; it is counted before the measured phases start.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from azure.storage.queue import QueueServiceClient
from pushed import accepted

from devtools.emulators import AzuriteQueue, MotoSQS
from devtools.proxy import Proxy
from fluke_airflow.auth import AWSAuth, AzureAuth
from fluke_airflow.queues import AmazonSQSQueue, AsyncAmazonSQSQueue, AsyncAzureStorageQueue, AzureStorageQueue

MESSAGES = 200
BODY_BYTES = 200


def bodies(count: int = MESSAGES) -> list[str]:
    """Unique bodies of exactly BODY_BYTES bytes."""
    return [f"{i:06d}|".ljust(BODY_BYTES, "x") for i in range(count)]


@pytest.fixture
def sqs_proxy(moto: MotoSQS) -> Iterator[Proxy]:
    with Proxy(moto.endpoint_url) as proxy:
        yield proxy


@pytest.fixture
def azure_proxy(azurite: AzuriteQueue) -> Iterator[Proxy]:
    with Proxy(azurite.account_url) as proxy:
        yield proxy


def sqs_queue(moto: MotoSQS, proxy: Proxy) -> tuple[AWSAuth, str]:
    """A new SQS queue (created directly on moto) and an auth object that goes through the proxy."""
    name = f"counts-{uuid.uuid4().hex[:12]}"
    client = boto3.client(
        "sqs",
        endpoint_url=moto.endpoint_url,
        aws_access_key_id=moto.access_key_id,
        aws_secret_access_key=moto.secret_access_key,
        region_name=moto.region,
    )
    client.create_queue(QueueName=name)
    client.close()
    auth = AWSAuth(moto.access_key_id, moto.secret_access_key, region=moto.region, endpoint_url=proxy.url)
    return auth, name


def azure_queue(azurite: AzuriteQueue, proxy: Proxy) -> tuple[AzureAuth, str]:
    """A new Azure queue (created directly on Azurite) and an auth object that goes through the proxy."""
    name = f"counts-{uuid.uuid4().hex[:12]}"
    with QueueServiceClient.from_connection_string(azurite.connection_string) as service:
        service.create_queue(name)  # closed after, so no idle connection holds Azurite up at its shutdown
    conn = azurite.connection_string.replace(f"QueueEndpoint={azurite.account_url}", f"QueueEndpoint={proxy.endpoint}")
    assert conn != azurite.connection_string
    return AzureAuth.from_conn_string(conn), name


def per_message(proxy: Proxy) -> float:
    return proxy.total() / MESSAGES


def check_sqs_shapes(proxy: Proxy) -> None:
    """Every request the SQS API batches carries at most 10 entries; receives ask for at most 10."""
    for record in proxy.records():
        assert record.status == 200, record
        if record.operation.endswith("Batch"):
            assert record.entries is not None and 1 <= record.entries <= 10, record
        if record.operation == "ReceiveMessage":
            assert record.max_messages is not None and 1 <= record.max_messages <= 10, record


def peak_overlap(records: list[Any]) -> int:
    """The most of these requests that were open at the proxy at one moment."""
    edges = sorted([(r.started, 1) for r in records] + [(r.started + r.seconds, -1) for r in records])
    peak = current = 0
    for _, step in edges:
        current += step
        peak = max(peak, current)
    return peak


def report(label: str, proxy: Proxy) -> None:
    rate = per_message(proxy)
    print(f"{label}: {proxy.total()} requests for {MESSAGES} messages = {rate:.3f}/message {dict(proxy.counts)}")


# -- SQS ------------------------------------------------------------------------------------------------
def test_sqs_requests_per_message(moto: MotoSQS, sqs_proxy: Proxy) -> None:
    batch_size = 100
    auth, name = sqs_queue(moto, sqs_proxy)
    with AmazonSQSQueue(auth, name) as queue:
        sqs_proxy.reset()
        assert accepted(queue.push_many(bodies())) == [True] * MESSAGES
        report("SQS push_many", sqs_proxy)
        assert sqs_proxy.counts == Counter({"SendMessageBatch": MESSAGES // 10})
        assert per_message(sqs_proxy) <= 0.10
        check_sqs_shapes(sqs_proxy)

        sqs_proxy.reset()
        received = [body for batch in queue.poll(batch_size=batch_size) for body in batch]
        report(f"SQS poll+delete (batch_size={batch_size})", sqs_proxy)
        assert sorted(received) == bodies()
        assert set(sqs_proxy.counts) == {"ReceiveMessage", "DeleteMessageBatch"}
        assert sqs_proxy.counts["DeleteMessageBatch"] == MESSAGES // 10
        assert per_message(sqs_proxy) <= 0.21
        check_sqs_shapes(sqs_proxy)
        # Once a receive came back full, the rest of the batch is asked for concurrently.
        assert peak_overlap(sqs_proxy.records("ReceiveMessage")) > 1

        assert queue.count() == 0


async def test_sqs_requests_per_message_async(moto: MotoSQS, sqs_proxy: Proxy) -> None:
    auth, name = sqs_queue(moto, sqs_proxy)
    async with AsyncAmazonSQSQueue(auth, name) as queue:
        sqs_proxy.reset()
        assert accepted(await queue.push_many(bodies())) == [True] * MESSAGES
        assert sqs_proxy.counts == Counter({"SendMessageBatch": MESSAGES // 10})

        sqs_proxy.reset()
        received = [body async for batch in queue.poll(batch_size=100) for body in batch]
        report("SQS async poll+delete (batch_size=100)", sqs_proxy)
        assert sorted(received) == bodies()
        assert per_message(sqs_proxy) <= 0.21
        check_sqs_shapes(sqs_proxy)
        assert peak_overlap(sqs_proxy.records("ReceiveMessage")) > 1


# -- Azure ----------------------------------------------------------------------------------------------
def check_azure_poll(proxy: Proxy) -> None:
    assert set(proxy.counts) == {"GET messages", "DELETE message"}, proxy.counts
    assert proxy.counts["DELETE message"] == MESSAGES
    for record in proxy.records("GET messages"):
        assert record.max_messages is not None and 1 <= record.max_messages <= 32, record
    assert all(record.status in (200, 204) for record in proxy.records()), proxy.records()


@pytest.mark.parametrize("batch_size", [32, 100])
def test_azure_requests_per_message(azurite: AzuriteQueue, azure_proxy: Proxy, batch_size: int) -> None:
    auth, name = azure_queue(azurite, azure_proxy)
    with AzureStorageQueue(auth, name) as queue:
        azure_proxy.reset()
        assert accepted(queue.push_many(bodies())) == [True] * MESSAGES
        report("Azure push_many", azure_proxy)
        assert azure_proxy.counts == Counter({"POST messages": MESSAGES})
        assert per_message(azure_proxy) == 1.0

        azure_proxy.reset()
        received = [body for batch in queue.poll(batch_size=batch_size) for body in batch]
        report(f"Azure poll+delete (batch_size={batch_size})", azure_proxy)
        assert sorted(received) == bodies()
        check_azure_poll(azure_proxy)
        assert per_message(azure_proxy) <= 1.05
        # a receive asks for as many as the batch still needs, up to the service's 32
        assert max(r.max_messages or 0 for r in azure_proxy.records("GET messages")) == min(batch_size, 32)

        assert queue.count() == 0


async def test_azure_requests_per_message_async(azurite: AzuriteQueue, azure_proxy: Proxy) -> None:
    auth, name = azure_queue(azurite, azure_proxy)
    async with AsyncAzureStorageQueue(auth, name) as queue:
        azure_proxy.reset()
        assert accepted(await queue.push_many(bodies())) == [True] * MESSAGES
        assert azure_proxy.counts == Counter({"POST messages": MESSAGES})

        azure_proxy.reset()
        received: list[Any] = [body async for batch in queue.poll(batch_size=32) for body in batch]
        report("Azure async poll+delete (batch_size=32)", azure_proxy)
        assert sorted(received) == bodies()
        check_azure_poll(azure_proxy)
        assert per_message(azure_proxy) <= 1.05
