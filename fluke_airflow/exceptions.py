"""Errors raised by fluke_airflow, so callers can tell queue problems from their own bugs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fluke_airflow.queues.management import Difference


class QueueError(Exception):
    """A queue operation failed at the service (after the SDK's own retries).

    Raised by :func:`queue_failure`, it also carries what the message says, for callers that
    decide by it: ``service``, ``queue``, ``conn_id``, ``action``, ``cause`` (a
    :class:`~fluke_airflow.queues.causes.Cause`) and ``retries``; ``None`` where unknown.
    """

    service: str | None = None
    queue: str | None = None
    conn_id: str | None = None
    action: str | None = None
    cause: Any = None
    retries: int | None = None


class QueueNotFoundError(QueueError, LookupError):
    """The named queue does not exist (or the credentials may not see it)."""

    def __init__(self, service: str, queue: str, detail: str = "", *, conn_id: str | None = None) -> None:
        self.service = service
        self.queue = queue
        self.conn_id = conn_id
        self.detail = detail
        where = f" (connection {conn_id!r})" if conn_id else ""
        message = f"{service} queue {queue!r}{where} does not exist or is not accessible with these credentials"
        super().__init__(f"{message}: {detail}" if detail else message)


class QueueSettingsConflict(QueueError, ValueError):
    """The queue exists with other settings than the create asked for. A create never changes an
    existing queue (neither service does); the message names each setting and both values."""

    def __init__(self, service: str, queue: str, differences: Sequence[Difference], remedy: str) -> None:
        self.service = service
        self.queue = queue
        self.differences = list(differences)

        def shown(value: str | None) -> str:
            return "none" if value is None else repr(value)

        listed = "; ".join(
            f"{d.setting}: {shown(d.existing)} on the queue, {shown(d.requested)} asked for" for d in differences
        )
        super().__init__(f"{service} queue {queue!r} already exists with other settings ({listed}). {remedy}")


class QueueClosedError(QueueError):
    """An operation was attempted on a queue object that is not open."""


class DeliveryTooLarge(QueueError, ValueError):
    """A delivery (a sensor's XCom, a trigger's event) would carry more bytes than allowed; its
    messages were released, nothing was deleted."""


class ReceiveStalled(QueueError):
    """A receive did not answer within its wait plus the allowed grace (a stuck connection); the
    messages it may have taken stay hidden until their visibility timeout, then come back."""


_STATE_AFTER = {
    "opening": "nothing was sent, received or deleted",
    "receive": "this request received nothing, so no message changed state (batches delivered before keep theirs)",
    "peek": "nothing was received or changed",
    "count": "nothing was changed",
    "purge": "the queue may be partly cleared",
    "clear": "the queue may be partly cleared",
    "create": "the queue may or may not have been created",
    "delete": "the queue may or may not have been deleted",
}


def queue_failure(
    service: str,
    queue: str,
    action: str,
    detail: str,
    *,
    conn_id: str | None = None,
    retried: str = "",
    advice: str = "",
) -> QueueError:
    """The error raised once the SDK gave up: what failed, where (the connection too), how often it
    was tried (``retried``, e.g. ``" after 3 retries over 84.2 s"``, empty when nothing was retried),
    why (``detail``), what it left behind, and what to check (``advice``)."""
    where = f" (connection {conn_id!r})" if conn_id else ""
    state = _STATE_AFTER.get(action)
    message = f"{action} on {service} queue {queue!r}{where} failed{retried}: {detail}"
    message += (f"; {state}" if state else "") + (f". {advice}" if advice else "")
    error = QueueError(message)
    error.service, error.queue, error.conn_id, error.action = service, queue, conn_id, action
    return error


class MissingExtraError(ImportError):
    """A service was used whose extra (``amazon``, ``azure`` or ``all``) is not installed; the message
    names the missing modules and the pip command that installs them."""
