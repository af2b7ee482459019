"""The broker side of QueuePollTrigger's shared stream (Airflow 3.3+ ack mode).

One producer polls a queue for every watcher of it in this triggerer (watchers whose settings
give the same stream key). A batch becomes one raw event; ``advance()`` reports what Airflow did
with the asset events derived from it, and the watch lifecycle
(:mod:`~fluke_airflow.triggers.watch`) settles the batch: deleted once stored (its ids recorded
first, for redeliveries), or with ``delete_on_dag_success`` kept until the consumer runs that took
it end; released when not stored; the unmatched policy for what no watcher took. Between two
events the producer waits until the consumer DAGs of every watcher have started a run for the
last one (:mod:`~fluke_airflow.triggers.pacing`); meanwhile the batch stays hidden.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Hashable, Iterator, Sequence
from typing import Any

from airflow.triggers.shared_stream import AdvanceItem, SharedStreamProducer

from fluke_airflow import _airflow
from fluke_airflow.delivery import payloads
from fluke_airflow.delivery.health import health_lines, watcher_name
from fluke_airflow.delivery.open import aopen_queue
from fluke_airflow.queues.arguments import DeliverySettings, WatchArguments
from fluke_airflow.queues.drivers import finish
from fluke_airflow.triggers.delivered import DeliveredIds
from fluke_airflow.triggers.pacing import RunGate
from fluke_airflow.triggers.pollers import PollerRegistry, presence
from fluke_airflow.triggers.watch import Batch, KeepUntilRunsEnd, Watch

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


class QueueStreamProducer(SharedStreamProducer):
    """One poll loop for the watchers of a stream key: a :class:`~fluke_airflow.triggers.watch.Watch`
    whose batches are settled by what ``advance()`` reports."""

    def __init__(self, settings: DeliverySettings, watch: WatchArguments, key: Hashable) -> None:
        self.settings = settings
        self.watch = watch
        self.key = key
        self._queue: Any = None
        self._watch: Watch | None = None
        self._members: Watchers | None = None
        self._stopping = False

    async def open_stream(self) -> AsyncIterator[tuple[Any, Any]]:
        settings = self.settings
        # Unfiltered: each watcher applies its own filter to the shared deliveries.
        queue, options = await aopen_queue(settings.unfiltered(), watch=True)
        self._queue = queue
        delivered = DeliveredIds(settings.conn_id, settings.queue) if _airflow.has_asset_state_store() else None
        keep = None
        if settings.delete_on_dag_success:
            keep = KeepUntilRunsEnd(settings.conn_id, self.watch.message_task_id)
        watch = self._watch = Watch(queue, options, event_per_message=self.watch.event_per_message,
                                    poke_interval=settings.poke_interval, delivered=delivered, keep=keep)  # fmt: skip
        self._members = members = watchers(self.key)
        log.info("Watching %s queue %r (connection %r)", queue.service, settings.queue, settings.conn_id)
        registry = PollerRegistry(
            settings.conn_id, settings.queue, self.key, lambda: (members.assets(), members.dag_ids())
        )
        gate = RunGate(members.dag_ids, settings.queue, queue_metrics=queue.metrics)
        async with presence(registry), health_lines(queue, watcher_name(queue, settings), watch.in_flight, gate):
            try:
                await gate.ready()  # no consumer DAG exists: no message taken
                async for batch in watch.batches(members.assets, members.dag_ids):
                    before = await gate.snapshot()
                    batch.handed_over = True
                    payload = payloads.delivery(settings.queue, queue.service, batch.messages, batch.seq, batch.token)
                    yield payload, batch
                    consumers = await batch.settled
                    if consumers:
                        await gate.consumed({d: n for d, n in before.items() if d in consumers})
                    await gate.ready()
            finally:
                self._stopping = True  # what Airflow resolves from now on was not tried by a watcher

    def in_flight(self) -> int:
        """Messages held hidden until Airflow has stored their events."""
        return self._watch.in_flight() if self._watch else 0

    async def advance(self, batch: Sequence[AdvanceItem]) -> None:
        """Airflow's report on each event: stored (``is_clean``) or not, and which watchers took what."""
        members = watchers(self.key)
        assert self._watch is not None
        for item in batch:
            held: Batch = item.broker_payload
            reported = members.taken(held.seq)
            if not item.outcome.is_clean:
                # Stopping, and no watcher ever saw it (it waited in a leaving watcher's queue): not a
                # failed try, so back at once, without the retry delay.
                await self._watch.settle(held, stored=False, tried=not (self._stopping and reported is None))
            elif reported is None:
                await self._watch.settle(held, stored=True, consumers=self.watch.dag_ids or ())
            else:
                await self._watch.settle(held, stored=True, taken=reported[0], consumers=reported[1])

    async def aclose(self) -> None:
        """Stop holding the batches never advanced: :meth:`Watch.aclose` releases what no watcher took."""
        if self._watch is not None:  # to its end, through the triggerer's repeated cancellations
            await finish(self._watch.aclose(taken=self._reported))
        if self._queue is not None:
            await self._queue.close()
            self._queue = None

    def _reported(self, seq: int) -> set[str]:
        """What any watcher took of delivery ``seq`` (the watchers as this producer met them, and as
        they are now: a watcher that joined after the first left reports to a new record)."""
        records = {id(w): w for w in (self._members, _WATCHERS.get(self.key)) if w is not None}
        return set().union(*(r.reported(seq) or set() for r in records.values()))
