"""One delivery (the flow), and the trigger's endless sequence of them; what a cancelled poll releases."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from fluke_airflow.exceptions import DeliveryTooLarge, QueueError, QueueNotFoundError, ReceiveStalled
from fluke_airflow.polling.settings import DEFAULT_MAX_EVENT_BYTES, DeliverySettings
from fluke_airflow.queues.flows import (
    DeadLetter,
    Delete,
    Flow,
    Overlap,
    Receive,
    SetVisibility,
    Step,
    collect_flow,
    gather_flow,
    release_flow,
)
from fluke_airflow.queues.message import Message

log = logging.getLogger("fluke_airflow.polling")

MAX_BACKOFF = 60.0
RELEASE_TIMEOUT = 30.0
"""The longest a cancelled poll waits for its release (the messages it could not release come
back after their visibility timeout); Airflow's own bound for a trigger's ``on_kill``."""
LONG_POLL_SLACK = 2.0
"""Seconds past a cut long poll's wait after which the service is taken to have ended it."""


class Held:
    """The messages of the delivery in progress, from their receive until the consumer has them:
    what a poll that is cancelled (a trigger moved to another triggerer, a task cleared, the
    triggerer stopping) or that fails in the middle of a delivery releases at once, instead of
    leaving them hidden for their visibility timeout.

    :func:`tracked` fills it while a flow runs; :func:`deliveries` leaves the messages it yields
    in it, and the consumer calls :meth:`handed_on` once they are in Airflow's hands (an event
    yielded), or :meth:`release` if it is stopped before. ``on_change`` is told the new count
    (a watcher's ``messages.in_flight`` gauge)."""

    def __init__(self, on_change: Callable[[int], None] | None = None) -> None:
        self._messages: dict[str, Message] = {}
        self._on_change = on_change
        self.long_poll_ends: float | None = None
        """``time.monotonic()`` by which the long-poll receive in flight ends at the service (None: none)."""

    def __len__(self) -> int:
        return len(self._messages)

    @property
    def messages(self) -> list[Message]:
        return list(self._messages.values())

    def _changed(self, before: int) -> None:
        if self._on_change is not None and len(self._messages) != before:
            self._on_change(len(self._messages))

    def keep(self, messages: Sequence[Message]) -> None:
        """Hold ``messages`` (their newest receipt: a message handed out again replaces itself)."""
        before = len(self._messages)
        self._messages.update((m.id, m) for m in messages)
        self._changed(before)

    def settle(self, messages: Sequence[Message]) -> None:
        """These are no longer ours to release (deleted, released, moved, or handed on)."""
        before = len(self._messages)
        for message in messages:
            self._messages.pop(message.id, None)
        self._changed(before)

    def handed_on(self) -> None:
        """The consumer has them (an event carrying them may be stored): never released from here."""
        self.settle(self.messages)

    def only(self, messages: Sequence[Message]) -> None:
        """Hold no more than ``messages``: what a finished flow returned (the others it settled
        itself, or left hidden on purpose, as unmatched ones are); those it deleted before
        delivery (``pre_delivery_delete``) are not held either."""
        before = len(self._messages)
        self._messages = {m.id: m for m in messages if m.id in self._messages}
        self._changed(before)

    @classmethod
    def of(cls, messages: Sequence[Message]) -> Held:
        held = cls()
        held.keep(messages)
        return held

    async def release(self, queue: Any, name: str, why: str, *, cut: bool = False) -> None:
        """Make every held message visible again at once (best effort, bounded by
        :data:`RELEASE_TIMEOUT`); ``why`` completes "the poll ..." in the log line.

        ``cut``: the poll was cancelled in the middle of a request. If that was a long-poll
        receive, the service keeps it open for the rest of its wait and hands it the next message
        that becomes visible, whose answer nobody reads (SQS does: aws/aws-sdk-js#2350,
        aws/aws-sdk-java#2083; moto too). Released now, the messages could go to that dead receive
        and be hidden for their whole visibility timeout, so the release waits for its wait to end."""
        messages = self.messages
        if not messages:
            return
        self.handed_on()
        log.info("Queue %r: the poll %s while holding %d received message(s) not yet handed to Airflow; releasing "
                 "them for the next consumer", name, why, len(messages))  # fmt: skip
        left = (self.long_poll_ends or 0.0) - time.monotonic() if cut else 0.0
        if left > 0:
            log.info("Queue %r: first waiting %.0f s for the long-poll receive the cancellation cut to end at the "
                     "service (it would take the released messages, and nobody reads its answer)",
                     name, left)  # fmt: skip
            await asyncio.sleep(left)
        try:
            await asyncio.wait_for(queue.run_flow(release_flow(messages, queue=name)), RELEASE_TIMEOUT)
        except Exception as error:  # the cancellation or failure goes on; they come back after their timeout
            log.warning("Queue %r: could not release %d message(s) (%s: %s); they come back after their "
                        "visibility timeout", name, len(messages), type(error).__name__, error)  # fmt: skip


