"""Watchers that delete a message only when its run succeeded (issue 21), in a real Airflow.

The DAGs (``tests/e2e/dags/e2e_success.py``) are scheduled on assets whose watchers run
``QueuePollTrigger(delete_on_dag_success=True)``; this provider's listener (its ``airflow.plugins``
entry point, loaded by the stack's scheduler) records which run took which delivery. On both
services:

1. 30 messages into a DAG that maps one task per message (``message_task_id``), 3 of whose bodies
   fail: the 27 are processed once and deleted after their run; the 3 come back after the retry
   delay, run again, and after ``max_receive_count`` failures sit in the dead-letter queue (SQS)
   or ``<queue>-poison`` (Azure) with their bodies intact;
2. a DAG without a mapped task whose run fails: the batch comes back and runs again; that run,
   cleared by hand once the cause is fixed, succeeds and its messages are deleted (no third run);
3. the triggerer SIGKILLed while runs go: nothing is lost, and no message runs again after a run
   succeeded with it; duplicates are counted and printed;
4. (SQS) a FIFO queue with three message groups, one failing message in one group: each group's
   messages are processed in order, the failing one ends in the dead-letter queue, the rest of its
   group waits for it, the other groups do not.

Each case prints its accounting (pushed / processed / runs / released / dead-lettered /
duplicates). Waits are bounded and fail with what they were waiting for; nothing asserts on
durations.
"""

from __future__ import annotations

import contextlib
import itertools
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest
from terminal_support import section

from devtools.airflow_local import AirflowError, wait_for_airflow

if TYPE_CHECKING:
    from conftest import Stack

SERVICES = ("sqs", "azure")
TITLE = "delete_on_dag_success accounting (pushed / processed / runs / released / dead-lettered / duplicates)"
DAG_IDS = [
    *(f"e2e_success_{scenario}_{service}" for scenario in ("partial", "whole", "kill") for service in SERVICES),
    "e2e_success_fifo_sqs",
]
MAX_RECEIVE_COUNT = 2  # the partial and fifo DAGs' watchers


def queue_name(scenario: str, service: str) -> str:
    return f"e2e-success-{scenario}-{service}" + (".fifo" if scenario == "fifo" else "")


# -- the queues, through their own SDKs -------------------------------------------------------------------------
@dataclass
class Queue:
    stack: Stack
    service: str
    name: str

    @property
    def fifo(self) -> bool:
        return self.name.endswith(".fifo")

    @property
    def dead_letters(self) -> str:
        if self.service == "sqs":
            return self.name.removesuffix(".fifo") + "-dlq" + (".fifo" if self.fifo else "")
        return f"{self.name}-poison"

    def create(self) -> None:
        for name in (self.name, self.dead_letters):
            if self.service == "sqs":
                attributes = {"FifoQueue": "true", "ContentBasedDeduplication": "true"} if self.fifo else {}
                self.stack.sqs.create_queue(QueueName=name, Attributes=attributes)
            else:
                with contextlib.suppress(Exception):
                    self.stack.azure.create_queue(name)

    def url(self, name: str) -> str:
        return str(self.stack.sqs.get_queue_url(QueueName=name)["QueueUrl"])

    def push(self, bodies: list[str], groups: list[str] | None = None) -> None:
        if self.service == "sqs":
            for start in range(0, len(bodies), 10):
                entries = [
                    {"Id": str(i), "MessageBody": body, **({"MessageGroupId": groups[start + i]} if groups else {})}
                    for i, body in enumerate(bodies[start : start + 10])
                ]
                answer = self.stack.sqs.send_message_batch(QueueUrl=self.url(self.name), Entries=entries)
                assert not answer.get("Failed"), answer["Failed"]
        else:
            client = self.stack.azure.get_queue_client(self.name)
            for body in bodies:
                client.send_message(body)

    def total(self, name: str | None = None) -> int:
        name = name or self.name
        if self.service == "sqs":
            return sum(self.stack.sqs_counts(self.url(name)).values())
        return int(self.stack.azure.get_queue_client(name).get_queue_properties().approximate_message_count)

    def dead_lettered(self) -> list[str]:
        """The bodies in the dead-letter queue, looked at without taking them (SQS: received and
        released at once; Azure: peeked)."""
        if self.service == "azure":
            client = self.stack.azure.get_queue_client(self.dead_letters)
            return [m.content for m in client.peek_messages(max_messages=32)]
        url, bodies, seen = self.url(self.dead_letters), [], set()
        for _ in range(5):
            answer = self.stack.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)
            for message in answer.get("Messages", []):
                if message["MessageId"] not in seen:
                    seen.add(message["MessageId"])
                    bodies.append(message["Body"])
            if not answer.get("Messages"):
                break
        return bodies


