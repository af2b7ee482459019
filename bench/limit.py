"""The ceiling contender (``limit``): the fastest client this machine fields for each operation.

The service's own asyncio SDK (aiobotocore for SQS, azure-storage-queue's aio client for Azure)
used as a throughput-only client would use it: batched to the service's limits (SQS: 10 per
``SendMessageBatch``, ``ReceiveMessage`` and ``DeleteMessageBatch``; Azure: 32 per receive, one
message per send and delete, which is all its API has), :data:`CONCURRENCY` requests in flight at
once on one client, and no per-message work beyond building the request: no validation, no
logging, no delivery semantics (a batch is deleted as soon as it arrived, nothing waits for a
consumer). A poll stops once it has seen every message the benchmark put in (it is told how
many), so it pays no final empty receive: what remains is the emulator's cost per request on
these 2 cores, the bound every client shares. With the network measure's 20 ms round trip, the
same client shows the overlap bound: messages/s = concurrency / (requests per message x RTT).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from bench.data import bodies
from bench.protocol import emit, read_message

CONCURRENCY = 16
"""Requests in flight at once: above this the emulators (one process each) only queue them."""


class _Seen:
    def __init__(self, total: int) -> None:
        self.total = total
        self.count = 0
        self.done = asyncio.Event()

    def add(self, n: int) -> None:
        self.count += n
        if self.count >= self.total:
            self.done.set()


async def _workers(n: int, work: Callable[[], Awaitable[bool]]) -> None:
    """``n`` loops of ``work`` (which returns False when there is nothing left for it)."""

    async def loop() -> None:
        while await work():
            pass

    await asyncio.gather(*(loop() for _ in range(n)))


async def _sqs(spec: dict[str, Any], timer: Any) -> dict[str, Any]:
    from aiobotocore.config import AioConfig
    from aiobotocore.session import get_session

    s = spec["sqs"]
    session = get_session()
    config = AioConfig(max_pool_connections=CONCURRENCY * 2, retries={"mode": "standard"})
    async with session.create_client(
        "sqs",
        region_name=s["region"],
        endpoint_url=s["endpoint_url"],
        aws_access_key_id=s["access_key_id"],
        aws_secret_access_key=s["secret_access_key"],
        config=config,
    ) as client:
        url = (await client.get_queue_url(QueueName=spec["queue"]))["QueueUrl"]
        emit("ready")
        await asyncio.to_thread(read_message)
        messages = bodies(spec["messages"], tag=spec.get("tag", "m")) if spec["op"] == "push" else []
        timer.restart()
        if spec["op"] == "push":
            chunks = [messages[i : i + 10] for i in range(0, len(messages), 10)]
            failed = 0

            async def send() -> bool:
                nonlocal failed
                if not chunks:
                    return False
                chunk = chunks.pop()
                entries = [{"Id": str(i), "MessageBody": body} for i, body in enumerate(chunk)]
                answer = await client.send_message_batch(QueueUrl=url, Entries=entries)
                failed += len(answer.get("Failed", []))
                return True

            await _workers(CONCURRENCY, send)
            timer.mark()
            return timer.result(len(messages) - failed, failed=failed)

        seen = _Seen(spec["messages"])

        async def receive_and_delete() -> bool:
            if seen.done.is_set():
                return False
            answer = await client.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
            got = answer.get("Messages", [])
            if got:
                entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)]
                await client.delete_message_batch(QueueUrl=url, Entries=entries)
                seen.add(len(got))
                timer.mark()
            elif not seen.done.is_set():
                await asyncio.sleep(0.01)  # the rest is hidden in other workers' hands
            return not seen.done.is_set()

        await _workers(CONCURRENCY, receive_and_delete)
        return timer.result(seen.count)


async def _azure(spec: dict[str, Any], timer: Any) -> dict[str, Any]:
    from azure.storage.queue.aio import QueueClient

    async with QueueClient.from_connection_string(spec["azure_conn_string"], spec["queue"]) as client:
        await client.get_queue_properties()
        emit("ready")
        await asyncio.to_thread(read_message)
        messages = bodies(spec["messages"], tag=spec.get("tag", "m")) if spec["op"] == "push" else []
        timer.restart()
        if spec["op"] == "push":

            async def send() -> bool:
                if not messages:
                    return False
                await client.send_message(messages.pop())
                return True

            await _workers(CONCURRENCY, send)
            timer.mark()
            return timer.result(spec["messages"])

        seen = _Seen(spec["messages"])
        received: list[Any] = []

        async def work() -> bool:
            if seen.done.is_set():
                return False
            if received:  # deletes first: one per message, the bulk of Azure's requests
                message = received.pop()
                await client.delete_message(message)
                seen.add(1)
                timer.mark()
                return True
            page = client.receive_messages(messages_per_page=32, max_messages=32, visibility_timeout=300)
            got = [m async for m in page]
            if not got:
                await asyncio.sleep(0.01)  # the rest is hidden in other workers' hands
            received.extend(got)
            return not seen.done.is_set()

        await _workers(CONCURRENCY, work)
        return timer.result(seen.count)


def run(spec: dict[str, Any], timer: Any) -> None:
    runner = _sqs if spec["service"] == "sqs" else _azure
    if spec["op"] not in ("push", "poll"):
        raise ValueError(f"unknown op {spec['op']!r}")
    emit("done", **asyncio.run(runner(spec, timer)))
