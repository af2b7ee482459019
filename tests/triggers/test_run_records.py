"""Which run took which delivery, and what it says about each message: the listener's records
(:mod:`fluke_airflow.plugins.runs`), the order both sides give a run's messages
(:func:`~fluke_airflow.delivery.payloads.ordered_messages`), the per-message verdict of a finished
run (:func:`~fluke_airflow.triggers.kept.failed_in_run`) and the watcher's argument rules. Free of
I/O: events are plain objects shaped like Airflow's."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest

from fluke_airflow.delivery.payloads import TOKEN, ordered_messages, queue_messages
from fluke_airflow.plugins import runs
from fluke_airflow.queues import arguments
from fluke_airflow.queues.arguments import TRIGGER, DeliverySettings, WatchArguments
from fluke_airflow.triggers.kept import failed_in_run

pytestmark = pytest.mark.unit

T0 = datetime(2026, 12, 1, tzinfo=timezone.utc)


def payload(token: str | None, *bodies: str, single: bool = False) -> dict[str, Any]:
    messages = [{"id": f"id-{b}", "body": b, "receive_count": 1} for b in bodies]
    out: dict[str, Any] = {"queue": "orders", "service": "Amazon SQS"}
    if token:
        out[TOKEN] = token
    if single:
        out["message"] = messages[0]
    else:
        out["messages"] = messages
    return out


def orm_event(asset_id: int, name: str, seconds: int, body: Any) -> SimpleNamespace:
    """Shaped like ``AssetEvent`` as the scheduler's listener sees it."""
    asset = SimpleNamespace(name=name, uri=f"fluke://{name}")
    return SimpleNamespace(asset_id=asset_id, asset=asset, timestamp=T0 + timedelta(seconds=seconds),
                           extra={"from_trigger": True, "payload": body})  # fmt: skip


def task_event(event: SimpleNamespace) -> SimpleNamespace:
    """The same event as a task sees it in ``triggering_asset_events``."""
    return SimpleNamespace(asset=event.asset, timestamp=event.timestamp, extra=event.extra)


EVENTS = [
    orm_event(1, "orders", 5, payload("t2", "c", "d")),
    orm_event(1, "orders", 1, payload("t1", "a", "b")),
    orm_event(2, "audit", 3, {"from": "a task"}),  # not a queue watcher's event
    orm_event(3, "invoices", 3, payload(None, "x", single=True)),  # ack mode: no token
]


def test_a_run_s_messages_are_ordered_by_event_time_each_once() -> None:
    duplicate = orm_event(4, "orders_copy", 1, payload("t1", "a", "b"))  # one trigger row, two assets
    got = ordered_messages([(e.timestamp, e.asset.name, e.asset.uri, e.extra["payload"]) for e in [*EVENTS, duplicate]])
    assert [(token, m["body"]) for token, m in got] == [("t1", "a"), ("t1", "b"), (None, "x"), ("t2", "c"), ("t2", "d")]


def test_the_task_and_the_listener_agree_on_each_message_s_map_index() -> None:
    """What makes ``message_task_id`` sound: map index i of a task mapped over queue_messages() is
    the index the listener recorded for message i."""
    triggering = {"orders": [task_event(e) for e in EVENTS[:2]], "invoices": [task_event(EVENTS[3])]}
    in_task = [m["id"] for m in queue_messages(triggering)]
    records = runs.run_records("consumer", "run-1", EVENTS)
    recorded = {mid: i for record in records.values() for mid, i in record["messages"].items()}
    assert {mid: in_task.index(mid) for mid in recorded} == recorded
    assert set(recorded) == {"id-a", "id-b", "id-c", "id-d"}  # the token-less event is no delivery to record


def test_the_listener_records_each_delivery_under_its_token_in_its_asset() -> None:
    records = runs.run_records("consumer", "run-1", EVENTS)
    assert set(records) == {(1, runs.run_key("t1", "consumer")), (1, runs.run_key("t2", "consumer"))}
    first = records[(1, runs.run_key("t1", "consumer"))]
    assert first == {"dag_id": "consumer", "run_id": "run-1", "messages": {"id-a": 0, "id-b": 1}, "total": 5}
    assert runs.run_key("t1", "consumer") != runs.run_key("t1", "other")
    assert len(runs.run_key("t" * 32, "x" * 250)) < 100  # the state store's keys: 512 characters at most


