"""A DAG written for the amazon provider's ``SqsSensor``, with only the class and its import changed."""

# [START howto_sensor_queue_ported_from_sqs_sensor]
from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from fluke_airflow.sensors import QueuePollSensor  # was: from airflow.providers.amazon.aws.sensors.sqs import SqsSensor

sqs_queue = "fluke-ported"

with DAG(dag_id="example_queue_ported_sqs_sensor", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    read_from_queue_in_batch = QueuePollSensor(  # was: SqsSensor(
        task_id="read_from_queue_in_batch",
        aws_conn_id="fluke_sqs",
        sqs_queue=sqs_queue,
        max_messages=10,  # 10 messages a poll...
        num_batches=3,  # ...3 polls: up to 30 messages
        message_filtering="literal",
        message_filtering_match_values=["hello", "world"],
        timeout=300,
    )
# [END howto_sensor_queue_ported_from_sqs_sensor]
