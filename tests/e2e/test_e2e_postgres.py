"""The deployment users run in production (issue 20): Airflow on PostgreSQL with two schedulers and
two triggerers. SQLite cannot run two schedulers; every other e2e module runs on SQLite.

The stack: a throw-away PostgreSQL cluster (Debian's server, ``make postgresql``;
devtools/postgres.py), ``scheduler`` and ``scheduler-2``, ``triggerer`` and ``triggerer-2``, its
own moto and Azurite, and a test proxy in front of each (devtools/proxy.py). Airflow judges a
triggerer unhealthy after 20 s without a heartbeat (``[triggerer] triggerer_health_check_threshold``)
and a scheduler after 20 s (``[scheduler] scheduler_health_check_threshold``; the other one resets
the dead one's task runs within ``orphaned_tasks_check_interval``, 10 s, of that).

1. The event-driven group of tests/e2e/test_e2e_event_driven.py, as it is: a burst of 300, a
   steady stream into ``max_active_runs=1``, one run per message, the triggerer that holds the
   watcher SIGKILLed mid-burst.
2. A scheduler SIGKILLed while its executor runs a task of a burst's runs: the other one carries
   on and resets the dead one's task, which runs again; every message processed once, in few
   runs, none empty.
3. ``delete_on_dag_success`` (test_e2e_success.py's ``kill`` DAGs): a scheduler SIGKILLed while its
   executor runs a task of a run that holds messages; the provider's listener runs in both
   schedulers: nothing lost, no message run again after a run succeeded with it.
4. A triggerer SIGSTOPped past the health threshold while it holds a received batch, then
   SIGCONTed: Airflow hands the watcher to the other triggerer and cancels it in the first, which
   releases the batch; the other one receives it at once. The watcher's ``visibility_timeout`` is
   600 s and the wait for the messages is far shorter, so only a release can make the test pass.

Accounting is printed for each (pushed / processed / duplicates / lost / runs). Waits are bounded
and say what they waited for; nothing asserts on durations.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from events_support import (
    EventQueue,
    Ledger,
    bodies,
    book,
    holder,
    log_size,
    log_text,
    show_accounting,
    wait_processed,
)
from stack_support import E2E_DAGS, LOGS, running_stack

# The event-driven group, collected here a second time: on this module's stack (the fixture below).
from test_e2e_event_driven import (
    SERVICES,
    queue_name,
    test_a_burst_of_300_messages_is_processed_once_each_in_few_runs,
    test_a_steady_stream_into_one_slow_run_at_a_time_waits_in_the_queue,
    test_event_per_message_is_one_run_per_message,
    test_the_triggerer_killed_mid_burst_loses_nothing,
    watching,
)

# test_e2e_success.py's pieces, for its ``kill`` DAGs on this module's stack.
from test_e2e_success import Ledger as SuccessLedger
from test_e2e_success import Queue as SuccessQueue
from test_e2e_success import assert_nothing_lost_nor_run_after_success, wait_settled
from test_e2e_success import bodies as success_bodies
from test_e2e_success import queue_name as success_queue_name

from devtools.airflow_local import AirflowError, wait_for_airflow
from devtools.postgres import PostgresCluster
from devtools.proxy import Timeout

if TYPE_CHECKING:
    from conftest import Stack

__all__ = [
    "test_a_burst_of_300_messages_is_processed_once_each_in_few_runs",
    "test_a_steady_stream_into_one_slow_run_at_a_time_waits_in_the_queue",
    "test_event_per_message_is_one_run_per_message",
    "test_the_triggerer_killed_mid_burst_loses_nothing",
]

# The event-driven group's tests, collected here too, carry no timeout of their own; here the
# first of them also starts PostgreSQL and a four-component Airflow.
pytestmark = pytest.mark.timeout(900)

WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
PG_DAGS = Path(__file__).resolve().parent / "dags_postgres"
SCENARIOS = ("burst", "stream", "single", "kill")
HEALTH = {
    "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
    "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "20",
    "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_THRESHOLD": "20",
    "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "10",
    # A receive the SIGSTOP test holds at the proxy must not be given up on while the triggerer
    # is stopped: the release it checks is the cancellation's, not the stall guard's.
    "AIRFLOW__FLUKE_AIRFLOW__RECEIVE_STALL_GRACE": "900",
}
PER_RECEIVE = {"sqs": 10, "azure": 32}
RECEIVE = {"sqs": "ReceiveMessage", "azure": "GET messages"}
SCHEDULERS = ("scheduler", "scheduler-2")
"""The proxy's name for a receive request."""


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    logs = LOGS.parent / "e2e-postgres"
    name = f"e2e-postgres-{WORKER}" if WORKER else "e2e-postgres"
    with (
        PostgresCluster.create(log_path=logs / "postgres.log") as postgres,
        running_stack(
            name,
            logs,
            dag_folders=(E2E_DAGS, PG_DAGS),
            wait_for=("e2e_events_burst_sqs", "e2e_pg_handover_sqs"),
            database_url=postgres.url,
            components=("scheduler-2", "triggerer-2"),
            extra_env=HEALTH,
            proxied=True,
        ) as running,
    ):
        yield running


