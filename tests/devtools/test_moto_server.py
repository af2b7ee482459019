"""The suite's moto server hands each message to one consumer and loses no delete or send
under concurrent requests, as SQS does (moto as shipped does neither; devtools/moto_server.py)."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from devtools.emulators import MotoSQS

THREADS = 8


def _client(moto: MotoSQS) -> Any:
    return boto3.client(
        "sqs",
        endpoint_url=moto.endpoint_url,
        region_name=moto.region,
        aws_access_key_id=moto.access_key_id,
        aws_secret_access_key=moto.secret_access_key,
    )


def _side_by_side(work: Callable[[int], None]) -> None:
    start = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            start.wait()
            work(index)
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors


def _fill(client: Any, url: str, total: int) -> list[str]:
    bodies = [f"m-{i}" for i in range(total)]
    for start in range(0, total, 10):
        entries = [{"Id": str(i), "MessageBody": b} for i, b in enumerate(bodies[start : start + 10])]
        assert not client.send_message_batch(QueueUrl=url, Entries=entries).get("Failed")
    return bodies


def _count(client: Any, url: str, attribute: str) -> int:
    attributes = client.get_queue_attributes(QueueUrl=url, AttributeNames=[attribute])["Attributes"]
    return int(attributes[attribute])


@pytest.fixture
def queue(moto: MotoSQS) -> tuple[Any, str]:
    client = _client(moto)
    return client, client.create_queue(QueueName=f"moto-race-{uuid.uuid4().hex[:12]}")["QueueUrl"]


def test_concurrent_receives_hand_each_message_to_one_consumer(queue: tuple[Any, str]) -> None:
    client, url = queue
    bodies = _fill(client, url, 400)
    received: Counter[str] = Counter()
    lock = threading.Lock()

    def consume(_: int) -> None:
        own = _client_like(client)
        while True:
            got = own.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=120, WaitTimeSeconds=0)
            messages = got.get("Messages", [])
            if not messages:
                return
            with lock:
                received.update(m["Body"] for m in messages)

    _side_by_side(consume)
    assert sorted(received) == sorted(bodies)
    assert [b for b, n in received.items() if n > 1] == []


def test_concurrent_deletes_and_sends_lose_nothing(queue: tuple[Any, str]) -> None:
    client, url = queue
    _fill(client, url, 400)
    handles: list[dict[str, str]] = []
    while len(handles) < 400:
        got = client.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=120)
        handles += [
            {"Id": str(len(handles) + i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got["Messages"])
        ]

    def delete_and_send(index: int) -> None:
        own = _client_like(client)
        mine = handles[index::THREADS]
        for start in range(0, len(mine), 10):
            assert not own.delete_message_batch(QueueUrl=url, Entries=mine[start : start + 10]).get("Failed")
            own.send_message(QueueUrl=url, MessageBody=f"new-{index}-{start}")

    _side_by_side(delete_and_send)
    # Every received message is gone, every new one is there.
    assert _count(client, url, "ApproximateNumberOfMessagesNotVisible") == 0
    assert _count(client, url, "ApproximateNumberOfMessages") == sum(
        len(range(0, len(handles[i::THREADS]), 10)) for i in range(THREADS)
    )


def _client_like(client: Any) -> Any:
    """A client of its own per thread, with the same endpoint and credentials."""
    credentials = client._request_signer._credentials
    return boto3.client(
        "sqs",
        endpoint_url=client.meta.endpoint_url,
        region_name=client.meta.region_name,
        aws_access_key_id=credentials.access_key,
        aws_secret_access_key=credentials.secret_key,
    )
