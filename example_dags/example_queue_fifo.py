"""Push to an SQS FIFO queue, then read the messages back in their order (connection ``fluke_sqs``)."""

# [START howto_operator_queue_push_fifo]
from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from fluke_airflow.operators import QueuePushOperator
from fluke_airflow.sensors import QueuePollSensor

with DAG(
    dag_id="example_queue_fifo",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"queue": "fluke-payments.fifo"},  # a FIFO queue's name ends in .fifo
    tags=["example", "fluke", "sqs"],
) as dag:
    push = QueuePushOperator(
        task_id="push_payments",
        conn_id="fluke_sqs",
        queue_name="{{ params.queue }}",
        message=["pay-1", "pay-2", "pay-3"],
        message_group_id="customer-42",  # required on a FIFO queue; the group keeps its order
        message_deduplication_id=["{{ run_id }}-1", "{{ run_id }}-2", "{{ run_id }}-3"],
    )
    # [END howto_operator_queue_push_fifo]

    read = QueuePollSensor(
        task_id="read_payments", conn_id="fluke_sqs", queue_name="{{ params.queue }}", num_messages=3, timeout=300
    )

    push >> read