def stopped(cause: BaseException | None) -> str:
    """How a release's log line says why the poll stopped (``cause``: what it raised; None: closed)."""
    if cause is None:
        return "was closed"
    if isinstance(cause, asyncio.CancelledError):
        return "was cancelled (the trigger was moved to another triggerer, its task cleared, or the triggerer stops)"
    return f"failed ({type(cause).__name__}: {cause})"


def tracked(flow: Flow, held: Held) -> Flow:
    """``flow``, keeping in ``held`` every message it received and has not settled (deleted,
    released, moved to a dead-letter queue); once it returns, ``held`` holds what it returned."""
    result: Any = None
    while True:
        try:
            step = flow.send(result)
        except StopIteration as stop:
            if isinstance(stop.value, list):
                held.only(stop.value)
            return stop.value
        wait = _long_poll_seconds(step)
        held.long_poll_ends = time.monotonic() + wait + LONG_POLL_SLACK if wait else None
        result = yield step
        held.long_poll_ends = None
        _note(step, result, held)


def _long_poll_seconds(step: Step) -> int:
    if isinstance(step, Receive):
        return step.wait_seconds
    if isinstance(step, Overlap):
        return max((_long_poll_seconds(s) for s in step.steps), default=0)
    return 0


def _note(step: Step, result: Any, held: Held) -> None:
    if isinstance(step, Receive):
        held.keep(result)
    elif isinstance(step, Delete):
        held.settle([m for m, ok in zip(step.messages, result, strict=True) if ok])
    elif isinstance(step, SetVisibility):  # a flow changes visibility only to release
        held.settle(result)
    elif isinstance(step, DeadLetter):  # a copy went to the dead-letter queue: not to be released here
        held.settle([m for m, ok in zip(step.messages, result, strict=True) if ok])
    elif isinstance(step, Overlap):
        for inner, inner_result in zip(step.steps, result, strict=True):
            _note(inner, inner_result, held)


def delivery_flow(queue: Any, settings: DeliverySettings, *, wait_seconds: int | None = None) -> Flow:
    """The flow of one delivery from ``queue``: wait up to ``wait_seconds`` (default: the settings'
    ``wait_time_seconds``) for a first message where the service can wait (SQS), then fill up."""
    wait = settings.wait_time_seconds if wait_seconds is None else wait_seconds
    accept, unmatched = queue.message_filter(settings.as_kwargs())
    return collect_flow(
        settings.per_delivery,
        queue=settings.queue,
        visibility_timeout=settings.visibility_timeout,
        wait_seconds=wait if queue.long_polling else 0,
        pre_delivery_delete=settings.pre_delivery_delete,
        max_bytes=settings.max_delivery_bytes,
        max_receive_count=settings.max_receive_count,
        dead_letter_queue=dead_letter_target(queue, settings),
        per_request=queue.receive_limit,
        accept=accept,
        unmatched=unmatched,
        retry=queue.retry_policy(*settings.retry_args()),
    )


def dead_letter_target(queue: Any, settings: DeliverySettings) -> str | None:
    """Where this delivery's dead letters go (the named queue, or Azure's ``<queue>-poison``)."""
    target: str | None = queue.dead_letter_target(settings.max_receive_count, settings.dead_letter_queue,
                                                  settings.unmatched)  # fmt: skip
    return target


