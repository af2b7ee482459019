"""Run the flows of :mod:`fluke_airflow.queues.flows` against a blocking or an asyncio transport.

A driver decides nothing about queues. What a step means in requests (how many, how large, in
order or not, what the answers add up to and what they count) is decided once, by
:class:`Planner`, for both flavours. The blocking and the asyncio driver differ only in how they
wait: requests that do not depend on each other (the chunks of a large delete, the receives that
fill a batch, a batch's delete beside the next batch's first receive) run on a thread pool or
with ``asyncio.gather``; a pause is a ``threading.Event`` or an ``asyncio.Event``; a held batch's
renewal (:func:`~fluke_airflow.queues.lifecycle.renew_flow`) runs on a thread or a task.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import math
import sys
import threading
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from fluke_airflow.exceptions import QueueError, ReceiveStalled
from fluke_airflow.queues import metrics as names
from fluke_airflow.queues.lifecycle import delete_deadline, renew_flow
from fluke_airflow.queues.message import Message
from fluke_airflow.queues.metrics import QueueMetrics
from fluke_airflow.queues.steps import (
    Cancelled,
    ConsumerStopped,
    DeadLetter,
    Delete,
    DeleteAnswer,
    Deliver,
    Flow,
    HolderStopped,
    Now,
    Overlap,
    Receive,
    Redrive,
    Renewal,
    SetVisibility,
    Sleep,
    Step,
    Tally,
)
from fluke_airflow.queues.transport import RECEIVE_SENT, AsyncTransport, SyncTransport

T = TypeVar("T")


def chunked(items: Sequence[T], size: int) -> list[Sequence[T]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


@dataclass(frozen=True)
class Push:
    """Send prepared entries (:meth:`~fluke_airflow.queues.transport.TransportRules.prepare`).
    Result: the service's message id of each, or None where it refused one. Not a flow step: what
    ``push`` and ``push_many`` hand the driver."""

    entries: tuple[Any, ...]


@dataclass(frozen=True)
class Requests:
    """What one step is in requests: ``method`` of ``transport`` called once per argument tuple,
    concurrently unless ``ordered``; ``finish`` makes the step's result of their flattened answers."""

    transport: Any
    method: str
    calls: Sequence[tuple[Any, ...]]
    finish: Callable[[list[Any]], Any]
    ordered: bool = False
    failed: Callable[[], None] = field(default=lambda: None)
    """Count a failure (a QueueError from a request)."""
    each: Callable[[], contextlib.AbstractContextManager[Callable[[Any], Any]]] | None = None
    """Around each request (on the thread or task that sends it): what its answer becomes (the
    receive's messages stamped with their delete deadline, a delete's answers with their time)."""

    @contextlib.contextmanager
    def around(self) -> Iterator[Callable[[Any], Any]]:
        if self.each is None:
            yield lambda answer: answer
        else:
            with self.each() as finish:
                yield finish


def _hidden(messages: list[Message], sent_at: float, timeout: int) -> list[Message]:
    """``messages`` with the delete deadline of a receive or visibility change sent at ``sent_at``
    (read before the request went out: the service hid them no earlier)."""
    delete_by = delete_deadline(sent_at, timeout)
    return [replace(m, delete_by=delete_by) for m in messages]


