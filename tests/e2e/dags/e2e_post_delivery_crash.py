"""Test-only DAG for tests/e2e: a deferrable post-delivery sensor with a short visibility timeout.

The crash test kills the triggerer right after its trigger received the messages; they must
come back after ``visibility_timeout`` seconds and reach this run's XCom all the same.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, task

from fluke_airflow.sensors import QueuePollSensor

with DAG(
    dag_id="e2e_post_delivery_crash",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"queue": "fluke-e2e-crash"},
    tags=["fluke", "e2e"],
) as dag:
    wait = QueuePollSensor(
        task_id="wait",
        conn_id="fluke_sqs",
        queue_name="{{ params.queue }}",
        num_messages=5,
        deferrable=True,
        visibility_timeout=15,  # short, so the test does not wait 5 minutes for the redelivery
        wait_time_seconds=2,
        timeout=600,
    )

    @task
    def collect(bodies: list[str]) -> list[str]:
        return sorted(bodies)

    collect(wait.output)
