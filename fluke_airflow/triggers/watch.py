"""Watch mode: what a watcher receives, for both ways it runs (the shared-stream producer on
Airflow 3.3+, a trigger's own ``run()`` before).

Batches gathered for up to ``max_batching_window`` seconds (one message each with
``event_per_message``); messages already handed to Airflow dropped
(:mod:`~fluke_airflow.triggers.delivered`). Between two events the caller waits on the
:class:`~fluke_airflow.triggers.pacing.RunGate`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from fluke_airflow.polling.deliveries import Held, deliveries, watch_flow
from fluke_airflow.polling.settings import DeliverySettings
from fluke_airflow.queues import validation as check
from fluke_airflow.queues.flows import delete_flow
from fluke_airflow.queues.message import Message
from fluke_airflow.triggers.delivered import DeliveredIds

log = logging.getLogger("fluke_airflow.triggers")

MAX_BATCHING_WINDOW = 300
"""Lambda's limit for its batching window, and the triggerer's default ack timeout."""


@dataclass(frozen=True)
class WatchSettings:
    """What a watcher adds to a delivery's settings."""

    event_per_message: bool = False
    max_batching_window: float = 0.0
    dag_ids: tuple[str, ...] = ()

    @classmethod
    def checked(
        cls,
        *,
        event_per_message: Any,
        max_batching_window: Any,
        dag_ids: Any,
        visibility_timeout: int,
        required_dag_ids: bool,
    ) -> WatchSettings:
        check.boolean("event_per_message", event_per_message)
        window = check.non_negative_number("max_batching_window", max_batching_window)
        if window > MAX_BATCHING_WINDOW:
            raise ValueError(f"max_batching_window must be a number of seconds from 0 to {MAX_BATCHING_WINDOW}, "
                             f"got {max_batching_window!r}")  # fmt: skip
        if window and window >= visibility_timeout:
            raise ValueError(
                f"max_batching_window ({window:g} s) must be shorter than visibility_timeout ({visibility_timeout} s): "
                "the first messages of a batch stay hidden while it gathers"
            )
        ids = _dag_ids(dag_ids, required=required_dag_ids)
        return cls(event_per_message=event_per_message, max_batching_window=window, dag_ids=ids)

    def stream_key(self) -> tuple[Any, ...]:
        """What must be equal for watchers to share one poll loop (``dag_ids`` need not be)."""
        return (self.event_per_message, self.max_batching_window)


def _dag_ids(value: Any, *, required: bool) -> tuple[str, ...]:
    if value is None:
        if required:
            raise ValueError(
                "dag_ids is required for a QueuePollTrigger that watches a queue on this Airflow: name the DAG(s) "
                "scheduled on the watcher's asset, e.g. dag_ids=['process_orders']. The watcher then takes the next "
                "messages only once those DAGs have started a run for the last event, so that every message "
                "reaches a run (Airflow before 3.4 leaves an event that arrives while another waits to a later "
                "one, apache/airflow#56050) and messages wait in the queue, not in Airflow. A custom deferrable "
                "operator that defers to this trigger passes single_event=True instead"
            )
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, Sequence) or not value:
        raise TypeError(f"dag_ids must be a non-empty list of DAG ids, got {type(value).__name__} {value!r}")
    return tuple(check.non_empty_str(f"dag_ids[{i}]", v) for i, v in enumerate(value))


def watch_batches(
    queue: Any, settings: DeliverySettings, watch: WatchSettings, held: Held | None = None
) -> AsyncIterator[list[Message]]:
    """The watcher's deliveries, forever: batches, or single messages with ``event_per_message``.
    ``held``: what the watcher received and has not handed to Airflow yet (see :class:`Held`)."""

    def flow() -> Any:
        return watch_flow(queue, settings, event_per_message=watch.event_per_message, window=watch.max_batching_window)

    return deliveries(queue, settings, make_flow=flow, held=held)


async def drop_delivered(
    queue: Any, settings: DeliverySettings, messages: list[Message], delivered: DeliveredIds
) -> list[Message]:
    """``messages`` without those already handed to Airflow, which are deleted (again) instead."""
    seen = [m for m in messages if m.id in delivered]
    if not seen:
        return messages
    log.warning(
        "Queue %r: %d message(s) came back that were already handed to Airflow (ids %s); deleting them without "
        "a new event",
        settings.queue,
        len(seen),
        ", ".join(m.id for m in seen[:10]),
    )
    if not settings.pre_delivery_delete:
        await queue.run_flow(delete_flow(seen, queue=settings.queue))
    return [m for m in messages if m.id not in delivered]
