"""Test-only DAGs for tests/e2e/test_e2e_consumers.py: watchers whose ``dag_ids`` are wrong, or
whose consumer is paused (issue 20: consumers checked, not trusted).

* ``e2e_consumers_typo`` is scheduled on an asset whose watcher names only a DAG that does not
  exist (``e2e_consumers_typo_WRONG``): the watcher must take no message and say why;
* ``e2e_consumers_partial`` is scheduled on an asset whose watcher names it and a DAG that does
  not exist: the watcher serves it and says why the other is left out;
* ``e2e_consumers_pause_a`` and ``e2e_consumers_pause_b`` are both scheduled on one asset, both
  named in its watcher's ``dag_ids``; the test pauses ``b`` and unpauses it again.

Each DAG returns the bodies its run received (the test reads them through the REST API).
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Asset, AssetWatcher, task

FAST = {"wait_time_seconds": 2, "poke_interval": 1}


def _watched(name: str, conn_id: str, queue: str, dag_ids: list[str]) -> Asset:
    from fluke_airflow.triggers import QueuePollTrigger

    trigger = QueuePollTrigger(conn_id=conn_id, queue=queue, dag_ids=dag_ids, **FAST)
    return Asset(name, watchers=[AssetWatcher(name=f"watch_{name}", trigger=trigger)])


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


_consumer(
    "e2e_consumers_typo",
    _watched("e2e_consumers_typo_queue", "fluke_sqs", "e2e-consumers-typo-sqs", ["e2e_consumers_typo_WRONG"]),
)
_consumer(
    "e2e_consumers_partial",
    _watched(
        "e2e_consumers_partial_queue",
        "fluke_azure",
        "e2e-consumers-partial-azure",
        ["e2e_consumers_partial", "e2e_consumers_partial_WRONG"],
    ),
)
_pause_asset = _watched(
    "e2e_consumers_pause_queue",
    "fluke_sqs",
    "e2e-consumers-pause-sqs",
    ["e2e_consumers_pause_a", "e2e_consumers_pause_b"],
)
_consumer("e2e_consumers_pause_a", _pause_asset)
_consumer("e2e_consumers_pause_b", _pause_asset)