class Planner:
    """The one mapping from a step to requests, for both flavours of transport. ``clock``: the
    monotonic clock that stamps when receives and visibility changes are sent and when delete
    answers arrive (:func:`~fluke_airflow.queues.lifecycle.delete_deadline`)."""

    def __init__(
        self, transport: Any, dead_letters: dict[str, Any], metrics: QueueMetrics, clock: Callable[[], float]
    ) -> None:
        self.transport = transport
        self.dead_letters = dead_letters
        self.metrics = metrics
        self.clock = clock

    @contextlib.contextmanager
    def _receive_stamp(self, visibility_timeout: int) -> Iterator[Callable[[list[Message]], list[Message]]]:
        """A receive's messages are hidden from when the attempt that answered was sent: the
        transport's time for it (:data:`~fluke_airflow.queues.transport.RECEIVE_SENT`, where an SDK
        retried), else the stamp before the call."""
        stamp = self.clock()
        token = RECEIVE_SENT.set(None)
        try:
            yield lambda received: _hidden(received, max(stamp, RECEIVE_SENT.get() or stamp), visibility_timeout)
        finally:
            RECEIVE_SENT.reset(token)

    @contextlib.contextmanager
    def _delete_stamp(self) -> Iterator[Callable[[list[bool]], list[Any]]]:
        """Where a success does not prove a delete (SQS), each answer with the time it came."""
        if not getattr(self.transport, "late_delete_uncertain", False):
            yield lambda results: results
        else:
            yield lambda results: [DeleteAnswer(bool(ok), self.clock()) for ok in results]

    def plan(self, step: Step | Push) -> Requests:
        t, m = self.transport, self.metrics
        if isinstance(step, Receive):
            sizes = [len(c) for c in chunked(range(step.max_messages), t.receive_chunk_size)] if step.fan_out else None
            calls: list[tuple[Any, ...]] = [(n, step.visibility_timeout, step.wait_seconds)
                                            for n in sizes or [step.max_messages]]  # fmt: skip

            def received(results: list[Message]) -> list[Message]:
                m.received(results)
                return results

            return Requests(t, "receive", calls, received, failed=lambda: m.count(names.RECEIVE_ERRORS),
                            each=lambda: self._receive_stamp(step.visibility_timeout))  # fmt: skip
        if isinstance(step, Delete):

            def deleted(results: list[bool]) -> list[bool]:
                m.deleted(step.messages, results)
                return results

            calls = [(c,) for c in chunked(step.messages, t.delete_chunk_size)]
            return Requests(t, "delete_batch", calls, deleted, each=self._delete_stamp)
        if isinstance(step, SetVisibility):
            calls = [(c, step.timeout) for c in chunked(step.messages, t.visibility_chunk_size)]
            sent_at = self.clock()
            return Requests(t, "set_visibility_batch", calls,
                            lambda rs: _hidden([r for r in rs if r is not None], sent_at, step.timeout))  # fmt: skip
        if isinstance(step, Push):
            chunks = t.send_chunks(list(step.entries))
            return Requests(t, "send_batch", [(c,) for c in chunks], self._pushed, ordered=t.ordered_sends)
        if isinstance(step, DeadLetter):
            target = self.dead_letters[step.queue]
            options = target.dead_letter_options(step.messages, reason=step.reason, source=m.tags.get("queue", ""))
            chunks = target.send_chunks(target.prepare([x.body for x in step.messages], options))
            return Requests(target, "send_batch", [(c,) for c in chunks], lambda rs: [bool(r) for r in rs])
        if isinstance(step, Redrive):
            target = self.dead_letters[step.queue]
            chunks = target.send_chunks(target.redrive_entries(step.messages))
            return Requests(target, "send_batch", [(c,) for c in chunks], list, ordered=target.ordered_sends)
        raise TypeError(f"this step is not a request: {step!r}")

    def _pushed(self, results: list[str | None]) -> list[str | None]:
        self.metrics.pushed(results)
        return results

    def local(self, step: Step) -> tuple[bool, Any]:
        """(True, result) for a step that needs no request and no waiting: a count, the clock."""
        if isinstance(step, Tally):
            self.metrics.count(step.name, step.n)
            return True, None
        if isinstance(step, Now):
            return True, self.clock()
        if isinstance(step, Deliver):
            raise TypeError(f"this flow step needs a consumer: {step!r}")
        return False, None


def _advance(flow: Flow, result: Any, error: BaseException | None, stopping: Any) -> Step:
    """The flow's next step: sent the last step's result, or thrown its error (a flow that does not
    catch it re-raises it), or, once ``stopping`` is set, :class:`HolderStopped`. Raises
    StopIteration when the flow ends."""
    if stopping is not None and stopping.is_set() and inspect.getgeneratorstate(flow) != inspect.GEN_CREATED:
        error = HolderStopped()
    return flow.throw(error) if error is not None else flow.send(result)


