"""The delivery lifecycle: what becomes of received messages, decided once and free of I/O.

Every path that receives (``poll()`` in a task, the sensor, the settle sensor, a watcher on a
shared stream or on its own loop) walks its messages through the same stages::

    receive ─► hold ─► hand over ─► acknowledge ─► delete
                │          │
                │          └─ the consumer failed ───────► release (after the retry delay)
                ├─ received too often (POISON) ───────────► dead-letter
                ├─ no filter takes it (UNMATCHED) ────────► leave / delete / dead-letter
                ├─ not for this delivery (RETURNED) ──────► visible at once, for the next one
                └─ the holder stopped first (CANCELLED) ──► released at once

The code that faces Airflow (sensors, triggers) only reports what happened to the messages it
holds, as an :class:`Outcome`; :func:`settle` turns the outcome into steps, counts and logs it.
With ``pre_delivery_delete`` the acknowledgement comes before the hand-over: only what
:func:`settle` deleted is handed over. While messages are held, :func:`renew_flow` keeps them
hidden. A watcher with ``delete_on_dag_success`` holds a delivery until the consumer runs that took
it have ended; :func:`after_runs` then splits it by what the runs report (deleted, released,
held back behind a failed message of its FIFO group, dead-lettered).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Collection, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

from fluke_airflow.queues import metrics
from fluke_airflow.queues.message import Message, latest_receipts
from fluke_airflow.queues.options import DeliveryOptions, RetryPolicy
from fluke_airflow.queues.steps import (
    Cancelled,
    DeadLetter,
    Delete,
    DeleteAnswer,
    Flow,
    HolderStopped,
    Now,
    Overlap,
    Receive,
    Renewal,
    SetVisibility,
    Sleep,
    Step,
    Tally,
)

log = logging.getLogger("fluke_airflow.queues")

Settling = Generator[Step, Any, list[Message]]

CLOCK_RATE_ERROR = 0.001
"""How far this machine's clock may run off the service's, as a fraction of the interval measured:
twice the 500 ppm by which NTP slews a clock at most (a free-running quartz is off by tens of ppm)."""
SERVICE_CLOCK_SLACK = 0.1
"""Seconds for the service's own imprecision: the hosts that hand a message out and judge its
delete keep their clocks within milliseconds of each other (NTP/PTP), and its timers have some
resolution; this covers a hundred times the usual."""


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


class Outcome(enum.Enum):
    """What happened to messages a holder received: each has one fate (see :func:`settle`)."""

    ACKNOWLEDGED = "acknowledged"
    """The consumer has them (the poll loop asked for the next batch, the XCom or the asset event was
    stored, the consumer run succeeded), or pre-delivery: they are about to be handed over. Deleted."""
    FAILED = "failed"
    """Handed over, and the consumer failed (the loop raised, the XCom or event was not stored, the
    run failed). Released after the retry delay, to be delivered again."""
    CANCELLED = "cancelled"
    """Never handed over: the holder stopped first (a trigger cancelled or moved, a poll closed).
    Released at once: nothing went wrong with them."""
    RETURNED = "returned"
    """Not for this delivery (they would take it over its byte limit). Visible at once; not counted
    as released."""
    UNMATCHED = "unmatched"
    """No filter took them: the unmatched policy decides (leave hidden, delete, dead-letter)."""
    POISON = "poison"
    """Received more than ``max_receive_count`` times: moved to the dead-letter queue."""
    KEPT = "kept"
    """Left hidden until their visibility timeout (the amazon sensor's ``delete_message_on_reception=False``)."""


def settle(messages: Sequence[Message], outcome: Outcome, options: DeliveryOptions) -> Settling:
    """The fate of ``messages`` after ``outcome``, carried out; returns the messages it applied to
    (deleted, released, returned, moved)."""
    if not messages or outcome is Outcome.KEPT:
        return []
    if outcome is Outcome.ACKNOWLEDGED:
        return (yield from delete(messages, options.queue, before_delivery=options.pre_delivery_delete))
    if outcome is Outcome.FAILED:
        return (yield from release(messages, options.queue, options.retry))
    if outcome is Outcome.CANCELLED:
        released: list[Message] = yield SetVisibility(tuple(messages), 0)
        yield Tally(metrics.RELEASED, len(released))
        log.debug("Queue %r: released %d message(s) that were received but not handed over", options.queue,
                  len(released))  # fmt: skip
        return released
    if outcome is Outcome.RETURNED:
        returned: list[Message] = yield SetVisibility(tuple(messages), 0)
        log.debug("Queue %r: %d message(s) wait for the next delivery", options.queue, len(messages))
        return returned
    if outcome is Outcome.POISON:
        return (yield from dead_letter(messages, options, f"max_receive_count={options.max_receive_count}"))
    return (yield from unmatched(messages, options))


def delete(messages: Sequence[Message], queue: str, *, before_delivery: bool = False) -> Settling:
    """Delete deliveries and return those that are gone (see :func:`report_deleted`); failures were
    logged by the backend."""
    if not messages:
        return []
    results: list[bool | DeleteAnswer] = yield Delete(tuple(messages))
    return (yield from report_deleted(messages, results, queue=queue, before_delivery=before_delivery))


def report_deleted(
    messages: Sequence[Message], results: Sequence[bool | DeleteAnswer], *, queue: str, before_delivery: bool = False
) -> Settling:
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
    yield Tally(metrics.LATE_DELETE, len(late))
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
        "(or keep the renewal on) so that a batch is deleted while it is still hidden",
        queue, len(late), max(late.values()), shown,
    )  # fmt: skip
    return deleted


