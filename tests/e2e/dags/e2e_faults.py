"""Test-only DAGs for tests/e2e/test_e2e_faults.py: message accounting under faults in real Airflow.

* ``e2e_faults_kill_post`` / ``e2e_faults_kill_pre``: a poke-mode sensor (post- or pre-delivery
  delete) whose first try stops between the receive and the XCom: it writes a marker file
  (its pid, its supervisor's pid, the bodies it holds) and sleeps, so the test can SIGKILL the
  worker at exactly that point. Only when the run's conf names a ``marker_dir``.
* ``e2e_faults_settle``: ``delete_on_dag_success=True`` with a downstream task that fails when
  the run's conf says ``fail``.
* ``e2e_faults_trigger_post`` / ``e2e_faults_trigger_pre``: deferrable sensors (20 messages a
  run) for the killed-triggerer scenario.
* ``e2e_faults_volume``: a deferrable sensor on Azure taking 200 messages per run, five runs at once.

Every downstream task returns the bodies it processed (its XCom), which the test reads through
the REST API.
"""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, task

from fluke_airflow.sensors import QueuePollSensor

START = datetime(2026, 1, 1)


class StopBeforeXComSensor(QueuePollSensor):
    """A QueuePollSensor that, on its first try, waits to be killed between receive and XCom."""

    def _hand_over(self, context: Any, messages: list[Any], *, renew: bool) -> list[str]:
        marker_dir = context["params"].get("marker_dir")
        if marker_dir and context["ti"].try_number == 1:
            marker = Path(marker_dir) / f"{context['dag'].dag_id}.json"
            held = {"pid": os.getpid(), "ppid": os.getppid(), "bodies": [m.body for m in messages]}
            partial = marker.with_suffix(".tmp")
            partial.write_text(json.dumps(held))
            partial.rename(marker)  # the test sees the whole file or none
            time.sleep(600)  # the test SIGKILLs this process long before
        return super()._hand_over(context, messages, renew=renew)


def _kill_dag(dag_id: str, *, pre_delivery_delete: bool, num_messages: int) -> DAG:
    with DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=START,
        catchup=False,
        params={"queue": "fluke-e2e-faults", "marker_dir": ""},
        tags=["fluke", "e2e"],
    ) as dag:
        wait = StopBeforeXComSensor(
            task_id="wait",
            conn_id="fluke_sqs",
            queue_name="{{ params.queue }}",
            num_messages=num_messages,
            pre_delivery_delete=pre_delivery_delete,
            mode="poke",
            poke_interval=1,
            wait_time_seconds=2,
            visibility_timeout=10,  # short: the retry finds the messages visible again soon
            timeout=180,
            retries=1,
            retry_delay=timedelta(seconds=2),
        )

        @task(retries=2, retry_delay=timedelta(seconds=2))
        def process(bodies: list[str]) -> list[str]:
            return sorted(bodies)

        process(wait.output)
    return dag


_kill_dag("e2e_faults_kill_post", pre_delivery_delete=False, num_messages=10)
_kill_dag("e2e_faults_kill_pre", pre_delivery_delete=True, num_messages=5)


with DAG(
    dag_id="e2e_faults_settle",
    schedule=None,
    start_date=START,
    catchup=False,
    params={"queue": "fluke-e2e-faults", "fail": False},
    tags=["fluke", "e2e"],
) as settle_dag:
    got = QueuePollSensor(
        task_id="wait",
        conn_id="fluke_sqs",
        queue_name="{{ params.queue }}",
        num_messages=20,
        delete_on_dag_success=True,
        mode="poke",
        poke_interval=1,
        wait_time_seconds=2,
        visibility_timeout=15,  # the settle task renews it every 5 s while the run goes on
        timeout=180,
        retry_delay=timedelta(seconds=30),  # also when the messages of a failed run come back
    )

    @task
    def process_or_fail(bodies: list[str], **context: Any) -> list[str]:
        if context["params"]["fail"]:
            raise RuntimeError(f"downstream failure on purpose ({len(bodies)} message(s) in hand)")
        return sorted(bodies)

    process_or_fail(got.output)


def _deferred_dag(dag_id: str, *, pre_delivery_delete: bool) -> DAG:
    with DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=START,
        catchup=False,
        params={"queue": "fluke-e2e-faults"},
        tags=["fluke", "e2e"],
    ) as dag:
        wait = QueuePollSensor(
            task_id="wait",
            conn_id="fluke_sqs",
            queue_name="{{ params.queue }}",
            num_messages=20,
            pre_delivery_delete=pre_delivery_delete,
            deferrable=True,
            wait_time_seconds=5,
            visibility_timeout=30,  # what a killed triggerer held comes back after 30 s
            timeout=600,
            retries=1,
            retry_delay=timedelta(seconds=2),
        )

        @task(retries=2, retry_delay=timedelta(seconds=2))
        def process(bodies: list[str]) -> list[str]:
            return sorted(bodies)

        process(wait.output)
    return dag


_deferred_dag("e2e_faults_trigger_post", pre_delivery_delete=False)
_deferred_dag("e2e_faults_trigger_pre", pre_delivery_delete=True)


with DAG(
    dag_id="e2e_faults_volume",
    schedule=None,
    start_date=START,
    catchup=False,
    max_active_runs=5,
    params={"queue": "fluke-e2e-faults"},
    tags=["fluke", "e2e"],
) as volume_dag:
    # Azure (Azurite): moto's SQS slows down quadratically with thousands of messages queued.
    batch = QueuePollSensor(
        task_id="wait",
        conn_id="fluke_azure",
        queue_name="{{ params.queue }}",
        num_messages=200,
        deferrable=True,
        poke_interval=2,  # Azure has no long polling: the trigger polls an empty queue every 2 s
        visibility_timeout=60,  # covers the hand-off of five deliveries through one worker slot
        timeout=600,
        retries=1,
        retry_delay=timedelta(seconds=2),
    )

    @task(retries=2, retry_delay=timedelta(seconds=2))
    def record(bodies: list[str]) -> list[str]:
        return sorted(bodies)

    record(batch.output)
