"""The blocking and the asyncio queue are one design: the same public methods, and every step a flow
can yield is carried out by both drivers through the one step-to-requests mapping (``Planner``)."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from fluke_airflow.queues import steps
from fluke_airflow.queues.base import AsyncQueue, Queue
from fluke_airflow.queues.drivers import AsyncDriver, Push, SyncDriver
from fluke_airflow.queues.message import Message

pytestmark = pytest.mark.unit


def public(cls: type) -> set[str]:
    return {name for name in dir(cls) if not name.startswith("_")}


def test_the_blocking_and_the_asyncio_queue_offer_the_same_methods() -> None:
    assert public(Queue) == public(AsyncQueue)


def test_the_service_classes_offer_the_same_methods_in_both_flavours() -> None:
    from fluke_airflow.queues.azure import AsyncAzureStorageQueue, AzureStorageQueue
    from fluke_airflow.queues.sqs import AmazonSQSQueue, AsyncAmazonSQSQueue

    assert public(AmazonSQSQueue) == public(AsyncAmazonSQSQueue)
    assert public(AzureStorageQueue) == public(AsyncAzureStorageQueue)


def msg(i: int) -> Message:
    return Message(id=f"m{i}", body=f"b{i}", receipt=f"r{i}")


class Transport:
    """Answers every request a step can make, and records it."""

    delete_chunk_size = visibility_chunk_size = receive_chunk_size = 2
    ordered_sends = False

    def __init__(self) -> None:
        self.calls: list[str] = []

    def receive(self, n: int, visibility: int, wait: int) -> list[Message]:
        self.calls.append("receive")
        return [msg(i) for i in range(n)]

    def delete_batch(self, chunk: Any) -> list[bool]:
        self.calls.append("delete_batch")
        return [True] * len(chunk)

    def set_visibility_batch(self, chunk: Any, timeout: int) -> list[Message]:
        self.calls.append("set_visibility_batch")
        return list(chunk)

    def send_batch(self, chunk: Any) -> list[str]:
        self.calls.append("send_batch")
        return [f"id-{e}" for e in chunk]

    def send_chunks(self, entries: list[Any]) -> list[list[Any]]:
        return [entries[i : i + 2] for i in range(0, len(entries), 2)]

    def prepare(self, bodies: list[str], options: dict[str, Any]) -> list[Any]:
        return list(bodies)

    def dead_letter_options(self, messages: Any, **kwargs: Any) -> dict[str, Any]:
        return {}

    def redrive_entries(self, messages: Any) -> list[Any]:
        return [m.body for m in messages]


class AsyncTransport(Transport):
    def __getattribute__(self, name: str) -> Any:
        found = super().__getattribute__(name)
        if name in ("receive", "delete_batch", "set_visibility_batch", "send_batch"):

            async def call(*args: Any) -> Any:
                return found(*args)

            return call
        return found


def every_step() -> list[Any]:
    three = (msg(1), msg(2), msg(3))
    return [
        steps.Receive(5, 30, 0, fan_out=True),
        steps.Delete(three),
        steps.SetVisibility(three, 10),
        steps.Sleep(0),
        steps.DeadLetter(three, "dlq"),
        steps.Redrive(three, "dlq"),
        steps.Overlap((steps.Receive(1, 30, 0), steps.Delete(three))),
        steps.Tally("messages.delivered", 3),
        steps.Now(),
        Push(("a", "b", "c")),
    ]


def test_every_step_means_the_same_requests_to_both_drivers() -> None:
    kinds = {cls for cls in vars(steps).values() if isinstance(cls, type) and cls.__module__ == steps.__name__}
    flow_steps = {k for k in kinds if k.__name__ in steps.Step.__args__.__repr__()}  # type: ignore[attr-defined]
    covered = {type(s) for s in every_step()} | {steps.Deliver}  # Deliver needs a consumer: iterate()
    assert flow_steps <= covered, flow_steps - covered

    blocking, asynchronous = Transport(), AsyncTransport()
    sync_driver = SyncDriver(blocking, max_concurrency=1)  # type: ignore[arg-type]
    sync_driver.dead_letters["dlq"] = Transport()  # type: ignore[assignment]
    sync_results = [sync_driver.execute(s) for s in every_step()]

    async def run() -> list[Any]:
        driver = AsyncDriver(asynchronous, max_concurrency=1)  # type: ignore[arg-type]
        driver.dead_letters["dlq"] = AsyncTransport()  # type: ignore[assignment]
        return [await driver.execute(s) for s in every_step()]

    async_results = asyncio.run(run())
    now = [type(s) for s in every_step()].index(steps.Now)
    assert [r for i, r in enumerate(sync_results) if i != now] == [r for i, r in enumerate(async_results) if i != now]
    assert Counter(blocking.calls) == Counter(asynchronous.calls)  # (an overlap's two steps in either order)