def release(messages: Sequence[Message], queue: str, retry: RetryPolicy | None) -> Settling:
    """Make deliveries visible again after their consumer failed: at once, or after the ``retry``
    policy's delay for each message's receive count."""
    delays: dict[int, list[Message]] = {}
    for message in messages:
        delays.setdefault(retry.delay_for(message.receive_count) if retry else 0, []).append(message)
    released: list[Message] = []
    for delay, group in sorted(delays.items()):
        released += yield SetVisibility(tuple(group), delay)
    yield Tally(metrics.RELEASED, len(released))
    if len(delays) == 1 and 0 in delays:
        log.info("Queue %r: released %d message(s) for redelivery", queue, len(released))
    else:
        log.info("Queue %r: released %d message(s) for redelivery in %s s", queue, len(released),
                 "/".join(str(d) for d in sorted(delays)))  # fmt: skip
    return released


def dead_letter(messages: Sequence[Message], options: DeliveryOptions, reason: str) -> Settling:
    """Send messages to the dead-letter queue, then delete here those it took; return those."""
    target = options.dead_letter_queue
    if target is None:
        return []
    sent: list[bool] = yield DeadLetter(tuple(messages), target, reason)
    moved = [m for m, ok in zip(messages, sent, strict=True) if ok]
    yield Tally(metrics.DEAD_LETTERED, len(moved))
    yield from delete(moved, options.queue)
    return moved


def unmatched(messages: Sequence[Message], options: DeliveryOptions) -> Settling:
    """What becomes of messages no filter took, by the ``unmatched`` policy: ``leave`` them hidden
    until their visibility timeout ends (then other consumers see them; not released at once, which
    would hand them straight back to this consumer), ``delete`` them, or move them to the
    dead-letter queue. Logged at INFO either way: each look hides them from every other consumer."""
    queue = options.queue
    yield Tally(metrics.FILTERED_OUT, len(messages))
    if options.unmatched == "delete":
        gone = yield from delete(messages, queue)
        log.info("Queue %r: %d message(s) matched no filter; deleted %d (unmatched='delete')", queue,
                 len(messages), len(gone))  # fmt: skip
        return gone
    if options.unmatched == "dead_letter" and options.dead_letter_queue is not None:
        moved = yield from dead_letter(messages, options, "unmatched")
        log.info("Queue %r: %d message(s) matched no filter; moved %d to %r (unmatched='dead_letter')", queue,
                 len(messages), len(moved), options.dead_letter_queue)  # fmt: skip
        return moved
    log.info(
        "Queue %r: %d message(s) matched no filter; left them in the queue, hidden from every consumer for "
        "visibility_timeout=%d s (unmatched='leave'; 'delete' or 'dead_letter' take them out)",
        queue,
        len(messages),
        options.visibility_timeout,
    )
    return []


def triage(batch: list[Message], options: DeliveryOptions) -> Settling:
    """A received batch without the messages that are not to be delivered: poison ones (received
    more than ``max_receive_count`` times, where a dead-letter queue takes them) are moved, those no
    filter takes go by the unmatched policy. Returns the rest, in the order received."""
    limit = options.max_receive_count
    if limit is not None and options.dead_letter_queue is not None:
        poison = [m for m in batch if m.receive_count > limit and m.id not in options.spared]
        if poison:
            moved = yield from settle(poison, Outcome.POISON, options)
            for message in poison:
                log.warning(
                    "Queue %r: message %s was received %d times (more than max_receive_count=%d); %s dead-letter "
                    "queue %r",
                    options.queue,
                    message.id,
                    message.receive_count,
                    limit,
                    "moved it to the" if message in moved else "could NOT move it to the",
                    options.dead_letter_queue,
                )
            gone = {m.id for m in poison}
            batch = [m for m in batch if m.id not in gone]
    taken, left = options.filter.split(batch)
    if left:
        yield from settle(left, Outcome.UNMATCHED, options)
    return taken


