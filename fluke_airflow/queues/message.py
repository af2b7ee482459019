"""What a receive returns: a body plus what the service needs to delete or hide it again."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class Message:
    """A received message.

    ``body`` and ``receipt`` are left out of the ``repr`` so that logging a message
    (or a list of them) never writes message data or delete tokens to a log.
    """

    id: str
    body: str = field(repr=False)
    receipt: str = field(repr=False)
    """SQS receipt handle or Azure pop receipt: the token that deletes this delivery."""
    receive_count: int = 0
    """How often the service has handed this message out (SQS ApproximateReceiveCount, Azure dequeue_count)."""

    def with_receipt(self, receipt: str) -> Message:
        """The same delivery under a new receipt (Azure issues one on every visibility change)."""
        return replace(self, receipt=receipt)

    def to_dict(self) -> dict[str, object]:
        """Plain-JSON form, for trigger events and XCom."""
        return {"id": self.id, "body": self.body, "receipt": self.receipt, "receive_count": self.receive_count}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Message:
        return cls(
            id=str(data["id"]),
            body=str(data["body"]),
            receipt=str(data["receipt"]),
            receive_count=int(data.get("receive_count", 0)),  # type: ignore[call-overload]
        )


def latest_receipts(messages: Sequence[Message], renewed: Sequence[Message]) -> list[Message]:
    """``messages`` with the receipts that a visibility change handed back for some of them.

    Azure issues a new pop receipt on every visibility change and voids the old one; the delete
    must use the newest. Messages the change did not return keep theirs.
    """
    latest = {m.id: m for m in renewed}
    return [latest.get(m.id, m) for m in messages]