def batch_flow(
    queue: Any, settings: DeliverySettings, *, max_messages: int, window: float, clock: Callable[[], float]
) -> Flow:
    """The flow of one watcher batch (one asset event): up to ``max_messages`` and
    ``max_delivery_bytes`` (default :data:`DEFAULT_MAX_EVENT_BYTES`), gathered for up to
    ``window`` seconds after the first message (see :func:`~fluke_airflow.queues.flows.gather_flow`);
    with the settings' filters, only the messages they take."""
    accept, unmatched = queue.message_filter(settings.as_kwargs())
    return gather_flow(
        max_messages,
        queue=settings.queue,
        visibility_timeout=settings.visibility_timeout,
        wait_seconds=settings.wait_time_seconds if queue.long_polling else 0,
        window=window,
        clock=clock,
        max_bytes=settings.max_delivery_bytes or DEFAULT_MAX_EVENT_BYTES,
        per_request=queue.receive_limit,
        can_wait=queue.long_polling,
        idle_sleep=min(1.0, settings.poke_interval),
        pre_delivery_delete=settings.pre_delivery_delete,
        max_receive_count=settings.max_receive_count,
        dead_letter_queue=dead_letter_target(queue, settings),
        accept=accept,
        unmatched=unmatched,
    )


def watch_flow(queue: Any, settings: DeliverySettings, *, event_per_message: bool, window: float) -> Flow:
    """A watcher's next delivery: one message when each message is an event of its own (each then
    gets a run of its own, in the queue's order), else a batch."""
    size = 1 if event_per_message else settings.per_delivery
    return batch_flow(queue, settings, max_messages=size, window=0.0 if event_per_message else window,
                      clock=time.monotonic)  # fmt: skip


async def deliveries(
    queue: Any, settings: DeliverySettings, make_flow: Callable[[], Flow] | None = None, held: Held | None = None
) -> AsyncIterator[list[Message]]:
    """Deliveries from ``queue``, forever: long-poll (SQS) or poll every ``poke_interval`` (Azure),
    riding out service errors with capped exponential backoff, and a stuck receive
    (:class:`~fluke_airflow.exceptions.ReceiveStalled`) by rebuilding the client. ``make_flow``:
    the flow of one delivery (default: :func:`delivery_flow`, the sensor's).

    A delivery cancelled or failing half-way (messages received, the batch not complete) releases
    what it had received. The messages it yields stay in ``held`` until the consumer asks for the
    next delivery; the consumer releases them if it is stopped before it handed them on."""
    failures = 0
    name = settings.queue
    polled = False
    held = held if held is not None else Held()
    while True:
        try:
            held.handed_on()  # the consumer asked for the next delivery: it has the last one
            flow = make_flow() if make_flow is not None else delivery_flow(queue, settings)
            try:
                messages: list[Message] = await queue.run_flow(tracked(flow, held))
            except BaseException as error:  # cancelled (CancelledError), or a failure mid-delivery
                await held.release(queue, name, stopped(error), cut=isinstance(error, asyncio.CancelledError))
                raise
        except (QueueNotFoundError, DeliveryTooLarge):
            raise
        except ReceiveStalled as error:
            queue.metrics.count("receive.stalled")
            log.warning(
                "Polling %s queue %r: %s. A stuck connection? Rebuilding the client and carrying on (messages "
                "that receive took come back after their visibility timeout)",
                queue.service,
                name,
                error,
            )
            try:
                await queue.reconnect()
            except QueueError as reconnect_error:
                failures += 1
                log.warning("Reconnecting to %s queue %r failed (%s)", queue.service, name, reconnect_error)
                await asyncio.sleep(min(MAX_BACKOFF, 2 ** min(failures, 6)) * random.uniform(0.5, 1.0))
            continue
        except QueueError as error:
            failures += 1
            delay = min(MAX_BACKOFF, 2 ** min(failures, 6)) * random.uniform(0.5, 1.0)
            log.warning("Polling %s queue %r failed (%s); retrying in %.1fs", queue.service, name, error, delay)
            await asyncio.sleep(delay)
            continue
        if not polled:
            polled = True
            log.info("First receive from %s queue %r done: polling", queue.service, name)
        if failures:
            log.info("Polling %s queue %r works again after %d failure(s)", queue.service, name, failures)
            failures = 0
        if messages:
            log.info("Received %d message(s) from %s queue %r", len(messages), queue.service, name)
            yield messages
        elif not queue.long_polling:
            await asyncio.sleep(settings.poke_interval)