def renew_flow(messages: Sequence[Message], renewal: Renewal) -> Generator[Step, Any, list[Message]]:
    """Keep held ``messages`` hidden: every ``renewal.interval`` seconds, hide them for the renewal's
    extension, until the service's limit on hidden time or until :class:`HolderStopped` is thrown
    in. Returns the messages with their current receipts (Azure issues a new one with each change).
    A failed renewal is let pass: the holder's delete or release decides later."""
    held = list(messages)
    try:
        started: float = yield Now()
        while True:
            yield Sleep(renewal.wait(held, (yield Now())))
            extension = renewal.extension((yield Now()) - started)
            if extension <= 0:
                break
            try:
                kept: list[Message] = yield SetVisibility(tuple(held), extension)
            except Exception as error:  # the driver throws a failed request back into the flow
                log.debug("Renewing %d message(s) failed: %s", len(held), error)
                continue
            held = latest_receipts(held, kept)
        yield Sleep(float("inf"))  # past the service's limit: nothing left to do but wait for the holder
    except HolderStopped:
        pass
    return held


# -- the hold: what a flow received and has not settled ---------------------------------------------------
LONG_POLL_SLACK = 2.0
"""Seconds past a cut long poll's wait after which the service is taken to have ended it."""


class Held:
    """The messages a holder received and has not yet handed on or settled: what it releases at once
    when it is cancelled (a trigger moved to another triggerer, a task cleared or killed, the
    triggerer stopping) or fails in the middle of a delivery, instead of leaving them hidden for
    their visibility timeout. :func:`tracked` keeps it while a flow runs; ``on_change`` is told the
    new count (a watcher's ``messages.in_flight`` gauge)."""

    def __init__(self, on_change: Callable[[int], None] | None = None) -> None:
        self._messages: dict[str, Message] = {}
        self._on_change = on_change
        self.long_poll_ends: float | None = None
        """When the long-poll receive in flight ends at the service, on the driver's clock (None: none)."""

    def __len__(self) -> int:
        return len(self._messages)

    @property
    def messages(self) -> list[Message]:
        return list(self._messages.values())

    def _changed(self, before: int) -> None:
        if self._on_change is not None and len(self._messages) != before:
            self._on_change(len(self._messages))

    def keep(self, messages: Sequence[Message]) -> None:
        """Hold ``messages`` (with their newest receipt: a message handed out again replaces itself)."""
        before = len(self._messages)
        self._messages.update((m.id, m) for m in messages)
        self._changed(before)

    def settle(self, messages: Sequence[Message]) -> None:
        """These are no longer the holder's to release (deleted, released, moved, or handed on)."""
        before = len(self._messages)
        for message in messages:
            self._messages.pop(message.id, None)
        self._changed(before)

    def handed_on(self) -> None:
        """The consumer has them (an event carrying them may be stored): never released from here."""
        self.settle(self.messages)

    def only(self, messages: Sequence[Message]) -> None:
        """Hold no more than ``messages``: what a finished flow returned (the others it settled, or
        left hidden on purpose, as unmatched ones are)."""
        before = len(self._messages)
        self._messages = {m.id: m for m in messages if m.id in self._messages}
        self._changed(before)


def stopped(cause: BaseException | None) -> str:
    """How the release's log line says why the holder stopped (``cause``: what it raised; None: closed)."""
    if cause is None:
        return "was closed"
    if isinstance(cause, Cancelled):
        return "was cancelled (the trigger was moved to another triggerer, its task cleared or killed, or the " \
               "triggerer stops)"  # fmt: skip
    return f"failed ({type(cause).__name__}: {cause})"


def release_held(held: Held, why: str, queue: str) -> Settling:
    """Make every held message visible again at once; ``why`` completes "the poll ..." in the log."""
    messages = held.messages
    if not messages:
        return []
    held.handed_on()
    log.info("Queue %r: the poll %s while holding %d received message(s) not yet handed to Airflow; releasing "
             "them for the next consumer", queue, why, len(messages))  # fmt: skip
    return (yield from settle(messages, Outcome.CANCELLED, DeliveryOptions(queue)))


