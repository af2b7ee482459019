"""What a receive returns: a body, its metadata, and what the service needs to delete or hide it again."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

SQS_SYSTEM_ATTRIBUTES = (
    "SentTimestamp",
    "ApproximateFirstReceiveTimestamp",
    "ApproximateReceiveCount",
    "MessageGroupId",
    "MessageDeduplicationId",
    "SequenceNumber",
    "AWSTraceHeader",
)
"""The SQS system attributes a message's ``metadata`` keeps (as SQS reports them: strings)."""
AZURE_METADATA = ("inserted_on", "expires_on", "next_visible_on", "dequeue_count")
"""Azure's metadata of a message (times as ISO 8601 text)."""


def _attributes_to_json(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """SQS message attributes as JSON can carry them: a Binary value as base64 text."""
    out: dict[str, Any] = {}
    for name, value in attributes.items():
        value = dict(value)
        if isinstance(value.get("BinaryValue"), (bytes, bytearray)):
            value["BinaryValue"] = base64.b64encode(value["BinaryValue"]).decode("ascii")
        out[name] = value
    return out


def _attributes_from_json(attributes: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in dict(attributes or {}).items():
        value = dict(value)
        if isinstance(value.get("BinaryValue"), str):
            value["BinaryValue"] = base64.b64decode(value["BinaryValue"])
        out[name] = value
    return out


@dataclass(frozen=True)
class Message:
    """A received message.

    ``body``, ``receipt``, ``metadata`` and ``message_attributes`` are left out of the ``repr``, so
    that logging a message (or a list of them) never writes message data or delete tokens to a log.
    """

    id: str
    body: str = field(repr=False)
    receipt: str = field(repr=False)
    """SQS receipt handle or Azure pop receipt: the token that deletes this delivery."""
    receive_count: int = 0
    """How often the service has handed this message out (SQS ApproximateReceiveCount, Azure dequeue_count)."""
    metadata: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False, hash=False)
    """What the service says about the message: on SQS its system attributes
    (:data:`SQS_SYSTEM_ATTRIBUTES`, as strings: ``SentTimestamp`` in milliseconds since 1970...);
    on Azure :data:`AZURE_METADATA`."""
    message_attributes: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False, hash=False)
    """SQS message attributes, ``{"name": {"DataType": ..., "StringValue" | "BinaryValue": ...}}``
    (empty on Azure, which has none)."""
    received_at: float = field(default=0.0, repr=False, compare=False, hash=False)
    """``time.time()`` when this delivery was received (0: unknown); for the hand-off timer."""
    delete_by: float = field(default=0.0, repr=False, compare=False, hash=False)
    """A delete of this delivery answered by then (the driver's monotonic clock) was carried out in
    time: the visibility deadline, counted from before the request that hid it was sent, less a
    safety margin (:func:`fluke_airflow.queues.flows.delete_deadline`). 0: unknown. Set by the
    driver on receives and visibility changes; not carried by :meth:`to_dict` (another process has
    another clock)."""

    def with_receipt(self, receipt: str) -> Message:
        """The same delivery under a new receipt (Azure issues one on every visibility change)."""
        return replace(self, receipt=receipt)

    @property
    def sent_at(self) -> datetime | None:
        """When the message was sent (SQS ``SentTimestamp``, Azure ``inserted_on``), if known."""
        sent = self.metadata.get("SentTimestamp")
        if sent is not None:
            return datetime.fromtimestamp(int(sent) / 1000, tz=timezone.utc)
        inserted = self.metadata.get("inserted_on")
        return datetime.fromisoformat(inserted) if isinstance(inserted, str) else None

    def public(self) -> dict[str, Any]:
        """Plain-JSON form without the receipt: for XCom and asset events, which leave the worker or
        the triggerer (a receipt is of no use there, and deletes the message)."""
        out: dict[str, Any] = {"id": self.id, "body": self.body, "receive_count": self.receive_count}
        if self.metadata:
            out["metadata"] = dict(self.metadata)
        if self.message_attributes:
            out["message_attributes"] = _attributes_to_json(self.message_attributes)
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form with the receipt, for the worker that deletes (a deferred sensor's event)."""
        return {**self.public(), "receipt": self.receipt, "received_at": self.received_at}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Message:
        return cls(
            id=str(data["id"]),
            body=str(data["body"]),
            receipt=str(data["receipt"]),
            receive_count=int(data.get("receive_count", 0)),
            metadata=dict(data.get("metadata") or {}),
            message_attributes=_attributes_from_json(data.get("message_attributes")),
            received_at=float(data.get("received_at") or 0.0),
        )


def latest_receipts(messages: Sequence[Message], renewed: Sequence[Message]) -> list[Message]:
    """``messages`` with the receipts that a visibility change handed back for some of them.

    Azure issues a new pop receipt on every visibility change and voids the old one; the delete
    must use the newest. Messages the change did not return keep theirs.
    """
    latest = {m.id: m for m in renewed}
    return [latest.get(m.id, m) for m in messages]