def _unwinding(flow: Flow) -> Flow:
    """The steps a cancelled flow takes to put back what it holds (it re-raises :class:`Cancelled`,
    which ends them)."""
    try:
        step = flow.throw(Cancelled())
        while True:
            step = flow.send((yield step))
    except (StopIteration, Cancelled):
        return


async def finish(awaitable: Awaitable[T]) -> T:
    """Await ``awaitable`` to its end even if the caller is cancelled meanwhile, then let the
    cancellation through. Airflow's triggerer cancels a trigger again on every loop until it has
    ended (it sends ``cancelling_triggers`` with each sync): a release cut by the second
    cancellation left the rest of its batch hidden for the visibility timeout (26 of 32 released,
    on a busy machine)."""
    task = asyncio.ensure_future(awaitable)
    cancelled = False
    while True:
        try:
            result = await asyncio.shield(task)
            break
        except asyncio.CancelledError:
            if task.done():
                raise
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError
    return result


async def within(awaitable: Awaitable[T], seconds: float | None) -> T:
    """``asyncio.wait_for`` that never loses a cancellation. Before Python 3.12, ``wait_for``
    returns the result when the call finishes in the same loop turn as the caller is cancelled
    (python/cpython#86296): a trigger cancelled during a receive would poll on, holding what it
    received. Raises ``asyncio.TimeoutError`` after ``seconds``."""
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(seconds):
            return await awaitable
    task = asyncio.ensure_future(awaitable)  # pragma: no cover - Python 3.10
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


def _seconds(seconds: float) -> float | None:
    return None if math.isinf(seconds) else seconds


class SyncDriver:
    def __init__(
        self,
        transport: SyncTransport,
        max_concurrency: int,
        metrics: QueueMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.transport = transport
        self.dead_letters: dict[str, SyncTransport] = {}
        self.metrics = metrics or QueueMetrics("", "")
        self.planner = Planner(transport, self.dead_letters, self.metrics, clock)
        self._max_concurrency = max_concurrency
        self._pool: ThreadPoolExecutor | None = None
        self._side: ThreadPoolExecutor | None = None
        self._pools_lock = threading.Lock()

    def close(self) -> None:
        for pool in (self._pool, self._side):
            if pool is not None:
                pool.shutdown(wait=True)
        self._pool = self._side = None

    def _pools(self) -> tuple[ThreadPoolExecutor, ThreadPoolExecutor]:
        """The request pool and the side pool an overlap's other steps run on (so they never wait
        for a request thread held by the step beside them)."""
        with self._pools_lock:  # a renewal's and an overlap's threads ask for them too
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._max_concurrency, thread_name_prefix="fluke-queue")
            if self._side is None:
                self._side = ThreadPoolExecutor(2, thread_name_prefix="fluke-overlap")
            return self._pool, self._side

    def send(self, requests: Requests) -> Any:
        method = getattr(requests.transport, requests.method)

        def call(args: tuple[Any, ...]) -> Any:
            with requests.around() as finish:
                return finish(method(*args))

        try:
            if requests.ordered or len(requests.calls) <= 1 or self._max_concurrency <= 1:
                answers = [call(args) for args in requests.calls]
            else:
                answers = list(self._pools()[0].map(call, requests.calls))
        except QueueError:
            requests.failed()
            raise
        return requests.finish([r for answer in answers for r in answer])

    def execute(self, step: Step | Push, stopping: threading.Event | None = None) -> Any:
        """Carry out one step that needs no consumer (a pause ends early once ``stopping`` is set)."""
        if isinstance(step, Sleep):
            (stopping or threading.Event()).wait(_seconds(step.seconds))
            return None
        if isinstance(step, Overlap):
            first, *others = step.steps
            futures = [self._pools()[1].submit(self.execute, s) for s in others]
            try:
                result = self.execute(first)
            finally:
                wait(futures)  # a failed first step still lets the others finish before it is raised
            return [result, *(f.result() for f in futures)]
        if not isinstance(step, Push):
            done, result = self.planner.local(step)
            if done:
                return result
        return self.send(self.planner.plan(step))

    def run(self, flow: Flow, stopping: threading.Event | None = None) -> Any:
        """Run a flow that delivers nothing and return its result; with ``stopping``, stop at the
        first step after it is set by throwing :class:`HolderStopped` into the flow."""
        result: Any = None
        error: BaseException | None = None
        while True:
            try:
                step = _advance(flow, result, error, stopping)
            except StopIteration as stop:
                return stop.value
            try:
                result, error = self.execute(step, stopping), None
            except Exception as failure:
                result, error = None, failure
            except BaseException:  # the task is being killed: let the flow put back what it holds
                self.run(_unwinding(flow))
                raise

    def hold(self, messages: Sequence[Message], renewal: Renewal) -> SyncHolding:
        """Keep ``messages`` hidden on a thread until :meth:`SyncHolding.stop`."""
        return SyncHolding(self, messages, renewal)

    def iterate(self, flow: Flow) -> Generator[list[Message], None, None]:
        """Run a delivering flow; closing this iterator closes the flow where it stands."""
        result: Any = None
        try:
            while True:
                try:
                    step = flow.send(result)
                except StopIteration:
                    return
                if not isinstance(step, Deliver):
                    result = self.execute(step)
                    continue
                holding = self.hold(step.messages, step.renewal) if step.renewal else None
                try:
                    yield list(step.messages)
                except BaseException:
                    self.run(_stopped(flow, holding.stop() if holding else list(step.messages)))
                    raise
                result = holding.stop() if holding else list(step.messages)
        finally:
            flow.close()