def tracked(flow: Flow, held: Held, queue: str) -> Flow:
    """``flow``, keeping in ``held`` every message it received and has not settled (deleted, released,
    moved to a dead-letter queue); once it returns, ``held`` holds what it returned, for its caller
    to hand on. If it fails, or is cancelled (:class:`~fluke_airflow.queues.steps.Cancelled`), what
    ``held`` holds is released at once.

    A long-poll receive cut by a cancellation stays open at the service for the rest of its wait, and
    SQS hands it the next message that becomes visible, whose answer nobody reads
    (aws/aws-sdk-js#2350, aws/aws-sdk-java#2083; moto does the same). Released at once, the messages
    could go to that dead receive and stay hidden for their visibility timeout: the release first
    waits out the receive's wait."""
    result: Any = None
    failure: BaseException | None = None
    ends: float | None = None
    try:
        while True:
            try:
                step = flow.throw(failure) if failure is not None else flow.send(result)
            except StopIteration as stop:
                if isinstance(stop.value, list):
                    held.only(stop.value)
                return stop.value
            failure = None
            wait = _long_poll_seconds(step)
            ends = held.long_poll_ends = (yield Now()) + wait + LONG_POLL_SLACK if wait else None
            try:
                result = yield step
            except Exception as error:  # a failed request: the flow decides what it means
                result, failure = None, error
                continue
            finally:
                held.long_poll_ends = None
            ends = None
            _note(step, result, held)
    except Cancelled as cancelled:
        flow.close()
        if ends is not None and (left := ends - (yield Now())) > 0:
            log.info("Queue %r: first waiting %.0f s for the long-poll receive the cancellation cut to end at the "
                     "service (it would take the released messages, and nobody reads its answer)", queue,
                     left)  # fmt: skip
            yield Sleep(left)
        yield from release_held(held, stopped(cancelled), queue)
        raise
    except Exception as error:
        yield from release_held(held, stopped(error), queue)
        raise
    finally:
        flow.close()


def _long_poll_seconds(step: Step) -> int:
    if isinstance(step, Receive):
        return step.wait_seconds
    if isinstance(step, Overlap):
        return max((_long_poll_seconds(s) for s in step.steps), default=0)
    return 0


def _note(step: Step, result: Any, held: Held) -> None:
    if isinstance(step, Receive):
        held.keep(result)
    elif isinstance(step, Delete | DeadLetter):  # deleted, or a copy went to the dead-letter queue
        held.settle([m for m, ok in zip(step.messages, result, strict=True) if ok])
    elif isinstance(step, SetVisibility):  # a flow changes visibility only to release
        held.settle(result)
    elif isinstance(step, Overlap):
        for inner, inner_result in zip(step.steps, result, strict=True):
            _note(inner, inner_result, held)


# -- after the consumer runs (a watcher with delete_on_dag_success) -------------------------------------------
@dataclass
class RunVerdicts:
    """What becomes of a delivery's messages once every consumer run that took it has ended."""

    acknowledged: list[Message] = field(default_factory=list)
    """Every run succeeded with them: deleted."""
    failed: list[Message] = field(default_factory=list)
    """A run, or the message's deciding task instance, did not succeed: released after the retry delay."""
    held_back: list[Message] = field(default_factory=list)
    """Succeeded, but follow a failed message of their FIFO message group in the delivery: released
    at once (the failed one, hidden for its retry delay, keeps the group locked), to be delivered
    again after it, so that they do not overtake it (Lambda's advice for partial batch responses
    on FIFO)."""
    poison: list[Message] = field(default_factory=list)
    """Failed on their ``max_receive_count``-th receive: moved to the dead-letter queue now rather
    than after one more retry delay. They hold nothing back: they will not run again."""


def after_runs(messages: Sequence[Message], failed: Collection[str], options: DeliveryOptions) -> RunVerdicts:
    """Split a delivery's ``messages`` (in the order they were handed over) by the ids of those that
    ``failed`` in some consumer run. Free of I/O: the caller deletes, releases and dead-letters."""
    verdicts = RunVerdicts()
    blocked: set[str] = set()  # FIFO message groups with a failed message earlier in this delivery
    limit = options.max_receive_count
    for message in messages:
        group = message.metadata.get("MessageGroupId")
        if message.id in failed:
            if limit is not None and options.dead_letter_queue is not None and message.receive_count >= limit:
                verdicts.poison.append(message)
            else:
                verdicts.failed.append(message)
                if group is not None:
                    blocked.add(group)
        elif group is not None and group in blocked:
            verdicts.held_back.append(message)
        else:
            verdicts.acknowledged.append(message)
    return verdicts
