"""A ``delete_on_dag_success`` watcher's deliveries, kept until the consumer runs that took them end.

Ack mode deletes a batch once Airflow has stored its asset event. With ``delete_on_dag_success``
the :class:`~fluke_airflow.triggers.watch.Watch` hands each stored delivery to
:class:`KeptDeliveries`, which keeps its messages hidden (renewing their visibility) until the run
of every consumer DAG that took it has ended, then settles them message by message through
:func:`fluke_airflow.queues.lifecycle.after_runs`: deleted where every run (or the message's
mapped task instance, ``message_task_id``) succeeded, released after the retry delay where one did
not, dead-lettered on the last allowed receive, held back behind a failed message of their FIFO
message group.

Which run took a delivery is recorded by this provider's listener in the scheduler
(:mod:`fluke_airflow.plugins.runs`), in the asset state store under the delivery's token; the run's
state and its task instances' states come from the triggerer's supervisor. What must survive the
triggerer is written into the asset state store of the watcher's assets before the event is fired:
an index of the deliveries in flight and, per delivery, its message ids. A new watcher (after a
restart, or on another triggerer) loads them; the messages come back when their visibility timeout
ends, and each is then

* held again if the run of its delivery is still going (no second run),
* deleted if that run succeeded with it,
* delivered anew if it failed, or if no run ever took the delivery (its event was never stored).

A released message whose run is later cleared and succeeds (by hand) is deleted, with the receipt
the release returned, or when it comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fluke_airflow.queues import lifecycle
from fluke_airflow.queues.drivers import AsyncHolding
from fluke_airflow.queues.lifecycle import Outcome, settle
from fluke_airflow.queues.message import Message, latest_receipts
from fluke_airflow.queues.options import DeliveryOptions

log = logging.getLogger("fluke_airflow.triggers")

CHECK_INTERVAL = 2.0
"""Seconds between two looks at the runs of the deliveries in flight."""
FINISHED_INTERVAL = 30.0
"""Seconds between two looks at a run that has ended (a user may clear it and run it again)."""
KEEP_FINISHED = 24 * 3600.0
"""How long a delivery whose runs have ended is kept for messages that have not come back (after a
triggerer restart, whose receipts were lost): longer than SQS's 12 hours of hidden time."""
NO_RUN_WARNING = 300.0
"""After this many seconds without a run recorded for a stored delivery, an ERROR (then every 10 minutes)."""
SUCCEEDED = ("success", "skipped")
FINISHED = ("success", "failed")

Acknowledge = Callable[[list[Message]], Awaitable[list[Message]]]


# -- what the triggerer's supervisor answers ----------------------------------------------------------------
class Supervisor:
    """The asset state store, DAG run states and task instance states, through the triggerer's
    supervisor (``task_runner.SUPERVISOR_COMMS``): all a trigger may ask."""

    async def read(self, asset: str, key: str) -> Any:
        from airflow.sdk.execution_time.context import AssetStateStoreAccessor

        return await AssetStateStoreAccessor(name=asset).aget(key)

    async def write(self, asset: str, key: str, value: Any) -> None:
        from airflow.sdk.execution_time.context import AssetStateStoreAccessor

        await AssetStateStoreAccessor(name=asset).aset(key, value)

    async def delete(self, asset: str, key: str) -> None:
        from airflow.sdk.execution_time.context import AssetStateStoreAccessor

        await AssetStateStoreAccessor(name=asset).adelete(key)

    async def run_state(self, dag_id: str, run_id: str) -> str | None:
        """The run's state; None if Airflow has no such run (it was deleted)."""
        from airflow.sdk.execution_time.comms import DagRunStateResult, GetDagRunState

        answer = await _comms().asend(GetDagRunState(dag_id=dag_id, run_id=run_id))
        if isinstance(answer, DagRunStateResult):
            return str(getattr(answer.state, "value", answer.state))
        if type(answer).__name__ == "ErrorResponse":
            return None
        raise RuntimeError(f"the triggerer's supervisor gave no state for run {dag_id}/{run_id}: {answer!r}")

    async def finished(self, dag_id: str, run_ids: Sequence[str]) -> int:
        """How many of ``run_ids`` have ended: one request for every run of a DAG that is going."""
        from airflow.sdk.execution_time.comms import DRCount, GetDRCount

        answer = await _comms().asend(GetDRCount(dag_id=dag_id, run_ids=list(run_ids), states=list(FINISHED)))
        if not isinstance(answer, DRCount):
            raise RuntimeError(f"the triggerer's supervisor could not count the runs of DAG {dag_id!r}: {answer!r}")
        return int(answer.count)

    async def task_states(self, dag_id: str, run_id: str, task_id: str) -> dict[str, str | None]:
        """``{task_id: state}``, or for a mapped task ``{f"{task_id}_{map_index}": state, ...}``."""
        from airflow.sdk.execution_time.comms import GetTaskStates, TaskStatesResult

        answer = await _comms().asend(GetTaskStates(dag_id=dag_id, task_ids=[task_id], run_ids=[run_id]))
        if not isinstance(answer, TaskStatesResult):
            raise RuntimeError(f"the triggerer's supervisor gave no task states for run {dag_id}/{run_id}: {answer!r}")
        states = answer.task_states.get(run_id) or {}
        return {k: None if v is None else str(getattr(v, "value", v)) for k, v in states.items()}


