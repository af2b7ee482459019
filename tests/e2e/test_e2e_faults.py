"""Message accounting under faults in a real Airflow (issue 5): workers and the triggerer SIGKILLed,
a downstream task failing, thousands of messages taken by several sensors at once.

Every scenario pushes uniquely numbered messages to a queue of its own, runs DAG runs until the
queue is empty, reads through the REST API what the downstream tasks of the *successful* runs
processed, and prints a one-line accounting (pushed / processed / duplicates / lost), repeated in
the terminal summary. Then it checks the delivery guarantee:

1. Post-delivery, the worker SIGKILLed between receive and XCom (supervisor and task process, so
   nothing reports: Airflow finds out by the missing heartbeat): the retry receives the same
   messages again; none lost.
2. Pre-delivery, the task process SIGKILLed at the same point (its supervisor reports the failure):
   the messages it held were deleted before delivery and are gone; none processed twice, nothing
   else lost.
3. ``delete_on_dag_success=True`` and a downstream task failing: the run's messages are released
   with the sensor's retry_delay (hidden for 30 s, then back), a second run processes them and
   deletes them when it succeeds; none lost.
4. The triggerer SIGKILLed while six deferred sensors' triggers hold received messages (three
   post-delivery, three pre-delivery, on two queues): post-delivery none lost; pre-delivery as many
   lost as the killed triggerer held (deleted before their events were stored), none processed twice.
5. 3,000 messages arriving while five deferrable sensors wait in the triggerer on one queue, then
   runs (five at a time) until the queue is empty: every message processed at least once;
   duplicates counted. On Azure (Azurite): moto's SQS slows down quadratically with thousands queued.

Scenarios 1-4 run on SQS (moto). The DAGs are in ``tests/e2e/dags/e2e_faults.py``. This module
shares the e2e package's Airflow and restarts its scheduler with a short task heartbeat timeout
(restored afterwards). Waits are bounded and fail with what they were waiting for; nothing asserts
on durations.
"""

from __future__ import annotations

import contextlib
import json
import signal
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil
import pytest
from azure.storage.queue import QueueClient
from terminal_support import section

from devtools.airflow_local import AirflowError, wait_for_airflow

if TYPE_CHECKING:
    from conftest import Stack

FAULT_DAGS = (
    "e2e_faults_kill_post",
    "e2e_faults_kill_pre",
    "e2e_faults_settle",
    "e2e_faults_trigger_post",
    "e2e_faults_trigger_pre",
    "e2e_faults_volume",
)
# The scheduler (restarted with these) fails a running task whose heartbeat stopped 20 s ago,
# instead of 300 s. Its LocalExecutor workers, the tasks' supervisors, wake up every 2 s
# instead of every 5 (a task's exit was often noticed only up to 5 s late: minutes in all here).
SCHEDULER_ENV = {
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
    "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "2",
}
ACCOUNTING = section("Airflow fault accounting (pushed / processed / duplicates / lost)")


# -- accounting ------------------------------------------------------------------------------------------
@dataclass
class Ledger:
    """Which messages were pushed (body -> message id) and what the successful runs processed."""

    scenario: str
    pushed: dict[str, str]
    processed: Counter[str] = field(default_factory=Counter)
    runs: Counter[str] = field(default_factory=Counter)
    in_failed_runs: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)
    booked: set[str] = field(default_factory=set)
    """The runs already accounted for."""

    @property
    def duplicates(self) -> int:
        return sum(n - 1 for n in self.processed.values() if n > 1)

    @property
    def lost(self) -> list[str]:
        return sorted(set(self.pushed) - set(self.processed))

    @property
    def unexpected(self) -> list[str]:
        return sorted(set(self.processed) - set(self.pushed))

    def line(self) -> str:
        runs = " ".join(f"{state}={n}" for state, n in sorted(self.runs.items()))
        extra = f" | {'; '.join(self.notes)}" if self.notes else ""
        return (
            f"[airflow {self.scenario}] pushed={len(self.pushed)} processed={len(self.processed)} "
            f"duplicates={self.duplicates} lost={len(self.lost)} unexpected={len(self.unexpected)} "
            f"| runs: {runs}{extra}"
        )

    def ids(self, bodies: list[str], limit: int = 10) -> str:
        shown = ", ".join(f"{b}={self.pushed.get(b, '?')}" for b in bodies[:limit])
        return shown + (f" ... ({len(bodies)} in all)" if len(bodies) > limit else "")

    def report(self) -> None:
        line = self.line()
        print(line)
        ACCOUNTING.append(line)
        assert not self.unexpected, f"processed messages nobody pushed: {self.unexpected[:10]}"


