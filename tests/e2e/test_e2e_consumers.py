"""Consumers checked, not trusted (issue 20), in a real Airflow: scheduler, triggerer, DAG processor.

The DAGs are ``tests/e2e/dags/e2e_consumers.py``. The stack logs a health line every few seconds
(``[fluke_airflow] health_log_interval``, tests/e2e/conftest.py), and the triggerer's log is read
for what a person running Airflow would see:

1. a watcher whose ``dag_ids`` names only a DAG that does not exist logs an ERROR naming it and
   what to change, and a health line that says it is stalled and why; it takes no message (they
   stay visible in the queue). One that names a DAG that exists and one that does not serves the
   one that exists, every message;
2. one of two consumer DAGs paused: the watcher logs an ERROR naming it with the three causes
   and their remedies, a health line that says ``stalled``, and serves the other DAG meanwhile;
   unpaused, the next event starts it, and both DAGs have processed every message, each once.

Waits are bounded and fail with what they were waiting for; nothing asserts on durations.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from events_support import EventQueue, Ledger, bodies, book, show_accounting

from devtools.airflow_local import AirflowError, wait_for_airflow

if TYPE_CHECKING:
    from conftest import Stack

TYPO, PARTIAL = "e2e_consumers_typo", "e2e_consumers_partial"
PAUSE_A, PAUSE_B = "e2e_consumers_pause_a", "e2e_consumers_pause_b"


class TriggererLog:
    """The triggerer's log from the moment this object was made."""

    def __init__(self, stack: Stack) -> None:
        self.path = stack.airflow.log_path("triggerer")
        self.start = self.path.stat().st_size

    def text(self) -> str:
        with open(self.path, "rb") as f:
            f.seek(self.start)
            return f.read().decode(errors="replace")

    def lines(self, *parts: str) -> list[str]:
        return [line for line in self.text().splitlines() if all(p in line for p in parts)]

    def wait_for(self, what: str, *parts: str, timeout: float = 240) -> str:
        return wait_for_airflow(
            lambda: next(iter(self.lines(*parts)), None),
            what=f"{what} (log: {self.path})",
            timeout=timeout,
            interval=1.0,
        )


@contextlib.contextmanager
def unpaused(stack: Stack, *dag_ids: str) -> Iterator[None]:
    stack.api.wait_for_dags(list(dag_ids))
    for dag_id in dag_ids:
        stack.api.unpause(dag_id)
    try:
        yield
    finally:
        for dag_id in dag_ids:
            with contextlib.suppress(AirflowError):
                stack.api.pause(dag_id)


@pytest.fixture(scope="module", autouse=True)
def accounting() -> Iterator[None]:
    yield
    show_accounting("Consumer checks (pushed / processed / duplicates / lost / runs)")


# -- 1. a DAG that does not exist ------------------------------------------------------------------------------
def test_a_watcher_naming_only_an_unknown_dag_says_so_and_takes_no_message(stack: Stack) -> None:
    queue = EventQueue(stack, "sqs", "e2e-consumers-typo-sqs")
    queue.create()
    queue.push(["typo-1", "typo-2", "typo-3"])
    log = TriggererLog(stack)
    with unpaused(stack, TYPO):  # an asset's watcher runs only while a DAG scheduled on it is unpaused
        error = log.wait_for(
            "the watcher's ERROR naming the DAG that does not exist",
            "[error",
            "'e2e_consumers_typo_WRONG' in this watcher's dag_ids do not exist in Airflow",
        )
        assert "Set dag_ids to the DAG(s) scheduled on the watcher's asset" in error
        assert "the watcher takes no messages" in error
        line = log.wait_for("a health line saying why the watcher stalls", "Watcher of Amazon SQS queue",
                            "stalled: taking no messages, no DAG of dag_ids exists in Airflow")  # fmt: skip
        assert "'e2e_consumers_typo_WRONG'" in line
        # The check is repeated on each health line (every few seconds here): still nothing taken.
        wait_for_airflow(
            lambda: len(log.lines("stalled: taking no messages")) >= 2,
            what="a second health line",
            timeout=120,
            interval=1.0,
        )
        counts = stack.sqs_counts(queue.url)
        assert counts == {"visible": 3, "in_flight": 0, "delayed": 0}, f"messages taken from the queue: {counts}"
        assert not stack.api.runs(TYPO), "no event may have been fired"


