"""One queue, two pipelines that each see every message: one trigger shared by two assets."""

# [START howto_trigger_queue_shared]
from __future__ import annotations

from airflow.sdk import DAG, Asset, AssetWatcher, task

from fluke_airflow.triggers import QueuePollTrigger

# One trigger object for both assets: Airflow stores it as one trigger row, one triggerer runs it,
# and every event goes to both assets. The next batch is taken once *each* DAG has started its run.
orders = QueuePollTrigger(
    conn_id="fluke_sqs",
    queue="fluke-fan-out-orders",
    dag_ids=["example_queue_bill_orders", "example_queue_ship_orders"],
)
billing = Asset("fluke_orders_for_billing", watchers=[AssetWatcher(name="billing", trigger=orders)])
shipping = Asset("fluke_orders_for_shipping", watchers=[AssetWatcher(name="shipping", trigger=orders)])
# [END howto_trigger_queue_shared]

for dag_id, asset in (("example_queue_bill_orders", billing), ("example_queue_ship_orders", shipping)):
    with DAG(dag_id=dag_id, schedule=[asset], max_active_runs=1, tags=["example", "fluke", "event"]):

        @task
        def handle(*, triggering_asset_events=None) -> int:
            return sum(len(e.extra["payload"]["messages"]) for events in triggering_asset_events.values()
                       for e in events)  # fmt: skip

        handle()
