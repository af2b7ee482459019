"""The scheduler's side of ``delete_on_dag_success`` watchers: which DAG run took which delivery.

A watcher runs in the triggerer, which has no database access and no way to ask which run
consumed an asset event. This listener runs where DAG runs change state (the scheduler; the API
server when a user marks a run): when a run that consumed asset events carrying a delivery token
(:data:`~fluke_airflow.delivery.payloads.TOKEN`) starts running, succeeds or fails, it records,
under the token, in the asset state store of each asset whose event carried it, the run's id and
the map index of each of the delivery's messages in the run
(:func:`~fluke_airflow.delivery.payloads.ordered_messages`). The watcher reads that record through
the triggerer's supervisor and asks the run's state and its task instances' states itself (the
supervisor answers those too): the record is all that has to cross from the scheduler, and it is
written once per run, so a scheduler restart, a triggerer restart or a watcher moved to another
triggerer loses nothing.

The record is written after the scheduler's transaction commits, in a session of its own: a write
inside the scheduler's transaction could abort it (and a savepoint there is a commit for the
scheduler's guard against unexpected commits). A scheduler that dies between its commit and the
write leaves a run unrecorded until it ends, when the listener writes the record again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import weakref
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

from airflow.listeners import hookimpl

log = logging.getLogger("fluke_airflow.plugins")

PREFIX = "fluke_airflow.run."
MEMO = 10_000
"""Records this process wrote, by key, so that a run's success does not write its record again."""

Records = dict[tuple[int, str], dict[str, Any]]
"""(asset id, state store key) -> the record of one run taking one delivery."""


def run_key(token: str, dag_id: str) -> str:
    """The asset state store key of the run of ``dag_id`` that took delivery ``token``."""
    return f"{PREFIX}{token}.{hashlib.sha256(dag_id.encode()).hexdigest()[:16]}"


def run_records(dag_id: str, run_id: str, events: Iterable[Any]) -> Records:
    """What to record for a run that consumed ``events`` (``AssetEvent`` rows): one record per
    delivery token and asset, with the map index of each of the delivery's messages in the run."""
    from fluke_airflow.delivery.payloads import TOKEN, ordered_messages

    assets_of: dict[str, set[int]] = {}
    payloads: list[tuple[Any, Any]] = []
    for event in events:
        payload = (event.extra or {}).get("payload") if isinstance(event.extra, Mapping) else None
        token = payload.get(TOKEN) if isinstance(payload, Mapping) else None
        if token:
            assets_of.setdefault(str(token), set()).add(event.asset_id)
        payloads.append((event, payload))
    if not assets_of:  # no delete_on_dag_success watcher fed this run: its events' assets are not even loaded
        return {}
    ordered = ordered_messages((e.timestamp, e.asset.name, e.asset.uri, payload) for e, payload in payloads)
    records: Records = {}
    for token, asset_ids in assets_of.items():
        indexes = {str(m["id"]): i for i, (t, m) in enumerate(ordered) if t == token}
        record = {"dag_id": dag_id, "run_id": run_id, "messages": indexes, "total": len(ordered)}
        for asset_id in asset_ids:
            records[(int(asset_id), run_key(token, dag_id))] = record
    return records


def _is_asset_triggered(dag_run: Any) -> bool:
    run_type = getattr(dag_run, "run_type", None)
    return getattr(run_type, "value", run_type) == "asset_triggered"


def record(dag_run: Any) -> None:
    """Record which of the watchers' deliveries ``dag_run`` took (once its state change is committed)."""
    if not _is_asset_triggered(dag_run):
        return
    try:
        records = run_records(dag_run.dag_id, dag_run.run_id, dag_run.consumed_asset_events or ())
        records = {k: v for k, v in records.items() if _WRITTEN.get(k) != _json(v)}
        if not records:
            return
        from sqlalchemy.orm import object_session

        session = object_session(dag_run)
        if session is None or not session.in_transaction():
            write(records)
        else:
            _after_commit(session, records)
    except Exception:
        log.warning(
            "Could not record which queue deliveries DAG run %s.%s took; a delete_on_dag_success watcher keeps "
            "their messages until the run ends and records it then",
            getattr(dag_run, "dag_id", "?"),
            getattr(dag_run, "run_id", "?"),
            exc_info=True,
        )


_PENDING: weakref.WeakKeyDictionary[Any, Records] = weakref.WeakKeyDictionary()
_WATCHED: weakref.WeakSet[Any] = weakref.WeakSet()
_WRITTEN: OrderedDict[tuple[int, str], str] = OrderedDict()


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _after_commit(session: Any, records: Records) -> None:
    _PENDING.setdefault(session, {}).update(records)
    if session in _WATCHED:
        return
    from sqlalchemy import event

    _WATCHED.add(session)
    event.listen(session, "after_commit", _flush)
    event.listen(session, "after_rollback", _forget)


def _flush(session: Any) -> None:
    records = _PENDING.pop(session, None)
    if records:
        write(records)


def _forget(session: Any) -> None:
    """The state change was rolled back: the scheduler will make it again, and notify again."""
    _PENDING.pop(session, None)


def write(records: Records) -> None:
    """Write ``records`` into the asset state store, in a session of its own."""
    from airflow.state import AssetScope, get_state_backend
    from airflow.utils.session import create_session

    backend = get_state_backend()
    try:
        # Not the scoped session: that is the thread's, the scheduler's own, which just committed.
        with create_session(scoped=False) as session:
            for (asset_id, key), value in records.items():
                backend.set(AssetScope(asset_id=asset_id), key, _json(value), session=session)
    except Exception:
        log.warning(
            "Could not record in the asset state store which queue deliveries DAG run(s) %s took; a "
            "delete_on_dag_success watcher keeps their messages until the run ends and records it then",
            sorted({v["run_id"] for v in records.values()}),
            exc_info=True,
        )
        return
    for written, value in records.items():
        _WRITTEN[written] = _json(value)
        _WRITTEN.move_to_end(written)
    while len(_WRITTEN) > MEMO:
        _WRITTEN.popitem(last=False)


@hookimpl
def on_dag_run_running(dag_run: Any, msg: str) -> None:
    record(dag_run)


@hookimpl
def on_dag_run_success(dag_run: Any, msg: str) -> None:
    record(dag_run)


@hookimpl
def on_dag_run_failed(dag_run: Any, msg: str) -> None:
    record(dag_run)