def test_a_watcher_naming_one_unknown_dag_serves_the_one_that_exists(stack: Stack) -> None:
    queue = EventQueue(stack, "azure", "e2e-consumers-partial-azure")
    queue.create()
    ledger = Ledger("partial dag_ids, azure", bodies("partial", 20))
    log = TriggererLog(stack)
    with unpaused(stack, PARTIAL):
        error = log.wait_for(
            "the watcher's ERROR naming the DAG that does not exist",
            "[error",
            "'e2e_consumers_partial_WRONG' in this watcher's dag_ids do not exist in Airflow",
        )
        assert "Meanwhile the watcher paces on 'e2e_consumers_partial' only" in error
        log.wait_for("a health line saying which DAG is left out", "Watcher of Azure Queue Storage queue",
                     "stalled consumers: 'e2e_consumers_partial_WRONG' not found in Airflow")  # fmt: skip
        queue.push(ledger.pushed)

        def processed() -> bool:
            runs = book(stack, PARTIAL, ledger)
            return all(r["state"] == "success" for r in runs) and not ledger.lost and queue.total() == 0

        wait_for_airflow(processed, what=f"{PARTIAL} to process every message", timeout=300, interval=2.0)
    ledger.report()
    assert ledger.duplicates == 0


# -- 2. a consumer paused, then unpaused ------------------------------------------------------------------------
@pytest.mark.timeout(900)
def test_a_paused_consumer_is_named_the_other_is_served_and_unpaused_it_gets_every_message(stack: Stack) -> None:
    queue = EventQueue(stack, "sqs", "e2e-consumers-pause-sqs")
    queue.create()
    batches = [bodies(f"pause{n}", 10) for n in (1, 2, 3)]
    pushed = [body for batch in batches for body in batch]
    ledgers = {dag_id: Ledger(f"paused then unpaused, {dag_id}", pushed) for dag_id in (PAUSE_A, PAUSE_B)}
    log = TriggererLog(stack)
    with unpaused(stack, PAUSE_A, PAUSE_B):
        log.wait_for("the watcher to poll its queue", "queue 'e2e-consumers-pause-sqs' done: polling")
        stack.api.pause(PAUSE_B)

        def has(dag_id: str, messages: list[str]) -> bool:
            book(stack, dag_id, ledgers[dag_id])
            return set(messages) <= set(ledgers[dag_id].processed)

        # Paused: Airflow queues no event for it, so it starts no run and has none queued or running.
        queue.push(batches[0])
        wait_for_airflow(
            lambda: has(PAUSE_A, batches[0]), what=f"{PAUSE_A} to process the first batch", timeout=240, interval=2.0
        )
        error = log.wait_for("the ERROR naming the paused DAG", "[error",
                             f"consumer DAG '{PAUSE_B}' started no run for the event fired")  # fmt: skip
        assert "has no run queued or running. It is paused (unpause it" in error
        assert "not scheduled on this watcher's asset" in error and "waiting for its other assets" in error
        assert f"The watcher paces on '{PAUSE_A}' meanwhile" in error
        log.wait_for("a health line saying which DAG is stalled and why", "Watcher of Amazon SQS queue",
                     f"stalled consumers: '{PAUSE_B}' started no run")  # fmt: skip

        # The other DAG is served meanwhile.
        queue.push(batches[1])
        wait_for_airflow(
            lambda: has(PAUSE_A, batches[1]), what=f"{PAUSE_A} to process the second batch", timeout=240, interval=2.0
        )
        assert not stack.api.runs(PAUSE_B), "a paused DAG starts no run"

        # Unpaused: the next event starts it, and its run gets every event stored meanwhile.
        stack.api.unpause(PAUSE_B)
        queue.push(batches[2])
        for dag_id, ledger in ledgers.items():

            def processed(dag_id: str = dag_id, ledger: Ledger = ledger) -> bool:
                runs = book(stack, dag_id, ledger)
                return all(r["state"] == "success" for r in runs) and not ledger.lost

            try:
                wait_for_airflow(processed, what=f"{dag_id} to process every message", timeout=300, interval=2.0)
            except AirflowError as error:
                raise AirflowError(f"{error}; {ledger.report()}; left in the queue: {queue.total()}") from None
        log.wait_for("the INFO that the DAG is back in the pacing", f"consumer DAG '{PAUSE_B}' started a run again")
        wait_for_airflow(lambda: queue.total() == 0, what="the queue to be empty", timeout=120, interval=1.0)
    for ledger in ledgers.values():
        ledger.report()
        assert ledger.duplicates == 0, ledger.processed.most_common(3)
