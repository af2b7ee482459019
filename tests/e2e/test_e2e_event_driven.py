"""Queue arrivals start pipelines in a real Airflow, and every message reaches a run (issue 8).

The DAGs (``tests/e2e/dags/e2e_events.py``) are scheduled on assets whose watchers poll a queue each,
on both services. Every scenario pushes uniquely numbered messages, waits until the runs are done
and the queue is empty, reads through the REST API what the runs' tasks received, and prints its
accounting (pushed / processed / duplicates / lost / runs):

1. a burst of 300 messages: every body processed once, in few runs;
2. a steady stream for a minute into a consumer with ``max_active_runs=1`` whose task takes 5 s:
   every body processed, and at no time more than one asset event waiting for a run (sampled
   through the REST API while the stream runs);
3. ``event_per_message=True`` with 20 messages: 20 runs of one body each; on an SQS FIFO queue,
   the runs follow the queue's order;
4. the triggerer SIGKILLed in the middle of a burst and restarted: none lost; duplicates counted,
   at most one event's worth (the watcher holds one event at a time);
5. two assets whose watchers filter one queue differently: each DAG gets exactly the messages its
   filter takes (a message both take goes to both), and what neither takes stays in the queue.

Waits are bounded and fail with what they were waiting for; nothing asserts on durations.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from events_support import (
    EventQueue,
    Ledger,
    asset_id,
    bodies,
    book,
    holder,
    log_size,
    polling,
    show_accounting,
    wait_processed,
    waiting_events,
)

from devtools.airflow_local import AirflowError, wait_for_airflow

if TYPE_CHECKING:
    from conftest import Stack

SERVICES = ("sqs", "azure")
SCENARIOS = ("burst", "stream", "single", "kill")
DAG_IDS = [
    *(f"e2e_events_{scenario}_{service}" for scenario in SCENARIOS for service in SERVICES),
    "e2e_events_fifo_sqs",
    *(f"e2e_events_route_{region}_{service}" for region in ("eu", "us") for service in SERVICES),
]


def queue_name(scenario: str, service: str) -> str:
    return f"e2e-events-{scenario}-{service}" + (".fifo" if scenario == "fifo" else "")


# -- fixture: every watcher polling before the first scenario ----------------------------------------------
@contextlib.contextmanager
def watching(stack: Stack, dag_ids: list[str], queues: dict[tuple[str, str], EventQueue], title: str) -> Iterator[None]:
    """Create ``queues``, unpause ``dag_ids`` and wait until each queue is polled, by whichever of the
    stack's triggerers Airflow put its watcher on; pause them and show the accounting at the end."""
    starts = {name: log_size(stack, name) for name in stack.triggerers()}
    for queue in queues.values():
        queue.create()
    stack.api.wait_for_dags(dag_ids)
    for dag_id in dag_ids:
        stack.api.unpause(dag_id)

    def polled() -> bool:
        return all(any(polling(stack, n, q.name, at) for n, at in starts.items()) for q in queues.values())

    try:
        wait_for_airflow(polled, what="every scenario's watcher to poll its queue", timeout=180, interval=1.0)
        yield
    finally:
        for dag_id in dag_ids:
            with contextlib.suppress(AirflowError):
                stack.api.pause(dag_id)
        show_accounting(title)


@pytest.fixture(scope="module")
def events(stack: Stack) -> Iterator[dict[tuple[str, str], EventQueue]]:
    queues = {(sc, sv): EventQueue(stack, sv, queue_name(sc, sv)) for sc in SCENARIOS for sv in SERVICES}
    queues[("fifo", "sqs")] = EventQueue(stack, "sqs", queue_name("fifo", "sqs"))
    for service in SERVICES:
        queues[("route", service)] = EventQueue(stack, service, f"e2e-events-route-{service}")
    with watching(stack, DAG_IDS, queues, "Event-driven accounting (pushed / processed / duplicates / lost / runs)"):
        yield queues


# -- 1. a burst ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("service", SERVICES)
def test_a_burst_of_300_messages_is_processed_once_each_in_few_runs(stack: Stack, events: Any, service: str) -> None:
    queue, dag_id = events[("burst", service)], f"e2e_events_burst_{service}"
    ledger = Ledger(f"burst {service}", bodies("burst", 300))
    queue.push(ledger.pushed)
    wait_processed(stack, dag_id, queue, ledger, timeout=300)
    ledger.report()
    assert not ledger.lost and ledger.duplicates == 0
    assert all(run for run in ledger.runs), f"a run without messages: {[len(r) for r in ledger.runs]}"
    assert len(ledger.runs) <= 12, f"300 messages, at most 100 per event: {[len(r) for r in ledger.runs]}"


