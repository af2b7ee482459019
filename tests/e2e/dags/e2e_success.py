"""Test-only DAGs for tests/e2e/test_e2e_success.py: watchers that delete a message only when its run
succeeded (``delete_on_dag_success=True``).

For each service (``sqs``, ``azure``), a DAG scheduled on an asset whose watcher polls a queue of
its own:

* ``e2e_success_partial_<service>``: ``message_task_id="process"``, a task mapped over
  ``queue_messages(triggering_asset_events)`` that fails for bodies starting with ``fail``; a
  ``report`` task (all done) returns the bodies whose instance succeeded, in map order;
* ``e2e_success_whole_<service>``: no mapped task, so the whole run decides; its one task fails
  while the Variable ``e2e_success_fail_<service>`` is ``yes``;
* ``e2e_success_kill_<service>``: mapped like ``partial`` (nothing fails), each instance taking a
  second, a short visibility timeout: for the triggerer killed while runs go;
* ``e2e_success_fifo_sqs``: ``partial`` on an SQS FIFO queue (three message groups).
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from airflow.sdk import DAG, Asset, AssetWatcher, TriggerRule, Variable, task

from fluke_airflow.triggers import QueuePollTrigger, queue_messages

SERVICES = {"sqs": "fluke_sqs", "azure": "fluke_azure"}
COMMON = {"delete_on_dag_success": True, "wait_time_seconds": 2, "poke_interval": 1}
SCENARIOS: dict[str, dict[str, Any]] = {
    # Every message in one run: a 3 s window; failures back after 3 s, dead-lettered on the 2nd failure.
    "partial": {"message_task_id": "process", "max_batching_window": 3, "retry_delay": 3,
                "retry_exponential_backoff": False, "max_receive_count": 2, "visibility_timeout": 120},
    # 3 s after the first failure, 300 s after the second: the test clears the second run meanwhile.
    "whole": {"max_batching_window": 3, "retry_delay": 3, "retry_exponential_backoff": 100,
              "max_receive_count": 5, "visibility_timeout": 120},
    # Runs of 10 messages; a killed triggerer's messages come back after 20 s.
    "kill": {"message_task_id": "process", "batch_size": 10, "visibility_timeout": 20},
}  # fmt: skip


def queue_name(scenario: str, service: str) -> str:
    return f"e2e-success-{scenario}-{service}" + (".fifo" if scenario == "fifo" else "")


def dead_letter_queue(scenario: str, service: str) -> str | None:
    """SQS: a queue the test creates; Azure: none, so the watcher uses ``<queue>-poison``."""
    if service != "sqs":
        return None
    return f"e2e-success-{scenario}-sqs-dlq" + (".fifo" if scenario == "fifo" else "")


def _asset(scenario: str, service: str, dag_id: str, watch: dict[str, Any]) -> Asset:
    if watch.get("max_receive_count") and dead_letter_queue(scenario, service):
        watch = {**watch, "dead_letter_queue": dead_letter_queue(scenario, service)}
    trigger = QueuePollTrigger(
        conn_id=SERVICES[service], queue=queue_name(scenario, service), dag_ids=[dag_id], **COMMON, **watch
    )
    return Asset(f"{dag_id}_queue", watchers=[AssetWatcher(name=f"watch_{dag_id}", trigger=trigger)])


def _mapped(scenario: str, service: str, seconds: float, watch: dict[str, Any]) -> None:
    dag_id = f"e2e_success_{scenario}_{service}"
    with DAG(dag_id=dag_id, schedule=[_asset(scenario, service, dag_id, watch)], start_date=datetime(2026, 1, 1),
             catchup=False, tags=["fluke", "e2e"]):  # fmt: skip

        @task
        def take(*, triggering_asset_events: Any = None) -> list[dict[str, Any]]:
            return queue_messages(triggering_asset_events)

        @task
        def process(message: dict[str, Any]) -> str:
            time.sleep(seconds)
            if message["body"].startswith("fail"):
                raise ValueError(f"cannot process {message['body']}")
            return str(message["body"])

        @task(trigger_rule=TriggerRule.ALL_DONE)
        def report(results: Any) -> list[str]:
            return [r for r in results if r is not None]

        report(process.expand(message=take()))


def _whole(service: str, watch: dict[str, Any]) -> None:
    dag_id = f"e2e_success_whole_{service}"
    with DAG(dag_id=dag_id, schedule=[_asset("whole", service, dag_id, watch)], start_date=datetime(2026, 1, 1),
             catchup=False, tags=["fluke", "e2e"]):  # fmt: skip

        @task
        def received(*, triggering_asset_events: Any = None) -> list[str]:
            if Variable.get(f"e2e_success_fail_{service}", default="no") == "yes":
                raise RuntimeError(f"the pipeline is broken (Variable e2e_success_fail_{service} is 'yes')")
            return [m["body"] for m in queue_messages(triggering_asset_events)]

        received()


for _service in SERVICES:
    _mapped("partial", _service, 0, SCENARIOS["partial"])
    _whole(_service, SCENARIOS["whole"])
    _mapped("kill", _service, 1, SCENARIOS["kill"])
_mapped("fifo", "sqs", 0, {**SCENARIOS["partial"], "batch_size": 10, "max_batching_window": 0})
