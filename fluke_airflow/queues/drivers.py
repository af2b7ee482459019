"""Run the flows of :mod:`fluke_airflow.queues.flows` against a blocking or an asyncio transport.

The drivers only map steps to transport calls, and count what the requests did
(:mod:`~fluke_airflow.queues.metrics`); every decision lives in the flows. Requests
that do not depend on each other (the chunks of a large delete or push, the receives that
fill a batch once a full receive showed messages waiting, a batch's delete beside the next
batch's first receive) run concurrently: on a thread pool for the blocking transport, with
``asyncio.gather`` for the async one.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any, TypeVar

from fluke_airflow.exceptions import QueueError, ReceiveStalled
from fluke_airflow.queues.flows import (
    ConsumerStopped,
    DeadLetter,
    Delete,
    Deliver,
    Flow,
    Heartbeat,
    Overlap,
    Receive,
    Redrive,
    SetVisibility,
    Sleep,
    Step,
    Tally,
)
from fluke_airflow.queues.message import Message, latest_receipts
from fluke_airflow.queues.metrics import QueueMetrics
from fluke_airflow.queues.transport import AsyncTransport, SyncTransport

T = TypeVar("T")
R = TypeVar("R")


def chunked(items: Sequence[T], size: int) -> list[Sequence[T]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _visible(results: list[Message | None]) -> list[Message]:
    return [m for m in results if m is not None]


class SyncHeartbeat:
    """Renews a delivered batch's visibility on a thread until the consumer comes back."""

    def __init__(self, driver: SyncDriver, messages: Sequence[Message], plan: Heartbeat) -> None:
        self.messages = list(messages)
        self._plan = plan
        self._driver = driver
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fluke-heartbeat", daemon=True)
        self._started = time.monotonic()
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._plan.interval):
            extension = self._plan.extension(time.monotonic() - self._started)
            if extension <= 0:
                return
            try:
                kept = self._driver.execute(SetVisibility(tuple(self.messages), extension))
            except Exception:  # a failed renewal must not kill the consumer; the delete decides later
                continue
            self.messages = latest_receipts(self.messages, kept)

    def stop(self) -> list[Message]:
        self._stop.set()
        self._thread.join()
        return self.messages


class AsyncHeartbeat:
    """The asyncio twin of :class:`SyncHeartbeat` (a task on the running loop); also what keeps a
    watcher's messages hidden while Airflow stores and schedules their event."""

    def __init__(self, driver: AsyncDriver, messages: Sequence[Message], plan: Heartbeat) -> None:
        self.messages = list(messages)
        self._plan = plan
        self._driver = driver
        self._started = time.monotonic()
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._plan.interval)
            extension = self._plan.extension(time.monotonic() - self._started)
            if extension <= 0:
                return
            try:
                kept = await self._driver.execute(SetVisibility(tuple(self.messages), extension))
            except Exception:  # see SyncHeartbeat
                continue
            self.messages = latest_receipts(self.messages, kept)

    async def stop(self) -> list[Message]:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        return self.messages


async def within(awaitable: Awaitable[T], seconds: float) -> T:
    """``asyncio.wait_for`` that never loses a cancellation. Before Python 3.12, ``wait_for``
    returns the result when the call finishes in the same loop turn as the caller is cancelled
    (python/cpython#86296): a trigger cancelled during a receive would poll on, holding what it
    received. Raises ``asyncio.TimeoutError`` after ``seconds``."""
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(seconds):
            return await awaitable
    task = asyncio.ensure_future(awaitable)
    try:
        done, _ = await asyncio.wait({task}, timeout=seconds)
    except BaseException:
        task.cancel()
        raise
    if not done:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        raise asyncio.TimeoutError
    return task.result()


def _dead_letter_entries(target: Any, step: DeadLetter, source: str) -> list[Any]:
    options = target.dead_letter_options(step.messages, reason=step.reason, source=source)
    return list(target.prepare([m.body for m in step.messages], options))


