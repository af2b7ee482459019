"""QueuePollTrigger: wait for messages in the triggerer, for a deferred sensor or an AssetWatcher.

Two ways it runs:

* **Task mode** (a deferred :class:`~fluke_airflow.sensors.QueuePollSensor`): one delivery,
  one event, done. With post-delivery delete the messages stay hidden and travel to the
  worker with their receipts; the worker deletes them once they are stored as XCom.
* **Watch mode** (``AssetWatcher``): forever, one event per delivery (or per message). On
  Airflow 3.3+ the triggerer's shared-stream *ack mode* runs the polling: one poll loop per
  queue however many assets watch it, and post-delivery deletes happen in ``advance()``,
  i.e. only once every asset event derived from the messages is persisted. On older Airflow 3
  releases the trigger deletes right after handing the event to the triggerer, before the
  triggerer has stored it: a triggerer crash in that short window loses those messages (see
  the docs).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import random
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from fluke_airflow._args import check_dead_letter_args
from fluke_airflow.exceptions import QueueError, QueueNotFoundError
from fluke_airflow.queues.flows import DeliveryTooLarge, collect_flow, delete_flow
from fluke_airflow.queues.message import Message

log = logging.getLogger(__name__)

CLASSPATH = "fluke_airflow.triggers.poll.QueuePollTrigger"
MAX_BACKOFF = 60.0


@dataclass(frozen=True)
class PollSettings:
    """Everything that decides what the trigger receives; serialised as the trigger's kwargs."""

    conn_id: str
    queue: str
    batch_size: int = 10
    num_messages: int | None = None
    pre_delivery_delete: bool = False
    visibility_timeout: int = 600  # longer than the triggerer's default shared-stream ack timeout (300 s)
    poke_interval: float = 5.0
    wait_time_seconds: int = 20
    message_encoding: str | None = None
    max_delivery_bytes: int | None = None
    max_receive_count: int | None = None
    dead_letter_queue: str | None = None

    @property
    def per_delivery(self) -> int:
        return self.num_messages or self.batch_size

    def stream_key(self) -> tuple[Any, ...]:
        return ("fluke_airflow.queue", *asdict(self).values())


_SDK_MODULES = (
    "fluke_airflow.hooks.sqs",
    "fluke_airflow.hooks.azure",
    "aiobotocore.session",
    "azure.storage.queue.aio",
)


def _import_sdks() -> None:
    """Import the hooks and async SDKs a first poll needs (1-2 s)."""
    for module in _SDK_MODULES:
        importlib.import_module(module)


_sdk_import: asyncio.Future[None] | None = None


async def sdks_imported() -> None:
    """Import the SDKs once per process, in a worker thread; every trigger awaits that one import.

    Imported on the triggerer's event loop, they would stall every trigger there; imported by a
    thread per trigger, a restarted triggerer's triggers would race each other's imports.
    """
    global _sdk_import
    if all(name in sys.modules for name in _SDK_MODULES):
        return
    if _sdk_import is None or _sdk_import.get_loop() is not asyncio.get_running_loop() or _sdk_import.cancelled():
        _sdk_import = asyncio.ensure_future(asyncio.to_thread(_import_sdks))
    await asyncio.shield(_sdk_import)


async def _open_queue(settings: PollSettings) -> Any:
    from fluke_airflow.hooks import aget_queue_hook

    await sdks_imported()
    hook = await aget_queue_hook(settings.conn_id)
    kwargs: dict[str, Any] = {"suppress_output": True}
    if settings.message_encoding:
        kwargs["message_encoding"] = settings.message_encoding
    # One client per connection for all triggers of the triggerer (memory grows with clients).
    queue = await hook.aget_queue(settings.queue, share_client=True, **kwargs)
    queue.check_visibility_timeout(settings.visibility_timeout)
    await queue.open()
    if settings.dead_letter_queue:
        await queue.attach_dead_letter_queue(settings.dead_letter_queue)
    return queue


