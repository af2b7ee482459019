"""Delete messages only when the whole DAG run succeeds: at least once over the pipeline."""

# [START howto_sensor_queue_delete_on_dag_success]
from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, task

from fluke_airflow.sensors import QueuePollSensor

with DAG(
    dag_id="example_queue_delete_on_success",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"queue": "fluke-payments", "fail": False},
    tags=["example", "fluke"],
) as dag:
    payments = QueuePollSensor(
        task_id="payments",
        conn_id="fluke_sqs",
        queue_name="{{ params.queue }}",
        num_messages=10,
        delete_on_dag_success=True,  # adds the teardown task "payments_settle"
        visibility_timeout=120,  # renewed by the settle task while the run goes on
        retry_delay=timedelta(minutes=2),  # a failed run's payments come back after 2 minutes
        timeout=300,
    )

    @task
    def book(bodies: list[str], params: dict | None = None) -> int:
        if params and params.get("fail"):
            raise RuntimeError("booking failed: the payments go back to the queue")
        return len(bodies)

    book(payments.output)
    # [END howto_sensor_queue_delete_on_dag_success]