class SyncDriver:
    def __init__(self, transport: SyncTransport, max_concurrency: int, metrics: QueueMetrics | None = None) -> None:
        self.transport = transport
        self.dead_letters: dict[str, SyncTransport] = {}
        self.metrics = metrics or QueueMetrics("", "")
        self._max_concurrency = max_concurrency
        self._pool: ThreadPoolExecutor | None = None
        self._side: ThreadPoolExecutor | None = None
        self._pools_lock = threading.Lock()

    def close(self) -> None:
        for pool in (self._pool, self._side):
            if pool is not None:
                pool.shutdown(wait=True)
        self._pool = self._side = None

    def _request_pool(self) -> ThreadPoolExecutor:
        with self._pools_lock:  # the heartbeat's and an overlap's threads ask for it too
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._max_concurrency, thread_name_prefix="fluke-queue")
            return self._pool

    def overlap(self, step: Overlap) -> list[Any]:
        """Each step's result: the first on this thread, the others on threads of their own (their
        requests use the request pool, which this thread and those threads do not occupy)."""
        first, *others = step.steps
        with self._pools_lock:
            if self._side is None:
                self._side = ThreadPoolExecutor(2, thread_name_prefix="fluke-overlap")
            side = self._side
        futures = [side.submit(self.execute, s) for s in others]
        try:
            result = self.execute(first)
        finally:
            wait(futures)  # a failed first step still lets the others finish before it is raised
        return [result, *(f.result() for f in futures)]

    def fanout(
        self, call: Callable[[Sequence[T]], list[R]], chunks: Sequence[Sequence[T]], *, ordered: bool = False
    ) -> list[R]:
        """``call`` on each chunk (one request each), concurrently unless ``ordered`` (one after
        the other, e.g. sends to an SQS FIFO queue); results flattened in order."""
        if ordered or len(chunks) <= 1 or self._max_concurrency <= 1:
            return [r for chunk in chunks for r in call(chunk)]
        return [r for results in self._request_pool().map(call, chunks) for r in results]

    def execute(self, step: Step) -> Any:
        """Carry out one step that needs no consumer."""
        t = self.transport
        if isinstance(step, Receive):
            try:
                if step.fan_out:
                    received = self.fanout(
                        lambda c: t.receive(len(c), step.visibility_timeout, step.wait_seconds),
                        chunked(range(step.max_messages), t.receive_chunk_size),
                    )
                else:
                    received = t.receive(step.max_messages, step.visibility_timeout, step.wait_seconds)
            except QueueError:
                self.metrics.count("receive.errors")
                raise
            self.metrics.received(received)
            return received
        if isinstance(step, Delete):
            results = self.fanout(t.delete_batch, chunked(step.messages, t.delete_chunk_size))
            self.metrics.deleted(step.messages, results)
            return results
        if isinstance(step, Tally):
            self.metrics.count(step.name, step.n)
            return None
        if isinstance(step, Overlap):
            return self.overlap(step)
        if isinstance(step, SetVisibility):
            return _visible(
                self.fanout(
                    lambda c: t.set_visibility_batch(c, step.timeout), chunked(step.messages, t.visibility_chunk_size)
                )
            )
        if isinstance(step, Sleep):
            time.sleep(step.seconds)
            return None
        if isinstance(step, DeadLetter):
            target = self.dead_letters[step.queue]
            entries = _dead_letter_entries(target, step, self.metrics.tags.get("queue", ""))
            return [bool(r) for r in self.fanout(target.send_batch, target.send_chunks(entries))]
        if isinstance(step, Redrive):
            target = self.dead_letters[step.queue]
            chunks = target.send_chunks(target.redrive_entries(step.messages))
            return self.fanout(target.send_batch, chunks, ordered=target.ordered_sends)
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

    def iterate(self, flow: Flow) -> Generator[list[Message], None, None]:
        """Run a delivering flow; closing this iterator closes the flow where it stands."""
        result = None
        try:
            while True:
                try:
                    step = flow.send(result)
                except StopIteration:
                    return
                if isinstance(step, Deliver):
                    heartbeat = SyncHeartbeat(self, step.messages, step.heartbeat) if step.heartbeat else None
                    try:
                        yield list(step.messages)
                    except BaseException:
                        held = heartbeat.stop() if heartbeat else list(step.messages)
                        self._finish(flow, ConsumerStopped(held))
                        raise
                    result = heartbeat.stop() if heartbeat else list(step.messages)
                else:
                    result = self.execute(step)
        finally:
            flow.close()

    def _finish(self, flow: Flow, stopped: ConsumerStopped) -> None:
        """Let the flow clean up after its consumer stopped (it may release the batch)."""
        try:
            step = flow.throw(stopped)
            while True:
                step = flow.send(self.execute(step))
        except (StopIteration, ConsumerStopped):
            return