# -- the queues -------------------------------------------------------------------------------------------
@dataclass
class SqsQueue:
    stack: Stack
    url: str

    @property
    def name(self) -> str:
        return self.url.rsplit("/", 1)[1]

    def push(self, prefix: str, count: int) -> dict[str, str]:
        """Send ``count`` uniquely numbered messages; body -> message id."""
        bodies = [f"{prefix}-{i:05d}" for i in range(count)]
        pushed: dict[str, str] = {}
        for start in range(0, count, 10):
            chunk = bodies[start : start + 10]
            answer = self.stack.sqs.send_message_batch(
                QueueUrl=self.url, Entries=[{"Id": str(i), "MessageBody": b} for i, b in enumerate(chunk)]
            )
            assert not answer.get("Failed"), answer["Failed"]
            pushed.update({chunk[int(e["Id"])]: e["MessageId"] for e in answer["Successful"]})
        return pushed

    def counts(self) -> dict[str, int]:
        return self.stack.sqs_counts(self.url)

    def has_visible(self) -> bool:
        return self.counts()["visible"] > 0

    def remaining(self) -> int:
        return sum(self.counts().values())

    def is_empty(self) -> bool:
        return self.remaining() == 0


@dataclass
class AzureQueue:
    client: QueueClient

    @property
    def name(self) -> str:
        return str(self.client.queue_name)

    def push(self, prefix: str, count: int) -> dict[str, str]:
        """Send ``count`` uniquely numbered messages (Azure has no batch send: 8 at a time)."""
        bodies = [f"{prefix}-{i:05d}" for i in range(count)]
        with ThreadPoolExecutor(8) as pool:
            sent = list(pool.map(self.client.send_message, bodies))
        return {body: message.id for body, message in zip(bodies, sent, strict=True)}

    def counts(self) -> dict[str, int]:
        """All messages (visible or not), and whether one is visible (Azure counts no more)."""
        total = self.client.get_queue_properties().approximate_message_count
        return {"messages": total, "visible": len(self.client.peek_messages(max_messages=1))}

    def has_visible(self) -> bool:
        return bool(self.client.peek_messages(max_messages=1))

    def remaining(self) -> int:
        return int(self.client.get_queue_properties().approximate_message_count)

    def is_empty(self) -> bool:
        return self.remaining() == 0


AnyQueue = SqsQueue | AzureQueue


