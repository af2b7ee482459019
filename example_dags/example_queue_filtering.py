"""SQS message attributes, filters, message metadata, and one queue routed to two pipelines."""

# [START howto_dag_queue_filtering]
from __future__ import annotations

import json
from datetime import datetime

from airflow.sdk import DAG, Asset, AssetWatcher, task

from fluke_airflow.operators import QueuePushOperator
from fluke_airflow.sensors import QueuePollSensor
from fluke_airflow.triggers import QueuePollTrigger

ORDERS = [{"order": i, "status": "paid" if i % 2 else "new", "region": "eu" if i < 5 else "us"} for i in range(10)]

with DAG(
    dag_id="example_queue_filtering",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"queue": "fluke-order-events"},
    tags=["example", "fluke", "sqs"],
) as dag:
    # [END howto_dag_queue_filtering]
    # [START howto_operator_queue_push_attributes]
    push = QueuePushOperator(
        task_id="push",
        conn_id="fluke_sqs",
        queue_name="{{ params.queue }}",
        message=[json.dumps(order) for order in ORDERS],
        # The amazon provider's format; one dict for all messages, or a list with one per message.
        message_attributes=[
            {
                "status": {"DataType": "String", "StringValue": order["status"]},
                "order": {"DataType": "Number", "StringValue": str(order["order"])},
            }
            for order in ORDERS
        ],
    )  # the XCom: the message ids SQS gave them, in order
    # [END howto_operator_queue_push_attributes]

    # [START howto_sensor_queue_filter]
    paid = QueuePollSensor(
        task_id="wait_for_paid",
        conn_id="fluke_sqs",
        queue_name="{{ params.queue }}",
        num_messages=10,
        # The amazon provider's SqsSensor filter: JSONPath on the body, one of these values.
        message_filtering="jsonpath",
        message_filtering_config="status",
        message_filtering_match_values=["paid"],
        unmatched="leave",  # the others stay in the queue for other consumers (the default)
        include_metadata=True,  # the XCom: message dicts (id, body, metadata, attributes), not bodies
        timeout=300,
    )
    # [END howto_sensor_queue_filter]

    @task
    def report(messages: list[dict]) -> list[int]:
        for message in messages:
            sent = int(message["metadata"]["SentTimestamp"]) / 1000
            print(f"order {message['message_attributes']['order']['StringValue']} sent at {sent}")
        return sorted(json.loads(m["body"])["order"] for m in messages)

    push >> paid
    report(paid.output)

# [START howto_trigger_queue_routing]
# One queue, two pipelines: each watcher takes the messages its filter matches (both watchers run
# one poll loop in a triggerer; a message both match goes to both).
for region in ("eu", "us"):
    orders_by_region = Asset(
        f"fluke_orders_{region}",
        watchers=[
            AssetWatcher(
                name=f"orders_{region}",
                trigger=QueuePollTrigger(
                    conn_id="fluke_sqs",
                    queue="fluke-routed-orders",
                    dag_ids=[f"example_queue_orders_{region}"],
                    message_filtering="jsonpath",
                    message_filtering_config="region",
                    message_filtering_match_values=[region],
                ),
            )
        ],
    )
    with DAG(dag_id=f"example_queue_orders_{region}", schedule=[orders_by_region], tags=["example", "fluke"]):

        @task
        def handle(*, triggering_asset_events=None) -> int:
            return sum(len(e.extra["payload"]["messages"]) for events in triggering_asset_events.values()
                       for e in events)  # fmt: skip

        handle()
# [END howto_trigger_queue_routing]
