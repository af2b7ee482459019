"""One real Airflow for the end-to-end tests: scheduler, triggerer, DAG processor and API server.

It runs the example DAGs plus the test-only DAGs of ``tests/e2e/dags`` against its own moto and
Azurite (not the session ones: an AssetWatcher polls fixed queue names, and must not take
messages meant for other tests). Logs: ``.work/test-logs/e2e/`` (emulators) and
``.work/airflow-e2e/logs/`` (Airflow's components and task logs). Under pytest-xdist (``make test``)
each group of modules in ``tests/xdist_support.py`` runs on a stack of its own, named after its
worker: ``.work/test-logs/gw0/e2e/`` and ``.work/airflow-e2e-gw0/logs/``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from azure.storage.queue import QueueServiceClient
from statsd_support import StatsdListener, statsd_config

from devtools.airflow_local import EXAMPLE_DAGS, AirflowClient, LocalAirflow, emulator_connections
from devtools.emulators import AzuriteQueue, MotoSQS

WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
LOGS = Path(__file__).resolve().parents[2] / ".work" / "test-logs" / WORKER / "e2e"
NAME = f"e2e-{WORKER}" if WORKER else "e2e"
E2E_DAGS = Path(__file__).resolve().parent / "dags"
FAST_SUPERVISORS = {"AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "2"}
"""The LocalExecutor's task supervisors wake every 2 s instead of 5: a task's exit, and so the next
task's start on the stack's one executor slot, was noticed up to 5 s late (minutes over the tier)."""

# Every queue the example DAGs use by default; the watcher's queue must exist before it starts.
SQS_QUEUES = ("fluke-orders", "fluke-jobs", "fluke-arrivals", "fluke-invoice-jobs", "fluke-invoice-jobs-dlq")
AZURE_QUEUES = ("fluke-invoices", "fluke-events")


@dataclass
class Stack:
    airflow: LocalAirflow
    api: AirflowClient
    moto: MotoSQS
    azurite: AzuriteQueue
    sqs: Any  # boto3 SQS client (independent of our code)
    azure: QueueServiceClient
    statsd: StatsdListener
    """Where every component sends its metrics ([metrics] statsd_on), ours among them."""

    def new_sqs_queue(self, prefix: str, **attributes: str) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        return str(self.sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"])

    def sqs_counts(self, queue_url: str) -> dict[str, int]:
        """visible / in_flight / delayed, from SQS's approximate counters (exact on moto)."""
        attrs = self.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
        return {
            "visible": int(attrs["ApproximateNumberOfMessages"]),
            "in_flight": int(attrs["ApproximateNumberOfMessagesNotVisible"]),
            "delayed": int(attrs["ApproximateNumberOfMessagesDelayed"]),
        }


E2E = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/e2e is the ``e2e`` tier: ``-m "not e2e"`` leaves it out."""
    for item in items:
        if E2E in Path(item.path).parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="package")
def stack() -> Iterator[Stack]:
    LOGS.mkdir(parents=True, exist_ok=True)
    moto = MotoSQS.create(log_path=LOGS / "moto.log")
    azurite = AzuriteQueue.create(log_path=LOGS / "azurite.log")
    clients: list[Any] = []
    moto.start()
    try:
        azurite.start()
        sqs = boto3.client(
            "sqs",
            endpoint_url=moto.endpoint_url,
            region_name=moto.region,
            aws_access_key_id=moto.access_key_id,
            aws_secret_access_key=moto.secret_access_key,
        )
        azure = QueueServiceClient.from_connection_string(azurite.connection_string)
        clients += [sqs, azure]
        for name in SQS_QUEUES:
            sqs.create_queue(QueueName=name)
        for name in AZURE_QUEUES:
            azure.create_queue(name)
        statsd = StatsdListener()
        clients.append(statsd)
        airflow = LocalAirflow.create(
            NAME,
            connections=emulator_connections(moto, azurite),
            dag_folders=[EXAMPLE_DAGS, E2E_DAGS],
            extra_env={**statsd_config(statsd.port), **FAST_SUPERVISORS},
        )
        with airflow:
            api = airflow.client()
            clients.append(api)
            api.wait_for_dags(
                [
                    "example_queue_deferrable_mapping",
                    "example_queue_event_driven",
                    "e2e_post_delivery_crash",
                ]
            )
            yield Stack(airflow=airflow, api=api, moto=moto, azurite=azurite, sqs=sqs, azure=azure, statsd=statsd)
    finally:
        for client in clients:  # open keep-alive connections would make Azurite wait before it exits
            client.close()
        moto.stop()
        azurite.remove()
