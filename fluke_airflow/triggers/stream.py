"""The broker side of QueuePollTrigger's shared stream (Airflow 3.3+ ack mode).

One producer polls a queue for every asset that watches it. A delivery becomes one raw
event; ``advance()`` is told once the asset events derived from it are persisted, and
only then deletes the messages (post-delivery). Events that failed (ack timeout, lost
persistence) or that nobody accepted are released to be redelivered at once.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

from airflow.triggers.shared_stream import AdvanceItem, SharedStreamProducer

from fluke_airflow.polling import payloads
from fluke_airflow.polling.deliveries import deliveries
from fluke_airflow.polling.open import aopen_queue
from fluke_airflow.polling.settings import DeliverySettings
from fluke_airflow.queues.flows import delete_flow, release_flow
from fluke_airflow.queues.message import Message

log = logging.getLogger(__name__)


class QueueStreamProducer(SharedStreamProducer):
    def __init__(self, settings: DeliverySettings) -> None:
        self.settings = settings
        self._queue: Any = None

    async def open_stream(self) -> AsyncIterator[tuple[Any, Any]]:
        settings = self.settings
        self._queue = queue = await aopen_queue(settings)
        log.info("Watching %s queue %r (connection %r)", queue.service, settings.queue, settings.conn_id)
        async for messages in deliveries(queue, settings):
            yield payloads.delivery(settings.queue, queue.service, messages), messages

    async def advance(self, batch: Sequence[AdvanceItem]) -> None:
        if self.settings.pre_delivery_delete or self._queue is None:
            return  # deleted before the event fired
        done: list[Message] = []
        again: list[Message] = []
        for item in batch:
            (done if item.outcome.is_clean else again).extend(item.broker_payload)
        name = self.settings.queue
        if done:
            await self._queue.run_flow(delete_flow(done, queue=name))
            log.info("Deleted %d message(s) from queue %r after their asset events were stored", len(done), name)
        if again:
            log.warning("Queue %r: %d message(s) were not handed over; releasing them for redelivery", name, len(again))
            await self._queue.run_flow(release_flow(again, queue=name))

    async def aclose(self) -> None:
        if self._queue is not None:
            await self._queue.close()
            self._queue = None
