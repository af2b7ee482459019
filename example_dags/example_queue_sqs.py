"""Push, peek and poll an Amazon SQS queue (connection ``fluke_sqs`` of type ``aws``)."""

# [START howto_dag_queue_sqs]
from __future__ import annotations

import json
from datetime import datetime

from airflow.sdk import DAG, task

from fluke_airflow.operators import QueuePeekOperator, QueuePushOperator
from fluke_airflow.sensors import QueuePollSensor

with DAG(
    dag_id="example_queue_sqs",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"queue": "fluke-orders"},
    tags=["example", "fluke", "sqs"],
) as dag:
    # [END howto_dag_queue_sqs]
    # [START howto_operator_queue_push_sqs]
    push = QueuePushOperator(
        task_id="push",
        conn_id="fluke_sqs",
        queue_name="{{ params.queue }}",
        message=[json.dumps({"order": i, "run": "{{ run_id }}"}) for i in range(25)],
    )
    # [END howto_operator_queue_push_sqs]

    # [START howto_operator_queue_peek]
    peek = QueuePeekOperator(task_id="peek", conn_id="fluke_sqs", queue_name="{{ params.queue }}", max_messages=5)
    # [END howto_operator_queue_peek]

    # [START howto_sensor_queue_poll]
    wait = QueuePollSensor(
        task_id="wait_for_orders",
        conn_id="fluke_sqs",
        queue_name="{{ params.queue }}",
        batch_size=10,
        num_messages=20,
        timeout=300,
    )
    # [END howto_sensor_queue_poll]

    @task
    def total(bodies: list[str]) -> int:
        orders = [json.loads(body) for body in bodies]
        print(f"received {len(orders)} orders")
        return len(orders)

    push >> peek >> wait
    total(wait.output)
