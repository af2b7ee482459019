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
   at most one event's worth (the watcher holds one event at a time).

Waits are bounded and fail with what they were waiting for; nothing asserts on durations.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from devtools.airflow_local import AirflowError, wait_until

if TYPE_CHECKING:
    from conftest import Stack

SERVICES = ("sqs", "azure")
SCENARIOS = ("burst", "stream", "single", "kill")
DAG_IDS = [f"e2e_events_{scenario}_{service}" for scenario in SCENARIOS for service in SERVICES] + [
    "e2e_events_fifo_sqs"
]
ACCOUNTING: list[str] = []


def queue_name(scenario: str, service: str) -> str:
    return f"e2e-events-{scenario}-{service}" + (".fifo" if scenario == "fifo" else "")


# -- the queues, through their own SDKs ----------------------------------------------------------------------
@dataclass
class EventQueue:
    stack: Stack
    service: str
    name: str

    @property
    def url(self) -> str:
        return str(self.stack.sqs.get_queue_url(QueueName=self.name)["QueueUrl"])

    def create(self) -> None:
        if self.name.endswith(".fifo"):
            self.stack.sqs.create_queue(
                QueueName=self.name, Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"}
            )
        elif self.service == "sqs":
            self.stack.sqs.create_queue(QueueName=self.name)
        else:
            with contextlib.suppress(Exception):
                self.stack.azure.create_queue(self.name)

    def push(self, bodies: list[str]) -> None:
        if self.service == "sqs":
            url = self.url
            group = {"MessageGroupId": "orders"} if self.name.endswith(".fifo") else {}
            for start in range(0, len(bodies), 10):
                chunk = bodies[start : start + 10]
                answer = self.stack.sqs.send_message_batch(
                    QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": b, **group} for i, b in enumerate(chunk)]
                )
                assert not answer.get("Failed"), answer["Failed"]
        else:
            client = self.stack.azure.get_queue_client(self.name)
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(client.send_message, bodies))

    def total(self) -> int:
        if self.service == "sqs":
            return sum(self.stack.sqs_counts(self.url).values())
        return int(self.stack.azure.get_queue_client(self.name).get_queue_properties().approximate_message_count)


# -- what the runs processed ---------------------------------------------------------------------------------
@dataclass
class Ledger:
    scenario: str
    pushed: list[str]
    processed: Counter[str] = field(default_factory=Counter)
    runs: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def duplicates(self) -> int:
        return sum(n - 1 for n in self.processed.values() if n > 1)

    @property
    def lost(self) -> list[str]:
        return sorted(set(self.pushed) - set(self.processed))

    def report(self) -> str:
        extra = f" | {'; '.join(self.notes)}" if self.notes else ""
        line = (
            f"[events {self.scenario}] pushed={len(self.pushed)} processed={len(self.processed)} "
            f"duplicates={self.duplicates} lost={len(self.lost)} runs={len(self.runs)}{extra}"
        )
        print(line)
        ACCOUNTING.append(line)
        unexpected = set(self.processed) - set(self.pushed)
        assert not unexpected, f"processed messages nobody pushed: {sorted(unexpected)[:10]}"
        return line


def book(stack: Stack, dag_id: str, ledger: Ledger) -> list[dict[str, Any]]:
    """Every run of ``dag_id`` and, for the finished ones, what their task received (into ``ledger``)."""
    api = stack.api
    runs: list[dict[str, Any]] = []
    offset = 0
    while True:
        page = api.request(
            "GET", f"/dags/{dag_id}/dagRuns", params={"order_by": "run_after", "limit": 100, "offset": offset}
        )["dag_runs"]
        runs += page
        if len(page) < 100:
            break
        offset += 100
    ledger.processed.clear()
    ledger.runs.clear()
    for run in runs:
        if run["state"] == "success":
            got = list(api.xcom(dag_id, run["dag_run_id"], "received"))
            ledger.runs.append(got)
            ledger.processed.update(got)
    return runs


def processed_all(stack: Stack, dag_id: str, queue: EventQueue, ledger: Ledger) -> bool:
    stack.airflow.check_running()
    runs = book(stack, dag_id, ledger)
    failed = [r["dag_run_id"] for r in runs if r["state"] == "failed"]
    if failed:
        raise AssertionError(f"{dag_id}: runs failed: {[stack.api.summary(dag_id, r) for r in failed]}")
    finished = all(r["state"] == "success" for r in runs)
    return finished and not ledger.lost and queue.total() == 0


