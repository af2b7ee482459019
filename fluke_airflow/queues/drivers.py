"""Run the flows of :mod:`fluke_airflow.queues.flows` against a blocking or an asyncio transport.

The drivers only map steps to transport calls; every decision lives in the flows. Requests
that do not depend on each other (the chunks of a large delete or push) run concurrently:
on a thread pool for the blocking transport, with ``asyncio.gather`` for the async one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

from fluke_airflow.queues.flows import Delete, Deliver, Flow, Receive, SetVisibility, Sleep, Step
from fluke_airflow.queues.message import Message

T = TypeVar("T")
R = TypeVar("R")


def chunked(items: Sequence[T], size: int) -> list[Sequence[T]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


class Transport(Protocol):
    """What a backend implements for one request each (blocking flavour)."""

    delete_chunk_size: int
    visibility_chunk_size: int

    def receive(self, max_messages: int, visibility_timeout: int, wait_seconds: int) -> list[Message]: ...
    def delete_batch(self, messages: Sequence[Message]) -> list[bool]: ...
    def set_visibility_batch(self, messages: Sequence[Message], timeout: int) -> list[Message | None]: ...


class AsyncTransport(Protocol):
    """The asyncio flavour of :class:`Transport`."""

    delete_chunk_size: int
    visibility_chunk_size: int

    async def receive(self, max_messages: int, visibility_timeout: int, wait_seconds: int) -> list[Message]: ...
    async def delete_batch(self, messages: Sequence[Message]) -> list[bool]: ...
    async def set_visibility_batch(self, messages: Sequence[Message], timeout: int) -> list[Message | None]: ...


def _visible(results: list[Message | None]) -> list[Message]:
    return [m for m in results if m is not None]


class SyncDriver:
    def __init__(self, transport: Transport, max_concurrency: int) -> None:
        self.transport = transport
        self._max_concurrency = max_concurrency
        self._pool: ThreadPoolExecutor | None = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def fanout(self, call: Callable[[Sequence[T]], list[R]], chunks: Sequence[Sequence[T]]) -> list[R]:
        """``call`` on each chunk (one request each), concurrently; results flattened in order."""
        if len(chunks) <= 1 or self._max_concurrency <= 1:
            return [r for chunk in chunks for r in call(chunk)]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._max_concurrency, thread_name_prefix="fluke-queue")
        return [r for results in self._pool.map(call, chunks) for r in results]

    def execute(self, step: Step) -> Any:
        """Carry out one step that needs no consumer."""
        t = self.transport
        if isinstance(step, Receive):
            return t.receive(step.max_messages, step.visibility_timeout, step.wait_seconds)
        if isinstance(step, Delete):
            return self.fanout(t.delete_batch, chunked(step.messages, t.delete_chunk_size))
        if isinstance(step, SetVisibility):
            return _visible(
                self.fanout(
                    lambda c: t.set_visibility_batch(c, step.timeout), chunked(step.messages, t.visibility_chunk_size)
                )
            )
        if isinstance(step, Sleep):
            time.sleep(step.seconds)
            return None
        raise TypeError(f"this flow step needs a consumer: {step!r}")

    def run(self, flow: Flow) -> Any:
        """Run a flow that delivers nothing and return its result."""
        result = None
        while True:
            try:
                step = flow.send(result)
            except StopIteration as stop:
                return stop.value
            result = self.execute(step)

    def iterate(self, flow: Flow) -> Iterator[list[Message]]:
        """Run a delivering flow; closing this iterator closes the flow where it stands."""
        result = None
        try:
            while True:
                try:
                    step = flow.send(result)
                except StopIteration:
                    return
                if isinstance(step, Deliver):
                    yield list(step.messages)
                    result = None
                else:
                    result = self.execute(step)
        finally:
            flow.close()


class AsyncDriver:
    def __init__(self, transport: AsyncTransport, max_concurrency: int) -> None:
        self.transport = transport
        self._semaphore = asyncio.Semaphore(max(1, max_concurrency))

    async def fanout(self, call: Callable[[Sequence[T]], Awaitable[list[R]]], chunks: Sequence[Sequence[T]]) -> list[R]:
        async def limited(chunk: Sequence[T]) -> list[R]:
            async with self._semaphore:
                return await call(chunk)

        if len(chunks) <= 1:
            return [r for chunk in chunks for r in await call(chunk)]
        return [r for results in await asyncio.gather(*map(limited, chunks)) for r in results]

    async def execute(self, step: Step) -> Any:
        """Carry out one step that needs no consumer."""
        t = self.transport
        if isinstance(step, Receive):
            return await t.receive(step.max_messages, step.visibility_timeout, step.wait_seconds)
        if isinstance(step, Delete):
            return await self.fanout(t.delete_batch, chunked(step.messages, t.delete_chunk_size))
        if isinstance(step, SetVisibility):
            return _visible(
                await self.fanout(
                    lambda c: t.set_visibility_batch(c, step.timeout), chunked(step.messages, t.visibility_chunk_size)
                )
            )
        if isinstance(step, Sleep):
            await asyncio.sleep(step.seconds)
            return None
        raise TypeError(f"this flow step needs a consumer: {step!r}")

    async def run(self, flow: Flow) -> Any:
        result = None
        while True:
            try:
                step = flow.send(result)
            except StopIteration as stop:
                return stop.value
            result = await self.execute(step)

    async def iterate(self, flow: Flow) -> AsyncIterator[list[Message]]:
        result = None
        try:
            while True:
                try:
                    step = flow.send(result)
                except StopIteration:
                    return
                if isinstance(step, Deliver):
                    yield list(step.messages)
                    result = None
                else:
                    result = await self.execute(step)
        finally:
            flow.close()