class SyncHolding:
    """A held batch's renewal, on a thread of its own."""

    def __init__(self, driver: SyncDriver, messages: Sequence[Message], renewal: Renewal) -> None:
        self.messages = list(messages)
        """The messages as first held (:meth:`stop` returns them with their current receipts)."""
        self._stopping = threading.Event()
        self._result: list[Message] = list(messages)
        flow = renew_flow(messages, renewal)
        self._thread = threading.Thread(target=self._run, args=(driver, flow), name="fluke-renewal", daemon=True)
        self._thread.start()

    def _run(self, driver: SyncDriver, flow: Flow) -> None:
        self._result = driver.run(flow, self._stopping)

    def stop(self) -> list[Message]:
        """Stop renewing (after a renewal in flight); the messages with their current receipts."""
        self._stopping.set()
        self._thread.join()
        return self._result


def _stopped(flow: Flow, held: list[Message]) -> Flow:
    """The rest of a delivering flow after its consumer stopped holding ``held`` (it may release them)."""
    try:
        step = flow.throw(ConsumerStopped(held))
        while True:
            step = flow.send((yield step))
    except (StopIteration, ConsumerStopped):
        return


class AsyncDriver:
    def __init__(
        self,
        transport: AsyncTransport,
        max_concurrency: int,
        metrics: QueueMetrics | None = None,
        stall_grace: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.transport = transport
        self.dead_letters: dict[str, AsyncTransport] = {}
        self.metrics = metrics or QueueMetrics("", "")
        self.planner = Planner(transport, self.dead_letters, self.metrics, clock)
        self.stall_grace = stall_grace
        """Give up on a receive that has not answered this many seconds after its own wait
        (:class:`~fluke_airflow.exceptions.ReceiveStalled`); None: wait for the SDK's timeouts."""
        self._semaphore = asyncio.Semaphore(max(1, max_concurrency))

    async def send(self, requests: Requests) -> Any:
        method = getattr(requests.transport, requests.method)

        async def call(args: tuple[Any, ...]) -> Any:
            with requests.around() as finish:
                return finish(await method(*args))

        async def limited(args: tuple[Any, ...]) -> Any:
            async with self._semaphore:
                return await call(args)

        try:
            if requests.ordered or len(requests.calls) <= 1:
                answers = [await call(args) for args in requests.calls]
            else:
                answers = await asyncio.gather(*map(limited, requests.calls))
        except QueueError:
            requests.failed()
            raise
        return requests.finish([r for answer in answers for r in answer])

    async def _receive(self, requests: Requests, step: Receive) -> Any:
        if self.stall_grace is None:
            return await self.send(requests)
        limit = step.wait_seconds + self.stall_grace
        try:
            return await within(self.send(requests), limit)
        except asyncio.TimeoutError:
            requests.failed()
            raise ReceiveStalled(
                f"a receive from queue {self.metrics.tags.get('queue', '')!r} did not answer within "
                f"{limit:g} s (its {step.wait_seconds} s wait plus {self.stall_grace:g} s)"
            ) from None

    async def execute(self, step: Step | Push, stopping: asyncio.Event | None = None) -> Any:
        """Carry out one step that needs no consumer (a pause ends early once ``stopping`` is set)."""
        if isinstance(step, Sleep):
            with contextlib.suppress(asyncio.TimeoutError):
                await within((stopping or asyncio.Event()).wait(), _seconds(step.seconds))
            return None
        if isinstance(step, Overlap):
            outcomes = await asyncio.gather(*(self.execute(s) for s in step.steps), return_exceptions=True)
            for outcome in outcomes:  # every step finished; a failure is raised only now
                if isinstance(outcome, BaseException):
                    raise outcome
            return outcomes
        if not isinstance(step, Push):
            done, result = self.planner.local(step)
            if done:
                return result
        requests = self.planner.plan(step)
        return await (self._receive(requests, step) if isinstance(step, Receive) else self.send(requests))

    async def run(self, flow: Flow, stopping: asyncio.Event | None = None) -> Any:
        """As :meth:`SyncDriver.run`."""
        result: Any = None
        error: BaseException | None = None
        while True:
            try:
                step = _advance(flow, result, error, stopping)
            except StopIteration as stop:
                return stop.value
            try:
                result, error = await self.execute(step, stopping), None
            except Exception as failure:
                result, error = None, failure
            except BaseException:  # cancelled: let the flow put back what it holds, whatever comes next
                await finish(self.run(_unwinding(flow)))
                raise

    def hold(self, messages: Sequence[Message], renewal: Renewal) -> AsyncHolding:
        """Keep ``messages`` hidden on a task until :meth:`AsyncHolding.stop`; also what keeps a
        watcher's messages hidden while Airflow stores and schedules their event."""
        return AsyncHolding(self, messages, renewal)

    async def _stop(self, flow: Flow, holding: AsyncHolding | None, messages: Sequence[Message]) -> None:
        await self.run(_stopped(flow, await holding.stop() if holding else list(messages)))

    async def iterate(self, flow: Flow) -> AsyncGenerator[list[Message], None]:
        """As :meth:`SyncDriver.iterate`."""
        result: Any = None
        try:
            while True:
                try:
                    step = flow.send(result)
                except StopIteration:
                    return
                if not isinstance(step, Deliver):
                    result = await self.execute(step)
                    continue
                holding = self.hold(step.messages, step.renewal) if step.renewal else None
                try:
                    yield list(step.messages)
                except BaseException:
                    await finish(self._stop(flow, holding, step.messages))
                    raise
                result = await holding.stop() if holding else list(step.messages)
        finally:
            flow.close()


class AsyncHolding:
    """A held batch's renewal, on a task of the running loop."""

    def __init__(self, driver: AsyncDriver, messages: Sequence[Message], renewal: Renewal) -> None:
        self.messages = list(messages)
        """The messages as first held (:meth:`stop` returns them with their current receipts)."""
        self._stopping = asyncio.Event()
        self._task = asyncio.ensure_future(driver.run(renew_flow(messages, renewal), self._stopping))

    async def stop(self) -> list[Message]:
        """Stop renewing (after a renewal in flight); the messages with their current receipts."""
        self._stopping.set()
        try:
            result: list[Message] = await asyncio.shield(self._task)
        except asyncio.CancelledError:
            self._task.cancel()
            raise
        return result
