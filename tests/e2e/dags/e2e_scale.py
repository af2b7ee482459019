"""Test-only DAGs for tests/e2e/test_e2e_scale_out.py: watchers of one queue with two triggerers.

For each service (``sqs``, ``azure``):

* fan-out: two assets, ``e2e_scale_fanout_<service>_a`` and ``_b``, with *one* trigger (the same
  object, so the same kwargs): Airflow stores it as one trigger row associated with both assets, one
  triggerer runs it, and each event goes to both assets. DAG ``..._a`` is scheduled on the first,
  ``..._b`` on the second; the trigger's ``dag_ids`` names both.
* split: two assets each with a watcher of its own on one queue (same settings but ``dag_ids``): two
  trigger rows, which Airflow may place on different triggerers.
* failover: one watcher with a short visibility timeout, for a triggerer killed while it holds it.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Asset, AssetWatcher, task

from fluke_airflow.triggers import QueuePollTrigger

SERVICES = {"sqs": "fluke_sqs", "azure": "fluke_azure"}
FAST = {"wait_time_seconds": 2, "poke_interval": 1}


def _consumer(dag_id: str, asset: Asset) -> None:
    with DAG(dag_id=dag_id, schedule=[asset], start_date=datetime(2026, 1, 1), catchup=False, tags=["fluke", "e2e"]):

        @task
        def received(*, triggering_asset_events=None) -> list[str]:
            return [
                m["body"]
                for events in triggering_asset_events.values()
                for event in events
                for m in event.extra["payload"]["messages"]
            ]

        received()


for service, conn_id in SERVICES.items():
    fanout = QueuePollTrigger(
        conn_id=conn_id,
        queue=f"e2e-scale-fanout-{service}",
        dag_ids=[f"e2e_scale_fanout_{service}_a", f"e2e_scale_fanout_{service}_b"],
        **FAST,
    )
    for side in ("a", "b"):
        _consumer(
            f"e2e_scale_fanout_{service}_{side}",
            Asset(f"e2e_scale_fanout_{service}_{side}", watchers=[AssetWatcher(name=f"fanout_{side}", trigger=fanout)]),
        )
        split = QueuePollTrigger(
            conn_id=conn_id, queue=f"e2e-scale-split-{service}", dag_ids=[f"e2e_scale_split_{service}_{side}"], **FAST
        )
        _consumer(
            f"e2e_scale_split_{service}_{side}",
            Asset(f"e2e_scale_split_{service}_{side}", watchers=[AssetWatcher(name=f"split_{side}", trigger=split)]),
        )
    failover = QueuePollTrigger(
        conn_id=conn_id,
        queue=f"e2e-scale-failover-{service}",
        dag_ids=[f"e2e_scale_failover_{service}"],
        visibility_timeout=20,
        **FAST,
    )
    _consumer(
        f"e2e_scale_failover_{service}",
        Asset(f"e2e_scale_failover_{service}", watchers=[AssetWatcher(name="failover", trigger=failover)]),
    )