def _comms() -> Any:
    from airflow.sdk.execution_time import task_runner

    comms = getattr(task_runner, "SUPERVISOR_COMMS", None)
    if comms is None:
        raise RuntimeError("asking about DAG runs needs the triggerer (no supervisor to ask in this process)")
    return comms


# -- the per-message verdict of one run -----------------------------------------------------------------------
def failed_in_run(
    record: dict[str, Any], state: str, task_states: dict[str, str | None] | None, task_id: str | None
) -> tuple[frozenset[str], str | None]:
    """The ids of ``record``'s messages (the listener's record of one finished run) that did not
    succeed in it, and why the whole run decided instead of ``task_id`` (None if it did not). With
    ``task_id`` mapped once per message of the run, its instance *i* decides message *i*;
    otherwise the run's ``state`` decides for all of them."""
    indexes: dict[str, int] = {str(k): int(v) for k, v in (record.get("messages") or {}).items()}
    reason = None
    if task_id and task_states is not None:
        prefix = task_id + "_"
        mapped = {int(k[len(prefix):]): v for k, v in task_states.items()
                  if k.startswith(prefix) and k[len(prefix):].isdigit()}  # fmt: skip
        total = int(record.get("total") or 0)
        if mapped and len(mapped) == total:
            return frozenset(i for i, index in indexes.items() if mapped.get(index) not in SUCCEEDED), None
        if not task_states:
            reason = f"the run has no task {task_id!r}"
        elif not mapped:
            reason = f"task {task_id!r} is not mapped in this run"
        else:
            reason = (f"task {task_id!r} has {len(mapped)} mapped instance(s) for the run's {total} queue message(s) "
                      "(map it over queue_messages(triggering_asset_events))")  # fmt: skip
    return (frozenset() if state == "success" else frozenset(indexes)), reason


# -- one delivery ---------------------------------------------------------------------------------------------
@dataclass
class Run:
    """The run of one consumer DAG that took a delivery (the listener's record)."""

    record: dict[str, Any]
    state: str | None = None
    failed: frozenset[str] | None = None
    """Once the run has ended: the ids that did not succeed in it."""
    looked: float = 0.0

    @property
    def run_id(self) -> str:
        return str(self.record["run_id"])