# -- fixture -----------------------------------------------------------------------------------------------
@dataclass
class Faults:
    stack: Stack
    tmp: Path

    @property
    def api(self) -> Any:
        return self.stack.api

    def sqs_queue(self, prefix: str) -> SqsQueue:
        return SqsQueue(self.stack, self.stack.new_sqs_queue(prefix))

    def azure_queue(self, prefix: str) -> AzureQueue:
        client = self.stack.azure.get_queue_client(f"{prefix}-{uuid.uuid4().hex[:10]}")
        client.create_queue()
        return AzureQueue(client)

    def tries(self, dag_id: str, run_id: str, task_id: str) -> list[dict[str, Any]]:
        data = self.api.request("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/tries")
        return sorted(data["task_instances"], key=lambda t: t["try_number"])

    def settle_run(self, ledger: Ledger, dag_id: str, run_id: str, collect_task: str, sensor_task: str) -> str:
        """Book a finished run: what its downstream task returned if it succeeded."""
        state = str(self.api.run(dag_id, run_id)["state"])
        ledger.booked.add(run_id)
        ledger.runs[state] += 1
        if state == "success":
            ledger.processed.update(self.api.xcom(dag_id, run_id, collect_task))
        else:
            with contextlib.suppress(AirflowError):  # AirflowError: the sensor stored no XCom
                ledger.in_failed_runs.update(self.api.xcom(dag_id, run_id, sensor_task) or [])
        return state

    def runs_on(self, dag_id: str, queue: str) -> dict[str, str]:
        """run id -> state of the DAG's (latest 100) runs on ``queue`` (their conf names it)."""
        data = self.api.request("GET", f"/dags/{dag_id}/dagRuns", params={"order_by": "-run_after", "limit": 100})
        return {r["dag_run_id"]: r["state"] for r in data["dag_runs"] if (r["conf"] or {}).get("queue") == queue}

    def trigger(self, dag_id: str, conf: dict[str, Any]) -> str:
        """Trigger a run; SQLite's "database is locked" (a 500 "Database error") is retried, unless
        the run was created all the same."""
        for attempt in range(3):
            before = self.runs_on(dag_id, conf["queue"])
            try:
                return str(self.api.trigger(dag_id, conf)["dag_run_id"])
            except AirflowError as error:
                if "Database error" not in str(error) or attempt == 2:
                    raise
            created = set(self.runs_on(dag_id, conf["queue"])) - set(before)
            if created:
                return created.pop()
        raise AssertionError("unreachable")

    def wait_deferred(self, dag_id: str, run_ids: list[str]) -> None:
        """Until each run's sensor waits in the triggerer, polling, and the scheduler has seen its
        worker exit (Airflow 3.3.2, apache/airflow#67287: a trigger that fires before that can
        have its task failed by the stale "success" event, so the tests push only after it)."""
        for run_id in run_ids:
            self.api.wait_for_task_state(dag_id, run_id, "wait", ["deferred"], timeout=180)
        wait_for_airflow(
            lambda: all("Waiting for messages on " in self._trigger_logs(dag_id, r) for r in run_ids),
            what=f"the triggers of {dag_id} to start polling in the triggerer",
            timeout=90,
        )
        scheduler_log = self.stack.airflow.log_path("scheduler")

        def seen(run_id: str) -> bool:
            needle = (
                "Received executor event with state success for task instance "
                f"TaskInstanceKey(dag_id='{dag_id}', task_id='wait', run_id='{run_id}', try_number=1"
            )
            return needle in scheduler_log.read_text(errors="replace")

        wait_for_airflow(
            lambda: all(map(seen, run_ids)), what=f"the scheduler to see {dag_id}'s deferring workers exit", timeout=60
        )

    def _trigger_logs(self, dag_id: str, run_id: str) -> str:
        folder = self.stack.airflow.logs / f"dag_id={dag_id}" / f"run_id={run_id}" / "task_id=wait"
        if not folder.is_dir():
            return ""
        return "".join(p.read_text(errors="replace") for p in sorted(folder.iterdir()) if ".log.trigger." in p.name)

    def run_until_empty(
        self,
        ledger: Ledger,
        dag_id: str,
        queue: AnyQueue,
        conf: dict[str, Any],
        *,
        at_once: int = 1,
        per_run: int | None = None,
        collect_task: str = "process",
        sensor_task: str = "wait",
        timeout: float = 240.0,
    ) -> None:
        """Trigger runs (up to ``at_once`` unfinished, and no more than the messages left need at
        ``per_run`` a run) while the queue has visible messages, book every finished run on the
        queue, and stop once the queue is empty and no run can still deliver anything.

        A deferred sensor on an empty queue holds nothing (its trigger received nothing: the
        queue would count it in flight), so such runs are marked failed to end them ("cancelled").
        """
        api = self.api
        deadline = time.monotonic() + timeout
        while True:
            self.stack.airflow.check_running()
            states = self.runs_on(dag_id, queue.name)
            for run_id, state in sorted(states.items()):
                if run_id not in ledger.booked and state in ("success", "failed"):
                    self.settle_run(ledger, dag_id, run_id, collect_task, sensor_task)
            running = {r for r, state in states.items() if state not in ("success", "failed")}
            if queue.is_empty():
                waiting = {r: api.task_instance(dag_id, r, sensor_task)["state"] for r in running}
                if all(state == "deferred" for state in waiting.values()):
                    for run_id in waiting:
                        api.request("PATCH", f"/dags/{dag_id}/dagRuns/{run_id}", json={"state": "failed"})
                        ledger.booked.add(run_id)
                        ledger.runs["cancelled"] += 1
                    return
            elif (
                len(running) < at_once
                and (per_run is None or len(running) * per_run < queue.remaining())
                and queue.has_visible()
            ):
                self.trigger(dag_id, conf)
                continue
            if time.monotonic() > deadline:
                summaries = {r: api.summary(dag_id, r) for r in sorted(running)}
                raise AssertionError(
                    f"{dag_id}: the queue was not emptied within {timeout:.0f}s: {queue.counts()}; "
                    f"{ledger.line()}; runs still active: {summaries}"
                )
            time.sleep(2.0)  # every REST call costs the (single) API server CPU the tasks need too