@pytest.fixture(scope="module")
def events(stack: Stack) -> Iterator[dict[tuple[str, str], EventQueue]]:
    """The event-driven group's watchers (test_e2e_event_driven.py's ``events``, its scenarios here)."""
    queues = {(sc, sv): EventQueue(stack, sv, queue_name(sc, sv)) for sc in SCENARIOS for sv in SERVICES}
    dag_ids = [f"e2e_events_{sc}_{sv}" for sc in SCENARIOS for sv in SERVICES]
    title = "Event-driven accounting on PostgreSQL, two schedulers, two triggerers"
    with watching(stack, dag_ids, queues, title):
        yield queues


# -- 2. a scheduler SIGKILLed mid-burst ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def scheduler_kill(stack: Stack) -> Iterator[dict[tuple[str, str], EventQueue]]:
    queues = {("schedkill", sv): EventQueue(stack, sv, f"e2e-pg-schedkill-{sv}") for sv in SERVICES}
    with watching(stack, [f"e2e_pg_schedkill_{sv}" for sv in SERVICES], queues, "Scheduler SIGKILL accounting"):
        yield queues


@pytest.mark.timeout(900)
@pytest.mark.parametrize("service", SERVICES)
def test_a_scheduler_killed_mid_burst_loses_nothing_and_duplicates_nothing(
    stack: Stack, scheduler_kill: Any, service: str
) -> None:
    airflow, api = stack.airflow, stack.api
    queue, dag_id = scheduler_kill[("schedkill", service)], f"e2e_pg_schedkill_{service}"
    ledger = Ledger(f"scheduler SIGKILL mid-burst {service}", bodies("schedkill", 300))
    queue.push(ledger.pushed)

    with scheduler_killed(stack, dag_id, queue) as (killed, task, left):
        wait_processed(stack, dag_id, queue, ledger, timeout=600)
    tries = api.task_instance(dag_id, task["dag_run_id"], "received")["try_number"]
    ledger.notes.append(
        f"SIGKILLed the {killed} running a task, {left} message(s) in the queue; that task ran again ({tries} tries)"
        if tries > 1
        else f"SIGKILLed the {killed} running a task, {left} message(s) in the queue; that task finished anyway"
    )
    ledger.report()
    assert not ledger.lost, f"lost: {ledger.lost[:10]}"
    assert ledger.duplicates == 0, ledger.processed.most_common(5)
    assert all(ledger.runs), f"a run without messages: {[len(r) for r in ledger.runs]}"
    assert len(ledger.runs) <= 12, f"300 messages, at most 100 per event: {[len(r) for r in ledger.runs]}"
    airflow.wait_healthy(timeout=180)


@contextlib.contextmanager
def scheduler_killed(stack: Stack, dag_id: str, queue: Any) -> Iterator[tuple[str, dict[str, Any], int]]:
    """SIGKILL the scheduler whose executor runs a task of ``dag_id`` (with its task processes);
    yields its name, that task and the messages in ``queue`` then; starts it again on the way out."""
    killed, task = wait_for_airflow(
        lambda: running_task(stack, dag_id), what=f"a scheduler to run a task of {dag_id}", timeout=240
    )
    left = queue.total()
    try:
        stack.airflow.kill_component(killed)
        yield killed, task, left
    finally:
        if not stack.airflow.components[killed].running:
            stack.airflow.start_component(killed)


def running_task(stack: Stack, dag_id: str) -> tuple[str, dict[str, Any]] | None:
    """A scheduler whose executor runs one of ``dag_id``'s tasks now, and that task."""
    for run in stack.api.runs(dag_id):
        if run["state"] != "running":
            continue
        for ti in stack.api.task_instances(dag_id, run["dag_run_id"]):
            for name in SCHEDULERS:
                if ti["state"] == "running" and ti["pid"] in process_tree(stack.airflow, name):
                    return name, ti
    return None


def process_tree(airflow: Any, name: str) -> set[int]:
    """The pids of a component's processes (its executor's task processes among them)."""
    import psutil

    component = airflow.components[name]
    if not component.running:
        return set()
    try:
        main = psutil.Process(component.process.pid)
        return {main.pid, *(p.pid for p in main.children(recursive=True))}
    except psutil.Error:
        return set()


# -- 3. delete_on_dag_success: a scheduler SIGKILLed while the runs that hold messages go ----------------------
@pytest.fixture(scope="module")
def success_kill(stack: Stack) -> Iterator[dict[str, SuccessQueue]]:
    """test_e2e_success.py's ``kill`` watchers (``delete_on_dag_success``, runs of 10, 1 s a message)."""
    queues = {sv: SuccessQueue(stack, sv, success_queue_name("kill", sv)) for sv in SERVICES}
    with watching(stack, [f"e2e_success_kill_{sv}" for sv in SERVICES], queues, "Scheduler SIGKILL, success mode"):
        yield queues


