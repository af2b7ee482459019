"""Create the queues a DAG uses, from its connections (idempotent), before anything uses them."""

# [START howto_create_queues]
from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from fluke_airflow.operators import QueueCreateOperator

with DAG(
    dag_id="example_queue_create",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"sqs_queue": "fluke-created", "azure_queue": "fluke-created"},
    tags=["example", "fluke"],
) as dag:
    # A queue that exists with these settings is left as it is: the task succeeds again.
    QueueCreateOperator(
        task_id="create_sqs_queue",
        conn_id="fluke_sqs",
        queue_name="{{ params.sqs_queue }}",
        attributes={"VisibilityTimeout": 300},
    )  # returns the queue's URL
    QueueCreateOperator(
        task_id="create_azure_queue",
        conn_id="fluke_azure",
        queue_name="{{ params.azure_queue }}",
    )  # returns the queue's name
# [END howto_create_queues]
