"""Test-only DAGs for tests/e2e/test_e2e_triggerer_restart.py: many triggers in one triggerer.

* ``e2e_restart_sensors``: deferrable sensors, half on SQS and half on Azure, each waiting for one
  message on its service's queue (named by the run's conf).
* ``e2e_restart_watchers``: scheduled on assets whose watchers poll fixed queues, half SQS and half
  Azure; its task returns the bodies it received.

Short waits everywhere (1 s long polls, 1 s Azure polls), so that a trigger's first receive after a
restart comes within seconds.
"""

from __future__ import annotations

import functools
import operator
from datetime import datetime

from airflow.sdk import DAG, Asset, AssetWatcher, task

from fluke_airflow.sensors import QueuePollSensor
from fluke_airflow.triggers import QueuePollTrigger

SENSORS_PER_SERVICE = 6
WATCHERS_PER_SERVICE = 4
WATCHER_QUEUES = {
    "fluke_sqs": [f"e2e-restart-sqs-{i}" for i in range(WATCHERS_PER_SERVICE)],
    "fluke_azure": [f"e2e-restart-azure-{i}" for i in range(WATCHERS_PER_SERVICE)],
}

with DAG(
    dag_id="e2e_restart_sensors",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"sqs_queue": "fluke-e2e-restart", "azure_queue": "fluke-e2e-restart"},
    tags=["fluke", "e2e"],
):
    for conn_id, param in (("fluke_sqs", "sqs_queue"), ("fluke_azure", "azure_queue")):
        for i in range(SENSORS_PER_SERVICE):
            QueuePollSensor(
                task_id=f"wait_{conn_id.removeprefix('fluke_')}_{i}",
                conn_id=conn_id,
                queue_name=f"{{{{ params.{param} }}}}",
                num_messages=1,
                deferrable=True,
                wait_time_seconds=1,
                poke_interval=1,
                timeout=1800,
            )

assets = [
    Asset(
        f"e2e_restart_{queue}",
        watchers=[
            AssetWatcher(
                name=f"watch_{queue}",
                trigger=QueuePollTrigger(
                    conn_id=conn_id, queue=queue, dag_ids=["e2e_restart_watchers"], wait_time_seconds=1, poke_interval=1
                ),
            )
        ],
    )
    for conn_id, queues in WATCHER_QUEUES.items()
    for queue in queues
]

with DAG(
    dag_id="e2e_restart_watchers",
    schedule=functools.reduce(operator.or_, assets),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["fluke", "e2e"],
):

    @task
    def received(*, triggering_asset_events=None) -> list[str]:
        return sorted(
            message["body"]
            for events in triggering_asset_events.values()
            for event in events
            for message in event.extra["payload"]["messages"]
        )

    received()
