"""A deferrable sensor feeding downstream tasks, one mapped task instance per message."""

# [START howto_sensor_queue_poll_deferrable]
from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, task

from fluke_airflow.operators import QueuePushOperator
from fluke_airflow.sensors import QueuePollSensor

with DAG(
    dag_id="example_queue_deferrable_mapping",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"queue": "fluke-jobs"},
    tags=["example", "fluke", "deferrable"],
) as dag:
    seed = QueuePushOperator(
        task_id="seed",
        conn_id="fluke_sqs",
        queue_name="{{ params.queue }}",
        message=["resize:a.png", "resize:b.png", "resize:c.png"],
    )

    jobs = QueuePollSensor(
        task_id="wait_for_jobs",
        conn_id="fluke_sqs",
        queue_name="{{ params.queue }}",
        num_messages=10,
        deferrable=True,  # waits in the triggerer; the worker slot is free meanwhile
        visibility_timeout=300,  # covers the hand-off from the triggerer to a worker
        timeout=600,
    )

    @task
    def process(body: str) -> str:
        action, _, path = body.partition(":")
        return f"{action} done for {path}"

    processed = process.expand(body=jobs.output)
    # [END howto_sensor_queue_poll_deferrable]

    seed >> jobs
