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

import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from fluke_airflow.exceptions import DeliveryTooLarge
from fluke_airflow.polling import payloads
from fluke_airflow.polling.deliveries import deliveries
from fluke_airflow.polling.open import aopen_queue
from fluke_airflow.polling.settings import DeliverySettings
from fluke_airflow.queues import validation as check
from fluke_airflow.queues.flows import delete_flow
from fluke_airflow.queues.message import Message

log = logging.getLogger(__name__)

CLASSPATH = "fluke_airflow.triggers.poll.QueuePollTrigger"


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
        if (queue is None) == (queue_name is None):
            raise ValueError("give the queue to watch as queue (or, through MessageQueueTrigger, queue_name)")
        self.settings = DeliverySettings.checked(
            conn_id=conn_id,
            queue=queue if queue is not None else queue_name,
            batch_size=batch_size,
            num_messages=num_messages,
            pre_delivery_delete=pre_delivery_delete,
            visibility_timeout=visibility_timeout,
            poke_interval=poke_interval,
            wait_time_seconds=wait_time_seconds,
            message_encoding=message_encoding,
            max_delivery_bytes=max_delivery_bytes,
            max_receive_count=max_receive_count,
            dead_letter_queue=dead_letter_queue,
        )
        self.event_per_message = check.boolean("event_per_message", event_per_message)
        self.single_event = check.boolean("single_event", single_event)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        kwargs = self.settings.as_kwargs()
        kwargs.update(event_per_message=self.event_per_message, single_event=self.single_event)
        return CLASSPATH, kwargs

    @property
    def _task_mode(self) -> bool:
        return self.single_event or getattr(self, "task_instance", None) is not None

    # -- events ---------------------------------------------------------------------------------------
    def _task_event(self, messages: Sequence[Message], service: str) -> TriggerEvent:
        settings = self.settings
        return TriggerEvent(payloads.task_success(settings.queue, service, settings.pre_delivery_delete, messages))

    def _error_event(self, reason: str) -> TriggerEvent:
        return TriggerEvent(payloads.task_error(self.settings.queue, reason))

    def _watch_events(self, raw: dict[str, Any]) -> list[TriggerEvent]:
        return [TriggerEvent(p) for p in payloads.watch_events(raw, event_per_message=self.event_per_message)]

    # -- standalone run: task mode, and watch mode before Airflow 3.3 -------------------------------------
    async def run(self) -> AsyncIterator[TriggerEvent]:
        settings = self.settings
        try:
            queue = await aopen_queue(settings)
        except Exception as error:  # a missing connection (AirflowNotFoundException) too
            if not self._task_mode:
                raise
            yield self._error_event(str(error))
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
                for event in self._watch_events(payloads.delivery(settings.queue, queue.service, messages)):
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
            yield self._error_event(str(error))

    # -- shared stream (Airflow 3.3+): one poll per queue, deletes after persistence ---------------------
    def shared_stream_key(self) -> Any:
        if self._task_mode:
            return None
        return self.settings.stream_key()

    @classmethod
    def create_shared_stream_producer(cls, kwargs: dict[str, Any]) -> Any:
        # Imported here: the shared-stream API exists from Airflow 3.3 on, and only a 3.3+
        # triggerer calls this.
        from fluke_airflow.triggers.stream import QueueStreamProducer

        return QueueStreamProducer(DeliverySettings.pick(kwargs))

    async def filter_shared_stream(self, shared_stream: AsyncIterator[Any]) -> AsyncIterator[TriggerEvent]:
        async for raw in shared_stream:
            for event in self._watch_events(raw):
                yield event
