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

from fluke_airflow import _airflow, _args
from fluke_airflow.delivery import payloads
from fluke_airflow.delivery.deliveries import deliveries, sensor_flow
from fluke_airflow.delivery.health import health_lines, watcher_name
from fluke_airflow.delivery.open import aopen_queue
from fluke_airflow.exceptions import DeliveryTooLarge
from fluke_airflow.queues import arguments
from fluke_airflow.queues.arguments import TRIGGER, DeliverySettings, WatchArguments
from fluke_airflow.queues.drivers import finish
from fluke_airflow.queues.message import Message
from fluke_airflow.queues.options import DeliveryOptions
from fluke_airflow.triggers.pacing import RunGate
from fluke_airflow.triggers.watch import KeepUntilRunsEnd, Watch

log = logging.getLogger(__name__)

CLASSPATH = "fluke_airflow.triggers.poll.QueuePollTrigger"


class QueuePollTrigger(BaseEventTrigger):
    """Fire when messages arrive in ``queue`` of the connection ``conn_id``.

    In a deferred sensor it fires once; in an ``AssetWatcher`` it fires one asset event per batch
    (or per message), forever. Every argument, as declared once in
    :mod:`fluke_airflow.queues.arguments`:

    :param queue_name: the same as ``queue``, for ``MessageQueueTrigger(scheme="fluke", queue_name=...)``.
    """

    __doc__ = f"{__doc__}{arguments.param_docs(TRIGGER)}"  # every argument, from its declaration

    def __new__(cls, *args: Any, **kwargs: Any) -> QueuePollTrigger:
        """Name the argument meant for a misspelt one (``dag_id``): Python's own TypeError, raised
        before ``__init__`` runs, says only which argument it did not expect."""
        _args.reject_misspelt(cls, kwargs)
        return super().__new__(cls)

    def __init__(
        self,
        conn_id: str,
        queue: str | None = None,
        *,
        queue_name: str | None = None,
        # -- generated arguments: trigger --
        batch_size: int = 100,
        num_messages: int | None = None,
        pre_delivery_delete: bool = False,
        visibility_timeout: int = 600,
        poke_interval: float = 5.0,
        wait_time_seconds: int = 20,
        message_encoding: str | None = None,
        max_delivery_bytes: int | None = None,
        max_batching_window: float = 0.0,
        max_receive_count: int | None = None,
        dead_letter_queue: str | None = None,
        message_filtering: str | None = None,
        message_filtering_match_values: Any = None,
        message_filtering_config: Any = None,
        message_filtering_attributes: dict[str, Any] | None = None,
        unmatched: str = "leave",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict[str, Any] | None = None,
        retry_delay: float | timedelta = 30.0,
        retry_exponential_backoff: bool | float = True,
        delete_on_dag_success: bool = False,
        max_retry_delay: float | timedelta | None = 900.0,
        dag_ids: list[str] | tuple[str, ...] | None = None,
        event_per_message: bool = False,
        message_task_id: str | None = None,
        single_event: bool = False,
        # -- end --
    ) -> None:
        passed = locals()
        super().__init__()
        if (queue is None) == (queue_name is None):
            raise ValueError("give the queue to watch as queue (or, through MessageQueueTrigger, queue_name)")
        given = {name: passed[name] for name in arguments.defaults(TRIGGER)}
        given["queue"] = queue if queue is not None else queue_name
        self.settings = DeliverySettings.checked(TRIGGER, _of(DeliverySettings, given))
        self.watch = WatchArguments(**arguments.check(TRIGGER, _of(WatchArguments, given), only=WatchArguments))
        if self.watch.dag_ids is None and not self.single_event and _airflow.scheduler_strands_events():
            raise ValueError(DAG_IDS_REQUIRED)
        arguments.check_watch(self.settings, self.watch)
        if self.settings.delete_on_dag_success and not self.single_event and not _airflow.has_asset_state_store():
            raise ValueError(
                "delete_on_dag_success=True on a watcher needs Airflow 3.3 or later: the watcher keeps what it "
                "handed over in the asset state store (AIP-103), which this Airflow does not have; use ack mode "
                "(the default) or a QueuePollSensor(delete_on_dag_success=True)"
            )

    @property
    def single_event(self) -> bool:
        return self.watch.single_event

    @property
    def event_per_message(self) -> bool:
        return self.watch.event_per_message

    def serialize(self) -> tuple[str, dict[str, Any]]:
        kwargs = self.settings.as_kwargs()
        kwargs.update(
            event_per_message=self.watch.event_per_message,
            single_event=self.watch.single_event,
            dag_ids=list(self.watch.dag_ids) if self.watch.dag_ids else None,
        )
        if self.watch.message_task_id is not None:
            kwargs["message_task_id"] = self.watch.message_task_id
        return CLASSPATH, kwargs

    @property
    def _task_mode(self) -> bool:
        return self.single_event or getattr(self, "task_instance", None) is not None

    def stream_key(self) -> tuple[Any, ...]:
        """What must be equal for watchers to share one poll loop (``dag_ids`` and filters need not be)."""
        return (*self.settings.stream_key(), self.watch.event_per_message, self.watch.message_task_id)

    # -- events ---------------------------------------------------------------------------------------
    def _task_event(self, messages: Sequence[Message], service: str) -> TriggerEvent:
        settings = self.settings
        return TriggerEvent(payloads.task_success(settings.queue, service, settings.pre_delivery_delete, messages))

    def _error_event(self, reason: str) -> TriggerEvent:
        return TriggerEvent(payloads.task_error(self.settings.queue, reason))

    def _watch_events(self, raw: dict[str, Any], messages: Sequence[Message]) -> list[TriggerEvent]:
        events = payloads.watch_events(raw, messages, event_per_message=self.event_per_message)
        return [TriggerEvent(p) for p in events]

    # -- standalone run: task mode, and watch mode before Airflow 3.3 -------------------------------------
    async def run(self) -> AsyncIterator[TriggerEvent]:
        settings = self.settings
        try:
            queue, options = await aopen_queue(settings, watch=not self._task_mode)
        except Exception as error:  # a missing connection (AirflowNotFoundException) too
            if not self._task_mode:
                raise
            yield self._error_event(str(error))
            return
        log.info("Waiting for messages on %s queue %r (connection %r)", queue.service, settings.queue, settings.conn_id)
        try:
            if self._task_mode:
                async for event in self._task_events(queue, options):
                    yield event
                    return
            else:
                async for event in self._watch(queue, options):
                    yield event
        finally:
            await queue.close()

    async def _task_events(self, queue: Any, options: DeliveryOptions) -> AsyncIterator[TriggerEvent]:
        """One delivery as one event; a refused delivery becomes an error event for the sensor."""
        settings = self.settings
        try:
            async with health_lines(queue, f"Waiting on {queue.service} queue {settings.queue!r}"):
                async for messages in deliveries(queue, settings.queue, settings.poke_interval,
                                                 lambda: sensor_flow(options)):  # fmt: skip
                    yield self._task_event(messages, queue.service)
        except DeliveryTooLarge as error:
            yield self._error_event(str(error))

    async def _watch(self, queue: Any, options: DeliveryOptions) -> AsyncIterator[TriggerEvent]:
        """Watch mode without a shared stream (Airflow before 3.3): there is no acknowledgement
        that the events were stored, so the messages stay hidden until the consumer DAGs have
        started their run (which they do only from stored events), and are deleted then."""
        from fluke_airflow.triggers.delivered import asset_names
        from fluke_airflow.triggers.pollers import PollerRegistry, presence

        settings = self.settings
        dag_ids = self.watch.dag_ids or ()
        # Only a run shows that an event was stored: while no consumer started one, nothing is deleted.
        gate = RunGate(dag_ids, settings.queue, queue_metrics=queue.metrics, need_a_run=True)
        registry = PollerRegistry(settings.conn_id, settings.queue, self.stream_key(),
                                  lambda: (tuple(asset_names(self)), dag_ids))  # fmt: skip
        keep = None
        if settings.delete_on_dag_success:
            keep = KeepUntilRunsEnd(settings.conn_id, self.watch.message_task_id)
        watch = Watch(queue, options, event_per_message=self.event_per_message, poke_interval=settings.poke_interval,
                      delivered=None, keep=keep)  # fmt: skip
        try:
            async with presence(registry), health_lines(queue, watcher_name(queue, settings), watch.in_flight, gate):
                await gate.ready()  # no consumer DAG exists: no message taken
                async for batch in watch.batches(lambda: asset_names(self), lambda: dag_ids):
                    before = await gate.snapshot()
                    batch.handed_over = True
                    raw = payloads.delivery(settings.queue, queue.service, batch.messages, token=batch.token)
                    for event in self._watch_events(raw, batch.messages):
                        yield event
                    await gate.consumed(before)
                    await watch.settle(batch, stored=True)
                    await gate.ready()
        finally:  # to its end, through the triggerer's repeated cancellations
            await finish(watch.aclose())

    # -- shared stream (Airflow 3.3+): one poll per queue, deletes after persistence ---------------------
    def shared_stream_key(self) -> Any:
        if self._task_mode:
            return None
        return self.stream_key()

    @classmethod
    def create_shared_stream_producer(cls, kwargs: dict[str, Any]) -> Any:
        # Imported here: the shared-stream API exists from Airflow 3.3 on, and only a 3.3+
        # triggerer calls this.
        from fluke_airflow.triggers.stream import QueueStreamProducer

        trigger = cls(**kwargs)
        return QueueStreamProducer(trigger.settings, trigger.watch, trigger.shared_stream_key())

    async def filter_shared_stream(self, shared_stream: AsyncIterator[Any]) -> AsyncIterator[TriggerEvent]:
        from fluke_airflow.queues.filters import MessageFilter
        from fluke_airflow.triggers.delivered import asset_names
        from fluke_airflow.triggers.stream import watchers

        wanted = MessageFilter.build(*self.settings.filters().values())
        members = watchers(self.shared_stream_key())
        with members.join(self, self.watch.dag_ids or (), asset_names(self)):
            async for raw in shared_stream:
                taken, _ = wanted.split(raw["messages"])
                members.took(raw.get("delivery"), self, [m.id for m in taken])
                if taken:
                    for event in self._watch_events(raw, taken):
                        yield event


def _of(declared: type, given: dict[str, Any]) -> dict[str, Any]:
    return {name: given[name] for name in arguments.names(declared, TRIGGER)}


DAG_IDS_REQUIRED = (
    "dag_ids is required for a QueuePollTrigger that watches a queue on this Airflow: name the DAG(s) "
    "scheduled on the watcher's asset, e.g. dag_ids=['process_orders']. The watcher then takes the next "
    "messages only once those DAGs have started a run for the last event, so that every message "
    "reaches a run (Airflow before 3.4 leaves an event that arrives while another waits to a later "
    "one, apache/airflow#56050) and messages wait in the queue, not in Airflow. A custom deferrable "
    "operator that defers to this trigger passes single_event=True instead"
)