def _restart_scheduler(stack: Stack, *, wait: bool = True) -> None:
    stack.airflow.stop_component("scheduler")
    stack.airflow.start_component("scheduler")
    if wait:
        stack.airflow.wait_healthy(timeout=120)


@pytest.fixture(scope="module")
def faults(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Faults]:
    airflow = stack.airflow
    saved = dict(airflow.extra_env)
    airflow.extra_env.update(SCHEDULER_ENV)
    _restart_scheduler(stack)
    try:
        stack.api.wait_for_dags(FAULT_DAGS)
        for dag_id in FAULT_DAGS:
            stack.api.unpause(dag_id)
        yield Faults(stack=stack, tmp=tmp_path_factory.mktemp("faults"))
    finally:
        for dag_id in FAULT_DAGS:
            with contextlib.suppress(AirflowError):
                stack.api.pause(dag_id)
        airflow.extra_env.clear()
        airflow.extra_env.update(saved)
        _restart_scheduler(stack, wait=False)  # tests after this one wait for what they need


# -- the worker killed between receive and XCom -------------------------------------------------------------
def _task_process(ti_id: str) -> psutil.Process | None:
    """The task's process, found by the title the task runner gives it: ``airflow worker -- <ti id>``."""
    title = f"airflow worker -- {ti_id}"
    for process in psutil.process_iter(["cmdline"]):
        if title in " ".join(process.info["cmdline"] or []):
            return process
    return None


def _stopped_between_receive_and_xcom(
    faults: Faults, dag_id: str, run_id: str, marker: Path
) -> tuple[dict[str, Any], psutil.Process]:
    """Wait until the sensor holds its messages (marker written, XCom not stored); its process."""

    def stopped() -> bool:
        if marker.exists():
            return True
        if faults.api.run(dag_id, run_id)["state"] in ("success", "failed"):
            raise AssertionError(f"the run ended before the sensor stopped: {faults.api.summary(dag_id, run_id)}")
        return False

    wait_for_airflow(stopped, what=f"{dag_id}'s sensor to receive and stop before its XCom ({marker})", timeout=180)
    held = json.loads(marker.read_text())
    ti = faults.api.task_instance(dag_id, run_id, "wait")
    assert ti["state"] == "running" and ti["try_number"] == 1, ti
    process = _task_process(ti["id"])
    assert process is not None, f"no process titled 'airflow worker -- {ti['id']}'"
    assert process.pid == held["pid"], (process.pid, held)
    return held, process