async def deliveries(queue: Any, settings: PollSettings) -> AsyncIterator[list[Message]]:
    """Deliveries from ``queue``, forever: long-poll (SQS) or poll every ``poke_interval`` (Azure),
    riding out service errors with capped exponential backoff."""
    failures = 0
    name = settings.queue
    polled = False
    while True:
        try:
            messages: list[Message] = await queue.run_flow(
                collect_flow(
                    settings.per_delivery,
                    queue=name,
                    visibility_timeout=settings.visibility_timeout,
                    wait_seconds=settings.wait_time_seconds if queue.long_polling else 0,
                    pre_delivery_delete=settings.pre_delivery_delete,
                    max_bytes=settings.max_delivery_bytes,
                    max_receive_count=settings.max_receive_count,
                    dead_letter_queue=settings.dead_letter_queue,
                    per_request=queue.receive_limit,
                )
            )
        except (QueueNotFoundError, DeliveryTooLarge):
            raise
        except QueueError as error:
            failures += 1
            delay = min(MAX_BACKOFF, 2 ** min(failures, 6)) * random.uniform(0.5, 1.0)
            log.warning("Polling %s queue %r failed (%s); retrying in %.1fs", queue.service, name, error, delay)
            await asyncio.sleep(delay)
            continue
        if not polled:
            polled = True
            log.info("First receive from %s queue %r done: polling", queue.service, name)
        if failures:
            log.info("Polling %s queue %r works again after %d failure(s)", queue.service, name, failures)
            failures = 0
        if messages:
            log.info("Received %d message(s) from %s queue %r", len(messages), queue.service, name)
            yield messages
        elif not queue.long_polling:
            await asyncio.sleep(settings.poke_interval)


class EventPayload(dict):  # type: ignore[type-arg]
    """A trigger event's payload whose ``repr`` leaves out message bodies.

    The triggerer logs every event it fires (``Trigger fired event ... result=<repr>``) at
    INFO; bodies are data and must not reach logs above DEBUG. It serialises as a plain dict.
    """

    def __repr__(self) -> str:
        shown = {k: v for k, v in self.items() if k not in ("messages", "message")}
        if "messages" in self:
            shown["messages"] = f"<{len(self['messages'])} message(s)>"
        if "message" in self:
            shown["message"] = f"<message {self['message'].get('id')}>"
        return repr(shown)


def _public(message: Message) -> dict[str, Any]:
    """A message as it appears in an asset event: no receipt (it is of no use downstream)."""
    return {"id": message.id, "body": message.body, "receive_count": message.receive_count}