# -- what the runs did, through the REST API -----------------------------------------------------------------------
@dataclass
class Ledger:
    scenario: str
    pushed: list[str]
    processed: Counter[str] = field(default_factory=Counter)
    attempts: Counter[str] = field(default_factory=Counter)
    """How many runs took each body."""
    runs: list[dict[str, Any]] = field(default_factory=list)
    done_in: dict[str, list[str]] = field(default_factory=dict)
    """run id -> the bodies it processed successfully, in map order."""
    taken_by: dict[str, list[str]] = field(default_factory=dict)
    """run id -> the bodies it took, in map order."""
    dead_lettered: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    read: dict[str, str] = field(default_factory=dict)
    """run id -> the state it was read in (a run cleared by hand is read again once it ends again)."""

    @property
    def duplicates(self) -> int:
        return sum(n - 1 for n in self.processed.values() if n > 1)

    @property
    def released(self) -> int:
        return sum(n - 1 for n in self.attempts.values() if n > 1)

    @property
    def lost(self) -> list[str]:
        return sorted(set(self.pushed) - set(self.processed) - set(self.dead_lettered))

    def report(self) -> str:
        extra = f" | {'; '.join(self.notes)}" if self.notes else ""
        line = (
            f"[success {self.scenario}] pushed={len(self.pushed)} processed={len(self.processed)} "
            f"runs={len(self.runs)} "
            f"released={self.released} dead-lettered={len(self.dead_lettered)} duplicates={self.duplicates} "
            f"lost={len(self.lost)}{extra}"
        )
        print(line)
        section(TITLE).append(line)
        unexpected = set(self.processed) - set(self.pushed)
        assert not unexpected, f"processed messages nobody pushed: {sorted(unexpected)[:10]}"
        return line


def book(stack: Stack, dag_id: str, ledger: Ledger, *, mapped: bool = True) -> list[dict[str, Any]]:
    """Every run of ``dag_id``: what each finished one took and processed (into ``ledger``)."""
    api = stack.api
    runs = api.runs(dag_id)
    ledger.runs = runs
    for run in runs:
        run_id = run["dag_run_id"]
        if run["state"] not in ("success", "failed") or ledger.read.get(run_id) == run["state"]:
            continue
        ledger.read[run_id] = run["state"]
        events = api.upstream_asset_events(dag_id, run_id)
        taken = [m["body"] for e in events for m in e["extra"]["payload"].get("messages", [])]
        if mapped:
            taken = [m["body"] for m in api.xcom(dag_id, run_id, "take") or []] or taken
            done = list(api.xcom(dag_id, run_id, "report") or [])
        else:
            done = list(api.xcom(dag_id, run_id, "received") or []) if run["state"] == "success" else []
        ledger.taken_by[run_id] = taken
        ledger.done_in[run_id] = done
    ledger.processed = Counter(b for run in runs for b in ledger.done_in.get(run["dag_run_id"], []))
    ledger.attempts = Counter(b for run in runs for b in ledger.taken_by.get(run["dag_run_id"], []))
    return runs


def bodies(prefix: str, count: int) -> list[str]:
    tag = uuid.uuid4().hex[:6]
    return [f"{prefix}-{tag}-{i:03d}" for i in range(count)]


def settled(stack: Stack, dag_id: str, queue: Queue, ledger: Ledger, *, dead: int = 0, mapped: bool = True) -> bool:
    """Every run finished, every body processed or dead-lettered, the queue empty."""
    stack.airflow.check_running()
    runs = book(stack, dag_id, ledger, mapped=mapped)
    if any(r["state"] not in ("success", "failed") for r in runs):
        return False
    ledger.dead_lettered = queue.dead_lettered() if dead else []
    return not ledger.lost and len(ledger.dead_lettered) >= dead and queue.total() == 0


def wait_settled(stack: Stack, dag_id: str, queue: Queue, ledger: Ledger, timeout: float, **kwargs: Any) -> None:
    try:
        wait_for_airflow(
            lambda: settled(stack, dag_id, queue, ledger, **kwargs),
            what=f"{dag_id} to process or dead-letter every message",
            timeout=timeout,
            interval=3,
        )
    except AirflowError as error:
        raise AirflowError(f"{error}; {ledger.report()}; left in the queue: {queue.total()}") from None