class AsyncDriver:
    def __init__(
        self,
        transport: AsyncTransport,
        max_concurrency: int,
        metrics: QueueMetrics | None = None,
        stall_grace: float | None = None,
    ) -> None:
        self.transport = transport
        self.dead_letters: dict[str, AsyncTransport] = {}
        self.metrics = metrics or QueueMetrics("", "")
        self.stall_grace = stall_grace
        """Give up on a receive that has not answered this many seconds after its own wait
        (:class:`~fluke_airflow.exceptions.ReceiveStalled`); None: wait for the SDK's timeouts."""
        self._semaphore = asyncio.Semaphore(max(1, max_concurrency))

    async def fanout(
        self, call: Callable[[Sequence[T]], Awaitable[list[R]]], chunks: Sequence[Sequence[T]], *, ordered: bool = False
    ) -> list[R]:
        async def limited(chunk: Sequence[T]) -> list[R]:
            async with self._semaphore:
                return await call(chunk)

        if ordered or len(chunks) <= 1:
            return [r for chunk in chunks for r in await call(chunk)]
        return [r for results in await asyncio.gather(*map(limited, chunks)) for r in results]

    async def _receive(self, step: Receive) -> list[Message]:
        t = self.transport
        if step.fan_out:
            return await self.fanout(
                lambda c: t.receive(len(c), step.visibility_timeout, step.wait_seconds),
                chunked(range(step.max_messages), t.receive_chunk_size),
            )
        return await t.receive(step.max_messages, step.visibility_timeout, step.wait_seconds)

    async def execute(self, step: Step) -> Any:
        """Carry out one step that needs no consumer."""
        t = self.transport
        if isinstance(step, Receive):
            try:
                if self.stall_grace is None:
                    received = await self._receive(step)
                else:
                    limit = step.wait_seconds + self.stall_grace
                    try:
                        received = await within(self._receive(step), limit)
                    except asyncio.TimeoutError:
                        raise ReceiveStalled(
                            f"a receive from queue {self.metrics.tags.get('queue', '')!r} did not answer within "
                            f"{limit:g} s (its {step.wait_seconds} s wait plus {self.stall_grace:g} s)"
                        ) from None
            except QueueError:
                self.metrics.count("receive.errors")
                raise
            self.metrics.received(received)
            return received
        if isinstance(step, Delete):
            results = await self.fanout(t.delete_batch, chunked(step.messages, t.delete_chunk_size))
            self.metrics.deleted(step.messages, results)
            return results
        if isinstance(step, Tally):
            self.metrics.count(step.name, step.n)
            return None
        if isinstance(step, Overlap):
            outcomes = await asyncio.gather(*(self.execute(s) for s in step.steps), return_exceptions=True)
            for outcome in outcomes:  # every step finished; a failure is raised only now
                if isinstance(outcome, BaseException):
                    raise outcome
            return outcomes
        if isinstance(step, SetVisibility):
            return _visible(
                await self.fanout(
                    lambda c: t.set_visibility_batch(c, step.timeout), chunked(step.messages, t.visibility_chunk_size)
                )
            )
        if isinstance(step, Sleep):
            await asyncio.sleep(step.seconds)
            return None
        if isinstance(step, DeadLetter):
            target = self.dead_letters[step.queue]
            entries = _dead_letter_entries(target, step, self.metrics.tags.get("queue", ""))
            return [bool(r) for r in await self.fanout(target.send_batch, target.send_chunks(entries))]
        raise TypeError(f"this flow step needs a consumer: {step!r}")

    async def run(self, flow: Flow) -> Any:
        result = None
        while True:
            try:
                step = flow.send(result)
            except StopIteration as stop:
                return stop.value
            result = await self.execute(step)

    async def iterate(self, flow: Flow) -> AsyncGenerator[list[Message], None]:
        result = None
        try:
            while True:
                try:
                    step = flow.send(result)
                except StopIteration:
                    return
                if isinstance(step, Deliver):
                    heartbeat = AsyncHeartbeat(self, step.messages, step.heartbeat) if step.heartbeat else None
                    try:
                        yield list(step.messages)
                    except BaseException:
                        held = await heartbeat.stop() if heartbeat else list(step.messages)
                        await self._finish(flow, ConsumerStopped(held))
                        raise
                    result = await heartbeat.stop() if heartbeat else list(step.messages)
                else:
                    result = await self.execute(step)
        finally:
            flow.close()

    async def _finish(self, flow: Flow, stopped: ConsumerStopped) -> None:
        try:
            step = flow.throw(stopped)
            while True:
                step = flow.send(await self.execute(step))
        except (StopIteration, ConsumerStopped):
            return