def test_post_delivery_worker_killed_between_receive_and_xcom(faults: Faults) -> None:
    api, dag_id = faults.api, "e2e_faults_kill_post"
    queue = faults.sqs_queue("e2e-kill-post")
    ledger = Ledger("worker SIGKILL, post-delivery", pushed=queue.push("kill-post", 10))
    marker = faults.tmp / f"{dag_id}.json"
    run_id = faults.trigger(dag_id, {"queue": queue.name, "marker_dir": str(faults.tmp)})

    held, task_process = _stopped_between_receive_and_xcom(faults, dag_id, run_id, marker)
    supervisor = task_process.parent()
    assert supervisor is not None and supervisor.pid == held["ppid"]
    assert "LocalExecutor" in " ".join(supervisor.cmdline()), supervisor.cmdline()
    assert queue.counts() == {"visible": 0, "in_flight": len(held["bodies"]), "delayed": 0}
    # The whole worker: first the supervisor (so nobody reports the task's end), then the task.
    supervisor.send_signal(signal.SIGKILL)
    task_process.send_signal(signal.SIGKILL)
    psutil.wait_procs([supervisor, task_process], timeout=30)
    assert queue.counts()["in_flight"] == len(held["bodies"]), "nothing was deleted"

    # Airflow notices the missing heartbeat and retries; the retry receives the same messages.
    run = api.wait_for_run(dag_id, run_id, timeout=240, airflow=faults.stack.airflow)
    tries = faults.tries(dag_id, run_id, "wait")
    assert run["state"] == "success", api.summary(dag_id, run_id)
    assert [t["state"] for t in tries] == ["failed", "success"], tries
    retried = api.xcom(dag_id, run_id, "wait")
    faults.settle_run(ledger, dag_id, run_id, "process", "wait")
    faults.run_until_empty(ledger, dag_id, queue, {"queue": queue.name})
    again = len(set(retried) & set(held["bodies"]))
    ledger.notes.append(f"the killed try held {len(held['bodies'])}, its retry received {again} of them")
    ledger.report()
    assert not ledger.lost, f"lost under post-delivery delete: {ledger.ids(ledger.lost)}"
    assert set(held["bodies"]) <= set(retried), "the retry should receive what the killed try held"
    assert queue.is_empty()


def test_pre_delivery_task_killed_between_receive_and_xcom(faults: Faults) -> None:
    api, dag_id = faults.api, "e2e_faults_kill_pre"
    queue = faults.sqs_queue("e2e-kill-pre")
    ledger = Ledger("task SIGKILL, pre-delivery", pushed=queue.push("kill-pre", 10))
    marker = faults.tmp / f"{dag_id}.json"
    run_id = faults.trigger(dag_id, {"queue": queue.name, "marker_dir": str(faults.tmp)})

    held, task_process = _stopped_between_receive_and_xcom(faults, dag_id, run_id, marker)
    assert len(held["bodies"]) == 5
    # Pre-delivery: deleted before the hand-over, so already gone from the queue.
    assert queue.counts() == {"visible": 5, "in_flight": 0, "delayed": 0}
    task_process.send_signal(signal.SIGKILL)  # the task only: its supervisor reports the failure
    psutil.wait_procs([task_process], timeout=30)

    run = api.wait_for_run(dag_id, run_id, timeout=240, airflow=faults.stack.airflow)
    tries = faults.tries(dag_id, run_id, "wait")
    assert run["state"] == "success", api.summary(dag_id, run_id)
    assert [t["state"] for t in tries] == ["failed", "success"], tries
    faults.settle_run(ledger, dag_id, run_id, "process", "wait")
    faults.run_until_empty(ledger, dag_id, queue, {"queue": queue.name})
    ledger.notes.append(f"the killed try held {len(held['bodies'])} (deleted before delivery)")
    ledger.report()
    assert ledger.duplicates == 0, f"processed twice under pre-delivery delete: {ledger.processed.most_common(5)}"
    # At most once, and nothing else lost: exactly what the killed task held is gone.
    assert ledger.lost == sorted(held["bodies"]), (ledger.ids(ledger.lost), held["bodies"])
    assert queue.is_empty()


