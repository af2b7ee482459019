"""What the e2e tier's Airflow stacks are made of: the emulators, a real Airflow (devtools/airflow_local.py)
on SQLite or PostgreSQL, and the clients the tests see them through. ``tests/e2e/conftest.py``'s
``stack`` fixture is one; tests/e2e/test_e2e_postgres.py builds another on PostgreSQL.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from azure.storage.queue import QueueServiceClient
from statsd_support import StatsdListener, statsd_config

from devtools.admin import AzureService, SQSService
from devtools.airflow_local import EXAMPLE_DAGS, AirflowClient, LocalAirflow, emulator_connections
from devtools.emulators import AzuriteQueue, MotoSQS
from devtools.proxy import Proxy

WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
LOGS = Path(__file__).resolve().parents[2] / ".work" / "test-logs" / WORKER / "e2e"
NAME = f"e2e-{WORKER}" if WORKER else "e2e"
E2E_DAGS = Path(__file__).resolve().parent / "dags"
FAST_SUPERVISORS = {"AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "2"}
"""The LocalExecutor's task supervisors wake every 2 s instead of 5: a task's exit, and so the next
task's start on the stack's one executor slot, was noticed up to 5 s late (minutes over the tier)."""
HEALTH_LINES = {"AIRFLOW__FLUKE_AIRFLOW__HEALTH_LOG_INTERVAL": "10"}
"""A watcher's health line every 10 s instead of 5 minutes, so that tests can read it
(test_e2e_consumers.py: the line that says why a watcher is stalled)."""

# Every queue the example DAGs use by default; the watcher's queue must exist before it starts.
SQS_QUEUES = ("fluke-orders", "fluke-jobs", "fluke-arrivals", "fluke-invoice-jobs", "fluke-invoice-jobs-dlq")
AZURE_QUEUES = ("fluke-invoices", "fluke-events")


@dataclass
class Stack:
    airflow: LocalAirflow
    api: AirflowClient
    moto: MotoSQS
    azurite: AzuriteQueue
    sqs_admin: SQSService
    azure_admin: AzureService
    """The emulators through clients independent of our code (devtools/admin.py)."""
    statsd: StatsdListener
    """Where every component sends its metrics ([metrics] statsd_on), ours among them."""
    proxies: dict[str, Proxy] = field(default_factory=dict)
    """``sqs`` and ``azure``: the test proxies of a stack built with ``proxied=True``."""

    @property
    def sqs(self) -> Any:
        """The stack's boto3 SQS client."""
        return self.sqs_admin.client

    @property
    def azure(self) -> QueueServiceClient:
        """The stack's azure-storage-queue service client."""
        return self.azure_admin.client

    def triggerers(self) -> list[str]:
        """The stack's triggerers by component name (``triggerer``, ``triggerer-2``, ...)."""
        return [n for n in self.airflow.components if n == "triggerer" or n.startswith("triggerer-")]

    def new_sqs_queue(self, prefix: str, **attributes: str) -> str:
        """A new SQS queue; its URL."""
        return self.sqs_admin.url(self.sqs_admin.new_queue(prefix=prefix, **attributes))

    def sqs_counts(self, queue_url: str) -> dict[str, int]:
        """visible / in_flight / delayed, from SQS's approximate counters (exact on moto)."""
        return self.sqs_admin.counts(queue_url.rsplit("/", 1)[-1])


STACK_DAGS = ("example_queue_deferrable_mapping", "example_queue_event_driven", "e2e_post_delivery_crash")
"""What a stack waits for before its first test: one DAG of each folder."""


@contextlib.contextmanager
def running_stack(
    name: str,
    logs: Path,
    *,
    dag_folders: Sequence[Path] = (EXAMPLE_DAGS, E2E_DAGS),
    wait_for: Sequence[str] = (
        "example_queue_deferrable_mapping",
        "example_queue_event_driven",
        "e2e_post_delivery_crash",
    ),
    database_url: str | None = None,
    components: Sequence[str] = (),
    extra_env: Mapping[str, str] | None = None,
    proxied: bool = False,
) -> Iterator[Stack]:
    """A stack's emulators and Airflow, up until the block ends. ``components``: schedulers and
    triggerers besides the first (``scheduler-2``, ``triggerer-2``; a scheduler needs
    ``database_url``). ``proxied``: a test proxy (devtools/proxy.py) in front of each emulator, and
    the connections ``fluke_sqs_proxied`` and ``fluke_azure_proxied`` through them."""
    logs.mkdir(parents=True, exist_ok=True)
    moto = MotoSQS.create(log_path=logs / "moto.log")
    azurite = AzuriteQueue.create(log_path=logs / "azurite.log")
    clients: list[Any] = []
    moto.start()
    try:
        azurite.start()
        sqs, azure = SQSService(moto), AzureService(azurite)
        clients += [sqs, azure]
        for queue in SQS_QUEUES:
            sqs.new_queue(queue)
        for queue in AZURE_QUEUES:
            azure.new_queue(queue)
        statsd = StatsdListener()
        clients.append(statsd)
        connections = emulator_connections(moto, azurite)
        proxies: dict[str, Proxy] = {}
        if proxied:
            proxies = {"sqs": Proxy(moto.endpoint_url).start(), "azure": Proxy(azurite.account_url).start()}
            clients += proxies.values()
            connections.update(proxied_connections(moto, azurite, proxies))
        airflow = LocalAirflow.create(
            name,
            connections=connections,
            dag_folders=dag_folders,
            extra_env={**statsd_config(statsd.port), **FAST_SUPERVISORS, **HEALTH_LINES, **(extra_env or {})},
            database_url=database_url,
        )
        for component in components:
            if component.startswith("scheduler-"):
                airflow.add_scheduler(component)
            else:
                airflow.add_triggerer(component)
        with airflow:
            api = airflow.client()
            clients.append(api)
            api.wait_for_dags(list(wait_for))
            yield Stack(
                airflow=airflow,
                api=api,
                moto=moto,
                azurite=azurite,
                sqs_admin=sqs,
                azure_admin=azure,
                statsd=statsd,
                proxies=proxies,
            )
    finally:
        for client in clients:  # open keep-alive connections would make Azurite wait before it exits
            if isinstance(client, Proxy):
                client.stop()
            else:
                client.close()
        moto.stop()
        azurite.remove()


def proxied_connections(moto: MotoSQS, azurite: AzuriteQueue, proxies: Mapping[str, Proxy]) -> dict[str, Any]:
    """``fluke_sqs_proxied`` and ``fluke_azure_proxied``: the stack's emulators through ``proxies``."""
    plain = emulator_connections(moto, azurite)
    sqs = json.loads(json.dumps(plain["fluke_sqs"]))
    sqs["extra"]["endpoint_url"] = proxies["sqs"].url
    azure = json.loads(json.dumps(plain["fluke_azure"]))
    azure["extra"]["connection_string"] = azure["extra"]["connection_string"].replace(
        f"QueueEndpoint={azurite.account_url}", f"QueueEndpoint={proxies['azure'].endpoint}"
    )
    return {"fluke_sqs_proxied": sqs, "fluke_azure_proxied": azure}
