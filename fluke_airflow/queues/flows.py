"""The queue algorithms, written once and free of I/O.

Each flow is a generator that yields steps (:mod:`~fluke_airflow.queues.steps`: a request to
make, a pause, a batch to hand to the consumer) and is sent back each step's result. Thin drivers
in :mod:`fluke_airflow.queues.drivers` execute the steps with a blocking transport or an asyncio
one, the way httpx drives one auth flow from its sync and async clients. How a batch is filled
lives here; what becomes of its messages (delete, release, dead-letter) lives in
:mod:`~fluke_airflow.queues.lifecycle`. Every flow takes one
:class:`~fluke_airflow.queues.options.DeliveryOptions`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from fluke_airflow.exceptions import DeliveryTooLarge
from fluke_airflow.queues import lifecycle, metrics
from fluke_airflow.queues.lifecycle import Outcome
from fluke_airflow.queues.message import Message
from fluke_airflow.queues.options import DeliveryOptions
from fluke_airflow.queues.steps import (
    ConsumerStopped,
    Delete,
    Deliver,
    Flow,
    Now,
    Overlap,
    Receive,
    Redrive,
    SetVisibility,
    Sleep,
    Step,
    Tally,
)

log = logging.getLogger("fluke_airflow.queues")

MAX_LONG_POLL = 20
"""The longest wait one receive may ask for (SQS's limit; the flows only pass it on)."""
GATHER_RESERVE = 5.0
"""Seconds a gathered batch keeps before its first messages' delete deadline (at most half the
visibility timeout): for its delete, or the first renewal of the hand-off that follows."""

T = TypeVar("T")


def beside_first_step(flow: Generator[Step, Any, T], extra: Step) -> Generator[Step, Any, tuple[T, Any]]:
    """Run ``flow`` with the request ``extra`` carried out together with its first request (one
    :class:`Overlap`); return the flow's result and ``extra``'s."""
    try:
        first = next(flow)
    except StopIteration as stop:
        return stop.value, (yield extra)
    if not isinstance(first, Receive | Delete | SetVisibility):
        extra_result = yield extra
        result = yield first
    else:
        result, extra_result = yield Overlap((first, extra))  # type: ignore[arg-type]
    while True:
        try:
            step = flow.send(result)
        except StopIteration as stop:
            return stop.value, extra_result
        result = yield step


def poll_flow(options: DeliveryOptions) -> Flow:
    """Deliver batches until ``num_messages`` went out or the queue is empty; repeat if continuous.

    Post-delivery delete: a batch is deleted when the consumer asks for the next one (or the
    iteration ends normally), together with the next batch's first receive, so that the two
    overlap; not on a FIFO queue (``held_messages_block``), whose next receive needs the delete
    to have unlocked the message group. While the consumer works, a renewal keeps the batch hidden.
    If the consumer raises or closes the iterator, the batch is released (made visible again,
    after the retry delay) instead of deleted. Pre-delivery delete: only messages whose delete
    succeeded are delivered.
    """
    while True:
        try:
            delivered = yield from _poll_round(options)
        except ConsumerStopped:  # its batch was released; the poll ends with its consumer
            return
        if options.polling_frequency is None:
            log.log(options.level, "Queue %r: poll finished after %d message(s)", options.queue, delivered)
            return
        log.log(options.level, "Queue %r: %d message(s) this round; polling again in %gs", options.queue,
                delivered, options.polling_frequency)  # fmt: skip
        yield Sleep(options.polling_frequency)


def _poll_round(options: DeliveryOptions) -> Generator[Step, Any, int]:
    """One round of :func:`poll_flow`: batches until ``num_messages`` or an empty queue."""
    delivered = 0
    empty = False
    consumed: list[Message] = []  # done with: deleted beside the next receive, or when the round ends
    while not empty and (options.num_messages is None or delivered < options.num_messages):
        wanted = options.batch_size
        if options.num_messages is not None:
            wanted = min(wanted, options.num_messages - delivered)
        receiving = receive_flow(wanted, options)
        if consumed:
            batch, results = yield from beside_first_step(receiving, Delete(tuple(consumed)))
            yield from lifecycle.report_deleted(consumed, results, queue=options.queue)
            consumed = []
        else:
            batch = yield from receiving
        # receive_flow stops short when a receive brings nothing new: the queue is empty, unless
        # the messages we hold blocked the rest (FIFO); then only a batch that got nothing ends it.
        empty = len(batch) < wanted and not (options.held_messages_block and batch)
        batch = yield from lifecycle.triage(batch, options)
        if options.pre_delivery_delete:
            batch = yield from lifecycle.settle(batch, Outcome.ACKNOWLEDGED, options)
        if not batch:
            if empty:
                break
            continue
        log.log(options.level, "Queue %r: delivering a batch of %d message(s)", options.queue, len(batch))
        yield Tally(metrics.DELIVERED, len(batch))
        if options.pre_delivery_delete:
            yield Deliver(tuple(batch))
            delivered += len(batch)
            continue
        try:
            batch = (yield Deliver(tuple(batch), options.renewal)) or batch
        except ConsumerStopped as stop:
            yield from lifecycle.settle(stop.messages, Outcome.FAILED, options)
            raise
        delivered += len(batch)
        if options.held_messages_block:
            yield from lifecycle.settle(batch, Outcome.ACKNOWLEDGED, options)
        else:
            consumed = batch
    yield from lifecycle.settle(consumed, Outcome.ACKNOWLEDGED, options)
    return delivered


def receive_flow(
    max_messages: int,
    options: DeliveryOptions,
    *,
    first_wait_seconds: int | None = None,
    wait_after_short: int | None = None,
) -> Generator[Step, Any, list[Message]]:
    """Receive up to ``max_messages`` with as many requests as the backend's limit needs.

    Stops short on a receive that brings nothing new: an empty one, or one that only hands
    out again messages already in the batch (their visibility timeout ran out while it
    filled), which stay in the batch once, with their newest receipt.

    ``first_wait_seconds`` lets a waiting caller (a trigger) long-poll on the first request
    only, then fill the batch with short waits. Given the backend's ``per_request`` limit, a
    receive that came back full is followed by concurrent requests for the rest (messages are
    waiting, so they overlap instead of queueing one behind the other). A receive that came
    back with less than it asked for found the queue drained for now: with
    ``wait_after_short``, the next receive waits that long instead of ``wait_seconds`` (0: take
    what else has arrived, without waiting for more).

    No receive waits longer than half ``visibility_timeout`` (or 1 s): a message's delete deadline
    counts from when its receive was sent (:func:`~fluke_airflow.queues.lifecycle.delete_deadline`),
    so one that arrives at the end of a long wait keeps at least half its timeout for its delete.
    """
    batch: list[Message] = []
    position: dict[str, int] = {}
    per_request = options.per_request
    wait = options.wait_seconds if first_wait_seconds is None else first_wait_seconds
    fan_out = False
    while len(batch) < max_messages:
        wanted = max_messages - len(batch)
        wait = min(wait, max(1, options.visibility_timeout // 2))
        received: list[Message] = yield Receive(wanted, options.visibility_timeout, wait, fan_out)
        if not _merge(batch, position, received):
            break
        asked = wanted if fan_out or per_request is None else min(wanted, per_request)
        full = len(received) >= asked
        fan_out = per_request is not None and full
        wait = options.wait_seconds if full or wait_after_short is None else wait_after_short
    return batch


def _merge(batch: list[Message], position: dict[str, int], received: list[Message]) -> int:
    """Add ``received`` to ``batch``; return how many were new. A message handed out again (its
    visibility timeout ran out while the batch was filling) stays once, with the newest receipt: the
    one that deletes it (Azure voids the old pop receipt; SQS documents the latest)."""
    new = 0
    for message in received:
        if message.id in position:
            batch[position[message.id]] = message
        else:
            position[message.id] = len(batch)
            batch.append(message)
            new += 1
    return new


def _first_fill(max_messages: int, options: DeliveryOptions, wait: int) -> Generator[Step, Any, list[Message]]:
    """A sensor's or watcher's receive: wait up to ``wait`` s for a first message where the service
    can wait, then fill up with what has arrived meanwhile (0 s receives after a short one, up to
    1 s after a full one: a 0 s receive only samples SQS's servers and may come back short)."""
    return (
        yield from receive_flow(
            max_messages,
            options.but(wait_seconds=min(1, wait)),
            first_wait_seconds=wait if options.long_polling else 0,
            wait_after_short=0,
        )
    )


def collect_flow(options: DeliveryOptions) -> Generator[Step, Any, list[Message]]:
    """One delivery for a sensor or a deferred sensor's trigger: wait up to ``wait_seconds`` for
    a first message, fill up to ``per_delivery`` messages, gather for up to ``window`` seconds
    while the delivery is not full, and with ``pre_delivery_delete`` keep only the messages whose
    delete succeeded. A delivery over ``max_bytes`` is released, before anything is deleted, and
    refused with :class:`DeliveryTooLarge`.
    """
    received = yield from _gathered(options.per_delivery, options)
    messages = yield from lifecycle.triage(received, options)
    size = sum(map(_size, messages))
    if options.max_bytes is not None and size > options.max_bytes:
        yield from lifecycle.settle(messages, Outcome.FAILED, options)
        raise DeliveryTooLarge(
            f"{len(messages)} message(s) from queue {options.queue!r} add up to {size} bytes, more than "
            f"max_delivery_bytes={options.max_bytes}; nothing was deleted. Lower num_messages/batch_size, raise "
            "max_delivery_bytes (with an XCom backend that stores large values), or poll inside a task "
            "with hook.get_queue(...).poll(...)"
        )
    return (yield from _handed_over(messages, options))


def gather_flow(max_messages: int, options: DeliveryOptions) -> Generator[Step, Any, list[Message]]:
    """One watch-mode delivery (a batch that becomes one asset event): wait up to
    ``wait_seconds`` for a first message, then gather until the batch holds ``max_messages``,
    holds ``max_bytes`` of bodies, or ``window`` seconds have passed since the first message
    arrived (Lambda's batching window; 0: take what the first receives bring). The gathering also
    ends :data:`GATHER_RESERVE` seconds (at most half the visibility timeout) before the first
    messages' delete deadline, whatever ``window`` says: their delete, or the renewal that keeps
    them hidden during the hand-off, then still comes in time.

    The messages that would take the batch over ``max_bytes`` are returned for the next delivery;
    a single message larger than that is delivered alone, since it fits no smaller batch. With
    ``pre_delivery_delete`` only the messages whose delete succeeded are returned.
    """
    received = yield from _gathered(max_messages, options)
    batch = yield from lifecycle.triage(received, options)
    kept: list[Message] = []
    total = 0
    limit = options.max_bytes
    for message in batch:
        if limit is not None and kept and total + _size(message) > limit:
            break
        kept.append(message)
        total += _size(message)
    yield from lifecycle.settle(batch[len(kept) :], Outcome.RETURNED, options)
    return (yield from _handed_over(kept, options))


def _gathered(max_messages: int, options: DeliveryOptions) -> Generator[Step, Any, list[Message]]:
    """A first receive, then, with a ``window``, more receives until the batch is full (in messages
    or ``max_bytes``) or the window has passed since the first message arrived."""
    batch = yield from _first_fill(max_messages, options, options.wait_seconds)
    if not batch or options.window <= 0:
        return batch
    position = {m.id: i for i, m in enumerate(batch)}
    limit = options.max_bytes
    deadline = (yield Now()) + options.window
    while len(batch) < max_messages and (limit is None or sum(map(_size, batch)) < limit):
        remaining = min(deadline, _gather_limit(batch, options.visibility_timeout)) - (yield Now())
        if remaining <= 0:
            break
        wait = min(MAX_LONG_POLL, int(remaining)) if options.long_polling else 0
        more = yield from _first_fill(max_messages - len(batch), options, wait)
        _merge(batch, position, more)
        if not more and wait == 0:
            yield Sleep(min(options.idle_sleep, remaining))
    return batch


def _gather_limit(batch: Sequence[Message], visibility_timeout: int) -> float:
    """When gathering must end (the driver's clock): :data:`GATHER_RESERVE` seconds, at most half the
    timeout, before the earliest delete deadline in ``batch``; infinite where none is known."""
    known = [m.delete_by for m in batch if m.delete_by]
    return min(known) - min(GATHER_RESERVE, visibility_timeout / 2) if known else math.inf


def _handed_over(messages: list[Message], options: DeliveryOptions) -> Generator[Step, Any, list[Message]]:
    """Messages ready to be handed over: with ``pre_delivery_delete`` those whose delete succeeded."""
    if options.pre_delivery_delete:
        messages = yield from lifecycle.settle(messages, Outcome.ACKNOWLEDGED, options)
    if messages:
        yield Tally(metrics.DELIVERED, len(messages))
    return messages


def _size(message: Message) -> int:
    return len(message.body.encode("utf-8", "surrogatepass"))


@dataclass(frozen=True)
class Redriven:
    """What became of one message of a redrive."""

    message: Message
    new_id: str | None
    """Its id in the queue it went back to (None: that queue refused it; it stays a dead letter)."""
    deleted: bool
    """Whether it was deleted from the dead-letter queue (False after a move: it will be moved again)."""


def redrive_flow(
    max_messages: int | None, target: str, options: DeliveryOptions
) -> Generator[Step, Any, list[Redriven]]:
    """Move up to ``max_messages`` (None: all) from the dead-letter queue ``options.queue`` back to
    ``target``: receive a batch, send it there, delete from here what was sent. A message that
    ``target`` refused stays hidden here until its visibility timeout, so the rest moves on; the
    redrive ends when a receive brings nothing it has not seen (an empty queue, or only the refused
    ones back again)."""
    results: list[Redriven] = []
    seen: set[str] = set()
    while max_messages is None or len(results) < max_messages:
        wanted = options.batch_size if max_messages is None else min(options.batch_size, max_messages - len(results))
        batch = yield from receive_flow(wanted, options)
        batch = [m for m in batch if m.id not in seen]
        if not batch:
            break
        seen.update(m.id for m in batch)
        new_ids: list[str | None] = yield Redrive(tuple(batch), target)
        sent = [m for m, new_id in zip(batch, new_ids, strict=True) if new_id]
        deleted = {m.id for m in (yield from lifecycle.delete(sent, options.queue))}
        yield Tally(metrics.REDRIVEN, len(sent))
        results += [Redriven(m, new_id, m.id in deleted) for m, new_id in zip(batch, new_ids, strict=True)]
    log.info("Queue %r: moved %d of %d message(s) back to %r", options.queue, sum(1 for r in results if r.new_id),
             len(results), target)  # fmt: skip
    return results


def drain_flow(options: DeliveryOptions) -> Generator[Step, Any, int]:
    """Receive and delete until a receive comes back empty; return how many were deleted."""
    total = 0
    while True:
        batch: list[Message] = yield Receive(1000, options.visibility_timeout, 0)
        if not batch:
            return total
        total += len((yield from lifecycle.delete(batch, options.queue)))


def peek_by_receive_flow(max_messages: int, options: DeliveryOptions) -> Generator[Step, Any, list[str]]:
    """Peek on a service without a native peek (SQS): receive, then release at once.

    Messages are held for ``visibility_timeout`` while the peek collects them (so it sees each one
    once) and then made visible again, so the very next receive gets all of them.
    """
    messages = yield from receive_flow(max_messages, options)
    if messages:
        yield SetVisibility(tuple(messages), 0)
    return [m.body for m in messages]