@dataclass(eq=False)
class Kept:
    """One delivery, from its hand-over until each of its messages is deleted, dead-lettered or
    delivered anew."""

    token: str
    ids: list[str]
    """As handed over (the order of the event's messages)."""
    dags: tuple[str, ...]
    at: float
    stored: bool = False
    """Airflow confirmed its asset events stored (after a restart: as the index said)."""
    confirmed: bool = False
    """Airflow's answer on the events is in (stored or not), or it was loaded after a restart:
    from then on its runs are looked at."""
    latest: dict[str, Message] = field(default_factory=dict)
    """The newest delivery of each message this watcher has a receipt for (held or released)."""
    state: dict[str, str] = field(default_factory=dict)
    """id -> ``held`` (hidden and renewed here), ``released`` (after a failed run, until its retry
    delay ends), ``waiting`` (released behind a failed message of its FIFO group: delivered again
    when it comes back) or ``away`` (hidden with a receipt a previous watcher held). Ids that are
    gone (deleted, dead-lettered, delivered anew) are not in it."""
    holdings: list[tuple[AsyncHolding, set[str]]] = field(default_factory=list)
    runs: dict[str, Run] = field(default_factory=dict)
    asset_of: dict[str, str] = field(default_factory=dict)
    """dag id -> the asset whose state store holds the record of its run."""
    verdict: frozenset[str] | None = None
    """Once every run has ended: the ids that failed in some run."""
    ended_at: float | None = None
    warned_at: float = 0.0

    def pending(self) -> bool:
        return self.verdict is None

    def message_order(self) -> dict[str, int]:
        return {message_id: i for i, message_id in enumerate(self.ids)}


