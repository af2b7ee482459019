"""One delivery (the flow), and the trigger's endless sequence of them."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator
from typing import Any

from fluke_airflow.exceptions import DeliveryTooLarge, QueueError, QueueNotFoundError
from fluke_airflow.polling.settings import DeliverySettings
from fluke_airflow.queues.flows import Flow, collect_flow
from fluke_airflow.queues.message import Message

log = logging.getLogger("fluke_airflow.polling")

MAX_BACKOFF = 60.0


def delivery_flow(queue: Any, settings: DeliverySettings, *, wait_seconds: int | None = None) -> Flow:
    """The flow of one delivery from ``queue``: wait up to ``wait_seconds`` (default: the settings'
    ``wait_time_seconds``) for a first message where the service can wait (SQS), then fill up."""
    wait = settings.wait_time_seconds if wait_seconds is None else wait_seconds
    return collect_flow(
        settings.per_delivery,
        queue=settings.queue,
        visibility_timeout=settings.visibility_timeout,
        wait_seconds=wait if queue.long_polling else 0,
        pre_delivery_delete=settings.pre_delivery_delete,
        max_bytes=settings.max_delivery_bytes,
        max_receive_count=settings.max_receive_count,
        dead_letter_queue=settings.dead_letter_queue,
        per_request=queue.receive_limit,
    )


async def deliveries(queue: Any, settings: DeliverySettings) -> AsyncIterator[list[Message]]:
    """Deliveries from ``queue``, forever: long-poll (SQS) or poll every ``poke_interval`` (Azure),
    riding out service errors with capped exponential backoff."""
    failures = 0
    name = settings.queue
    polled = False
    while True:
        try:
            messages: list[Message] = await queue.run_flow(delivery_flow(queue, settings))
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