def test_a_run_without_deliveries_records_nothing_and_loads_no_asset() -> None:
    """The listener runs for every asset-triggered run of every DAG: without a delivery token among
    its events it costs no more than reading their extra."""

    class Unloaded(SimpleNamespace):
        @property
        def asset(self) -> Any:
            raise AssertionError("an event's asset was loaded")

    events = [Unloaded(**{k: v for k, v in vars(e).items() if k != "asset"}) for e in (EVENTS[2], EVENTS[3])]
    assert runs.run_records("consumer", "run-1", events) == {}


def test_a_run_that_is_not_asset_triggered_is_not_looked_at() -> None:
    class Run:
        run_type = SimpleNamespace(value="manual")

        @property
        def consumed_asset_events(self) -> list[Any]:
            raise AssertionError("a manual run's events are not loaded")

    runs.record(Run())


def test_the_record_is_written_after_the_scheduler_s_commit_not_before_nor_after_a_rollback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.orm import Session

    written: list[Any] = []
    monkeypatch.setattr(runs, "write", lambda records: written.append(dict(records)))
    session = Session(create_engine("sqlite://"))
    session.execute(text("select 1"))
    runs._after_commit(session, {(1, "k1"): {"run_id": "r1"}})
    assert written == []
    session.commit()
    assert written == [{(1, "k1"): {"run_id": "r1"}}]
    session.execute(text("select 1"))
    runs._after_commit(session, {(1, "k2"): {"run_id": "r2"}})
    session.rollback()
    session.execute(text("select 1"))
    session.commit()
    assert written == [{(1, "k1"): {"run_id": "r1"}}]  # the rolled-back state change is notified again


RECORD = {"dag_id": "consumer", "run_id": "r", "messages": {"a": 0, "b": 1, "c": 2}, "total": 3}


def test_a_mapped_task_decides_per_message() -> None:
    states = {"process_0": "success", "process_1": "failed", "process_2": "upstream_failed"}
    assert failed_in_run(RECORD, "failed", states, "process") == (frozenset({"b", "c"}), None)
    assert failed_in_run(RECORD, "success", {**states, "process_1": "skipped", "process_2": "success"},
                         "process") == (frozenset(), None)  # fmt: skip


@pytest.mark.parametrize(
    ("states", "reason"),
    [
        ({}, "has no task 'process'"),
        ({"process": "failed"}, "is not mapped"),
        ({"process_0": "success", "process_1": "success"}, "2 mapped instance(s) for the run's 3"),
    ],
)
def test_without_one_mapped_instance_per_message_the_whole_run_decides(states: dict[str, Any], reason: str) -> None:
    failed, why = failed_in_run(RECORD, "failed", states, "process")
    assert failed == {"a", "b", "c"} and why is not None and reason in why
    assert failed_in_run(RECORD, "success", states, "process")[0] == frozenset()


def test_without_message_task_id_the_run_state_decides() -> None:
    assert failed_in_run(RECORD, "failed", None, None) == (frozenset({"a", "b", "c"}), None)
    assert failed_in_run(RECORD, "success", None, None) == (frozenset(), None)


def watcher(**values: Any) -> tuple[DeliverySettings, WatchArguments]:
    given = {"conn_id": "c", "queue": "q", **values}

    def of(declared: type) -> dict[str, Any]:
        return {k: v for k, v in given.items() if k in arguments.names(declared, TRIGGER)}

    settings = DeliverySettings.checked(TRIGGER, of(DeliverySettings))
    return settings, WatchArguments(**arguments.check(TRIGGER, of(WatchArguments), only=WatchArguments))


@pytest.mark.parametrize(
    ("values", "error"),
    [
        ({"message_task_id": "process"}, "needs delete_on_dag_success=True"),
        ({"delete_on_dag_success": True}, "needs dag_ids"),
        ({"delete_on_dag_success": True, "dag_ids": ["d"], "batch_size": 1001}, "at most 1000 messages per event"),
        ({"delete_on_dag_success": True, "dag_ids": ["d"], "pre_delivery_delete": True}, "pre_delivery_delete"),
    ],
)
def test_a_watcher_s_bad_combination_is_refused_naming_the_arguments(values: dict[str, Any], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        arguments.check_watch(*watcher(**values))


def test_a_deferred_sensor_s_trigger_skips_the_watcher_rules() -> None:
    arguments.check_watch(*watcher(delete_on_dag_success=True, single_event=True, batch_size=5000))
