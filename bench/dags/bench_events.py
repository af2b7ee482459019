"""The ``events`` measure's DAGs (``bench/events.py``): queue arrivals start DAG runs.

For each phase (``burst``, ``stream``, ``success``) and service (``sqs``, ``azure``), a DAG
scheduled on an asset whose ``AssetWatcher`` runs ``QueuePollTrigger`` with its defaults: only the
connection, the queue (one of its own) and ``dag_ids`` are set, and for ``success``
``delete_on_dag_success=True`` (a batch is deleted once its run succeeded, not once its event is
stored). The task returns the bodies of the messages
its run's asset events carried; the bench reads them (and the run's end) through the REST API.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import DAG, Asset, AssetWatcher, task

from fluke_airflow.triggers import QueuePollTrigger

CONNECTIONS = {"sqs": "bench_events_sqs", "azure": "bench_events_azure"}
PHASES = ("burst", "stream", "success")
WATCHERS: dict[str, dict[str, Any]] = {"success": {"delete_on_dag_success": True}}
"""Beyond the defaults: the ``success`` phase's watcher deletes a batch once its run succeeded."""


def queue_name(phase: str, service: str) -> str:
    return f"bench-events-{phase}-{service}"


def dag_id(phase: str, service: str) -> str:
    return f"bench_events_{phase}_{service}"


def _dag(phase: str, service: str) -> None:
    asset = Asset(
        f"bench_events_{phase}_{service}_queue",
        watchers=[
            AssetWatcher(
                name=f"bench_events_{phase}_{service}",
                trigger=QueuePollTrigger(
                    conn_id=CONNECTIONS[service],
                    queue=queue_name(phase, service),
                    dag_ids=[dag_id(phase, service)],
                    **WATCHERS.get(phase, {}),
                ),
            )
        ],
    )
    with DAG(
        dag_id=dag_id(phase, service),
        schedule=[asset],
        start_date=datetime(2026, 1, 1),
        catchup=False,
        tags=["fluke", "bench"],
    ):

        @task
        def received(*, triggering_asset_events: Any = None) -> list[str]:
            bodies: list[str] = []
            for events in triggering_asset_events.values():
                for event in events:
                    payload = event.extra["payload"]
                    messages = [payload["message"]] if "message" in payload else payload["messages"]
                    bodies += [m["body"] for m in messages]
            return bodies

        received()


for _phase in PHASES:
    for _service in CONNECTIONS:
        _dag(_phase, _service)
