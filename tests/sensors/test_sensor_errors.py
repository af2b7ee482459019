"""A sensor's errors in a real DAG run (dag.test()): the task log says what failed and what to
change, and a sensor's ``timeout`` bounds the SDK's retries (issue 20, item 4).

Airflow checks a sensor's timeout only between pokes; the SDKs retry a failed request on their own
(botocore 5 attempts, the Azure storage SDK 4, 18 s and more apart). The sensor hands its deadline
to the queue, and no retry starts after it: a sensor with ``timeout=1`` whose endpoint holds every
request for 2 s and then drops it makes exactly one request, where the SDKs alone would make 5 (SQS)
or 4 (Azure). Counted by devtools/proxy.py in front of the emulator; no clock is read.
"""

from __future__ import annotations

from typing import Any

import pytest
from airflow_support import run_dag_captured, set_connection

from devtools.admin import Service
from devtools.emulators import AzuriteQueue, MotoSQS
from devtools.proxy import Proxy, Timeout
from devtools.support import fresh_name

pytestmark = pytest.mark.usefixtures("airflow_env")


def connection(service: Service, proxy: Proxy, moto: MotoSQS, azurite: AzuriteQueue) -> dict[str, Any]:
    if service.kind == "sqs":
        return {
            "conn_type": "aws",
            "login": moto.access_key_id,
            "password": moto.secret_access_key,
            "extra": {"endpoint_url": proxy.url, "region_name": moto.region},
        }
    return {"conn_type": "azure_storage_queue", "password": azurite.key, "extra": {"queue_endpoint": proxy.endpoint}}


def test_a_short_timeout_bounds_the_sdk_retries(
    service: Service, moto: MotoSQS, azurite: AzuriteQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = service.create(fresh_name())
    upstream = moto.endpoint_url if service.kind == "sqs" else azurite.account_url
    with Proxy(upstream) as proxy:
        conn_id = set_connection(
            monkeypatch, f"short_timeout_{service.kind}", connection(service, proxy, moto, azurite)
        )
        proxy.inject(Timeout(seconds=2))  # every request: held, then the connection closes without an answer
        result, output = run_dag_captured("fluke_test_poll_short_timeout", {"conn_id": conn_id, "queue": name})
        requests = proxy.records()

    assert result.task_states() == {"wait": "failed"}
    assert len(requests) == 1, [r.operation for r in requests]  # the first attempt only: no retry after the timeout
    service_name = "Amazon SQS" if service.kind == "sqs" else "Azure Queue Storage"
    assert (
        f"opening on {service_name} queue {name!r} (connection {conn_id!r}) failed (not retried: the sensor's "
        "timeout of 1 s leaves no time for another attempt): the connection to "
        f"127.0.0.1:{proxy.port} was closed without"
    ) in output
    field = "endpoint_url" if service.kind == "sqs" else "queue_endpoint"
    assert f"Check the connection's {field} extra" in output
    assert f"and the network between this machine and 127.0.0.1:{proxy.port}" in output
