"""The broker side of QueuePollTrigger's shared stream (Airflow 3.3+ ack mode).

One producer polls a queue for every watcher of it in this triggerer (watchers whose settings
give the same stream key). A batch becomes one raw event; ``advance()`` is told once the asset
events derived from it are stored, records the message ids (for redeliveries) and only then
deletes the messages (post-delivery). Events that failed (ack timeout, lost persistence) or that
nobody accepted are released to be redelivered at once. Between two events the producer waits
until the consumer DAGs of every watcher have started a run for the last one
(:mod:`~fluke_airflow.triggers.pacing`); meanwhile the batch's messages are kept hidden.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow.triggers.shared_stream import AdvanceItem, SharedStreamProducer

from fluke_airflow import _airflow
from fluke_airflow.polling import payloads
from fluke_airflow.polling.open import aopen_queue
from fluke_airflow.polling.settings import DeliverySettings
from fluke_airflow.queues.drivers import AsyncHeartbeat
from fluke_airflow.queues.flows import delete_flow, release_flow
from fluke_airflow.queues.message import Message
from fluke_airflow.triggers.delivered import DeliveredIds
from fluke_airflow.triggers.pacing import RunGate
from fluke_airflow.triggers.pollers import PollerRegistry, heartbeats
from fluke_airflow.triggers.watch import WatchSettings, drop_delivered, watch_batches

log = logging.getLogger(__name__)


class Watchers:
    """The watchers of one stream key in this triggerer: whose runs the producer waits for, and
    whose assets' state stores keep its record of delivered messages."""

    def __init__(self, key: Hashable) -> None:
        self.key = key
        self._members: dict[int, tuple[tuple[str, ...], tuple[str, ...]]] = {}

    @contextlib.contextmanager
    def join(self, trigger: object, dag_ids: Sequence[str], assets: Sequence[str]) -> Iterator[None]:
        self._members[id(trigger)] = (tuple(dag_ids), tuple(assets))
        try:
            yield
        finally:
            self._members.pop(id(trigger), None)
            if not self._members and _WATCHERS.get(self.key) is self:
                del _WATCHERS[self.key]

    def dag_ids(self) -> tuple[str, ...]:
        return tuple(sorted({d for dag_ids, _ in self._members.values() for d in dag_ids}))

    def assets(self) -> tuple[str, ...]:
        return tuple(sorted({a for _, assets in self._members.values() for a in assets}))


_WATCHERS: dict[Hashable, Watchers] = {}


def watchers(key: Hashable) -> Watchers:
    """The watchers of ``key`` in this process (created on first use)."""
    found = _WATCHERS.get(key)
    if found is None:
        found = _WATCHERS[key] = Watchers(key)
    return found


@dataclass(eq=False)  # each delivery is itself (kept in a set until advanced)
class _Delivery:
    """One raw event's messages, kept hidden until ``advance()`` decides their fate."""

    messages: list[Message]
    assets: tuple[str, ...]
    hold: contextlib.AsyncExitStack
    heartbeat: AsyncHeartbeat
    stored: asyncio.Future[bool] = field(default_factory=lambda: asyncio.get_running_loop().create_future())

    async def current(self) -> list[Message]:
        """Stop renewing; the messages with their current receipts."""
        await self.hold.aclose()
        return self.heartbeat.messages

    def resolve(self, stored: bool) -> None:
        if not self.stored.done():
            self.stored.set_result(stored)


class QueueStreamProducer(SharedStreamProducer):
    def __init__(self, settings: DeliverySettings, watch: WatchSettings, key: Hashable) -> None:
        self.settings = settings
        self.watch = watch
        self.key = key
        self._queue: Any = None
        self._open: set[_Delivery] = set()
        self._delivered = DeliveredIds(settings.conn_id, settings.queue) if _airflow.has_asset_state_store() else None

    async def open_stream(self) -> AsyncIterator[tuple[Any, Any]]:
        settings = self.settings
        self._queue = queue = await aopen_queue(settings)
        members = watchers(self.key)
        log.info("Watching %s queue %r (connection %r)", queue.service, settings.queue, settings.conn_id)
        registry = PollerRegistry(
            settings.conn_id, settings.queue, self.key, lambda: (members.assets(), members.dag_ids())
        )
        async with heartbeats(registry):
            async for messages in watch_batches(queue, settings, self.watch):
                if self._delivered is not None:
                    await self._delivered.load(members.assets())
                    messages = await drop_delivered(queue, settings, messages, self._delivered)
                    if not messages:
                        continue
                dag_ids = members.dag_ids()
                gate = RunGate(dag_ids, settings.queue) if dag_ids else None
                before = await gate.snapshot() if gate else {}
                delivery = await self._hold(messages, members.assets())
                yield payloads.delivery(settings.queue, queue.service, messages), delivery
                if await delivery.stored and gate:
                    await gate.consumed(before)

    async def _hold(self, messages: list[Message], assets: tuple[str, ...]) -> _Delivery:
        stack = contextlib.AsyncExitStack()
        heartbeat = await stack.enter_async_context(self._queue.holding(messages, self.settings.visibility_timeout))
        delivery = _Delivery(messages, assets, stack, heartbeat)
        self._open.add(delivery)
        return delivery

    async def advance(self, batch: Sequence[AdvanceItem]) -> None:
        name = self.settings.queue
        done: list[tuple[_Delivery, list[Message]]] = []
        again: list[tuple[_Delivery, list[Message]]] = []
        for item in batch:
            delivery: _Delivery = item.broker_payload
            self._open.discard(delivery)
            (done if item.outcome.is_clean else again).append((delivery, await delivery.current()))
        if done and not self.settings.pre_delivery_delete:
            messages = [m for _, current in done for m in current]
            if self._delivered is not None:
                # Before the delete: a message that comes back after it must not start another run.
                self._delivered.add(m.id for m in messages)
                await self._delivered.save(sorted({a for d, _ in done for a in d.assets}))
            await self._queue.run_flow(delete_flow(messages, queue=name))
            log.info("Deleted %d message(s) from queue %r after their asset events were stored", len(messages), name)
        if again and not self.settings.pre_delivery_delete:
            messages = [m for _, current in again for m in current]
            log.warning("Queue %r: %d message(s) were not handed over; releasing them for redelivery", name,
                        len(messages))  # fmt: skip
            await self._queue.run_flow(release_flow(messages, queue=name))
        for delivery, _ in done:
            delivery.resolve(True)
        for delivery, _ in again:
            delivery.resolve(False)

    async def aclose(self) -> None:
        for delivery in list(self._open):  # never advanced: they come back after their visibility timeout
            await delivery.hold.aclose()
            delivery.resolve(False)
        self._open.clear()
        if self._queue is not None:
            await self._queue.close()
            self._queue = None
