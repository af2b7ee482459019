"""A delivery's options and flow, and the trigger's endless sequence of deliveries."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Callable
from typing import Any

from fluke_airflow.exceptions import DeliveryTooLarge, QueueError, QueueNotFoundError, ReceiveStalled
from fluke_airflow.queues import metrics
from fluke_airflow.queues.arguments import DEFAULT_MAX_EVENT_BYTES, DeliverySettings
from fluke_airflow.queues.flows import collect_flow, gather_flow
from fluke_airflow.queues.lifecycle import Held, tracked
from fluke_airflow.queues.message import Message
from fluke_airflow.queues.options import DeliveryOptions
from fluke_airflow.queues.steps import Flow

log = logging.getLogger("fluke_airflow.delivery")

MAX_BACKOFF = 60.0


def delivery_options(queue: Any, settings: DeliverySettings, *, watch: bool = False) -> DeliveryOptions:
    """``settings`` as ``queue``'s flows read them; a watcher's batches hold at most
    :data:`DEFAULT_MAX_EVENT_BYTES` of bodies unless ``max_delivery_bytes`` says otherwise."""
    options: DeliveryOptions = queue.delivery_options(settings.as_kwargs())
    if watch and options.max_bytes is None:
        options = options.but(max_bytes=DEFAULT_MAX_EVENT_BYTES)
    return options


def sensor_flow(options: DeliveryOptions, *, wait_seconds: int | None = None) -> Flow:
    """One sensor delivery, waiting up to ``wait_seconds`` (default: the options') for a first message."""
    if wait_seconds is not None and options.long_polling:
        options = options.but(wait_seconds=wait_seconds)
    return collect_flow(options)


def watch_flow(options: DeliveryOptions, *, event_per_message: bool) -> Flow:
    """A watcher's next delivery: one message when each message is an event of its own (each then
    gets a run of its own, in the queue's order), else a batch."""
    if event_per_message:
        return gather_flow(1, options.but(window=0.0))
    return gather_flow(options.per_delivery, options)


async def deliveries(
    queue: Any, name: str, poke_interval: float, make_flow: Callable[[], Flow], held: Held | None = None
) -> AsyncIterator[list[Message]]:
    """Deliveries from ``queue``, forever: long-poll (SQS) or poll every ``poke_interval`` (Azure),
    riding out service errors with capped exponential backoff, and a stuck receive
    (:class:`~fluke_airflow.exceptions.ReceiveStalled`) by rebuilding the client.

    A delivery cancelled or failing half-way releases what it had received
    (:func:`~fluke_airflow.queues.lifecycle.tracked`). What it yields stays in ``held`` until the
    consumer asks for the next delivery: the consumer hands it on, or releases it if stopped first."""
    failures = 0
    polled = False
    held = held if held is not None else Held()
    while True:
        held.handed_on()  # the consumer asked for the next delivery: it has the last one
        try:
            messages: list[Message] = await queue.run_flow(tracked(make_flow(), held, name))
        except (QueueNotFoundError, DeliveryTooLarge):
            raise
        except ReceiveStalled as error:
            queue.metrics.count(metrics.RECEIVE_STALLED)
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
                await asyncio.sleep(_backoff(failures))
            continue
        except QueueError as error:
            failures += 1
            delay = _backoff(failures)
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
            await asyncio.sleep(poke_interval)


def _backoff(failures: int) -> float:
    return min(MAX_BACKOFF, 2 ** min(failures, 6)) * random.uniform(0.5, 1.0)
