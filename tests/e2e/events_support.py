"""What the event-driven e2e modules share: queues seen through their own SDKs, and the accounting
of what DAG runs processed (read through the REST API)."""

from __future__ import annotations

import contextlib
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from terminal_support import section

from devtools.airflow_local import AirflowError, wait_for_airflow

if TYPE_CHECKING:
    from conftest import Stack

ACCOUNTING: list[str] = []
"""Every scenario's accounting line, shown in the terminal summary."""


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
    runs = api.runs(dag_id)
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
        wait_for_airflow(
            lambda: processed_all(stack, dag_id, queue, ledger),
            what=f"{dag_id}'s runs to process every message",
            timeout=timeout,
            interval=2,
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


# -- which triggerer polls a queue ---------------------------------------------------------------------------
def log_text(stack: Stack, name: str, start: int = 0) -> str:
    """Component ``name``'s log from byte ``start`` on ('' if it has none yet)."""
    path = stack.airflow.log_path(name)
    if not path.exists():
        return ""
    with open(path, "rb") as f:
        f.seek(start)
        return f.read().decode(errors="replace")


def log_size(stack: Stack, name: str) -> int:
    path = stack.airflow.log_path(name)
    return path.stat().st_size if path.exists() else 0


def polling(stack: Stack, name: str, queue: str, start: int = 0) -> bool:
    """Whether triggerer ``name`` has logged its first receive from ``queue`` since byte ``start``."""
    return f"queue '{queue}' done: polling" in log_text(stack, name, start)


def holder(stack: Stack, queue: str, line: str = "done: polling") -> str | None:
    """Which triggerer polls ``queue`` now: the one that most recently logged ``line`` for it."""
    latest: list[tuple[str, str]] = []
    for name in stack.triggerers():
        stamps = [row[:27] for row in log_text(stack, name).splitlines() if f"queue '{queue}'" in row and line in row]
        if stamps:
            latest.append((max(stamps), name))
    return max(latest)[1] if latest else None


def show_accounting(title: str) -> None:
    """The accounting lines so far, into the terminal summary's section ``title``."""
    section(title).extend(ACCOUNTING)
    ACCOUNTING.clear()
