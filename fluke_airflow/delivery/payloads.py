"""What trigger events and asset events carry.

Task mode (a deferred sensor): one event with the messages and their receipts, which the worker
needs to delete them. Watch mode (an AssetWatcher): the messages without receipts (of no use
downstream), one event per delivery or per message. Every payload's ``repr`` leaves the bodies
out: the triggerer logs each event it fires at INFO, and bodies are data.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fluke_airflow.queues.message import Message


class EventPayload(dict[str, Any]):
    """A trigger event's payload whose ``repr`` leaves out message bodies; it serialises as a plain dict."""

    def __repr__(self) -> str:
        shown = {k: v for k, v in self.items() if k not in ("messages", "message")}
        if "messages" in self:
            shown["messages"] = f"<{len(self['messages'])} message(s)>"
        if "message" in self:
            shown["message"] = f"<message {self['message'].get('id')}>"
        return repr(shown)


def public(message: Message) -> dict[str, Any]:
    """A message as it appears in an asset event or XCom: no receipt (:meth:`Message.public`)."""
    return message.public()


def task_success(queue: str, service: str, pre_delivery_delete: bool, messages: Sequence[Message]) -> EventPayload:
    return EventPayload(
        status="success",
        queue=queue,
        service=service,
        pre_delivery_delete=pre_delivery_delete,
        messages=[m.to_dict() for m in messages],
    )


def task_error(queue: str, reason: str) -> dict[str, Any]:
    return {"status": "error", "queue": queue, "message": reason}


def delivery(queue: str, service: str, messages: Sequence[Message], seq: int | None = None) -> dict[str, Any]:
    """A delivery in watch mode, before it becomes the events of each watcher (the shared stream's
    raw event, which stays in the triggerer: the messages themselves, which each watcher filters;
    ``seq`` tells the poll loop which delivery a watcher's report is about)."""
    raw: dict[str, Any] = {"queue": queue, "service": service, "messages": list(messages)}
    if seq is not None:
        raw["delivery"] = seq
    return raw


def watch_events(raw: dict[str, Any], messages: Sequence[Message], *, event_per_message: bool) -> list[EventPayload]:
    """The asset-event payloads of ``messages`` (what a watcher took of ``raw``): one, or one per message."""
    base = {"queue": raw["queue"], "service": raw["service"]}
    if event_per_message:
        return [EventPayload(base, message=public(m)) for m in messages]
    return [EventPayload(base, messages=[public(m) for m in messages])]