class QueuePollTrigger(BaseEventTrigger):
    """Fire when messages arrive in ``queue`` of the connection ``conn_id``.

    :param conn_id: ``aws``, ``azure_storage_queue`` or ``wasb`` connection id.
    :param queue: queue name (SQS: a name or queue URL).
    :param queue_name: the same, for ``MessageQueueTrigger(scheme="fluke", queue_name=...)``.
    :param batch_size: messages per delivery when ``num_messages`` is not set.
    :param num_messages: messages per delivery (received in several requests if needed).
    :param pre_delivery_delete: delete before the event fires (at most once).
    :param visibility_timeout: seconds received messages stay hidden while being handed over.
    :param poke_interval: seconds between polls of an empty queue where the service has no
        long polling (Azure). SQS waits at the service instead.
    :param wait_time_seconds: SQS long-poll wait (1-20): idle cost is one request per wait.
    :param message_encoding: Azure only, ``"text"`` or ``"base64"`` (default: the connection's).
    :param event_per_message: watch mode: one asset event per message instead of one per delivery.
        (Airflow may fold events that arrive between two scheduler loops into one DAG run; its
        ``triggering_asset_events`` then list each of them.)
    :param single_event: stop after the first event (set by the sensor; automatic for deferred tasks).
    :param max_delivery_bytes: refuse a delivery whose bodies add up to more (released, not deleted).
    :param max_receive_count: with ``dead_letter_queue``: messages received more often than this
        are moved there (and logged by id) instead of delivered.
    :param dead_letter_queue: the queue (same connection) that takes poison messages.
    """

    def __init__(
        self,
        conn_id: str,
        queue: str | None = None,
        *,
        queue_name: str | None = None,
        batch_size: int = 10,
        num_messages: int | None = None,
        pre_delivery_delete: bool = False,
        visibility_timeout: int = 600,
        poke_interval: float = 5.0,
        wait_time_seconds: int = 20,
        message_encoding: str | None = None,
        event_per_message: bool = False,
        single_event: bool = False,
        max_delivery_bytes: int | None = None,
        max_receive_count: int | None = None,
        dead_letter_queue: str | None = None,
    ) -> None:
        super().__init__()
        from fluke_airflow.queues import validation as check

        if (queue is None) == (queue_name is None):
            raise ValueError("give the queue to watch as queue (or, through MessageQueueTrigger, queue_name)")
        queue = check.non_empty_str("queue", queue if queue is not None else queue_name)
        check.non_empty_str("conn_id", conn_id)

        check.positive_int("batch_size", batch_size)
        check.positive_int("num_messages", num_messages, allow_none=True)
        check.boolean("pre_delivery_delete", pre_delivery_delete)
        check.non_negative_int("visibility_timeout", visibility_timeout, maximum=7 * 24 * 3600)
        check.non_negative_number("poke_interval", poke_interval)
        check.non_negative_int("wait_time_seconds", wait_time_seconds, maximum=20)
        if message_encoding not in (None, "text", "base64"):
            raise ValueError(f"message_encoding must be 'text', 'base64' or None, got {message_encoding!r}")
        self.settings = PollSettings(
            conn_id=conn_id,
            queue=queue,
            batch_size=batch_size,
            num_messages=num_messages,
            pre_delivery_delete=pre_delivery_delete,
            visibility_timeout=visibility_timeout,
            poke_interval=float(poke_interval),
            wait_time_seconds=wait_time_seconds,
            message_encoding=message_encoding,
            max_delivery_bytes=check.positive_int("max_delivery_bytes", max_delivery_bytes, allow_none=True),
            max_receive_count=check.positive_int("max_receive_count", max_receive_count, allow_none=True),
            dead_letter_queue=dead_letter_queue,
        )
        check_dead_letter_args(max_receive_count, dead_letter_queue)
        self.event_per_message = check.boolean("event_per_message", event_per_message)
        self.single_event = check.boolean("single_event", single_event)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        kwargs = asdict(self.settings)
        kwargs.update(event_per_message=self.event_per_message, single_event=self.single_event)
        return CLASSPATH, kwargs

    @property
    def _task_mode(self) -> bool:
        return self.single_event or getattr(self, "task_instance", None) is not None

    # -- events ---------------------------------------------------------------------------------------
    def _task_event(self, messages: Sequence[Message], service: str) -> TriggerEvent:
        return TriggerEvent(
            EventPayload(
                status="success",
                queue=self.settings.queue,
                service=service,
                pre_delivery_delete=self.settings.pre_delivery_delete,
                messages=[m.to_dict() for m in messages],
            )
        )

    def _watch_events(self, raw: dict[str, Any]) -> list[TriggerEvent]:
        base = {"queue": raw["queue"], "service": raw["service"]}
        if self.event_per_message:
            return [TriggerEvent(EventPayload(base, message=m)) for m in raw["messages"]]
        return [TriggerEvent(EventPayload(base, messages=raw["messages"]))]

    # -- standalone run: task mode, and watch mode before Airflow 3.3 -------------------------------------
    async def run(self) -> AsyncIterator[TriggerEvent]:
        settings = self.settings
        try:
            queue = await _open_queue(settings)
        except Exception as error:  # a missing connection (AirflowNotFoundException) too
            if not self._task_mode:
                raise
            yield TriggerEvent({"status": "error", "queue": settings.queue, "message": str(error)})
            return
        log.info("Waiting for messages on %s queue %r (connection %r)", queue.service, settings.queue, settings.conn_id)
        try:
            async for messages in self._deliveries_or_error(queue):
                if isinstance(messages, TriggerEvent):
                    yield messages
                    return
                if self._task_mode:
                    yield self._task_event(messages, queue.service)
                    return
                raw = {"queue": settings.queue, "service": queue.service, "messages": [_public(m) for m in messages]}
                for event in self._watch_events(raw):
                    yield event
                if not settings.pre_delivery_delete:
                    # No ack channel before Airflow 3.3: the events are with the triggerer now.
                    await queue.run_flow(delete_flow(messages, queue=settings.queue))
        finally:
            await queue.close()

    async def _deliveries_or_error(self, queue: Any) -> AsyncIterator[Any]:
        """Deliveries; in task mode a refused delivery becomes an error event for the sensor."""
        try:
            async for messages in deliveries(queue, self.settings):
                yield messages
        except DeliveryTooLarge as error:
            if not self._task_mode:
                raise
            yield TriggerEvent({"status": "error", "queue": self.settings.queue, "message": str(error)})

    # -- shared stream (Airflow 3.3+): one poll per queue, deletes after persistence ---------------------
    def shared_stream_key(self) -> Any:
        if self._task_mode:
            return None
        return self.settings.stream_key()

    @classmethod
    def create_shared_stream_producer(cls, kwargs: dict[str, Any]) -> Any:
        from fluke_airflow.triggers.stream import QueueStreamProducer

        fields = set(PollSettings.__dataclass_fields__)
        return QueueStreamProducer(PollSettings(**{k: v for k, v in kwargs.items() if k in fields}))

    async def filter_shared_stream(self, shared_stream: AsyncIterator[Any]) -> AsyncIterator[TriggerEvent]:
        async for raw in shared_stream:
            for event in self._watch_events(raw):
                yield event
