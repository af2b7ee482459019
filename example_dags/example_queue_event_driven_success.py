"""Event-driven, deleting each message only once its DAG run processed it (Lambda's contract, per message)."""

# [START howto_trigger_queue_delete_on_dag_success]
from __future__ import annotations

import json
from typing import Any

from airflow.sdk import DAG, Asset, AssetWatcher, task

from fluke_airflow.triggers import QueuePollTrigger, queue_messages

DAG_ID = "example_queue_event_driven_success"

invoices_arrived = Asset(
    "fluke_invoice_jobs_queue",
    watchers=[
        AssetWatcher(
            name="invoice_jobs_watcher",
            trigger=QueuePollTrigger(
                conn_id="fluke_sqs",
                queue="fluke-invoice-jobs",
                dag_ids=[DAG_ID],
                # Keep each batch in the queue, hidden, until its run ends; then delete the
                # messages whose "process" task instance succeeded and release the others.
                delete_on_dag_success=True,
                message_task_id="process",
                max_batching_window=5,
                retry_delay=60,  # a failed message is back after 60 s (then 120 s, 240 s...)
                max_receive_count=3,  # and on its 3rd failure it moves to the dead-letter queue
                dead_letter_queue="fluke-invoice-jobs-dlq",
            ),
        )
    ],
)

with DAG(dag_id=DAG_ID, schedule=[invoices_arrived], tags=["example", "fluke", "event"]) as dag:

    @task
    def messages(*, triggering_asset_events: Any = None) -> list[dict[str, Any]]:
        # The run's messages in the order the watcher reads the results: map index i is message i.
        return queue_messages(triggering_asset_events)

    @task
    def process(message: dict[str, Any]) -> str:
        invoice = json.loads(message["body"])
        if invoice["amount"] < 0:
            raise ValueError(f"invoice {invoice['id']} has a negative amount")  # only this message comes back
        return str(invoice["id"])

    process.expand(message=messages())
# [END howto_trigger_queue_delete_on_dag_success]
