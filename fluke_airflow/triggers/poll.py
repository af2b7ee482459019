"""QueuePollTrigger: wait for messages in the triggerer, for a deferred sensor or an AssetWatcher.

Two ways it runs:

* **Task mode** (a deferred :class:`~fluke_airflow.sensors.QueuePollSensor`): one delivery,
  one event, done. With post-delivery delete the messages stay hidden and travel to the
  worker with their receipts; the worker deletes them once they are stored as XCom.
* **Watch mode** (``AssetWatcher``): forever, one asset event per batch (or per message), each
  only once the consumer DAGs (``dag_ids``) have started a run for the one before
  (:mod:`~fluke_airflow.triggers.pacing`), so that every message reaches a run and a backlog
  waits in the queue. On Airflow 3.3+ the triggerer's shared stream in *ack mode* runs the
  polling (:mod:`~fluke_airflow.triggers.stream`): one poll loop per queue in a triggerer, and
  the messages are deleted once their asset events are stored. Before 3.3 the trigger's own
  ``run()`` deletes them once the consumer DAGs have started their run (which implies the
  event was stored).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from fluke_airflow import _airflow
from fluke_airflow.exceptions import DeliveryTooLarge
from fluke_airflow.polling import payloads
from fluke_airflow.polling.deliveries import Held, deliveries, stopped
from fluke_airflow.polling.health import health_lines, watcher_name
from fluke_airflow.polling.open import aopen_queue
from fluke_airflow.polling.settings import DEFAULT_MAX_RETRY_DELAY, DEFAULT_RETRY_DELAY, DeliverySettings
from fluke_airflow.queues import validation as check
from fluke_airflow.queues.flows import delete_flow
from fluke_airflow.queues.message import Message
from fluke_airflow.triggers.pacing import RunGate
from fluke_airflow.triggers.watch import WatchSettings, watch_batches

log = logging.getLogger(__name__)

CLASSPATH = "fluke_airflow.triggers.poll.QueuePollTrigger"


class QueuePollTrigger(BaseEventTrigger):
    """Fire when messages arrive in ``queue`` of the connection ``conn_id``.

    :param conn_id: ``aws``, ``azure_storage_queue`` or ``wasb`` connection id.
    :param queue: queue name (SQS: a name or queue URL).
    :param queue_name: the same, for ``MessageQueueTrigger(scheme="fluke", queue_name=...)``.
    :param dag_ids: watch mode: the DAG(s) scheduled on the watcher's asset. The watcher takes
        the next messages only once each of them has started a run for the last event: every
        message reaches a run, and a backlog waits in the queue (back-pressure). Required on
        Airflow before 3.4 (see the docs); without it, events are fired as fast as messages come.
    :param batch_size: messages per delivery when ``num_messages`` is not set (default 100 for a
        watcher: a burst becomes few runs; the sensor passes its own, 10).
    :param num_messages: messages per delivery (received in several requests if needed).
    :param max_batching_window: watch mode: after the first message of a batch, keep gathering
        for up to this many seconds (0 to 300, default 0) while the batch is not full.
    :param pre_delivery_delete: delete before the event fires (at most once).
    :param visibility_timeout: seconds received messages stay hidden while being handed over.
    :param poke_interval: seconds between polls of an empty queue where the service has no
        long polling (Azure). SQS waits at the service instead.
    :param wait_time_seconds: SQS long-poll wait (1-20): idle cost is one request per wait.
    :param message_encoding: Azure only, ``"text"`` or ``"base64"`` (default: the connection's).
    :param event_per_message: watch mode: one asset event, and so one DAG run, per message (in
        the queue's order), instead of one per batch.
    :param single_event: stop after the first event (set by the sensor; automatic for deferred tasks).
    :param max_delivery_bytes: task mode: refuse a delivery whose bodies add up to more (released,
        not deleted). Watch mode: the most bytes of bodies in one event (default 1 MiB); the
        rest waits for the next event.
    :param max_receive_count: with ``dead_letter_queue``: messages received more often than this
        are moved there (and logged by id) instead of delivered.
    :param dead_letter_queue: the queue (same connection) that takes poison messages (and, with
        ``unmatched="dead_letter"``, the messages no filter takes).
    :param message_filtering: ``"literal"``, ``"jsonpath"`` or ``"jsonpath-ext"``: take only the
        messages that match, as the amazon provider's ``SqsSensor`` does (same parameter names).
    :param message_filtering_match_values: the values to match (see the docs).
    :param message_filtering_config: the JSONPath expression for the jsonpath filters.
    :param message_filtering_attributes: SQS message attributes that must hold one of the given
        values, ``{"name": "value"}`` or ``{"name": ["value", ...]}``.
    :param unmatched: what becomes of a message no filter takes: ``"leave"`` it in the queue (the
        default; visible again after ``visibility_timeout``), ``"delete"`` it, or ``"dead_letter"``
        it. Watchers sharing one poll loop must agree on it (it is part of the loop's key).
    :param retry_delay: messages that could not be handed to Airflow (an event not stored in time,
        a delivery over ``max_delivery_bytes``) stay hidden this long (seconds or a timedelta) before
        they come back (default 30 s).
    :param retry_exponential_backoff: ``True`` (default) doubles that delay for each earlier receive
        of a message; a number >= 1 multiplies it; ``False`` keeps it.
    :param max_retry_delay: the longest such delay (default 15 minutes).
    """

    def __init__(
        self,
        conn_id: str,
        queue: str | None = None,
        *,
        queue_name: str | None = None,
        dag_ids: list[str] | tuple[str, ...] | None = None,
        batch_size: int = 100,
        max_batching_window: float = 0,
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
        message_filtering: str | None = None,
        message_filtering_match_values: Any = None,
        message_filtering_config: Any = None,
        message_filtering_attributes: dict[str, Any] | None = None,
        unmatched: str = "leave",
        retry_delay: float | timedelta = DEFAULT_RETRY_DELAY,
        retry_exponential_backoff: bool | float = True,
        max_retry_delay: float | timedelta | None = DEFAULT_MAX_RETRY_DELAY,
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
            message_filtering=message_filtering,
            message_filtering_match_values=message_filtering_match_values,
            message_filtering_config=message_filtering_config,
            message_filtering_attributes=message_filtering_attributes,
            unmatched=unmatched,
            retry_delay=retry_delay,
            retry_exponential_backoff=retry_exponential_backoff,
            max_retry_delay=max_retry_delay,
        )
        self.single_event = check.boolean("single_event", single_event)
        self.watch = WatchSettings.checked(
            event_per_message=event_per_message,
            max_batching_window=max_batching_window,
            dag_ids=dag_ids,
            visibility_timeout=visibility_timeout,
            required_dag_ids=not self.single_event and _airflow.scheduler_strands_events(),
        )

    @property
    def event_per_message(self) -> bool:
        return self.watch.event_per_message

    def serialize(self) -> tuple[str, dict[str, Any]]:
        kwargs = self.settings.as_kwargs()
        kwargs.update(
            event_per_message=self.watch.event_per_message,
            single_event=self.single_event,
            max_batching_window=self.watch.max_batching_window,
            dag_ids=list(self.watch.dag_ids) if self.watch.dag_ids else None,
        )
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
            if self._task_mode:
                async for event in self._task_events(queue):
                    yield event
                    return
            else:
                async for event in self._watch(queue):
                    yield event
        finally:
            await queue.close()

    async def _task_events(self, queue: Any) -> AsyncIterator[TriggerEvent]:
        """One delivery as one event; a refused delivery becomes an error event for the sensor."""
        try:
            async with health_lines(queue, f"Waiting on {queue.service} queue {self.settings.queue!r}"):
                async for messages in deliveries(queue, self.settings):
                    yield self._task_event(messages, queue.service)
        except DeliveryTooLarge as error:
            yield self._error_event(str(error))

    async def _watch(self, queue: Any) -> AsyncIterator[TriggerEvent]:
        """Watch mode without a shared stream (Airflow before 3.3): there is no acknowledgement
        that the events were stored, so the messages stay hidden until the consumer DAGs have
        started their run (which they do only from stored events), and are deleted then.

        Cancelled (moved to another triggerer) before it yields a batch's events, it releases the
        batch at once; after, the events may be stored, so the batch stays hidden until its
        visibility timeout."""
        from fluke_airflow.triggers.delivered import asset_names
        from fluke_airflow.triggers.pollers import PollerRegistry, heartbeats

        settings = self.settings
        gate = RunGate(self.watch.dag_ids, settings.queue) if self.watch.dag_ids else None
        key = (*settings.stream_key(), *self.watch.stream_key())
        registry = PollerRegistry(
            settings.conn_id, settings.queue, key, lambda: (tuple(asset_names(self)), self.watch.dag_ids)
        )
        holding: list[Message] = []
        shown = [0]

        def gauge(*_: Any) -> None:  # messages.in_flight: received or held, sent when it changes
            if len(received) + len(holding) != shown[0]:
                shown[0] = len(received) + len(holding)
                queue.metrics.gauge("messages.in_flight", shown[0])

        received = Held(gauge)
        what = watcher_name(queue, settings)
        async with heartbeats(registry), health_lines(queue, what, lambda: len(received) + len(holding)):
            async for messages in watch_batches(queue, settings, self.watch, received):
                try:
                    before = await gate.snapshot() if gate else {}
                except BaseException as error:
                    await received.release(queue, settings.queue, stopped(error))
                    raise
                holding[:] = messages
                received.handed_on()
                gauge()
                async with queue.holding(messages, settings.visibility_timeout) as held:
                    for event in self._watch_events(payloads.delivery(settings.queue, queue.service, messages)):
                        yield event
                    if gate:
                        await gate.consumed(before)
                if not settings.pre_delivery_delete:
                    await queue.run_flow(delete_flow(held.messages, queue=settings.queue))
                holding.clear()
                gauge()

    # -- shared stream (Airflow 3.3+): one poll per queue, deletes after persistence ---------------------
    def shared_stream_key(self) -> Any:
        if self._task_mode:
            return None
        return (*self.settings.stream_key(), *self.watch.stream_key())

    @classmethod
    def create_shared_stream_producer(cls, kwargs: dict[str, Any]) -> Any:
        # Imported here: the shared-stream API exists from Airflow 3.3 on, and only a 3.3+
        # triggerer calls this.
        from fluke_airflow.triggers.stream import QueueStreamProducer

        trigger = cls(**kwargs)
        return QueueStreamProducer(trigger.settings, trigger.watch, trigger.shared_stream_key())

    async def filter_shared_stream(self, shared_stream: AsyncIterator[Any]) -> AsyncIterator[TriggerEvent]:
        from fluke_airflow.queues.filters import MessageFilter
        from fluke_airflow.queues.message import Message
        from fluke_airflow.triggers.delivered import asset_names
        from fluke_airflow.triggers.stream import watchers

        key = self.shared_stream_key()
        wanted = MessageFilter.build(*self.settings.filters().values())
        members = watchers(key)
        with members.join(self, self.watch.dag_ids, asset_names(self)):
            async for raw in shared_stream:
                messages = raw["messages"]
                if wanted.active:
                    messages = [m for m in messages if wanted.matches(Message.from_dict({**m, "receipt": ""}))]
                members.took(raw.get("delivery"), self, [m["id"] for m in messages])
                if messages:
                    for event in self._watch_events({**raw, "messages": messages}):
                        yield event
