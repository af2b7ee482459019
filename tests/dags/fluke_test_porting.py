"""One DAG written for the amazon provider's ``SqsPublishOperator`` and ``SqsSensor``, twice: with the
amazon classes, and with ours under the same arguments (only the classes differ). The porting test
runs both against moto and compares what they did."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.providers.amazon.aws.operators.sqs import SqsPublishOperator
from airflow.providers.amazon.aws.sensors.sqs import SqsSensor
from airflow.sdk import DAG

from fluke_airflow.operators import QueuePushOperator
from fluke_airflow.sensors import QueuePollSensor

PARAMS: dict[str, Any] = {"queue": "fluke-ported", "body": "hello"}
DEFAULT_ARGS = {"queue": "celery_highmem", "retries": 0}  # Celery's executor queue, set DAG-wide
AWS = {"aws_conn_id": "fluke_ported", "region_name": "us-east-1", "verify": False,
       "botocore_config": {"retries": {"max_attempts": 2}}}  # fmt: skip

for name, publish, sense in (("amazon", SqsPublishOperator, SqsSensor), ("fluke", QueuePushOperator, QueuePollSensor)):
    with DAG(f"fluke_test_ported_{name}", schedule=None, start_date=datetime(2026, 1, 1), params=PARAMS,
             default_args=DEFAULT_ARGS, tags=["fluke-test"]):  # fmt: skip
        sent = publish(
            task_id="publish",
            sqs_queue="{{ params.queue }}",
            message_content="{{ params.body }}",
            message_attributes={"kind": {"DataType": "String", "StringValue": "greeting"}},
            delay_seconds=0,
            **AWS,
        )
        got = sense(
            task_id="read_from_queue",
            sqs_queue="{{ params.queue }}",
            max_messages=5,
            num_batches=2,
            wait_time_seconds=2,
            visibility_timeout=30,
            message_filtering="literal",
            message_filtering_match_values=["hello"],
            delete_message_on_reception=True,
            poke_interval=1,
            timeout=timedelta(minutes=2),
            **AWS,
        )
        sent >> got
