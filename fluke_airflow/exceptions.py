"""Errors raised by fluke_airflow, so callers can tell queue problems from their own bugs."""

from __future__ import annotations


class QueueError(Exception):
    """A queue operation failed at the service (after the SDK's own retries)."""


class QueueNotFoundError(QueueError, LookupError):
    """The named queue does not exist (or the credentials may not see it)."""

    def __init__(self, service: str, queue: str, detail: str = "") -> None:
        self.service = service
        self.queue = queue
        message = f"{service} queue {queue!r} does not exist or is not accessible with these credentials"
        super().__init__(f"{message}: {detail}" if detail else message)


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
}


def queue_failure(service: str, queue: str, action: str, detail: str) -> QueueError:
    """The error raised once the SDK's retries are spent: what failed, where, and what it left behind."""
    state = _STATE_AFTER.get(action)
    return QueueError(
        f"{action} on {service} queue {queue!r} failed after retries: {detail}" + (f"; {state}" if state else "")
    )


class MissingExtraError(ImportError):
    """A service was used whose extra (``amazon``, ``azure`` or ``all``) is not installed; the message
    names the missing modules and the pip command that installs them."""
