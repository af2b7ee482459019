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
from collections.abc import Collection, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

from fluke_airflow.queues import metrics
from fluke_airflow.queues.message import Message, latest_receipts
from fluke_airflow.queues.options import DeliveryOptions, RetryPolicy
from fluke_airflow.queues.steps import (
    DeadLetter,
    Delete,
    HolderStopped,
    Now,
    Renewal,
    SetVisibility,
    Sleep,
    Step,
    Tally,
)

log = logging.getLogger("fluke_airflow.queues")

Settling = Generator[Step, Any, list[Message]]


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
        return (yield from delete(messages, options.queue))
    if outcome is Outcome.FAILED:
        return (yield from release(messages, options.queue, options.retry))
    if outcome is Outcome.CANCELLED:
        released: list[Message] = yield SetVisibility(tuple(messages), 0)
        yield Tally(metrics.RELEASED, len(released))
        log.info("Queue %r: released %d message(s) that were received but not handed over", options.queue,
                 len(released))  # fmt: skip
        return released
    if outcome is Outcome.RETURNED:
        returned: list[Message] = yield SetVisibility(tuple(messages), 0)
        log.debug("Queue %r: %d message(s) wait for the next delivery", options.queue, len(messages))
        return returned
    if outcome is Outcome.POISON:
        return (yield from dead_letter(messages, options, f"max_receive_count={options.max_receive_count}"))
    return (yield from unmatched(messages, options))


def delete(messages: Sequence[Message], queue: str) -> Settling:
    """Delete deliveries and return those that are gone; failures were logged by the backend."""
    if not messages:
        return []
    results: list[bool] = yield Delete(tuple(messages))
    return report_deleted(messages, results, queue=queue)


def report_deleted(messages: Sequence[Message], results: Sequence[bool], *, queue: str) -> list[Message]:
    """The messages whose delete succeeded (one result each); a warning for those that failed."""
    deleted = [m for m, ok in zip(messages, results, strict=True) if ok]
    if len(deleted) < len(messages):
        log.warning(
            "Queue %r: %d of %d message(s) could not be deleted and will be delivered again "
            "after their visibility timeout",
            queue,
            len(messages) - len(deleted),
            len(messages),
        )
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
            yield Sleep(renewal.interval)
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