# -- a downstream task failing, delete_on_dag_success=True ------------------------------------------------
def test_downstream_failure_releases_and_a_successful_run_deletes(faults: Faults) -> None:
    api, dag_id = faults.api, "e2e_faults_settle"
    queue = faults.sqs_queue("e2e-settle")
    ledger = Ledger("downstream failure, delete_on_dag_success", pushed=queue.push("settle", 20))

    failing = faults.trigger(dag_id, {"queue": queue.name, "fail": True})
    run = api.wait_for_run(dag_id, failing, timeout=180, airflow=faults.stack.airflow)
    assert run["state"] == "failed", api.summary(dag_id, failing)
    states = {t["task_id"]: t["state"] for t in api.task_instances(dag_id, failing)}
    assert states == {"wait": "success", "process_or_fail": "failed", "wait_settle": "success"}, states
    settled = api.xcom(dag_id, failing, "wait_settle")
    assert settled == {"outcome": "failed", "released": 20}, settled
    faults.settle_run(ledger, dag_id, failing, "process_or_fail", "wait")
    assert sorted(ledger.in_failed_runs) == sorted(ledger.pushed)
    # Released with the sensor's retry_delay (30 s, seconds after the run ended): hidden, then back.
    assert queue.counts() == {"visible": 0, "in_flight": 20, "delayed": 0}
    wait_for_airflow(lambda: queue.counts()["visible"] == 20, what="the released messages to come back", timeout=120)

    conf = {"queue": queue.name, "fail": False}
    faults.run_until_empty(ledger, dag_id, queue, conf, collect_task="process_or_fail")
    runs = [r for r in api.runs(dag_id) if r["dag_run_id"] != failing and r["conf"].get("queue") == queue.name]
    outcomes = [api.xcom(dag_id, r["dag_run_id"], "wait_settle") for r in runs if r["state"] == "success"]
    deleted = sum(o.get("deleted", 0) for o in outcomes)
    ledger.notes.append(
        f"the failed run held {len(ledger.in_failed_runs)} and released {settled['released']}; "
        f"the successful runs deleted {deleted}"
    )
    ledger.report()
    assert not ledger.lost, f"lost: {ledger.ids(ledger.lost)}"
    assert all(o["outcome"] == "success" for o in outcomes), outcomes
    assert deleted == sum(ledger.processed.values())
    assert queue.is_empty()