@pytest.mark.timeout(900)
@pytest.mark.parametrize("service", SERVICES)
def test_a_scheduler_killed_while_delete_on_dag_success_runs_go_loses_nothing(
    stack: Stack, success_kill: dict[str, SuccessQueue], service: str
) -> None:
    """The listener that records which run took which delivery runs in the schedulers: one killed
    while a run holds messages, the other finishes the runs and their messages are deleted (or
    released and run again where a killed task's run failed), none lost, none run after success."""
    airflow, queue, dag_id = stack.airflow, success_kill[service], f"e2e_success_kill_{service}"
    ledger = SuccessLedger(f"scheduler SIGKILL while runs go {service} (PostgreSQL)", success_bodies("pgkill", 40))
    queue.push(ledger.pushed)
    with scheduler_killed(stack, dag_id, queue) as (killed, task, held):
        wait_settled(stack, dag_id, queue, ledger, timeout=720)
    states = {r["dag_run_id"]: r["state"] for r in ledger.runs}
    ledger.notes.append(
        f"SIGKILLed the {killed} running {task['task_id']}[{task['map_index']}] of a run, {held} message(s) in the "
        f"queue; that run {states.get(task['dag_run_id'], '?')}"
    )
    ledger.report()
    assert_nothing_lost_nor_run_after_success(ledger)
    airflow.wait_healthy(timeout=180)


# -- 4. a triggerer SIGSTOPped while it holds a received batch ---------------------------------------------------
@pytest.fixture(scope="module")
def handover(stack: Stack) -> Iterator[None]:
    yield
    for proxy in stack.proxies.values():
        proxy.clear_faults()
    for service in SERVICES:
        with contextlib.suppress(AirflowError):
            stack.api.pause(f"e2e_pg_handover_{service}")
    show_accounting("Triggerer SIGSTOP hand-over accounting")


def watching_line(queue: str) -> str:
    return f"queue '{queue}' (connection"


@pytest.mark.timeout(900)
@pytest.mark.parametrize("service", SERVICES)
def test_a_triggerer_stopped_past_the_health_threshold_releases_its_batch_to_the_other(
    stack: Stack, handover: None, service: str
) -> None:
    airflow, api, proxy = stack.airflow, stack.api, stack.proxies[service]
    dag_id, full = f"e2e_pg_handover_{service}", PER_RECEIVE[service]
    queue = EventQueue(stack, service, f"e2e-pg-handover-{service}")
    queue.create()
    ledger = Ledger(f"triggerer SIGSTOP hand-over {service}", bodies("handover", full))
    queue.push(ledger.pushed)
    # The watcher's first receive takes them all (one full receive); every later one is held at the
    # proxy, so the watcher holds the batch, waiting for the rest of it, for as long as the test likes.
    proxy.inject(Timeout(operation=RECEIVE[service], skip=1, seconds=1800))
    api.unpause(dag_id)

    def held_by() -> str | None:
        name = holder(stack, queue.name, line=watching_line(queue.name))
        shown = stack.statsd.of("messages.in_flight", queue=queue.name)
        return name if name and shown and shown[-1].value == full else None

    stopped = wait_for_airflow(
        held_by, what=f"a triggerer to hold the {full} messages of {queue.name}", timeout=180, interval=0.5
    )
    other = next(n for n in stack.triggerers() if n != stopped)
    mark, stopped_at = log_size(stack, other), log_size(stack, stopped)
    airflow.signal_component(stopped, signal.SIGSTOP)  # frozen: no heartbeat, no renewal, no release
    try:
        proxy.clear_faults()  # the other triggerer's receives go through; the stopped one's stays held
        wait_for_airflow(
            lambda: watching_line(queue.name) in log_text(stack, other, mark),
            what=f"the {other} to take the watcher of {queue.name} over from the stopped {stopped}",
            timeout=240,
            interval=1.0,
        )
    finally:
        airflow.signal_component(stopped, signal.SIGCONT)
    handed_over = time.monotonic()
    try:
        wait_processed(stack, dag_id, queue, ledger, timeout=240)
    except AirflowError as error:
        raise AssertionError(
            f"the {full} messages the {stopped} held were not processed within 240 s of the hand-over: not "
            f"released (their visibility timeout is 600 s). {error}"
        ) from None
    after = time.monotonic() - handed_over
    released = [
        line
        for line in log_text(stack, stopped, stopped_at).splitlines()
        if f"Queue '{queue.name}': the poll was cancelled" in line and "releasing" in line
    ]
    ledger.notes.append(
        f"the {stopped} SIGSTOPped holding {full}; the {other} took over; processed {after:.0f} s after the hand-over"
    )
    ledger.report()
    assert released and f"holding {full} received message(s)" in released[0], (
        f"the {stopped} did not log releasing the batch when Airflow cancelled its watcher"
    )
    assert not ledger.lost and ledger.duplicates == 0, ledger.processed.most_common(5)
    assert queue.total() == 0
    assert book(stack, dag_id, ledger)
    airflow.wait_healthy(timeout=180)