# -- 2. a steady stream into max_active_runs=1 ------------------------------------------------------------------
@pytest.mark.timeout(600)
@pytest.mark.parametrize("service", SERVICES)
def test_a_steady_stream_into_one_slow_run_at_a_time_waits_in_the_queue(
    stack: Stack, events: Any, service: str
) -> None:
    queue, dag_id = events[("stream", service)], f"e2e_events_stream_{service}"
    ledger = Ledger(f"stream {service}, max_active_runs=1, 5 s task", bodies("stream", 120))
    asset = asset_id(stack, f"e2e_events_stream_{service}_queue")
    waiting: list[int] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            with contextlib.suppress(AirflowError, OSError):
                waiting.append(waiting_events(stack, asset))
            done.wait(1.0)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        for i in range(0, len(ledger.pushed), 2):  # two a second for a minute
            queue.push(ledger.pushed[i : i + 2])
            time.sleep(1.0)
        wait_processed(stack, dag_id, queue, ledger, timeout=420)
    finally:
        done.set()
        sampler.join()
    ledger.notes.append(f"asset events waiting for a run: at most {max(waiting)} over {len(waiting)} samples")
    ledger.report()
    assert not ledger.lost and ledger.duplicates == 0
    assert max(waiting) <= 1, f"back-pressure let asset events pile up in Airflow: {waiting}"


# -- 3. one run per message ------------------------------------------------------------------------------------
@pytest.mark.parametrize("service", SERVICES)
def test_event_per_message_is_one_run_per_message(stack: Stack, events: Any, service: str) -> None:
    queue, dag_id = events[("single", service)], f"e2e_events_single_{service}"
    ledger = Ledger(f"event_per_message {service}", bodies("single", 20))
    queue.push(ledger.pushed)
    wait_processed(stack, dag_id, queue, ledger, timeout=420)
    ledger.report()
    assert not ledger.lost and ledger.duplicates == 0
    assert sorted(len(run) for run in ledger.runs) == [1] * 20, [len(r) for r in ledger.runs]


def test_event_per_message_on_a_fifo_queue_runs_in_the_queues_order(stack: Stack, events: Any) -> None:
    queue, dag_id = events[("fifo", "sqs")], "e2e_events_fifo_sqs"
    ledger = Ledger("event_per_message, SQS FIFO", bodies("fifo", 10))
    queue.push(ledger.pushed)
    wait_processed(stack, dag_id, queue, ledger, timeout=300)
    ledger.report()
    assert not ledger.lost and ledger.duplicates == 0
    assert [body for run in ledger.runs for body in run] == ledger.pushed  # runs in run_after order


# -- 5. one queue routed to two assets by their watchers' filters --------------------------------------------
@pytest.mark.parametrize("service", SERVICES)
def test_two_filtered_watchers_of_one_queue_each_get_exactly_their_messages(
    stack: Stack, events: Any, service: str
) -> None:
    queue = events[("route", service)]
    orders = {region: [json.dumps({"region": region, "n": i}) for i in range(8)] for region in ("eu", "us", "apac")}
    orders["global"] = [json.dumps({"region": "global", "n": i}) for i in range(4)]
    queue.push([body for bodies in orders.values() for body in bodies])
    ledgers = {r: Ledger(f"routing {service}, asset {r}", orders[r] + orders["global"]) for r in ("eu", "us")}

    def routed() -> bool:
        for region, ledger in ledgers.items():
            book(stack, f"e2e_events_route_{region}_{service}", ledger)
        return all(not ledger.lost for ledger in ledgers.values()) and queue.total() == len(orders["apac"])

    wait_for_airflow(
        routed,
        what=f"both {service} assets to get their orders, and only the unmatched to stay",
        timeout=300,
        interval=2.0,
    )
    for ledger in ledgers.values():
        ledger.notes.append(f"{len(orders['apac'])} matching neither left in the queue")
        ledger.report()
        assert ledger.duplicates == 0 and set(ledger.processed) == set(ledger.pushed), "exactly its own messages"


# -- 4. the triggerer killed in the middle of a burst -------------------------------------------------------------
@pytest.mark.timeout(600)
@pytest.mark.parametrize("service", SERVICES)
def test_the_triggerer_killed_mid_burst_loses_nothing(stack: Stack, events: Any, service: str) -> None:
    airflow = stack.airflow
    queue, dag_id = events[("kill", service)], f"e2e_events_kill_{service}"
    ledger = Ledger(f"triggerer SIGKILL mid-burst {service}", bodies("kill", 300))
    queue.push(ledger.pushed)

    def consuming() -> bool:  # a run for the first batch, and the burst not yet all taken (one cheap call
        return bool(stack.api.runs(dag_id)) and queue.total() > 0  # each: the window is seconds on a busy machine)

    held_by = holder(stack, queue.name) or "triggerer"  # with two triggerers, the one that has the watcher
    try:
        wait_for_airflow(consuming, what=f"{dag_id} to start consuming the burst", timeout=180, interval=0.5)
        left = queue.total()
        airflow.kill_component(held_by)  # SIGKILL, the whole process group
    finally:
        if not airflow.components[held_by].running:
            airflow.start_component(held_by)
    wait_processed(stack, dag_id, queue, ledger, timeout=480)
    ledger.notes.append(f"the {held_by} killed with {left} message(s) left in the queue")
    ledger.report()
    assert not ledger.lost, f"lost: {ledger.lost[:10]}"
    # One event out at a time: at most one batch (100) can have been stored but not deleted.
    assert ledger.duplicates <= 100, ledger.processed.most_common(5)
    airflow.wait_healthy(timeout=120)