# -- the triggerer killed while its triggers hold received messages --------------------------------------
def test_triggerer_killed_while_several_triggers_hold_messages(faults: Faults) -> None:
    api, airflow = faults.api, faults.stack.airflow
    sensors, per_run, pushed = 3, 20, 100
    post_dag, pre_dag = "e2e_faults_trigger_post", "e2e_faults_trigger_pre"
    post_q, pre_q = faults.sqs_queue("e2e-trig-post"), faults.sqs_queue("e2e-trig-pre")
    # Three post-delivery and three pre-delivery sensors, all waiting in the triggerer at once.
    first = {
        post_dag: [faults.trigger(post_dag, {"queue": post_q.name}) for _ in range(sensors)],
        pre_dag: [faults.trigger(pre_dag, {"queue": pre_q.name}) for _ in range(sensors)],
    }
    for dag_id, run_ids in first.items():
        faults.wait_deferred(dag_id, run_ids)
    try:
        # Freeze the triggerer's supervisor (the process that stores trigger events) while its
        # trigger runner polls: the triggers receive, their events never reach the database.
        airflow.signal_main_process("triggerer", signal.SIGSTOP)
        post = Ledger("triggerer SIGKILL, post-delivery", pushed=post_q.push("trig-post", pushed))
        pre = Ledger("triggerer SIGKILL, pre-delivery", pushed=pre_q.push("trig-pre", pushed))
        # Each trigger delivers once, up to its 20: all it could gather from the burst (a
        # delivery may be smaller when it wins the race with the pushes). Once every trigger has
        # delivered, the counts stop changing while messages are still visible (a trigger still
        # waiting would take them): post-delivery ones hold theirs in flight, pre-delivery ones
        # have deleted theirs.
        seen: list[tuple[dict[str, int], dict[str, int]]] = []

        def all_delivered() -> tuple[int, int] | None:
            post_counts, pre_counts = post_q.counts(), pre_q.counts()
            seen.append((post_counts, pre_counts))
            settled = len(seen) > 15 and all(c == seen[-1] for c in seen[-15:])  # 3 s unchanged
            post_in_flight, pre_visible = post_counts["in_flight"], pre_counts["visible"]
            delivered = (
                post_counts["visible"] + post_in_flight == pushed
                and pushed - per_run * sensors <= post_counts["visible"] <= pushed - sensors
                and pre_counts["in_flight"] == 0
                and pushed - per_run * sensors <= pre_visible <= pushed - sensors
            )
            return (post_in_flight, pushed - pre_visible) if settled and delivered else None

        try:
            post_held, pre_held = wait_for_airflow(
                all_delivered, what=f"the {2 * sensors} triggers to deliver", timeout=60, interval=0.2
            )
        except AirflowError as error:
            last = seen[-1] if seen else None
            raise AirflowError(f"{error}; last counts {last}; runner: {airflow.process_states('triggerer')}") from None
        airflow.kill_component("triggerer")  # SIGKILL, whole process group
    except BaseException:
        airflow.kill_component("triggerer")
        airflow.start_component("triggerer")
        raise
    for dag_id, run_ids in first.items():
        states = [api.task_instance(dag_id, r, "wait")["state"] for r in run_ids]
        assert states == ["deferred"] * sensors, f"{dag_id}: no trigger event may have been stored: {states}"
    airflow.start_component("triggerer")

    faults.run_until_empty(post, post_dag, post_q, {"queue": post_q.name}, at_once=sensors)
    faults.run_until_empty(pre, pre_dag, pre_q, {"queue": pre_q.name}, at_once=sensors)
    post.notes.append(f"the killed triggerer held {post_held} (in flight)")
    pre.notes.append(f"the killed triggerer held {pre_held} (already deleted)")
    post.report()
    pre.report()
    assert not post.lost, f"lost under post-delivery delete: {post.ids(post.lost)}"
    assert pre.duplicates == 0, f"processed twice under pre-delivery delete: {pre.processed.most_common(5)}"
    assert len(pre.lost) == pre_held, f"only what the killed triggerer held may be lost: {pre.ids(pre.lost)}"
    assert post_q.is_empty() and pre_q.is_empty()
    try:
        airflow.wait_healthy(timeout=120)
    except AirflowError as error:  # pragma: no cover - reported with the logs' location
        raise AssertionError(f"Airflow did not recover after the triggerer restart: {error}") from error


# -- volume: thousands of messages, several deferred sensors on one queue -------------------------------------
@pytest.mark.timeout(600)
def test_thousands_of_messages_through_concurrent_deferred_sensors(faults: Faults) -> None:
    dag_id = "e2e_faults_volume"
    sensors, total = 5, 3000
    queue = faults.azure_queue("e2e-volume")
    conf = {"queue": queue.name}
    # Five runs whose sensors all wait in the triggerer on the (still empty) queue ...
    first = [faults.trigger(dag_id, conf) for _ in range(sensors)]
    faults.wait_deferred(dag_id, first)
    # ... when 3,000 messages arrive; then runs (five at a time, max_active_runs, and five more
    # queued behind them) until the queue is empty.
    ledger = Ledger(f"{total} messages, {sensors} concurrent sensors", pushed=queue.push("vol", total))
    faults.run_until_empty(
        ledger, dag_id, queue, conf, at_once=2 * sensors, per_run=200, collect_task="record", timeout=480
    )
    batches = sum(ledger.runs.values())
    ledger.notes.append(f"Azure (Azurite), 200 per run, {batches} runs")
    ledger.report()
    assert not ledger.lost, f"lost under post-delivery delete: {ledger.ids(ledger.lost)}"
    assert queue.is_empty()