def wait_processed(stack: Stack, dag_id: str, queue: EventQueue, ledger: Ledger, timeout: float) -> None:
    try:
        wait_until(
            f"{dag_id}'s runs to process every message", lambda: processed_all(stack, dag_id, queue, ledger), timeout, 2
        )
    except AirflowError as error:
        raise AirflowError(f"{error}; {ledger.report()}; left in the queue: {queue.total()}") from None


def waiting_events(stack: Stack, asset_id: int) -> int:
    """Asset events stored but consumed by no run yet (the back-pressure measure)."""
    events = stack.api.request(
        "GET", "/assets/events", params={"asset_id": asset_id, "limit": 100, "order_by": "-timestamp"}
    )["asset_events"]
    return sum(1 for e in events if not e["created_dagruns"])


def asset_id(stack: Stack, name: str) -> int:
    (asset,) = [
        a for a in stack.api.request("GET", "/assets", params={"name_pattern": name})["assets"] if a["name"] == name
    ]
    return int(asset["id"])


def bodies(prefix: str, count: int) -> list[str]:
    tag = uuid.uuid4().hex[:6]
    return [f"{prefix}-{tag}-{i:04d}" for i in range(count)]


# -- fixture: every watcher polling before the first scenario ----------------------------------------------
@pytest.fixture(scope="module")
def events(stack: Stack, request: pytest.FixtureRequest) -> Any:
    log = stack.airflow.log_path("triggerer")
    start = log.stat().st_size
    queues = {(sc, sv): EventQueue(stack, sv, queue_name(sc, sv)) for sc in SCENARIOS for sv in SERVICES}
    queues[("fifo", "sqs")] = EventQueue(stack, "sqs", queue_name("fifo", "sqs"))
    for queue in queues.values():
        queue.create()
    stack.api.wait_for_dags(DAG_IDS)
    for dag_id in DAG_IDS:
        stack.api.unpause(dag_id)

    def polling() -> bool:
        with open(log, "rb") as f:
            f.seek(start)
            text = f.read().decode(errors="replace")
        return all(f"queue '{q.name}' done: polling" in text for q in queues.values())

    try:
        wait_until("every scenario's watcher to poll its queue", polling, 180, 1.0)
        yield queues
    finally:
        for dag_id in DAG_IDS:
            with contextlib.suppress(AirflowError):
                stack.api.pause(dag_id)
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")
        capture = request.config.pluginmanager.get_plugin("capturemanager")
        if reporter is not None and capture is not None and ACCOUNTING:
            with capture.global_and_fixture_disabled():
                reporter.ensure_newline()
                reporter.section("Event-driven accounting (pushed / processed / duplicates / lost / runs)")
                for line in ACCOUNTING:
                    reporter.write_line(line)


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


# -- 4. the triggerer killed in the middle of a burst -------------------------------------------------------------
@pytest.mark.timeout(600)
@pytest.mark.parametrize("service", SERVICES)
def test_the_triggerer_killed_mid_burst_loses_nothing(stack: Stack, events: Any, service: str) -> None:
    airflow = stack.airflow
    queue, dag_id = events[("kill", service)], f"e2e_events_kill_{service}"
    ledger = Ledger(f"triggerer SIGKILL mid-burst {service}", bodies("kill", 300))
    queue.push(ledger.pushed)

    def consuming() -> bool:
        runs = book(stack, dag_id, ledger)
        return bool(runs) and queue.total() > 100

    try:
        wait_until(f"{dag_id} to start consuming the burst", consuming, 180, 0.5)
        left = queue.total()
        airflow.kill_component("triggerer")  # SIGKILL, the whole process group
    finally:
        if not airflow.components["triggerer"].running:
            airflow.start_component("triggerer")
    wait_processed(stack, dag_id, queue, ledger, timeout=480)
    ledger.notes.append(f"killed with {left} message(s) left in the queue")
    ledger.report()
    assert not ledger.lost, f"lost: {ledger.lost[:10]}"
    # One event out at a time: at most one batch (100) can have been stored but not deleted.
    assert ledger.duplicates <= 100, ledger.processed.most_common(5)
    airflow.wait_healthy(timeout=120)
