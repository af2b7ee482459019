"""Two triggerers (issue 15): fan-out that survives Airflow's placement, a split that says so, failover.

The module runs the e2e Airflow with two triggerers: ``triggerer`` with ``--capacity 2`` and
``triggerer-2`` (no limit), and a 5 s poller heartbeat. The DAGs are in ``tests/e2e/dags/e2e_scale.py``.

1. The split: two assets each with its own watcher on one queue (same settings). Their triggers
   are two rows; with the first triggerer full, Airflow puts them on different triggerers. Both
   poll loops log an ERROR naming both, and as competing consumers they still process every message
   at least once.
2. Fan-out: two assets with *one* trigger (identical watchers in one DAG file): one trigger row,
   run by one triggerer, each event to both assets, so both pipelines process every message.
3. Failover: with both triggerers unlimited, the one holding a watcher is SIGKILLed mid-burst;
   Airflow moves the trigger to the other one; every message processed, duplicates at most one
   event's worth.

Accounting is printed for each. Waits are bounded; nothing asserts on durations.
"""

from __future__ import annotations

import contextlib
import re
from typing import TYPE_CHECKING, Any

import pytest
from events_support import EventQueue, Ledger, bodies, book, holder, log_text, polling, show_accounting, wait_processed

from devtools.airflow_local import AirflowError, wait_for_airflow

if TYPE_CHECKING:
    from conftest import Stack

SERVICES = ("sqs", "azure")
HEARTBEAT = {"AIRFLOW__FLUKE_AIRFLOW__POLLER_HEARTBEAT_INTERVAL": "5"}
SPLIT_ERROR = re.compile(r"Queue '(e2e-scale-split-\w+)' \(connection '\w+'\) is polled by two triggerers")


def dags(kind: str) -> list[str]:
    sides = ("a", "b") if kind in ("fanout", "split") else ("",)
    return [f"e2e_scale_{kind}_{s}" + (f"_{side}" if side else "") for s in SERVICES for side in sides]


@pytest.fixture(scope="module")
def two_triggerers(stack: Stack) -> Any:
    airflow, api = stack.airflow, stack.api
    api.wait_for_dags(dags("fanout") + dags("split") + dags("failover"))
    for service in SERVICES:
        for kind in ("fanout", "split", "failover"):
            EventQueue(stack, service, f"e2e-scale-{kind}-{service}").create()
    saved = dict(airflow.extra_env)
    airflow.extra_env.update(HEARTBEAT)
    airflow.stop_component("triggerer")
    airflow.add_triggerer("triggerer", capacity=2)
    starts = {name: airflow.log_path(name).stat().st_size if airflow.log_path(name).exists() else 0
              for name in ("triggerer", "triggerer-2")}  # fmt: skip
    try:
        airflow.start_component("triggerer")
        # The split's first two watchers fill the first triggerer ...
        for dag_id in dags("split")[0::2]:
            api.unpause(dag_id)
        wait_for_airflow(
            lambda: all(polling(stack, "triggerer", f"e2e-scale-split-{s}", starts["triggerer"]) for s in SERVICES),
            what="the first triggerer to take the first watcher of each split queue",
            timeout=180,
            interval=1.0,
        )
        # ... so the second triggerer gets their twins.
        airflow.add_triggerer("triggerer-2")
        airflow.start_component("triggerer-2")
        for dag_id in dags("split")[1::2]:
            api.unpause(dag_id)
        wait_for_airflow(
            lambda: all(polling(stack, "triggerer-2", f"e2e-scale-split-{s}") for s in SERVICES),
            what="the second triggerer to take the second watcher of each split queue",
            timeout=180,
            interval=1.0,
        )
        yield starts
    finally:
        for dag_id in dags("fanout") + dags("split") + dags("failover"):
            with contextlib.suppress(AirflowError):
                api.pause(dag_id)
        for name in ("triggerer-2", "triggerer"):
            airflow.stop_component(name)
        airflow.extra_env.clear()
        airflow.extra_env.update(saved)
        airflow.add_triggerer("triggerer")
        airflow.start_component("triggerer")
        airflow.wait_healthy(timeout=120)
        show_accounting("Scale-out accounting (pushed / processed / duplicates / lost / runs)")


# -- 1. the split -------------------------------------------------------------------------------------------
def test_watchers_placed_on_two_triggerers_say_so_and_still_process_every_message(
    stack: Stack, two_triggerers: dict[str, int]
) -> None:
    starts = two_triggerers

    def errors() -> dict[str, set[str]]:
        return {
            name: set(SPLIT_ERROR.findall(log_text(stack, name, starts.get(name, 0))))
            for name in ("triggerer", "triggerer-2")
        }

    queues = {f"e2e-scale-split-{s}" for s in SERVICES}
    found = wait_for_airflow(lambda: (
        errors() if all(q >= queues for q in errors().values()) else None),
        what="both triggerers to report the split of both queues", timeout=120, interval=1.0)  # fmt: skip
    assert found == {"triggerer": queues, "triggerer-2": queues}

    for service in SERVICES:
        _competing_consumers_process_every_message(stack, service)