# -- the deliveries of one poll loop ----------------------------------------------------------------------------
class KeptDeliveries:
    """Every kept delivery of one watcher poll loop (one queue), and the loop that settles them."""

    def __init__(
        self,
        queue: Any,
        options: DeliveryOptions,
        *,
        conn_id: str,
        message_task_id: str | None,
        assets: Callable[[], Sequence[str]],
        acknowledge: Acknowledge,
        supervisor: Supervisor | None = None,
        interval: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.queue = queue
        self.options = options
        self.task_id = message_task_id
        self.assets = assets
        self.acknowledge = acknowledge
        self.supervisor = supervisor or Supervisor()
        self.interval = CHECK_INTERVAL if interval is None else interval
        self.clock = clock
        digest = hashlib.sha256(f"{conn_id}\0{options.queue}".encode()).hexdigest()[:16]
        self.index_key = f"fluke_airflow.kept.{digest}"
        self._kept: dict[str, Kept] = {}
        self._held_back: set[str] = set()
        self._loaded = False
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._warned: set[tuple[str, str, str]] = set()
        self._quiet: set[tuple[str, str]] = set()
        """(dag id, run id) of runs known to be still going at this look (no need to ask each)."""
        self._index_changes = 0
        self._index_saved = 0
        self._index_lock = asyncio.Lock()
        self._writes: set[asyncio.Future[Any]] = set()

    # -- the public steps, in the order a delivery takes them ------------------------------------------------
    def new_token(self) -> str:
        return uuid.uuid4().hex

    def spared(self) -> frozenset[str]:
        """Ids the next receive must not dead-letter for their receive count: their run is still
        going, or they succeeded and were only held back behind a failed one of their group."""
        pending = {i for kept in self._kept.values() if kept.pending() for i in kept.state}
        return frozenset(pending | self._held_back)

    def in_flight(self) -> int:
        return sum(1 for kept in self._kept.values() for s in kept.state.values() if s == "held")

    async def announce(self, token: str, messages: Sequence[Message], dags: Sequence[str]) -> None:
        """Before the event is fired: its message ids, so that a watcher after a restart knows
        them when they come back."""
        await self.load()
        kept = Kept(token, [m.id for m in messages], tuple(dags), self.clock())
        kept.latest = {m.id: m for m in messages}
        kept.state = dict.fromkeys(kept.ids, "held")
        async with self._lock:
            self._kept[token] = kept
        # Both before the event fires, at once: a watcher after a restart finds the record through the index.
        record = self._write_all(self._record_key(token), {"queue": self.options.queue, "ids": kept.ids})
        await asyncio.gather(record, self._save_index())

    async def stored(self, token: str, messages: list[Message], consumers: Sequence[str]) -> None:
        """Airflow stored the events: keep ``messages`` (those some watcher's filter took) hidden
        until the runs of ``consumers`` end."""
        kept = self._kept.get(token)
        if kept is None:  # closed meanwhile
            return
        async with self._lock:
            kept.stored = kept.confirmed = True
            kept.dags = tuple(consumers) or kept.dags
            taken = {m.id for m in messages}
            for message_id in [i for i in kept.state if i not in taken]:
                del kept.state[message_id]
            kept.ids = [i for i in kept.ids if i in taken]
            again = {i for _, owned in kept.holdings for i in owned}  # came back meanwhile, held with a newer receipt
            self._hold(kept, [m for m in messages if m.id not in again])
        self._later(self._save_index())  # off the hand-over's path: unconfirmed is handled after a restart too
        self.start()

    async def not_stored(self, token: str) -> None:
        """Airflow did not store the events: the caller releases the messages; forget the delivery."""
        kept = self._kept.pop(token, None)
        if kept is not None:
            await self._drop(kept)

    async def sort(self, messages: Sequence[Message]) -> tuple[list[Message], list[Message]]:
        """Received ``messages`` split into those to deliver (new, or their run failed) and those
        to delete (their run succeeded); the ones whose run is still going are held again here."""
        await self.load()
        fresh: list[Message] = []
        done: list[Message] = []
        again: dict[str, list[Message]] = {}
        owners = self._owners()
        unsure = {owners[m.id].token: owners[m.id] for m in messages if m.id in owners
                  and owners[m.id].confirmed and owners[m.id].pending() and not owners[m.id].stored}  # fmt: skip
        for kept in unsure.values():  # after a restart: did a run take the event whose storing was not confirmed?
            try:
                await self._look(kept)
            except Exception as error:
                log.warning("Queue %r: cannot tell whether a run took delivery %s (%s); its messages that came back "
                            "are delivered anew", self.options.queue, kept.token[:8], error)  # fmt: skip
        async with self._lock:
            owner = self._owners()
            for message in messages:
                found = owner.get(message.id)
                if found is None:
                    fresh.append(message)
                    continue
                kept = found
                if kept.pending():
                    if kept.stored or kept.runs or not kept.confirmed:
                        again.setdefault(kept.token, []).append(message)
                    else:  # after a restart: its event was never confirmed stored, and no run took it
                        self._gone(kept, message.id)
                        fresh.append(message)
                elif message.id in kept.verdict or kept.state.get(message.id) == "waiting":  # type: ignore[operator]
                    self._gone(kept, message.id)
                    fresh.append(message)
                else:
                    self._gone(kept, message.id)
                    done.append(message)
            for token, back in again.items():
                log.info(
                    "Queue %r: %d message(s) came back whose run is still going (delivery %s); holding them "
                    "again instead of starting another run",
                    self.options.queue,
                    len(back),
                    token[:8],
                )
                self._hold(self._kept[token], back)
        self._held_back.difference_update(m.id for m in fresh)
        if done:
            log.info("Queue %r: %d message(s) came back whose run succeeded; deleting them", self.options.queue,
                     len(done))  # fmt: skip
            await self.acknowledge(done)
        await self._drop_finished()
        return fresh, done

    # -- the settle loop ---------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._loop())

    async def _loop(self) -> None:
        while True:
            try:
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("Queue %r: looking at the consumer runs failed (%s); trying again in %gs",
                            self.options.queue, error, self.interval)  # fmt: skip
            await asyncio.sleep(self.interval)

    async def check(self) -> None:
        """One look at every kept delivery's runs; settle those whose runs have all ended."""
        await self.load()
        await self._which_are_going()
        for kept in list(self._kept.values()):
            if kept.confirmed:
                await self._look(kept)
        await self._drop_finished()

    async def _which_are_going(self) -> None:
        """The runs still going, with one request per DAG rather than one per run."""
        going: dict[str, set[str]] = {}
        for kept in self._kept.values():
            for dag_id, run in kept.runs.items():
                if run.failed is None:
                    going.setdefault(dag_id, set()).add(run.run_id)
        self._quiet = set()
        for dag_id, run_ids in going.items():
            if await self.supervisor.finished(dag_id, sorted(run_ids)) == 0:
                self._quiet |= {(dag_id, run_id) for run_id in run_ids}

    async def _look(self, kept: Kept) -> None:
        now = self.clock()
        for dag_id in kept.dags:
            run = kept.runs.get(dag_id)
            if run is None:
                record = await self._find_run(kept, dag_id)
                if record is None:
                    continue
                run = kept.runs[dag_id] = Run(record)
            if run.failed is not None and now - run.looked < FINISHED_INTERVAL:
                continue
            if (dag_id, run.run_id) in self._quiet and now - run.looked < FINISHED_INTERVAL:
                continue  # still going (asked once every FINISHED_INTERVAL all the same: a deleted run counts nowhere)
            run.looked = now
            state = await self.supervisor.run_state(dag_id, run.run_id)
            if state is None:
                log.warning("Queue %r: run %s of DAG %r, which took delivery %s, is gone from Airflow; its messages "
                            "count as failed", self.options.queue, run.run_id, dag_id, kept.token[:8])  # fmt: skip
                state = "failed"
            if state not in FINISHED:
                run.state, run.failed = state, None
                continue
            if run.failed is not None and run.state == state:
                continue
            states = await self.supervisor.task_states(dag_id, run.run_id, self.task_id) if self.task_id else None
            run.state = state
            run.failed, reason = failed_in_run(run.record, state, states, self.task_id)
            if reason and (dag_id, run.run_id, reason) not in self._warned:
                self._warned.add((dag_id, run.run_id, reason))
                log.warning("Queue %r: DAG %r run %s: %s, so the whole run (%s) decides for its messages",
                            self.options.queue, dag_id, run.run_id, reason, state)  # fmt: skip
        missing = [d for d in kept.dags if d not in kept.runs]
        if missing and kept.stored:
            self._warn_no_run(kept, missing, now)
        verdict = self._verdict(kept)
        if verdict is None:
            if kept.verdict is not None:
                log.info("Queue %r: a run of delivery %s is going again (cleared?); its messages wait for it",
                         self.options.queue, kept.token[:8])  # fmt: skip
            kept.verdict, kept.ended_at = None, None
            return
        if verdict != kept.verdict or any(s == "held" for s in kept.state.values()):
            kept.verdict, kept.ended_at = verdict, now
            await self._settle(kept)

    def _verdict(self, kept: Kept) -> frozenset[str] | None:
        if not kept.dags or any(d not in kept.runs or kept.runs[d].failed is None for d in kept.dags):
            return None
        failed: set[str] = set()
        for run in kept.runs.values():
            failed |= run.failed or set()
        return frozenset(failed)

    async def _find_run(self, kept: Kept, dag_id: str) -> dict[str, Any] | None:
        from fluke_airflow.plugins.runs import run_key

        key = run_key(kept.token, dag_id)
        known = kept.asset_of.get(dag_id)
        for asset in [known] if known else list(self.assets()):
            value = await self.supervisor.read(asset, key)
            if isinstance(value, dict) and value.get("run_id"):
                kept.asset_of[dag_id] = asset
                return value
        return None

    def _warn_no_run(self, kept: Kept, missing: Sequence[str], now: float) -> None:
        waited = now - kept.at
        if waited < NO_RUN_WARNING or now - kept.warned_at < 600:
            return
        kept.warned_at = now
        log.error(
            "Queue %r: %d message(s) (delivery %s) have waited %.0f min for a run of DAG(s) %s to take their event. "
            "They stay hidden in the queue until one does. If the DAG is not paused or at max_active_runs, "
            "fluke-airflow's plugin is not loaded in the scheduler: `airflow plugins` there must list "
            "'fluke_airflow' (installed with the provider; loaded from its 'airflow.plugins' entry point), and "
            "nothing else tells a delete_on_dag_success watcher which run took which event",
            self.options.queue,
            len(kept.state),
            kept.token[:8],
            waited / 60,
            ", ".join(map(repr, missing)),
        )

    async def _settle(self, kept: Kept) -> None:
        """Carry out ``kept``'s verdict on the messages it has receipts for; remember it for the others."""
        assert kept.verdict is not None
        failed = kept.verdict
        async with self._lock:
            held = await self._stop_holding(kept)
        order = kept.message_order()
        held.sort(key=lambda m: order.get(m.id, len(order)))
        verdicts = lifecycle.after_runs(held, failed, self.options)
        released_ok = [kept.latest[i] for i, s in kept.state.items() if s == "released" and i not in failed]
        options = self.options
        if verdicts.acknowledged or released_ok:
            gone = verdicts.acknowledged + released_ok
            deleted = await self.acknowledge(gone)
            for message in gone:
                self._gone(kept, message.id)
            log.info("Queue %r: the runs of delivery %s succeeded with %d message(s): deleted %d",
                     options.queue, kept.token[:8], len(gone), len(deleted))  # fmt: skip
        if verdicts.poison:
            moved = await self.queue.run_flow(lifecycle.dead_letter(
                verdicts.poison, options, f"the DAG run failed on receive {options.max_receive_count} "
                f"(max_receive_count={options.max_receive_count})"))  # fmt: skip
            for message in verdicts.poison:
                self._gone(kept, message.id)
            log.warning("Queue %r: %d message(s) of delivery %s failed on their last allowed receive "
                        "(max_receive_count=%d); moved %d to %r (ids %s)", options.queue, len(verdicts.poison),
                        kept.token[:8], options.max_receive_count, len(moved), options.dead_letter_queue,
                        ", ".join(m.id for m in verdicts.poison[:10]))  # fmt: skip
        back = verdicts.failed + verdicts.held_back
        if back:
            for message in verdicts.failed:
                kept.state[message.id] = "released"
            for message in verdicts.held_back:
                kept.state[message.id] = "waiting"
            self._held_back.update(m.id for m in verdicts.held_back)
            released = await self.queue.run_flow(settle(verdicts.failed, Outcome.FAILED, options))
            if verdicts.held_back:
                released += await self.queue.run_flow(lifecycle.release(verdicts.held_back, options.queue, None))
            for message in latest_receipts(back, released):
                if message.id in kept.state:
                    kept.latest[message.id] = message
            log.warning("Queue %r: the runs of delivery %s failed for %d message(s) (ids %s); released them for "
                        "redelivery%s", options.queue, kept.token[:8], len(verdicts.failed),
                        ", ".join(m.id for m in verdicts.failed[:10]),
                        f", and {len(verdicts.held_back)} after them in their FIFO message group"
                        if verdicts.held_back else "")  # fmt: skip

    # -- holding -----------------------------------------------------------------------------------------------
    def _hold(self, kept: Kept, messages: Sequence[Message]) -> None:
        if not messages:
            return
        ids = {m.id for m in messages}
        for _, owned in kept.holdings:
            owned -= ids
        for message in messages:
            kept.latest[message.id] = message
            kept.state[message.id] = "held"
        holding = self.queue.hold(list(messages), self.options.visibility_timeout)
        kept.holdings.append((holding, ids))

    async def _stop_holding(self, kept: Kept) -> list[Message]:
        """Stop renewing ``kept``'s messages; the held ones with their current receipts."""
        for holding, owned in kept.holdings:
            for message in await holding.stop():
                if message.id in owned:
                    kept.latest[message.id] = message
        kept.holdings.clear()
        return [kept.latest[i] for i, s in kept.state.items() if s == "held"]

    # -- bookkeeping -------------------------------------------------------------------------------------------
    def _owners(self) -> dict[str, Kept]:
        """The newest kept delivery of each message id."""
        owner: dict[str, Kept] = {}
        for kept in sorted(self._kept.values(), key=lambda k: k.at):
            for message_id in kept.state:
                owner[message_id] = kept
        return owner

    def _gone(self, kept: Kept, message_id: str) -> None:
        kept.state.pop(message_id, None)
        kept.latest.pop(message_id, None)

    async def _drop_finished(self) -> None:
        now = self.clock()
        for kept in list(self._kept.values()):
            empty = not kept.state and not kept.holdings
            stale = kept.ended_at is not None and now - kept.ended_at > KEEP_FINISHED
            if empty or stale:
                self._kept.pop(kept.token, None)
                await self._drop(kept)

    async def _drop(self, kept: Kept) -> None:
        with contextlib.suppress(Exception):
            await self._stop_holding(kept)
        self._later(self._save_index())
        for asset in self.assets():
            self._later(self._call(self.supervisor.delete(asset, self._record_key(kept.token)), "delete", asset))

    def _later(self, write: Awaitable[Any]) -> None:
        """A write to the state store that nothing waits for (a restart before it is handled)."""
        future = asyncio.ensure_future(write)
        self._writes.add(future)
        future.add_done_callback(self._writes.discard)

    # -- the asset state store -----------------------------------------------------------------------------------
    def _record_key(self, token: str) -> str:
        return f"{self.index_key}.{token}"

    async def _save_index(self) -> None:
        """Write the index of deliveries in flight as it is now, or return once a write that started
        after this call has (writes go one at a time, so an older one never lands last)."""
        self._index_changes += 1
        wanted = self._index_changes
        async with self._index_lock:
            if self._index_saved >= wanted:
                return
            changes = self._index_changes
            deliveries = {k.token: {"dags": list(k.dags), "at": k.at, "stored": k.stored} for k in self._kept.values()}
            await self._write_all(self.index_key, {"queue": self.options.queue, "deliveries": deliveries})
            self._index_saved = changes

    async def _write_all(self, key: str, value: Any) -> None:
        for asset in self.assets():
            await self._call(self.supervisor.write(asset, key, value), "write", asset)

    async def _call(self, request: Awaitable[Any], action: str, asset: str) -> Any:
        try:
            return await request
        except Exception as error:
            log.warning("Queue %r: cannot %s the record of kept deliveries in the state store of asset %r (%s); "
                        "after a triggerer restart their messages may run again", self.options.queue, action, asset,
                        error)  # fmt: skip
            return None

    async def load(self) -> None:
        """Once: the deliveries a previous watcher of this queue left in flight (their messages are away)."""
        if self._loaded:
            return
        self._loaded = True
        for asset in self.assets():
            index = await self._call(self.supervisor.read(asset, self.index_key), "read", asset)
            if not isinstance(index, dict) or index.get("queue") != self.options.queue:
                continue
            for token, entry in (index.get("deliveries") or {}).items():
                if token in self._kept or not isinstance(entry, dict):
                    continue
                record = await self._call(self.supervisor.read(asset, self._record_key(token)), "read", asset)
                ids = [str(i) for i in (record or {}).get("ids", [])] if isinstance(record, dict) else []
                if not ids:
                    continue
                kept = Kept(token, ids, tuple(entry.get("dags") or ()), float(entry.get("at") or 0.0),
                            stored=bool(entry.get("stored")))  # fmt: skip
                kept.state = dict.fromkeys(ids, "away")
                kept.confirmed = True
                self._kept[token] = kept
        if self._kept:
            log.info("Queue %r: %d delivery(ies) of a previous watcher are in flight (%d message(s)); their messages "
                     "are held again, deleted or delivered anew by their runs' outcome when they come back",
                     self.options.queue, len(self._kept), sum(len(k.state) for k in self._kept.values()))  # fmt: skip
            self.start()

    async def aclose(self) -> None:
        """The watcher stops: stop renewing; what is held stays hidden until its visibility timeout
        (a new watcher finds its deliveries in the asset state store)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)
        for kept in self._kept.values():
            with contextlib.suppress(Exception):
                await self._stop_holding(kept)
