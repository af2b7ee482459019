"""Start a DAG run when messages arrive in a queue (event-driven scheduling with AssetWatcher)."""

# [START howto_trigger_queue_asset_watcher]
from __future__ import annotations

from airflow.sdk import DAG, Asset, AssetWatcher, task

from fluke_airflow.triggers import QueuePollTrigger

DAG_ID = "example_queue_event_driven"

orders_arrived = Asset(
    "fluke_orders_queue",
    watchers=[
        AssetWatcher(
            name="orders_watcher",
            trigger=QueuePollTrigger(
                conn_id="fluke_sqs",
                queue="fluke-arrivals",
                # The DAG(s) scheduled on this asset: the next messages are taken only once they
                # have started a run for the last event, so every message reaches a run and a
                # backlog waits in the queue.
                dag_ids=[DAG_ID],
                # Up to batch_size (default 100) messages per run; after the first message,
                # gather for up to 5 s more.
                max_batching_window=5,
                wait_time_seconds=20,  # one long poll per 20 s while idle
            ),
        )
    ],
)

with DAG(dag_id=DAG_ID, schedule=[orders_arrived], max_active_runs=1, tags=["example", "fluke", "event"]) as dag:

    @task
    def handle(*, triggering_asset_events=None) -> int:
        bodies = [
            message["body"]
            for events in triggering_asset_events.values()
            for event in events
            for message in event.extra["payload"]["messages"]
        ]
        print(f"{len(bodies)} message(s) arrived")
        return len(bodies)

    handle()
# [END howto_trigger_queue_asset_watcher]
