"""One delivery (the flow), and the trigger's endless sequence of them."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from fluke_airflow.exceptions import DeliveryTooLarge, QueueError, QueueNotFoundError, ReceiveStalled
from fluke_airflow.polling.settings import DEFAULT_MAX_EVENT_BYTES, DeliverySettings
from fluke_airflow.queues.flows import Flow, collect_flow, gather_flow
from fluke_airflow.queues.message import Message

log = logging.getLogger("fluke_airflow.polling")

MAX_BACKOFF = 60.0


def delivery_flow(queue: Any, settings: DeliverySettings, *, wait_seconds: int | None = None) -> Flow:
    """The flow of one delivery from ``queue``: wait up to ``wait_seconds`` (default: the settings'
    ``wait_time_seconds``) for a first message where the service can wait (SQS), then fill up."""
    wait = settings.wait_time_seconds if wait_seconds is None else wait_seconds
    accept, unmatched = queue.message_filter(settings.as_kwargs())
    return collect_flow(
        settings.per_delivery,
        queue=settings.queue,
        visibility_timeout=settings.visibility_timeout,
        wait_seconds=wait if queue.long_polling else 0,
        pre_delivery_delete=settings.pre_delivery_delete,
        max_bytes=settings.max_delivery_bytes,
        max_receive_count=settings.max_receive_count,
        dead_letter_queue=dead_letter_target(queue, settings),
        per_request=queue.receive_limit,
        accept=accept,
        unmatched=unmatched,
        retry=queue.retry_policy(*settings.retry_args()),
    )


def dead_letter_target(queue: Any, settings: DeliverySettings) -> str | None:
    """Where this delivery's dead letters go (the named queue, or Azure's ``<queue>-poison``)."""
    target: str | None = queue.dead_letter_target(settings.max_receive_count, settings.dead_letter_queue,
                                                  settings.unmatched)  # fmt: skip
    return target


def batch_flow(
    queue: Any, settings: DeliverySettings, *, max_messages: int, window: float, clock: Callable[[], float]
) -> Flow:
    """The flow of one watcher batch (one asset event): up to ``max_messages`` and
    ``max_delivery_bytes`` (default :data:`DEFAULT_MAX_EVENT_BYTES`), gathered for up to
    ``window`` seconds after the first message (see :func:`~fluke_airflow.queues.flows.gather_flow`);
    with the settings' filters, only the messages they take."""
    accept, unmatched = queue.message_filter(settings.as_kwargs())
    return gather_flow(
        max_messages,
        queue=settings.queue,
        visibility_timeout=settings.visibility_timeout,
        wait_seconds=settings.wait_time_seconds if queue.long_polling else 0,
        window=window,
        clock=clock,
        max_bytes=settings.max_delivery_bytes or DEFAULT_MAX_EVENT_BYTES,
        per_request=queue.receive_limit,
        can_wait=queue.long_polling,
        idle_sleep=min(1.0, settings.poke_interval),
        pre_delivery_delete=settings.pre_delivery_delete,
        max_receive_count=settings.max_receive_count,
        dead_letter_queue=dead_letter_target(queue, settings),
        accept=accept,
        unmatched=unmatched,
    )


def watch_flow(queue: Any, settings: DeliverySettings, *, event_per_message: bool, window: float) -> Flow:
    """A watcher's next delivery: one message when each message is an event of its own (each then
    gets a run of its own, in the queue's order), else a batch."""
    size = 1 if event_per_message else settings.per_delivery
    return batch_flow(queue, settings, max_messages=size, window=0.0 if event_per_message else window,
                      clock=time.monotonic)  # fmt: skip


async def deliveries(
    queue: Any, settings: DeliverySettings, make_flow: Callable[[], Flow] | None = None
) -> AsyncIterator[list[Message]]:
    """Deliveries from ``queue``, forever: long-poll (SQS) or poll every ``poke_interval`` (Azure),
    riding out service errors with capped exponential backoff, and a stuck receive
    (:class:`~fluke_airflow.exceptions.ReceiveStalled`) by rebuilding the client. ``make_flow``:
    the flow of one delivery (default: :func:`delivery_flow`, the sensor's)."""
    failures = 0
    name = settings.queue
    polled = False
    while True:
        try:
            flow = make_flow() if make_flow is not None else delivery_flow(queue, settings)
            messages: list[Message] = await queue.run_flow(flow)
        except (QueueNotFoundError, DeliveryTooLarge):
            raise
        except ReceiveStalled as error:
            queue.metrics.count("receive.stalled")
            log.warning(
                "Polling %s queue %r: %s. A stuck connection? Rebuilding the client and carrying on (messages "
                "that receive took come back after their visibility timeout)",
                queue.service,
                name,
                error,
            )
            try:
                await queue.reconnect()
            except QueueError as reconnect_error:
                failures += 1
                log.warning("Reconnecting to %s queue %r failed (%s)", queue.service, name, reconnect_error)
                await asyncio.sleep(min(MAX_BACKOFF, 2 ** min(failures, 6)) * random.uniform(0.5, 1.0))
            continue
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
