"""Start a DAG run when messages arrive in a queue (event-driven scheduling with AssetWatcher)."""

from __future__ import annotations

from airflow.sdk import DAG, Asset, AssetWatcher, task

from fluke_airflow.triggers import QueuePollTrigger

# [START howto_trigger_queue_asset_watcher]
orders_arrived = Asset(
    "fluke_orders_queue",
    watchers=[
        AssetWatcher(
            name="orders_watcher",
            trigger=QueuePollTrigger(
                conn_id="fluke_sqs",
                queue="fluke-arrivals",
                batch_size=10,
                wait_time_seconds=20,  # one long poll per 20 s while idle
            ),
        )
    ],
)

with DAG(dag_id="example_queue_event_driven", schedule=[orders_arrived], tags=["example", "fluke", "event"]) as dag:

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