def _competing_consumers_process_every_message(stack: Stack, service: str) -> None:
    queue = EventQueue(stack, service, f"e2e-scale-split-{service}")
    ledger = Ledger(f"split {service}: two triggerers compete", bodies("split", 40))
    queue.push(ledger.pushed)
    side_a, side_b = Ledger("a", []), Ledger("b", [])

    def processed() -> bool:
        book(stack, f"e2e_scale_split_{service}_a", side_a)
        book(stack, f"e2e_scale_split_{service}_b", side_b)
        ledger.processed = side_a.processed + side_b.processed
        ledger.runs = side_a.runs + side_b.runs
        return not ledger.lost and queue.total() == 0

    wait_for_airflow(processed, what=f"the split {service} queue's messages to be processed", timeout=300, interval=2.0)
    ledger.notes.append(f"asset a got {len(side_a.processed)}, asset b got {len(side_b.processed)}")
    ledger.report()
    assert not ledger.lost  # competing consumers: every message reached one of them


# -- 2. fan-out with one trigger --------------------------------------------------------------------------
def test_two_assets_with_one_trigger_each_get_every_message_whatever_the_placement(
    stack: Stack, two_triggerers: dict[str, int]
) -> None:
    api = stack.api
    for dag_id in dags("fanout"):
        api.unpause(dag_id)
    for service in SERVICES:
        wait_for_airflow(
            lambda s=service: any(polling(stack, n, f"e2e-scale-fanout-{s}") for n in ("triggerer", "triggerer-2")),
            what=f"the fan-out {service} watcher to poll",
            timeout=180,
            interval=1.0,
        )
        (asset_a,) = api.request("GET", "/assets", params={"name_pattern": f"e2e_scale_fanout_{service}_a"})["assets"]
        (asset_b,) = api.request("GET", "/assets", params={"name_pattern": f"e2e_scale_fanout_{service}_b"})["assets"]
        triggers = {w["trigger_id"] for w in asset_a["watchers"]} | {w["trigger_id"] for w in asset_b["watchers"]}
        assert len(triggers) == 1, f"the two assets should share one trigger row: {asset_a}, {asset_b}"
    for service in SERVICES:
        queue = EventQueue(stack, service, f"e2e-scale-fanout-{service}")
        pushed = bodies("fanout", 30)
        queue.push(pushed)
        for side in ("a", "b"):
            ledger = Ledger(f"fan-out {service}, DAG {side}", pushed)
            wait_processed(stack, f"e2e_scale_fanout_{service}_{side}", queue, ledger, timeout=300)
            ledger.report()
            assert not ledger.lost and ledger.duplicates == 0


# -- 3. failover ---------------------------------------------------------------------------------------------
@pytest.mark.timeout(900)
def test_a_killed_triggerer_hands_its_watchers_over_and_nothing_is_lost(
    stack: Stack, two_triggerers: dict[str, int]
) -> None:
    airflow, api = stack.airflow, stack.api
    # Only the failover watchers now, and no capacity limit: whichever triggerer survives must be
    # able to take over everything the other held.
    for dag_id in dags("split") + dags("fanout"):
        api.pause(dag_id)
    airflow.stop_component("triggerer")
    airflow.add_triggerer("triggerer")
    airflow.start_component("triggerer")
    for dag_id in dags("failover"):
        api.unpause(dag_id)
    for service in SERVICES:
        _failover_loses_nothing(stack, service)


def _failover_loses_nothing(stack: Stack, service: str) -> None:
    airflow = stack.airflow
    queue = EventQueue(stack, service, f"e2e-scale-failover-{service}")
    dag_id = f"e2e_scale_failover_{service}"
    held_by = wait_for_airflow(
        lambda: holder(stack, queue.name), what=f"the failover {service} watcher to poll", timeout=180, interval=1.0
    )
    other = "triggerer-2" if held_by == "triggerer" else "triggerer"
    ledger = Ledger(f"failover {service}: {held_by} SIGKILLed", bodies("failover", 400))
    queue.push(ledger.pushed)
    # Killed while it works through the burst: a run exists and messages still wait (how many is
    # printed; on a busy machine the watcher can be far ahead of the scheduler's first run).
    consuming = lambda: bool(book(stack, dag_id, ledger)) and queue.total() > 0  # noqa: E731
    wait_for_airflow(consuming, what=f"{dag_id} to start consuming the burst", timeout=420, interval=0.3)
    left = queue.total()
    mark = airflow.log_path(other).stat().st_size
    airflow.kill_component(held_by)
    try:
        wait_processed(stack, dag_id, queue, ledger, timeout=480)
        assert polling(stack, other, queue.name, mark), f"the watcher did not move to the {other}"
    finally:
        airflow.start_component(held_by)
    ledger.notes.append(f"killed with {left} message(s) in the queue; the {other} took the watcher over")
    ledger.report()
    assert not ledger.lost, ledger.lost[:10]
    assert ledger.duplicates <= 100, ledger.processed.most_common(5)  # one event out at a time
    airflow.wait_healthy(timeout=120)
