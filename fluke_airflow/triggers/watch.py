"""Watch mode's delivery lifecycle, once, for both ways a watcher runs (the shared-stream
producer on Airflow 3.3+, a trigger's own ``run()`` before).

A :class:`Watch` receives batches (gathered for up to ``max_batching_window`` seconds, or one
message each with ``event_per_message``), drops the messages Airflow already has
(:mod:`~fluke_airflow.triggers.delivered`), and holds each batch hidden while it is handed to
Airflow. What Airflow then reports about a batch (its events stored, not stored, or the holder
stopping) is settled by :mod:`fluke_airflow.queues.lifecycle`:

* stored, and a watcher's filter took the message: acknowledged (deleted; its id recorded first);
* stored, and no watcher's filter took it: the unmatched policy;
* not stored (the ack timed out, persistence failed): released after the retry delay;
* the holder stopped (cancelled, moved to another triggerer, closed) before the hand-over:
  released at once; after the hand-over: left hidden, since Airflow may have stored its event
  (apache/airflow#73454: a trigger moved to another triggerer gets ``on_kill`` too), so it comes
  back after its visibility timeout and the delivered-ids record keeps it from a second run.

With ``delete_on_dag_success`` a stored batch is not acknowledged: it is handed to
:class:`~fluke_airflow.triggers.kept.KeptDeliveries`, which holds it until the consumer runs that
took it end, and a message that comes back is first asked about there (its run may still be going).

Between two batches the caller waits on the
:class:`~fluke_airflow.triggers.pacing.RunGate`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from fluke_airflow.delivery.deliveries import deliveries, watch_flow
from fluke_airflow.queues import metrics
from fluke_airflow.queues.drivers import AsyncHolding
from fluke_airflow.queues.lifecycle import Held, Outcome, release_held, settle, stopped
from fluke_airflow.queues.message import Message
from fluke_airflow.queues.options import DeliveryOptions
from fluke_airflow.queues.steps import Cancelled
from fluke_airflow.triggers.delivered import DeliveredIds
from fluke_airflow.triggers.kept import KeptDeliveries, Supervisor

log = logging.getLogger("fluke_airflow.triggers")


@dataclass(eq=False)  # each batch is itself (kept in a set until settled)
class Batch:
    """One batch, hidden while Airflow takes it."""

    seq: int
    messages: list[Message]
    holding: AsyncHolding | None
    """Renews the batch's visibility (None with pre-delivery delete: the messages are gone already)."""
    assets: tuple[str, ...]
    token: str | None = None
    """Names the delivery in its events when the consumer runs decide its fate (``delete_on_dag_success``)."""
    handed_over: bool = False
    settled: asyncio.Future[tuple[str, ...] | None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    """Resolved once settled: the DAGs whose watchers took some of it (None: Airflow stored nothing)."""

    def resolve(self, dag_ids: tuple[str, ...] | None) -> None:
        if not self.settled.done():
            self.settled.set_result(dag_ids)

    async def current(self) -> list[Message]:
        """Stop renewing; the messages with their current receipts."""
        return await self.holding.stop() if self.holding else self.messages


@dataclass(frozen=True)
class KeepUntilRunsEnd:
    """``delete_on_dag_success``: what the watch needs to keep its deliveries until their runs end."""

    conn_id: str
    message_task_id: str | None = None
    supervisor: Supervisor | None = None
    """Who answers about runs and the asset state store (default: the triggerer's supervisor)."""


class Watch:
    """The batches of one poll loop, from the receive to their settling."""

    def __init__(
        self,
        queue: Any,
        options: DeliveryOptions,
        *,
        event_per_message: bool,
        poke_interval: float,
        delivered: DeliveredIds | None,
        keep: KeepUntilRunsEnd | None = None,
    ) -> None:
        self.queue = queue
        self.options = options
        self.event_per_message = event_per_message
        self.poke_interval = poke_interval
        self.delivered = delivered
        self.keep = keep
        self.kept: KeptDeliveries | None = None
        self.received = Held(lambda _: self._gauge())
        """Received and not yet in a batch: released at once if the watcher stops before."""
        self._open: set[Batch] = set()
        self._seq = 0
        self._shown = 0

    def in_flight(self) -> int:
        """Messages held hidden until Airflow has stored their events (received ones included), and,
        kept (``delete_on_dag_success``), until their runs end."""
        kept = self.kept.in_flight() if self.kept else 0
        return len(self.received) + sum(len(b.messages) for b in self._open) + kept

    def _gauge(self) -> None:
        """``messages.in_flight``, sent when it changed."""
        if self.in_flight() != self._shown:
            self._shown = self.in_flight()
            self.queue.metrics.gauge(metrics.IN_FLIGHT, self._shown)

    async def batches(self, assets: Any, dag_ids: Any = tuple) -> AsyncIterator[Batch]:
        """Held batches, forever; ``assets()`` names the assets whose state stores keep the
        delivered-ids record at the time of each batch, ``dag_ids()`` the consumer DAGs."""
        options = self.options
        kept = self.kept = self._kept(assets) if self.keep else None

        def flow() -> Any:
            spared = options.but(spared=kept.spared()) if kept else options
            return watch_flow(spared, event_per_message=self.event_per_message)

        received = self.received
        async for messages in deliveries(self.queue, options.queue, self.poke_interval, flow, received):
            held_by = tuple(assets())
            try:  # received, not yet in a batch (the supervisor, slow or frozen, answers first)
                messages = await self._fresh(messages, held_by)
            except BaseException as error:
                await self.queue.run_flow(release_held(received, stopped(_cancelled(error)), options.queue))
                raise
            received.only(messages)
            if not messages:
                continue
            batch = self._hold(messages, held_by)
            received.handed_on()  # the batch holds them now (the gauge shows no change)
            if kept is not None:
                try:
                    batch.token = kept.new_token()
                    await kept.announce(batch.token, messages, tuple(dag_ids()))
                except BaseException:
                    await self.settle(batch, stored=False, tried=False)  # never handed over: released at once
                    raise
            yield batch

    def _kept(self, assets: Any) -> KeptDeliveries:
        assert self.keep is not None

        async def acknowledge(messages: list[Message]) -> list[Message]:
            return await self._acknowledge(messages, tuple(assets()))

        return KeptDeliveries(self.queue, self.options, conn_id=self.keep.conn_id, assets=assets,
                              message_task_id=self.keep.message_task_id, acknowledge=acknowledge,
                              supervisor=self.keep.supervisor)  # fmt: skip

    async def _not_delivered(self, messages: list[Message], assets: Sequence[str]) -> list[Message]:
        """``messages`` without those already handed to Airflow, which are deleted (again) instead."""
        if self.delivered is None:
            return messages
        await self.delivered.load(assets)
        seen = [m for m in messages if m.id in self.delivered]
        if not seen:
            return messages
        log.warning(
            "Queue %r: %d message(s) came back that were already handed to Airflow (ids %s); deleting them without "
            "a new event",
            self.options.queue,
            len(seen),
            ", ".join(m.id for m in seen[:10]),
        )
        await self.queue.run_flow(settle(seen, Outcome.ACKNOWLEDGED, self.options))
        return [m for m in messages if m.id not in self.delivered]

    async def _fresh(self, messages: list[Message], assets: Sequence[str]) -> list[Message]:
        """``messages`` without those Airflow already has: handed over before (ack mode), or kept
        for a run that is still going or has succeeded (``delete_on_dag_success``)."""
        messages = await self._not_delivered(messages, assets)
        if self.kept is not None and messages:
            messages, _ = await self.kept.sort(messages)
        return messages

    def _hold(self, messages: list[Message], assets: tuple[str, ...]) -> Batch:
        self._seq += 1
        options = self.options
        holding = None if options.pre_delivery_delete else self.queue.hold(messages, options.visibility_timeout)
        batch = Batch(self._seq, messages, holding, assets)
        self._open.add(batch)
        return batch

    async def settle(self, batch: Batch, stored: bool, taken: Collection[str] | None = None,
                     consumers: tuple[str, ...] | None = None, *, tried: bool = True) -> None:  # fmt: skip
        """Settle ``batch`` by what Airflow reports: its events ``stored`` or not; ``taken``, the ids
        some watcher's filter took (None: all); ``consumers``, the DAGs of those watchers. Not stored
        and never ``tried`` (it waited for a watcher that left): released at once, without the retry delay."""
        self._open.discard(batch)
        current = await batch.current()
        if self.options.pre_delivery_delete:  # deleted before the hand-over: nothing left to settle
            batch.resolve(consumers if stored else None)
        elif not stored:
            if tried:
                log.warning("Queue %r: %d message(s) were not handed over; releasing them for redelivery",
                            self.options.queue, len(current))  # fmt: skip
            if self.kept is not None and batch.token:
                await self.kept.not_stored(batch.token)
            outcome = Outcome.FAILED if tried else Outcome.CANCELLED
            await self.queue.run_flow(settle(current, outcome, self.options))
            batch.resolve(None)
        else:
            done = [m for m in current if taken is None or m.id in taken]
            if self.kept is not None and batch.token:
                await self.kept.stored(batch.token, done, consumers or ())  # deleted once their runs succeed
            else:
                await self._acknowledge(done, batch.assets)
            await self.queue.run_flow(settle([m for m in current if m not in done], Outcome.UNMATCHED, self.options))
            batch.resolve(consumers)
        self._gauge()

    async def _acknowledge(self, messages: list[Message], assets: Sequence[str]) -> list[Message]:
        if not messages:
            return []
        if self.delivered is not None:
            # Before the delete: a message that comes back after it must not start another run.
            self.delivered.add(m.id for m in messages)
            await self.delivered.save(assets)
        deleted: list[Message] = await self.queue.run_flow(settle(messages, Outcome.ACKNOWLEDGED, self.options))
        if self.kept is None:
            log.info("Deleted %d message(s) from queue %r after their asset events were stored", len(deleted),
                     self.options.queue)  # fmt: skip
        return deleted

    async def aclose(self, taken: Callable[[int], Collection[str]] | None = None) -> None:
        """The watcher stops. What was never handed to Airflow is released at once; so is what was
        handed over but taken by no watcher (``taken(seq)``: the ids watchers took of a batch; None:
        all of a batch handed over). What a watcher took may be in an event Airflow stored (a moved
        trigger is cancelled like a killed one, apache/airflow#73454): it stays hidden and comes
        back after its visibility timeout."""
        unclaimed = Held()
        kept = 0
        for batch in sorted(self._open, key=lambda b: b.seq):
            self._open.discard(batch)
            current = await batch.current()
            claimed = (
                ({m.id for m in current} if taken is None else set(taken(batch.seq))) if batch.handed_over else set()
            )
            unclaimed.keep([m for m in current if m.id not in claimed])
            if self.kept is not None and batch.token and not batch.handed_over:
                await self.kept.not_stored(batch.token)
            kept += sum(1 for m in current if m.id in claimed)
            batch.resolve(None)
        if not self.options.pre_delivery_delete:
            if kept:
                log.warning(
                    "Queue %r: stopped before Airflow confirmed the asset event(s) of %d message(s); they stay hidden "
                    "and come back after their visibility timeout (%d s): a second run if the event was stored",
                    self.options.queue,
                    kept,
                    self.options.visibility_timeout,
                )
            await self.queue.run_flow(release_held(unclaimed, stopped(None), self.options.queue))
        if self.kept is not None:
            await self.kept.aclose()  # what runs still hold stays hidden, recorded for the next watcher
        self._gauge()


def _cancelled(error: BaseException) -> BaseException:
    """asyncio's cancellation as the lifecycle's :class:`~fluke_airflow.queues.steps.Cancelled`."""
    return Cancelled() if isinstance(error, asyncio.CancelledError) else error