# -- fixture: every watcher polling ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def queues(stack: Stack) -> Any:
    log = stack.airflow.log_path("triggerer")
    start = log.stat().st_size
    made = {(sc, sv): Queue(stack, sv, queue_name(sc, sv)) for sc in ("partial", "whole", "kill") for sv in SERVICES}
    made[("fifo", "sqs")] = Queue(stack, "sqs", queue_name("fifo", "sqs"))
    for queue in made.values():
        queue.create()
    stack.api.wait_for_dags(DAG_IDS)
    for dag_id in DAG_IDS:
        stack.api.unpause(dag_id)

    def polling() -> bool:
        with open(log, "rb") as f:
            f.seek(start)
            text = f.read().decode(errors="replace")
        return all(f"queue '{q.name}' done: polling" in text for q in made.values())

    try:
        wait_for_airflow(polling, what="every watcher to poll its queue", timeout=180, interval=1.0)
        yield made
    finally:
        for dag_id in DAG_IDS:
            with contextlib.suppress(AirflowError):
                stack.api.pause(dag_id)


def test_airflow_loads_the_providers_listener(stack: Stack) -> None:
    """Airflow lists the plugin and its listener (``airflow plugins``, here through the REST API): the
    ``airflow.plugins`` entry point loads it with Airflow's default configuration."""
    plugins = stack.api.request("GET", "/plugins")["plugins"]
    (ours,) = [p for p in plugins if p["name"] == "fluke_airflow"]
    assert ours["listeners"] == ["fluke_airflow.plugins.runs"]


# -- 1. partial batch failure ----------------------------------------------------------------------------------
@pytest.mark.timeout(900)
@pytest.mark.parametrize("service", SERVICES)
def test_failed_messages_of_a_mapped_run_come_back_then_go_to_the_dead_letter_queue(
    stack: Stack, queues: Any, service: str
) -> None:
    queue, dag_id = queues[("partial", service)], f"e2e_success_partial_{service}"
    good, bad = bodies("ok", 27), bodies("fail", 3)
    ledger = Ledger(f"partial failure {service}", good + bad)
    queue.push(good[:10] + bad[:1] + good[10:20] + bad[1:] + good[20:])
    wait_settled(stack, dag_id, queue, ledger, timeout=720, dead=len(bad))
    ledger.report()
    assert sorted(ledger.dead_lettered) == sorted(bad), "the dead-letter queue holds the failing bodies, intact"
    assert all(ledger.processed[b] == 1 for b in good), f"every other body once: {ledger.processed.most_common(3)}"
    assert all(ledger.attempts[b] == 1 for b in good), "deleted after their first run: never taken again"
    assert all(ledger.attempts[b] == MAX_RECEIVE_COUNT for b in bad), f"each failing body runs {MAX_RECEIVE_COUNT}x: " \
        f"{[ledger.attempts[b] for b in bad]}"  # fmt: skip


# -- 2. the whole run fails, then is cleared by hand -------------------------------------------------------------
@pytest.mark.timeout(900)
@pytest.mark.parametrize("service", SERVICES)
def test_a_failed_run_brings_its_batch_back_and_a_cleared_run_that_succeeds_deletes_it(
    stack: Stack, queues: Any, service: str
) -> None:
    api = stack.api
    queue, dag_id = queues[("whole", service)], f"e2e_success_whole_{service}"
    variable = f"e2e_success_fail_{service}"
    with contextlib.suppress(AirflowError):
        api.request("DELETE", f"/variables/{variable}")
    api.request("POST", "/variables", json={"key": variable, "value": "yes"})
    ledger = Ledger(f"whole run fails, cleared by hand {service}", bodies("whole", 5))
    queue.push(ledger.pushed)

    def failed_twice() -> list[dict[str, Any]] | None:
        stack.airflow.check_running()
        runs = book(stack, dag_id, ledger, mapped=False)
        failed = [r for r in runs if r["state"] == "failed"]
        return failed if len(failed) >= 2 else None

    second = wait_for_airflow(
        failed_twice, what=f"{dag_id} to fail twice (the batch back after 3 s)", timeout=420, interval=2
    )[1]
    assert all(ledger.attempts[b] == 2 for b in ledger.pushed), f"both runs took the batch: {ledger.attempts}"
    assert queue.total() == len(ledger.pushed), "released, not deleted: hidden for the retry delay (300 s)"

    api.request("PATCH", f"/variables/{variable}", json={"key": variable, "value": "no"})
    cleared_at = time.monotonic()
    api.request("POST", f"/dags/{dag_id}/dagRuns/{second['dag_run_id']}/clear", json={"dry_run": False})
    wait_for_airflow(
        lambda: settled(stack, dag_id, queue, ledger, mapped=False),
        what=f"{dag_id}'s cleared run to succeed and its messages to be deleted",
        timeout=480,
        interval=2,
    )
    ledger.notes.append(f"deleted {time.monotonic() - cleared_at:.0f}s after the clear (retry delay 300 s)")
    ledger.report()
    assert [r["state"] for r in ledger.runs] == ["failed", "success"], "no third run"
    assert sorted(ledger.processed) == sorted(ledger.pushed) and ledger.duplicates == 0
    assert queue.total() == 0


