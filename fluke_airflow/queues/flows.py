"""The queue algorithms, written once and free of I/O.

Each flow is a generator that yields *steps* (a request to make, a pause, a batch to hand
to the consumer) and is sent back each step's result. Thin drivers in
:mod:`fluke_airflow.queues.drivers` execute the steps with a blocking transport or an
asyncio one, the way httpx drives one auth flow from its sync and async clients. So the
batch, visibility and delete rules of ``poll`` exist here only, for SQS and Azure alike.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from fluke_airflow.exceptions import DeliveryTooLarge
from fluke_airflow.queues.message import Message

log = logging.getLogger("fluke_airflow.queues")

MAX_LONG_POLL = 20
"""The longest wait one receive may ask for (SQS's limit; the flows only pass it on)."""


@dataclass(frozen=True)
class Receive:
    """One receive request for up to ``max_messages`` (the backend caps it at its limit), or,
    with ``fan_out``, as many concurrent requests as that limit needs for ``max_messages``."""

    max_messages: int
    visibility_timeout: int
    wait_seconds: int
    fan_out: bool = False


@dataclass(frozen=True)
class Delete:
    """Delete these deliveries; the driver splits them into requests. Result: one bool each, or
    one :class:`DeleteAnswer` each where a success alone does not prove the delete (SQS)."""

    messages: tuple[Message, ...]


@dataclass(frozen=True)
class DeleteAnswer:
    """One message's result of a :class:`Delete` on a service whose success alone does not prove
    the delete (SQS, see :func:`delete_deadline`): whether it succeeded, and when the answer came.
    True or false like the plain ``bool`` that other services' drivers answer."""

    ok: bool
    answered_at: float
    """The driver's monotonic clock when the answer to the request that carried this delete arrived."""

    def __bool__(self) -> bool:
        return self.ok


@dataclass(frozen=True)
class SetVisibility:
    """Hide (or, with 0, release) these deliveries. Result: the messages whose change succeeded,
    carrying their current receipt."""

    messages: tuple[Message, ...]
    timeout: int


@dataclass(frozen=True)
class Sleep:
    seconds: float


CLOCK_RATE_ERROR = 0.001
"""How far this machine's clock may run off the service's, as a fraction of the interval measured:
twice the 500 ppm by which NTP slews a clock at most (a free-running quartz is off by tens of ppm)."""
SERVICE_CLOCK_SLACK = 0.1
"""Seconds for the service's own imprecision: the hosts that hand a message out and judge its
delete keep their clocks within milliseconds of each other (NTP/PTP), and its timers have some
resolution; this covers a hundred times the usual."""
GATHER_RESERVE = 5.0
"""Seconds a gathered batch keeps before its first messages' delete deadline (at most half the
visibility timeout): for its delete, or the first renewal of the hand-off that follows."""


def delete_deadline(sent_at: float, visibility_timeout: float) -> float:
    """When a delete must have been answered, on the driver's monotonic clock, to prove it was carried
    out while the message was still ours: ``visibility_timeout`` seconds after ``sent_at`` (read
    before the receive or visibility change that hid the message was sent), less a safety margin.

    Why: SQS answers success to a delete with a receipt handle whose visibility timeout ran out,
    and may not delete ("If you use an old ReceiptHandle, the request will succeed, but the message
    might not be deleted", DeleteMessage in the SQS API Reference); meanwhile another consumer may
    have received the message. A success proves nothing alone; its time does:

    * the service hands the message out after it got the request, so after ``sent_at``: the
      visibility deadline is no earlier than ``sent_at + visibility_timeout``;
    * the service carried the delete out before it answered, so before the answer arrived. An answer
      that arrived before that deadline is about a delete done in time. (A delete *sent* in time
      proves nothing: it may reach the service late, or be retried by the SDK after the deadline.)
    * Both ends are read on this process's monotonic clock, so the offset between our clock and the
      service's is irrelevant, and so are network delays and the service's processing after it
      answered: the interval we measure contains the one that matters.

    What is left for the margin: how fast our clock runs against the service's over the interval
    (:data:`CLOCK_RATE_ERROR` of the timeout) and the service's own imprecision
    (:data:`SERVICE_CLOCK_SLACK`). A delete answered within the margin merely counts as late.
    The price of measuring from the send: a message that arrived during a long poll has up to the
    poll's wait less than the service gives it; :func:`receive_flow` caps waits at half the timeout.
    """
    return sent_at + visibility_timeout * (1 - CLOCK_RATE_ERROR) - SERVICE_CLOCK_SLACK


def answered_late(message: Message, result: object) -> float | None:
    """By how many seconds a successful delete of ``message`` was answered after its
    :attr:`~fluke_airflow.queues.message.Message.delete_by`; None when it was in time, failed, or
    cannot be judged: a plain ``bool`` (a service whose success proves the delete: Azure refuses a
    stale pop receipt) or a message without a deadline (e.g. one that came from another process)."""
    if not isinstance(result, DeleteAnswer) or not result.ok or not message.delete_by:
        return None
    late = result.answered_at - message.delete_by
    return late if late > 0 else None


@dataclass(frozen=True)
class Heartbeat:
    """When to renew a delivered batch's visibility while the consumer works on it.

    The driver waits ``interval`` seconds at a time and hides the batch for ``extension(...)``
    more seconds, until the service's limit on total hidden time is reached.
    """

    visibility_timeout: int
    max_hidden_seconds: int

    @property
    def interval(self) -> float:
        return max(1.0, self.visibility_timeout / 2)

    def extension(self, elapsed: float) -> int:
        """Seconds to hide the batch for from now, ``elapsed`` s after it was received (0: stop)."""
        return int(max(0.0, min(self.visibility_timeout, self.max_hidden_seconds - elapsed)))

    def wait(self, messages: Sequence[Message], now: float) -> float:
        """Seconds from ``now`` (the driver's clock) to the next renewal: at most ``interval``, and
        sooner when the earliest delete deadline among ``messages`` comes within half a timeout (a
        batch that took long to fill, a renewal that failed); at least ``min(1, timeout / 4)``, so
        that a renewal that keeps failing is not retried in a loop."""
        live = [m.delete_by for m in messages if m.delete_by > now]
        if not live:
            return self.interval
        due = min(live) - now - self.visibility_timeout / 2
        return max(min(1.0, self.visibility_timeout / 4), min(self.interval, due))


@dataclass(frozen=True)
class Deliver:
    """Hand a batch to the consumer; the flow resumes when the consumer asks for the next one.

    Result: the batch with its current receipts (a heartbeat may have renewed them).
    If the consumer stops instead, the driver throws :class:`ConsumerStopped` into the flow.
    """

    messages: tuple[Message, ...]
    heartbeat: Heartbeat | None = None


@dataclass(frozen=True)
class DeadLetter:
    """Send these messages' bodies to the dead-letter queue ``queue``, saying ``reason`` where
    the service can carry it (SQS message attributes). Result: one bool each."""

    messages: tuple[Message, ...]
    queue: str
    reason: str = ""


@dataclass(frozen=True)
class Redrive:
    """Send these dead letters back to ``queue``, the queue they came from, as they were before the
    move (SQS: their own attributes and FIFO group). Result: the new message id of each, or None."""

    messages: tuple[Message, ...]
    queue: str


@dataclass(frozen=True)
class Overlap:
    """Carry out these independent request steps at the same time, so that their round trips
    overlap (a batch's delete beside the next batch's first receive). Result: each step's result,
    in order."""

    steps: tuple[Receive | Delete | SetVisibility, ...]


@dataclass(frozen=True)
class Tally:
    """Count ``n`` messages under the metric ``name`` (see :mod:`fluke_airflow.queues.metrics`):
    what the rules decided, which the driver cannot see in the requests. Result: None."""

    name: str
    n: int


@dataclass(frozen=True)
class RetryPolicy:
    """How long a released message stays hidden before it is delivered again: ``delay`` seconds,
    times ``multiplier`` for each earlier receive (Airflow's ``retry_delay`` and
    ``retry_exponential_backoff`` for task retries, with the receive count as try number), at most
    ``max_delay`` seconds. The default releases at once."""

    delay: float = 0.0
    multiplier: float = 1.0
    max_delay: float | None = None

    def delay_for(self, receive_count: int) -> int:
        if self.delay <= 0:
            return 0
        try:
            seconds = self.delay * self.multiplier ** max(0, receive_count - 1)
        except OverflowError:
            seconds = math.inf
        if self.max_delay is not None:
            seconds = min(seconds, self.max_delay)
        return math.ceil(seconds) if math.isfinite(seconds) else int(self.max_delay or 0)


class ConsumerStopped(Exception):
    """The consumer raised or closed the iterator while holding ``messages``."""

    def __init__(self, messages: Sequence[Message]) -> None:
        super().__init__(f"consumer stopped holding {len(messages)} message(s)")
        self.messages = list(messages)


Step = Receive | Delete | SetVisibility | Sleep | Deliver | DeadLetter | Redrive | Tally | Overlap
Flow = Generator[Step, Any, Any]
T = TypeVar("T")


def beside_first_step(flow: Generator[Step, Any, T], extra: Delete) -> Generator[Step, Any, tuple[T, Any]]:
    """Run ``flow`` with ``extra`` carried out together with its first request (one
    :class:`Overlap`); return the flow's result and ``extra``'s."""
    try:
        first = next(flow)
    except StopIteration as stop:
        return stop.value, (yield extra)
    if not isinstance(first, (Receive, Delete, SetVisibility)):
        extra_result = yield extra
        result = yield first
    else:
        result, extra_result = yield Overlap((first, extra))
    while True:
        try:
            step = flow.send(result)
        except StopIteration as stop:
            return stop.value, extra_result
        result = yield step


@dataclass(frozen=True)
class PollOptions:
    """Validated arguments of ``poll`` (see :mod:`fluke_airflow.queues.base`)."""

    num_messages: int | None
    batch_size: int
    polling_frequency: float | None
    pre_delivery_delete: bool
    visibility_timeout: int
    wait_seconds: int
    heartbeat: Heartbeat | None = None
    max_receive_count: int | None = None
    dead_letter_queue: str | None = None
    per_request: int | None = None
    """The backend's receive limit: a full receive is followed by concurrent ones."""
    held_messages_block: bool = False
    """A receive can come back empty while messages wait, because the messages this poll holds
    block them (SQS FIFO: a message group is locked while any of its messages is in flight)."""
    accept: Callable[[Message], bool] | None = None
    """The consumer's filter: messages it does not accept are not delivered (see :func:`unmatched_flow`)."""
    unmatched: str = "leave"
    retry: RetryPolicy | None = None
    """When a batch the consumer did not finish comes back (default: at once)."""


def poll_flow(options: PollOptions, *, queue: str, level: int = logging.INFO) -> Flow:
    """Deliver batches until ``num_messages`` went out or the queue is empty; repeat if continuous.

    Post-delivery delete: a batch is deleted when the consumer asks for the next one (or the
    iteration ends normally), together with the next batch's first receive, so that the two
    overlap; not on a FIFO queue (``held_messages_block``), whose next receive needs the delete
    to have unlocked the message group. While the consumer works, a heartbeat keeps the batch hidden. If
    the consumer raises or closes the iterator, the batch is released (made visible at once)
    instead of deleted. Pre-delivery delete: only messages whose delete succeeded, and was answered
    in time (:func:`delete_deadline`), are delivered.
    Messages received more than ``max_receive_count`` times go to the dead-letter queue.
    """
    while True:
        delivered = 0
        empty = False
        consumed: list[Message] = []  # done with: deleted beside the next receive, or when the round ends
        while not empty and (options.num_messages is None or delivered < options.num_messages):
            wanted = options.batch_size
            if options.num_messages is not None:
                wanted = min(wanted, options.num_messages - delivered)
            receiving = receive_flow(
                wanted,
                visibility_timeout=options.visibility_timeout,
                wait_seconds=options.wait_seconds,
                per_request=options.per_request,
            )
            if consumed:
                batch, results = yield from beside_first_step(receiving, Delete(tuple(consumed)))
                yield from report_deleted(consumed, results, queue=queue)
                consumed = []
            else:
                batch = yield from receiving
            # receive_flow stops short when a receive brings nothing new: the queue is empty, unless
            # the messages we hold blocked the rest (FIFO); then only a batch that got nothing ends it.
            empty = len(batch) < wanted and not (options.held_messages_block and batch)
            if options.max_receive_count is not None:
                batch = yield from dead_letter_flow(
                    batch, options.max_receive_count, options.dead_letter_queue, queue=queue
                )
            batch = yield from filter_flow(batch, options.accept, options.unmatched, options.dead_letter_queue,
                                           queue=queue)  # fmt: skip
            if not batch:
                if empty:
                    break
                continue
            if options.pre_delivery_delete:
                batch = yield from delete_flow(batch, queue=queue, before_delivery=True)
                if not batch:
                    continue
                log.log(level, "Queue %r: delivering a batch of %d message(s)", queue, len(batch))
                yield Tally("messages.delivered", len(batch))
                yield Deliver(tuple(batch))
                delivered += len(batch)
                continue
            log.log(level, "Queue %r: delivering a batch of %d message(s)", queue, len(batch))
            yield Tally("messages.delivered", len(batch))
            try:
                current = yield Deliver(tuple(batch), options.heartbeat)
            except ConsumerStopped as stop:
                yield from release_flow(stop.messages, queue=queue, retry=options.retry)
                return
            batch = current or batch
            delivered += len(batch)
            if options.held_messages_block:
                yield from delete_flow(batch, queue=queue)
            else:
                consumed = batch
        yield from delete_flow(consumed, queue=queue)
        if options.polling_frequency is None:
            log.log(level, "Queue %r: poll finished after %d message(s)", queue, delivered)
            return
        log.log(
            level,
            "Queue %r: %d message(s) this round; polling again in %gs",
            queue,
            delivered,
            options.polling_frequency,
        )
        yield Sleep(options.polling_frequency)


def delete_flow(
    messages: Sequence[Message], *, queue: str, before_delivery: bool = False
) -> Generator[Step, Any, list[Message]]:
    """Delete deliveries and return those that are gone (see :func:`report_deleted`); failures were
    logged by the backend."""
    if not messages:
        return []
    results: list[bool | DeleteAnswer] = yield Delete(tuple(messages))
    return (yield from report_deleted(messages, results, queue=queue, before_delivery=before_delivery))


def report_deleted(
    messages: Sequence[Message], results: Sequence[bool | DeleteAnswer], *, queue: str, before_delivery: bool = False
) -> Generator[Step, Any, list[Message]]:
    """The messages whose delete succeeded (one result each); a warning for those that failed.

    A success answered after the message's delete deadline (:func:`answered_late`) may not have
    deleted: counted as ``messages.late_delete`` and logged with the ids. ``before_delivery``
    (pre-delivery delete): those are left out, so not delivered; they come back unless the delete
    took effect after all (at most once allows losing them, never delivering them twice).
    """
    deleted = [m for m, ok in zip(messages, results, strict=True) if ok]
    if len(deleted) < len(messages):
        log.warning(
            "Queue %r: %d of %d message(s) could not be deleted and will be delivered again "
            "after their visibility timeout",
            queue,
            len(messages) - len(deleted),
            len(messages),
        )
    late = {id(m): seconds for m, r in zip(messages, results, strict=True) if (seconds := answered_late(m, r))}
    if not late:
        return deleted
    yield Tally("messages.late_delete", len(late))
    ids = [m.id for m in messages if id(m) in late]
    shown = ", ".join(ids[:10]) + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")
    if before_delivery:
        log.warning(
            "Queue %r: %d message(s) NOT delivered: the answer to their delete came up to %.2f s after their "
            "visibility deadline, so the service may not have deleted them (ids %s). They are delivered again "
            "after their visibility timeout unless the delete took effect (then they are gone: at most once). "
            "Raise visibility_timeout, or shorten the time from receive to delete (batch_size, wait_time_seconds, "
            "max_batching_window)",
            queue, len(late), max(late.values()), shown,
        )  # fmt: skip
        return [m for m in deleted if id(m) not in late]
    log.warning(
        "Queue %r: the delete of %d message(s) was answered up to %.2f s after their visibility deadline, so "
        "the service may not have deleted them (ids %s): they may be delivered again. Raise visibility_timeout "
        "(or keep the heartbeat on) so that a batch is deleted while it is still hidden",
        queue, len(late), max(late.values()), shown,
    )  # fmt: skip
    return deleted


def dead_letter_flow(
    messages: Sequence[Message], limit: int | None, dead_letter_queue: str | None, *, queue: str
) -> Generator[Step, Any, list[Message]]:
    """Move messages received more than ``limit`` times to ``dead_letter_queue`` (sent there
    first, then deleted here); return the others."""
    poison = [m for m in messages if limit is not None and m.receive_count > limit]
    if not poison or dead_letter_queue is None:
        return list(messages)
    sent: list[bool] = yield DeadLetter(tuple(poison), dead_letter_queue, f"max_receive_count={limit}")
    moved = [m for m, ok in zip(poison, sent, strict=True) if ok]
    yield Tally("messages.dead_lettered", len(moved))
    yield from delete_flow(moved, queue=queue)
    for message in poison:
        log.warning(
            "Queue %r: message %s was received %d times (more than max_receive_count=%d); %s dead-letter queue %r",
            queue,
            message.id,
            message.receive_count,
            limit,
            "moved it to the" if message in moved else "could NOT move it to the",
            dead_letter_queue,
        )
    return [m for m in messages if m not in poison]


def filter_flow(
    messages: list[Message],
    accept: Callable[[Message], bool] | None,
    unmatched: str,
    dead_letter_queue: str | None,
    *,
    queue: str,
) -> Generator[Step, Any, list[Message]]:
    """The messages ``accept`` takes; the others go by :func:`unmatched_flow`."""
    if accept is None or not messages:
        return messages
    taken = [m for m in messages if accept(m)]
    if len(taken) < len(messages):
        kept = {id(m) for m in taken}
        yield from unmatched_flow([m for m in messages if id(m) not in kept], unmatched, dead_letter_queue, queue=queue)
    return taken


def unmatched_flow(
    messages: Sequence[Message], unmatched: str, dead_letter_queue: str | None, *, queue: str
) -> Generator[Step, Any, None]:
    """What becomes of messages no filter took: ``leave`` them hidden until their visibility timeout
    ends (then other consumers see them; not released at once, which would hand them straight back
    to this consumer), ``delete`` them, or move them to ``dead_letter_queue``."""
    if not messages:
        return
    yield Tally("messages.filtered_out", len(messages))
    if unmatched == "delete":
        gone = yield from delete_flow(messages, queue=queue)
        log.info("Queue %r: deleted %d message(s) that matched no filter", queue, len(gone))
    elif unmatched == "dead_letter" and dead_letter_queue is not None:
        sent: list[Any] = yield DeadLetter(tuple(messages), dead_letter_queue, "unmatched")
        moved = [m for m, ok in zip(messages, sent, strict=True) if ok]
        yield Tally("messages.dead_lettered", len(moved))
        yield from delete_flow(moved, queue=queue)
        log.info("Queue %r: moved %d of %d message(s) that matched no filter to %r", queue, len(moved),
                 len(messages), dead_letter_queue)  # fmt: skip
    else:
        log.debug("Queue %r: left %d message(s) that matched no filter for their visibility timeout", queue,
                  len(messages))  # fmt: skip


def receive_flow(
    max_messages: int,
    *,
    visibility_timeout: int,
    wait_seconds: int,
    first_wait_seconds: int | None = None,
    per_request: int | None = None,
    wait_after_short: int | None = None,
) -> Generator[Step, Any, list[Message]]:
    """Receive up to ``max_messages`` with as many requests as the backend's limit needs.

    Stops short on a receive that brings nothing new: an empty one, or one that only hands
    out again messages already in the batch (their visibility timeout ran out while it
    filled), which stay in the batch once, with their newest receipt.

    No receive waits longer than half ``visibility_timeout`` (or 1 s): a message's delete deadline
    counts from when its receive was sent (:func:`delete_deadline`), so one that arrives at the end
    of a long wait keeps at least half its timeout for its delete.

    ``first_wait_seconds`` lets a waiting caller (a trigger) long-poll on the first request
    only, then fill the batch with short waits. Given the backend's ``per_request`` limit, a
    receive that came back full is followed by concurrent requests for the rest (messages are
    waiting, so they overlap instead of queueing one behind the other). A receive that came
    back with less than it asked for found the queue drained for now: with
    ``wait_after_short``, the next receive waits that long instead of ``wait_seconds`` (0: take
    what else has arrived, without waiting for more).
    """
    batch: list[Message] = []
    position: dict[str, int] = {}
    wait = wait_seconds if first_wait_seconds is None else first_wait_seconds
    fan_out = False
    while len(batch) < max_messages:
        wanted = max_messages - len(batch)
        wait = min(wait, max(1, visibility_timeout // 2))
        received: list[Message] = yield Receive(wanted, visibility_timeout, wait, fan_out)
        new = 0
        for message in received:
            if message.id in position:
                # Handed out again: its visibility timeout ran out while the batch was filling
                # (slow or retried requests). One copy per batch, with the newest receipt: the
                # one that deletes it (Azure voids the old pop receipt; SQS documents the latest).
                batch[position[message.id]] = message
            else:
                position[message.id] = len(batch)
                batch.append(message)
                new += 1
        if not new:
            break
        asked = wanted if fan_out or per_request is None else min(wanted, per_request)
        full = len(received) >= asked
        fan_out = per_request is not None and full
        wait = wait_seconds if full or wait_after_short is None else wait_after_short
    return batch


def collect_flow(
    max_messages: int,
    *,
    queue: str,
    visibility_timeout: int,
    wait_seconds: int,
    pre_delivery_delete: bool,
    max_bytes: int | None = None,
    max_receive_count: int | None = None,
    dead_letter_queue: str | None = None,
    per_request: int | None = None,
    accept: Callable[[Message], bool] | None = None,
    unmatched: str = "leave",
    retry: RetryPolicy | None = None,
) -> Generator[Step, Any, list[Message]]:
    """One delivery for a sensor or trigger: wait up to ``wait_seconds`` for a first message,
    fill up to ``max_messages`` while receives come back full, and with
    ``pre_delivery_delete`` keep only the messages whose delete succeeded in time. A delivery over
    ``max_bytes`` is released, before anything is deleted, and refused with
    :class:`DeliveryTooLarge`.

    After a receive that returned fewer messages than it asked for (``per_request``, the
    backend's limit), the delivery is filled only with what has arrived meanwhile (0 s
    receives): the message that woke a long poll goes out at once instead of after a fill-up
    receive's wait, and a burst still arriving is gathered. Fill-up receives after a full one
    wait up to 1 s: a 0 s receive only samples SQS's servers and may come back short while
    messages remain.
    """
    messages = yield from receive_flow(
        max_messages,
        visibility_timeout=visibility_timeout,
        wait_seconds=min(1, wait_seconds),
        first_wait_seconds=wait_seconds,
        per_request=per_request,
        wait_after_short=0,
    )
    if max_receive_count is not None:
        messages = yield from dead_letter_flow(messages, max_receive_count, dead_letter_queue, queue=queue)
    messages = yield from filter_flow(messages, accept, unmatched, dead_letter_queue, queue=queue)
    size = sum(len(m.body.encode("utf-8", "surrogatepass")) for m in messages)
    if max_bytes is not None and size > max_bytes:
        yield from release_flow(messages, queue=queue, retry=retry)
        raise DeliveryTooLarge(
            f"{len(messages)} message(s) from queue {queue!r} add up to {size} bytes, more than "
            f"max_delivery_bytes={max_bytes}; nothing was deleted. Lower num_messages/batch_size, raise "
            "max_delivery_bytes (with an XCom backend that stores large values), or poll inside a task "
            "with hook.get_queue(...).poll(...)"
        )
    if messages and pre_delivery_delete:
        messages = yield from delete_flow(messages, queue=queue, before_delivery=True)
    if messages:
        yield Tally("messages.delivered", len(messages))
    return messages


def _size(message: Message) -> int:
    return len(message.body.encode("utf-8", "surrogatepass"))


def _gather_limit(batch: Sequence[Message], visibility_timeout: int) -> float:
    """When gathering must end (the driver's clock): :data:`GATHER_RESERVE` seconds, at most half the
    timeout, before the earliest delete deadline in ``batch``; infinite where none is known."""
    known = [m.delete_by for m in batch if m.delete_by]
    return min(known) - min(GATHER_RESERVE, visibility_timeout / 2) if known else math.inf


def gather_flow(
    max_messages: int,
    *,
    queue: str,
    visibility_timeout: int,
    wait_seconds: int,
    window: float,
    clock: Callable[[], float],
    max_bytes: int,
    per_request: int | None = None,
    can_wait: bool = True,
    idle_sleep: float = 1.0,
    pre_delivery_delete: bool = False,
    max_receive_count: int | None = None,
    dead_letter_queue: str | None = None,
    accept: Callable[[Message], bool] | None = None,
    unmatched: str = "leave",
) -> Generator[Step, Any, list[Message]]:
    """One watch-mode delivery (a batch that becomes one asset event): wait up to
    ``wait_seconds`` for a first message, then gather until the batch holds ``max_messages``,
    holds ``max_bytes`` of bodies, or ``window`` seconds have passed since the first message
    arrived (Lambda's batching window; 0: take what the first receives bring).

    ``can_wait``: receives may long-poll (SQS); otherwise (Azure) an empty receive within the
    window is followed by a pause of up to ``idle_sleep`` seconds. ``clock`` is the driver's
    monotonic clock, given so the flow stays free of I/O. The messages that would take the batch
    over ``max_bytes`` are released for the next delivery; a single message larger than that
    is delivered alone, since it fits no smaller batch. With ``pre_delivery_delete`` only the
    messages whose delete succeeded in time are returned.

    The gathering also ends :data:`GATHER_RESERVE` seconds (at most half the visibility timeout)
    before the first messages' delete deadline, whatever ``window`` says: their delete, or the
    renewal that keeps them hidden during the hand-off, then still comes in time.
    """
    batch: list[Message] = yield from receive_flow(
        max_messages,
        visibility_timeout=visibility_timeout,
        wait_seconds=min(1, wait_seconds),
        first_wait_seconds=wait_seconds,
        per_request=per_request,
        wait_after_short=0,
    )
    if batch and window > 0:
        deadline = clock() + window
        held = {m.id: i for i, m in enumerate(batch)}
        while len(batch) < max_messages and sum(map(_size, batch)) < max_bytes:
            remaining = min(deadline, _gather_limit(batch, visibility_timeout)) - clock()
            if remaining <= 0:
                break
            wait = min(MAX_LONG_POLL, int(remaining)) if can_wait else 0
            more: list[Message] = yield from receive_flow(
                max_messages - len(batch),
                visibility_timeout=visibility_timeout,
                wait_seconds=min(1, wait),
                first_wait_seconds=wait,
                per_request=per_request,
                wait_after_short=0,
            )
            for message in more:
                if message.id in held:  # handed out again: keep one copy, with the newest receipt
                    batch[held[message.id]] = message
                else:
                    held[message.id] = len(batch)
                    batch.append(message)
            if not more and wait == 0:
                yield Sleep(min(idle_sleep, remaining))
    if max_receive_count is not None:
        batch = yield from dead_letter_flow(batch, max_receive_count, dead_letter_queue, queue=queue)
    batch = yield from filter_flow(batch, accept, unmatched, dead_letter_queue, queue=queue)
    kept: list[Message] = []
    total = 0
    for message in batch:
        if kept and total + _size(message) > max_bytes:
            break
        kept.append(message)
        total += _size(message)
    if len(kept) < len(batch):
        log.debug("Queue %r: %d message(s) over max_bytes=%d wait for the next delivery", queue,
                  len(batch) - len(kept), max_bytes)  # fmt: skip
        yield from release_flow(batch[len(kept) :], queue=queue, failed=False)
    if kept and pre_delivery_delete:
        kept = yield from delete_flow(kept, queue=queue, before_delivery=True)
    if kept:
        yield Tally("messages.delivered", len(kept))
    return kept


def release_flow(
    messages: Sequence[Message], *, queue: str, retry: RetryPolicy | None = None, failed: bool = True
) -> Generator[Step, Any, list[Message]]:
    """Make deliveries visible again, e.g. when their consumer or hand-off failed: at once, or
    after the ``retry`` policy's delay for each message's receive count. ``failed=False``: put
    back for the next delivery (not counted as released)."""
    if not messages:
        return []
    delays: dict[int, list[Message]] = {}
    for message in messages:
        delays.setdefault(retry.delay_for(message.receive_count) if retry else 0, []).append(message)
    released: list[Message] = []
    for delay, group in sorted(delays.items()):
        released += yield SetVisibility(tuple(group), delay)
    if not failed:
        return released
    yield Tally("messages.released", len(released))
    if len(delays) == 1 and 0 in delays:
        log.info("Queue %r: released %d message(s) for redelivery", queue, len(released))
    else:
        log.info("Queue %r: released %d message(s) for redelivery in %s s", queue, len(released),
                 "/".join(str(d) for d in sorted(delays)))  # fmt: skip
    return released


@dataclass(frozen=True)
class Redriven:
    """What became of one message of a redrive."""

    message: Message
    new_id: str | None
    """Its id in the queue it went back to (None: that queue refused it; it stays a dead letter)."""
    deleted: bool
    """Whether it was deleted from the dead-letter queue (False after a move: it will be moved again)."""


def redrive_flow(
    max_messages: int | None,
    *,
    queue: str,
    target: str,
    visibility_timeout: int,
    wait_seconds: int,
    batch_size: int = 100,
    per_request: int | None = None,
) -> Generator[Step, Any, list[Redriven]]:
    """Move up to ``max_messages`` (None: all) from the dead-letter queue ``queue`` back to ``target``:
    receive a batch, send it there, delete from here what was sent. A message that ``target`` refused
    stays hidden here until its visibility timeout, so the rest moves on; the redrive ends when a
    receive brings nothing it has not seen (an empty queue, or only the refused ones back again)."""
    results: list[Redriven] = []
    seen: set[str] = set()
    while max_messages is None or len(results) < max_messages:
        wanted = batch_size if max_messages is None else min(batch_size, max_messages - len(results))
        batch = yield from receive_flow(
            wanted, visibility_timeout=visibility_timeout, wait_seconds=wait_seconds, per_request=per_request
        )
        batch = [m for m in batch if m.id not in seen]
        if not batch:
            break
        seen.update(m.id for m in batch)
        new_ids: list[str | None] = yield Redrive(tuple(batch), target)
        sent = [m for m, new_id in zip(batch, new_ids, strict=True) if new_id]
        deleted = {m.id for m in (yield from delete_flow(sent, queue=queue))}
        yield Tally("messages.redriven", len(sent))
        results += [Redriven(m, new_id, m.id in deleted) for m, new_id in zip(batch, new_ids, strict=True)]
    log.info("Queue %r: moved %d of %d message(s) back to %r", queue, sum(1 for r in results if r.new_id),
             len(results), target)  # fmt: skip
    return results


def drain_flow(*, queue: str, visibility_timeout: int = 30) -> Generator[Step, Any, int]:
    """Receive and delete until a receive comes back empty; return how many were deleted."""
    total = 0
    while True:
        batch: list[Message] = yield Receive(1000, visibility_timeout, 0)
        if not batch:
            return total
        total += len((yield from delete_flow(batch, queue=queue)))


def peek_by_receive_flow(
    max_messages: int, *, wait_seconds: int, hold_seconds: int = 30
) -> Generator[Step, Any, list[str]]:
    """Peek on a service without a native peek (SQS): receive, then release at once.

    Messages are held for ``hold_seconds`` while the peek collects them (so it sees each one
    once) and then made visible again, so the very next receive gets all of them.
    """
    messages = yield from receive_flow(max_messages, visibility_timeout=hold_seconds, wait_seconds=wait_seconds)
    if messages:
        yield SetVisibility(tuple(messages), 0)
    return [m.body for m in messages]
