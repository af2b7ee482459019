"""The vocabulary between the flows and the drivers: the steps a flow yields.

A flow (:mod:`~fluke_airflow.queues.flows`, :mod:`~fluke_airflow.queues.lifecycle`) is a generator
that yields steps and is sent back each step's result; a driver
(:mod:`~fluke_airflow.queues.drivers`) carries a step out. A step says *what* is wanted (these
deliveries deleted, hidden for 30 s more), never how many requests that takes.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any

from fluke_airflow.queues.message import Message


@dataclass(frozen=True)
class Receive:
    """One receive request for up to ``max_messages`` (the backend caps it at its limit), or,
    with ``fan_out``, as many concurrent requests as that limit needs for ``max_messages``.
    Result: the messages."""

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
    the delete (SQS, see :func:`~fluke_airflow.queues.lifecycle.delete_deadline`): whether it
    succeeded, and when the answer came. True or false like the plain ``bool`` of other services."""

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


@dataclass(frozen=True)
class Renewal:
    """How a held batch's visibility is renewed while its holder works on it (the consumer of a
    poll, a watcher waiting for Airflow): every ``interval`` seconds the batch is hidden for
    ``extension(...)`` more seconds, until the service's limit on total hidden time is reached."""

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

    Result: the batch with its current receipts (a renewal may have changed them).
    If the consumer stops instead, the driver throws :class:`ConsumerStopped` into the flow.
    """

    messages: tuple[Message, ...]
    renewal: Renewal | None = None


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
    """Count ``n`` messages under the metric ``name`` (one of :mod:`fluke_airflow.queues.metrics`'
    constants): what the rules decided, which the driver cannot see in the requests. Result: None."""

    name: str
    n: int


@dataclass(frozen=True)
class Now:
    """Read the driver's monotonic clock (the flows stay free of I/O and of real time). Result: seconds."""


class ConsumerStopped(Exception):
    """The consumer raised or closed the iterator while holding ``messages``."""

    def __init__(self, messages: Sequence[Message]) -> None:
        super().__init__(f"consumer stopped holding {len(messages)} message(s)")
        self.messages = list(messages)


class Cancelled(BaseException):
    """Thrown into a flow when what runs it is cancelled (a trigger cancelled or moved, a task
    killed): the flow may yield the steps that put back what it holds, then re-raises. Not an
    ``Exception``: a flow that lets failed requests pass does not let a cancellation pass."""


class HolderStopped(Exception):
    """Thrown into a renewal flow when its holder lets go; the flow returns the messages it holds."""


Step = Receive | Delete | SetVisibility | Sleep | Deliver | DeadLetter | Redrive | Tally | Overlap | Now
Flow = Generator[Step, Any, Any]
REQUESTS = (Receive, Delete, SetVisibility, DeadLetter, Redrive)
"""The steps that are requests to a service (an :class:`Overlap` runs several of the first three)."""
