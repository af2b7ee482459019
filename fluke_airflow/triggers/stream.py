"""The broker side of QueuePollTrigger's shared stream (Airflow 3.3+ ack mode).

One producer polls a queue for every watcher of it in this triggerer (watchers whose settings
give the same stream key). A batch becomes one raw event; ``advance()`` is told once the asset
events derived from it are stored, records the message ids (for redeliveries) and only then
deletes the messages (post-delivery). Events that failed (ack timeout, lost persistence) or that
nobody accepted are released to be redelivered at once. Between two events the producer waits
until the consumer DAGs of every watcher have started a run for the last one
(:mod:`~fluke_airflow.triggers.pacing`); meanwhile the batch's messages are kept hidden.

A producer that stops (its watchers cancelled or moved to another triggerer, the triggerer
stopping, the poll failing) releases at once what no event can carry: messages received and not
yet yielded, and messages of a yielded batch that no watcher took. What a watcher took may be in
a stored event, whose confirmation no longer reaches a stopped producer: those stay hidden.
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
from fluke_airflow.polling.deliveries import Held, stopped
from fluke_airflow.polling.health import health_lines, watcher_name
from fluke_airflow.polling.open import aopen_queue
from fluke_airflow.polling.settings import DeliverySettings
from fluke_airflow.queues.drivers import AsyncHeartbeat
from fluke_airflow.queues.flows import delete_flow, release_flow, unmatched_flow
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
        self._taken: dict[int, dict[int, set[str]]] = {}

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

    def took(self, delivery: int | None, trigger: object, ids: Sequence[str]) -> None:
        """A watcher's report: of ``delivery``, its filter took ``ids`` (all, without a filter)."""
        if delivery is not None:
            self._taken.setdefault(delivery, {})[id(trigger)] = set(ids)

    def taken(self, delivery: int) -> tuple[set[str], tuple[str, ...]] | None:
        """The ids some watcher took of ``delivery``, and the DAGs of those watchers; None if no
        watcher reported (then nothing may be treated as unmatched)."""
        reports = self._taken.pop(delivery, None)
        if reports is None:
            return None
        ids = set().union(*reports.values())
        dag_ids = {d for member, got in reports.items() if got for d in self._members.get(member, ((), ()))[0]}
        return ids, tuple(sorted(dag_ids))

    def assets(self) -> tuple[str, ...]:
        return tuple(sorted({a for _, assets in self._members.values() for a in assets}))

    def reported(self, delivery: int) -> set[str] | None:
        """The ids some watcher took of ``delivery`` so far, leaving the reports in place; None if
        no watcher has seen it (then no event was derived from it)."""
        reports = self._taken.get(delivery)
        return None if reports is None else set().union(*reports.values())


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

    seq: int
    messages: list[Message]
    assets: tuple[str, ...]
    hold: contextlib.AsyncExitStack
    heartbeat: AsyncHeartbeat
    stored: asyncio.Future[tuple[str, ...] | None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    """Set by ``advance()``: the DAGs that got an event from it (None: nothing was stored)."""

    async def current(self) -> list[Message]:
        """Stop renewing; the messages with their current receipts."""
        await self.hold.aclose()
        return self.heartbeat.messages

    def resolve(self, dag_ids: tuple[str, ...] | None) -> None:
        if not self.stored.done():
            self.stored.set_result(dag_ids)


class QueueStreamProducer(SharedStreamProducer):
    def __init__(self, settings: DeliverySettings, watch: WatchSettings, key: Hashable) -> None:
        self.settings = settings
        self.watch = watch
        self.key = key
        self._queue: Any = None
        self._open: set[_Delivery] = set()
        self._seq = 0
        self._received = Held(lambda _: self._gauge())
        """Received and not yet yielded: released if the producer stops before it yields them."""
        self._members: Watchers | None = None
        self._stopping = False
        self._shown = 0
        self._delivered = DeliveredIds(settings.conn_id, settings.queue) if _airflow.has_asset_state_store() else None

    async def open_stream(self) -> AsyncIterator[tuple[Any, Any]]:
        settings = self.settings
        self._queue = queue = await aopen_queue(settings)
        self._members = members = watchers(self.key)
        log.info("Watching %s queue %r (connection %r)", queue.service, settings.queue, settings.conn_id)
        registry = PollerRegistry(
            settings.conn_id, settings.queue, self.key, lambda: (members.assets(), members.dag_ids())
        )
        async with heartbeats(registry), health_lines(queue, watcher_name(queue, settings), self.in_flight):
            # Unfiltered: each watcher applies its own filter to the shared deliveries.
            received = self._received
            try:
                async for messages in watch_batches(queue, settings.unfiltered(), self.watch, received):
                    # Received, not yet yielded (run counts and the delivered ids come from the
                    # triggerer's supervisor, which may be slow or frozen): released if stopped here.
                    if self._delivered is not None:
                        await self._delivered.load(members.assets())
                        messages = await drop_delivered(queue, settings, messages, self._delivered)
                        received.only(messages)
                        if not messages:
                            continue
                    dag_ids = members.dag_ids()
                    gate = RunGate(dag_ids, settings.queue) if dag_ids else None
                    before = await gate.snapshot() if gate else {}
                    delivery = await self._hold(messages, members.assets())
                    received.handed_on()  # from here on, advance() or aclose() decides their fate
                    yield payloads.delivery(settings.queue, queue.service, messages, delivery.seq), delivery
                    consumers = await delivery.stored
                    if consumers and gate:
                        await gate.consumed({d: n for d, n in before.items() if d in consumers})
            except BaseException as error:
                self._stopping = True
                if not isinstance(error, GeneratorExit):  # closed at its yield: nothing received is held
                    await received.release(queue, settings.queue, stopped(error))
                raise

    async def _hold(self, messages: list[Message], assets: tuple[str, ...]) -> _Delivery:
        stack = contextlib.AsyncExitStack()
        heartbeat = await stack.enter_async_context(self._queue.holding(messages, self.settings.visibility_timeout))
        self._seq += 1
        delivery = _Delivery(self._seq, messages, assets, stack, heartbeat)
        self._open.add(delivery)
        self._gauge()
        return delivery

    def in_flight(self) -> int:
        """Messages held hidden until Airflow has stored their events (received ones included)."""
        return len(self._received) + sum(len(d.messages) for d in self._open)

    def _gauge(self) -> None:
        """``messages.in_flight``, sent when it changed."""
        if self._queue is not None and self.in_flight() != self._shown:
            self._shown = self.in_flight()
            self._queue.metrics.gauge("messages.in_flight", self._shown)

    async def advance(self, batch: Sequence[AdvanceItem]) -> None:
        name, settings = self.settings.queue, self.settings
        members = watchers(self.key)
        done: list[Message] = []
        again: list[Message] = []
        unseen: list[Message] = []
        left: list[Message] = []
        outcomes: list[tuple[_Delivery, tuple[str, ...] | None]] = []
        for item in batch:
            delivery: _Delivery = item.broker_payload
            self._open.discard(delivery)
            current = await delivery.current()
            reported = members.taken(delivery.seq)
            if not item.outcome.is_clean:
                # Stopping, and no watcher ever saw it (it waited in a subscriber's queue when the
                # watcher left): not a failed try, so no retry delay.
                if self._stopping and reported is None:
                    unseen += current
                else:
                    again += current
                outcomes.append((delivery, None))
                continue
            taken_ids, consumers = reported if reported is not None else ({m.id for m in current}, self.watch.dag_ids)
            done += [m for m in current if m.id in taken_ids]
            left += [m for m in current if m.id not in taken_ids]
            outcomes.append((delivery, consumers))
        if done and not settings.pre_delivery_delete:
            if self._delivered is not None:
                # Before the delete: a message that comes back after it must not start another run.
                self._delivered.add(m.id for m in done)
                await self._delivered.save(sorted({a for d, _ in outcomes for a in d.assets}))
            await self._queue.run_flow(delete_flow(done, queue=name))
            log.info("Deleted %d message(s) from queue %r after their asset events were stored", len(done), name)
        if left and not settings.pre_delivery_delete:
            await self._queue.run_flow(unmatched_flow(left, settings.unmatched, settings.dead_letter_queue, queue=name))
        if again and not settings.pre_delivery_delete:
            log.warning("Queue %r: %d message(s) were not handed over; releasing them for redelivery", name,
                        len(again))  # fmt: skip
            retry = self._queue.retry_policy(*settings.retry_args())
            await self._queue.run_flow(release_flow(again, queue=name, retry=retry))
        if unseen and not settings.pre_delivery_delete:
            await Held.of(unseen).release(self._queue, name, "was stopped before its watchers took a batch")
        self._gauge()
        for delivery, dag_ids in outcomes:
            delivery.resolve(dag_ids)

    async def aclose(self) -> None:
        """Stop holding the batches never advanced. A message some watcher took may be in an event
        Airflow stored (the confirmation cannot reach a closed producer; apache/airflow#73454:
        a moved trigger is cancelled like a killed one): it stays hidden and comes back after its
        visibility timeout. A message no watcher took is in no event: released at once."""
        name = self.settings.queue
        unclaimed = Held()
        kept = 0
        for delivery in sorted(self._open, key=lambda d: d.seq):
            current = await delivery.current()
            taken = self._reported(delivery.seq)
            unclaimed.keep([m for m in current if m.id not in taken])
            kept += sum(1 for m in current if m.id in taken)
            delivery.resolve(None)
        self._open.clear()
        if kept and not self.settings.pre_delivery_delete:
            log.warning(
                "Queue %r: stopped before Airflow confirmed the asset event(s) of %d message(s); they stay hidden "
                "and come back after their visibility timeout (%d s): a second run if the event was stored",
                name,
                kept,
                self.settings.visibility_timeout,
            )
        if self._queue is not None:
            if not self.settings.pre_delivery_delete:
                await unclaimed.release(self._queue, name, stopped(None))
            await self._queue.close()
            self._queue = None

    def _reported(self, seq: int) -> set[str]:
        """What any watcher took of delivery ``seq`` (the watchers as this producer met them, and as
        they are now: a watcher that joined after the first left reports to a new record)."""
        records = {id(w): w for w in (self._members, _WATCHERS.get(self.key)) if w is not None}
        return set().union(*(r.reported(seq) or set() for r in records.values()))
