"""What trigger events and asset events carry.

Task mode (a deferred sensor): one event with the messages and their receipts, which the worker
needs to delete them. Watch mode (an AssetWatcher): the messages without receipts (of no use
downstream), one event per delivery or per message. Every payload's ``repr`` leaves the bodies
out: the triggerer logs each event it fires at INFO, and bodies are data.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
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


def delivery(
    queue: str, service: str, messages: Sequence[Message], seq: int | None = None, token: str | None = None
) -> dict[str, Any]:
    """A delivery in watch mode, before it becomes the events of each watcher (the shared stream's
    raw event, which stays in the triggerer: the messages themselves, which each watcher filters;
    ``seq`` tells the poll loop which delivery a watcher's report is about; ``token`` names the
    delivery in its events where the consumer runs decide its fate, ``delete_on_dag_success``)."""
    raw: dict[str, Any] = {"queue": queue, "service": service, "messages": list(messages)}
    if seq is not None:
        raw["delivery"] = seq
    if token is not None:
        raw[TOKEN] = token
    return raw


TOKEN = "delivery_token"
"""The payload key naming a ``delete_on_dag_success`` delivery: this provider's listener records, under
it, which run took the event (:mod:`fluke_airflow.plugins.runs`)."""


def watch_events(raw: dict[str, Any], messages: Sequence[Message], *, event_per_message: bool) -> list[EventPayload]:
    """The asset-event payloads of ``messages`` (what a watcher took of ``raw``): one, or one per message."""
    base = {"queue": raw["queue"], "service": raw["service"]}
    if raw.get(TOKEN):
        base[TOKEN] = raw[TOKEN]
    if event_per_message:
        return [EventPayload(base, message=public(m)) for m in messages]
    return [EventPayload(base, messages=[public(m) for m in messages])]


# -- a run's messages, in the order of its mapped task's map indexes -----------------------------------------
EventView = tuple[Any, str, str, Any]
"""One asset event a run consumed: (timestamp, asset name, asset uri, trigger payload or None)."""


def ordered_messages(events: Iterable[EventView]) -> list[tuple[str | None, dict[str, Any]]]:
    """(delivery token, message) for every queue message of a run's asset events, each message id
    once, in one order that the task side (:func:`queue_messages`) and the scheduler side (the
    listener) both derive from the events alone: by event timestamp, then delivery token, asset
    name and uri, then the message's place in its event. Map index *i* of a task mapped over
    them is message *i*."""

    def key(event: EventView) -> tuple[Any, str, str, str]:
        payload = event[3] if isinstance(event[3], dict) else {}
        return event[0], str(payload.get(TOKEN) or ""), event[1] or "", event[2] or ""

    seen: set[str] = set()
    ordered: list[tuple[str | None, dict[str, Any]]] = []
    for event in sorted(events, key=key):
        payload = event[3]
        if not isinstance(payload, dict) or not isinstance(payload.get("queue"), str):
            continue  # not a queue watcher's event
        messages = [payload["message"]] if "message" in payload else payload.get("messages") or []
        for message in messages:
            if isinstance(message, dict) and str(message.get("id")) not in seen:
                seen.add(str(message.get("id")))
                ordered.append((payload.get(TOKEN), message))
    return ordered


def queue_messages(triggering_asset_events: Any) -> list[dict[str, Any]]:
    """The queue messages that started this DAG run, each once, in the order the watcher's
    ``message_task_id`` reads map indexes: map a task over them and task instance *i* processes
    message *i* (``id``, ``body``, ``receive_count``, the service's metadata). Pass the task's
    ``triggering_asset_events``."""
    events = [
        (event.timestamp, getattr(event.asset, "name", ""), getattr(event.asset, "uri", ""),
         (event.extra or {}).get("payload"))
        for events in triggering_asset_events.values()
        for event in events
    ]  # fmt: skip
    return [message for _, message in ordered_messages(events)]