# -- 3. the triggerer killed while runs go -----------------------------------------------------------------------
@pytest.mark.timeout(900)
@pytest.mark.parametrize("service", SERVICES)
def test_the_triggerer_killed_while_runs_go_loses_nothing_and_reruns_no_succeeded_message(
    stack: Stack, queues: Any, service: str
) -> None:
    airflow, api = stack.airflow, stack.api
    queue, dag_id = queues[("kill", service)], f"e2e_success_kill_{service}"
    ledger = Ledger(f"triggerer SIGKILL while runs go {service}", bodies("kill", 40))
    queue.push(ledger.pushed)

    def going() -> bool:  # a run done and another going: messages held for a run, others waiting
        states = Counter(r["state"] for r in api.runs(dag_id))
        return states["success"] >= 1 and states["running"] >= 1

    try:
        wait_for_airflow(going, what=f"{dag_id} to have a run done and one going", timeout=420, interval=1.0)
        airflow.kill_component("triggerer")  # SIGKILL, the whole process group
        held = queue.total()
    finally:
        if not airflow.components["triggerer"].running:
            airflow.start_component("triggerer")
    wait_settled(stack, dag_id, queue, ledger, timeout=720)
    ledger.notes.append(f"killed with {held} message(s) in the queue")
    ledger.report()
    assert_nothing_lost_nor_run_after_success(ledger)
    airflow.wait_healthy(timeout=120)


def assert_nothing_lost_nor_run_after_success(ledger: Ledger) -> None:
    """Every pushed message processed; one processed twice only by runs that overlapped (a run that
    took it began before the earlier one had ended): none ran again after a run succeeded with it."""
    assert not ledger.lost, f"lost: {ledger.lost[:10]}"
    by_id = {r["dag_run_id"]: r for r in ledger.runs}
    for body, count in ledger.processed.items():
        if count < 2:
            continue
        runs = sorted((by_id[r] for r, done in ledger.done_in.items() if body in done), key=lambda r: r["start_date"])
        for earlier, later in itertools.pairwise(runs):
            assert later["start_date"] < earlier["end_date"], (
                f"{body} ran again in {later['dag_run_id']} after {earlier['dag_run_id']} had succeeded with it"
            )


# -- 4. FIFO: three message groups, one failing message ------------------------------------------------------------
@pytest.mark.timeout(900)
def test_on_a_fifo_queue_a_failed_message_blocks_only_its_group(stack: Stack, queues: Any) -> None:
    queue, dag_id = queues[("fifo", "sqs")], "e2e_success_fifo_sqs"
    tag = uuid.uuid4().hex[:6]
    groups = {g: [f"{g}{i}-{tag}" for i in range(1, 6)] for g in ("A", "B", "C")}
    groups["A"][2] = f"fail-A3-{tag}"
    pushed = [b for g in ("A", "B", "C") for b in groups[g]]
    ledger = Ledger("FIFO, 3 groups, A3 fails", pushed)
    queue.push(pushed, [b[0] if not b.startswith("fail") else "A" for b in pushed])
    wait_settled(stack, dag_id, queue, ledger, timeout=720, dead=1)
    runs = [r["dag_run_id"] for r in ledger.runs]
    # Where each body was processed for the last time: the processing after which it was deleted.
    last = {body: (i, ledger.done_in[run].index(body)) for i, run in enumerate(runs)
            for body in ledger.done_in.get(run, [])}  # fmt: skip
    held_back = sorted(b for b, n in ledger.processed.items() if n > 1)
    ledger.notes.append(f"processed again after being held back behind A3: {held_back}")
    ledger.report()
    assert ledger.dead_lettered == [groups["A"][2]]
    assert set(held_back) <= set(groups["A"][3:]), "only what followed A3 in its group ran twice"
    final = sorted(last, key=last.__getitem__)
    for name, members in groups.items():
        expected = [b for b in members if not b.startswith("fail")]
        assert [b for b in final if b in members] == expected, f"group {name} out of order: {final}"
    last_failure = max(i for i, run in enumerate(runs) if groups["A"][2] in ledger.taken_by.get(run, []))
    assert all(last[b][0] >= last_failure for b in groups["A"][3:]), "A4 and A5 waited for A3's last try"
    assert all(last[b][0] <= last_failure for g in ("B", "C") for b in groups[g]), (
        "groups B and C went on while A3 was failing"
    )
