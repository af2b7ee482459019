"""The contract between the queue classes and a backend: what a transport does, one request each.

A backend (``sqs.py``, ``azure.py``) implements it twice, blocking and asyncio, over one sans-IO
half that builds requests and reads answers. The queue classes (:mod:`fluke_airflow.queues.base`)
decide which flow of :mod:`fluke_airflow.queues.flows` runs; the drivers
(:mod:`fluke_airflow.queues.drivers`) turn the flow's steps into these calls. A transport never
runs a flow itself: a service without a native peek or whose purge is refused says so in its
return value, and the queue class chooses the flow that stands in.

To add a third service, implement :class:`SyncTransport` and :class:`AsyncTransport` and a pair
of queue classes with the service's limits (see ``docs/architecture.rst``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextvars import ContextVar
from typing import Any, Protocol

from fluke_airflow.queues.message import Message

RECEIVE_SENT: ContextVar[float | None] = ContextVar("fluke_receive_sent", default=None)
"""When the attempt of a receive that answered was sent (``time.monotonic()``), where a transport can
tell (an SDK retries: a receive call may send several attempts, and the messages of its answer were
handed out after the last one was sent). The drivers reset it before each receive request and count
the messages' delete deadline from it (:func:`~fluke_airflow.queues.flows.delete_deadline`); unset,
from their own stamp before the call."""


def mark_receive_sent(**_: Any) -> None:
    """Record that a receive attempt is being sent now (a botocore ``before-send`` handler)."""
    RECEIVE_SENT.set(time.monotonic())


class TransportRules(Protocol):
    """The sans-IO half: request sizes and how pushes are prepared and split."""

    delete_chunk_size: int
    """Deliveries per delete request (SQS 10; Azure 1: no batch API)."""
    visibility_chunk_size: int
    receive_chunk_size: int
    """Messages one receive returns at most (SQS 10, Azure 32)."""
    late_delete_uncertain: bool
    """Whether a delete answered success may not have deleted once the message's visibility timeout
    ran out (SQS: "If you use an old ReceiptHandle, the request will succeed, but the message might not
    be deleted"); then the drivers time each answer (:class:`~fluke_airflow.queues.flows.DeleteAnswer`).
    Azure refuses a stale pop receipt (404), so its success proves the delete."""
    redrive: tuple[str, int] | None
    """What the service itself does with poison messages: (dead-letter queue, receives before the
    move), from an SQS queue's RedrivePolicy; None where nothing is configured (always on Azure)."""

    @property
    def ordered_sends(self) -> bool:
        """Whether push requests must go one after the other (an SQS FIFO queue keeps a group's order)."""

    @property
    def needs_deduplication_ids(self) -> bool:
        """Whether every push needs deduplication ids (an SQS FIFO queue without content-based deduplication)."""

    def prepare(self, messages: Sequence[str], options: dict[str, Any], *, single_message: bool = False) -> list[Any]:
        """Check bodies and push options (before anything is sent) and build one entry per message."""

    def send_chunks(self, entries: list[Any]) -> list[list[Any]]:
        """Split entries into send requests within the service's limits."""

    def redrive_entries(self, messages: Sequence[Message]) -> list[Any]:
        """Send entries (as :meth:`prepare` builds them) for ``messages``, dead letters that come back
        to this queue, their source."""

    def dead_letter_options(self, messages: Sequence[Message], *, reason: str = "", source: str = "") -> dict[str, Any]:
        """Push options when this queue takes ``messages`` as dead letters from ``source`` (e.g. a
        FIFO group, and ``reason`` where the service can carry it)."""


class SyncTransport(TransportRules, Protocol):
    """One request per call, blocking."""

    def send_batch(self, chunk: Sequence[Any]) -> list[str | None]:
        """Send one chunk of :meth:`send_chunks`; the service's message id of each entry, ``None``
        where it was refused (failures logged, not raised)."""

    def receive(self, max_messages: int, visibility_timeout: int, wait_seconds: int) -> list[Message]:
        """Receive up to ``max_messages`` (capped at the service's limit); raises QueueError."""

    def delete_batch(self, messages: Sequence[Message]) -> list[bool]: ...

    def set_visibility_batch(self, messages: Sequence[Message], timeout: int) -> list[Message | None]:
        """The messages whose change succeeded, with their current receipts; ``None`` for a failure."""

    def peek(self, limit: int) -> list[str] | None:
        """Up to ``limit`` bodies without receiving them, or ``None``: the service has no peek."""

    def count(self) -> int: ...

    def purge(self) -> bool:
        """Delete every message; ``False`` if the service refuses for now (then the queue drains)."""

    def close(self) -> None: ...


class AsyncTransport(TransportRules, Protocol):
    """The asyncio flavour of :class:`SyncTransport`."""

    async def send_batch(self, chunk: Sequence[Any]) -> list[str | None]: ...
    async def receive(self, max_messages: int, visibility_timeout: int, wait_seconds: int) -> list[Message]: ...
    async def delete_batch(self, messages: Sequence[Message]) -> list[bool]: ...
    async def set_visibility_batch(self, messages: Sequence[Message], timeout: int) -> list[Message | None]: ...
    async def peek(self, limit: int) -> list[str] | None: ...
    async def count(self) -> int: ...
    async def purge(self) -> bool: ...
    async def close(self, *, discard: bool = False) -> None:
        """Close; ``discard``: the connection is suspect, a shared client is retired (see ClientShare)."""
