"""The emulators, the counting proxies in front of them, and admin clients that bypass the proxies.

Admin clients (devtools/admin.py: plain boto3 / azure-storage-queue talking to the emulator
directly) create, seed, count and delete queues, so none of that shows up in a contender's
request counts.
"""

from __future__ import annotations

import collections
import json
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.data import bodies
from devtools.admin import AzureService, SQSService
from devtools.emulators import ROOT, AzuriteQueue, MotoSQS
from devtools.proxy import Proxy

SEND_THREADS = {"sqs": 4, "azure": 8}
"""Threads an admin client seeds a queue with (order does not matter to a benchmark; time does)."""


def snapshot(proxy: Proxy) -> collections.Counter[str]:
    """The proxy's per-operation counts right now."""
    for _ in range(100):
        try:
            operations = list(proxy.counts)
        except RuntimeError:  # the proxy thread added an operation while we listed them
            continue
        return collections.Counter({op: proxy.total(op) for op in operations})
    raise RuntimeError("could not read the proxy's counts")


@dataclass
class Services:
    moto: MotoSQS
    azurite: AzuriteQueue
    sqs_proxy: Proxy
    azure_proxy: Proxy
    sqs: SQSService
    azure: AzureService

    # -- what the contenders get: endpoints through the proxies -------------------------------------
    @property
    def azure_conn_string(self) -> str:
        """Azurite's connection string with the queue endpoint moved to the proxy."""
        direct = f"QueueEndpoint={self.azurite.account_url}"
        conn = self.azurite.connection_string.replace(direct, f"QueueEndpoint={self.azure_proxy.endpoint}")
        if conn == self.azurite.connection_string:
            raise RuntimeError("could not point the Azure connection string at the proxy")
        return conn

    def fresh_azurite(self) -> None:
        """Restart Azurite (in memory: empty again), same port and account.

        Azurite keeps the messages of deleted queues until its garbage collection runs, and
        every receive and delete costs O(messages it holds): in one `make bench` run, whichever
        contender polled second in a round ran ~10x slower than the first (15 against ~130
        msg/s), whatever its client did. Each Azure run now starts on an empty Azurite.
        """
        self.azurite.restart()
        self.azure = AzureService(self.azurite)

    def sqs_spec(self) -> dict[str, Any]:
        return {
            "endpoint_url": self.sqs_proxy.url,
            "access_key_id": self.moto.access_key_id,
            "secret_access_key": self.moto.secret_access_key,
            "region": self.moto.region,
        }

    def airflow_connections(self) -> dict[str, str]:
        """``AIRFLOW_CONN_*`` variables for the Airflow-side contenders (SqsHook, hooks, triggers)."""
        sqs = {
            "conn_type": "aws",
            "login": self.moto.access_key_id,
            "password": self.moto.secret_access_key,
            "extra": {"endpoint_url": self.sqs_proxy.url, "region_name": self.moto.region},
        }
        azure = {"conn_type": "azure_storage_queue", "extra": {"connection_string": self.azure_conn_string}}
        return {"AIRFLOW_CONN_BENCH_SQS": json.dumps(sqs), "AIRFLOW_CONN_BENCH_AZURE": json.dumps(azure)}


def patched_moto(logs: Path) -> MotoSQS:
    """devtools' MotoSQS (fresh credentials, free port), started through :mod:`bench.moto_server`."""
    moto = MotoSQS.create(log_path=logs / "moto.log")
    moto.command = [sys.executable, "-m", "bench.moto_server", "-H", "127.0.0.1", "-p", str(moto.port)]
    moto.env = {**moto.env, "PYTHONPATH": str(ROOT)}
    return moto


def quiet_azurite(logs: Path) -> AzuriteQueue:
    """devtools' AzuriteQueue (fresh account and key, free port), in memory and without access log.

    Azurite saves its whole database to disk every 5 s and writes a log line per request; at
    2,000 messages that roughly doubled its time per request. Neither is what is measured.
    """
    azurite = AzuriteQueue.create(log_path=logs / "azurite.log")
    command = list(azurite.command)
    index = command.index("--location")
    del command[index : index + 2]
    azurite.command = [*command, "--inMemoryPersistence", "--silent"]
    return azurite


@contextmanager
def running_services(logs: Path, *, patch_moto: bool = True) -> Iterator[Services]:
    logs.mkdir(parents=True, exist_ok=True)
    moto = patched_moto(logs) if patch_moto else MotoSQS.create(log_path=logs / "moto.log")
    azurite = quiet_azurite(logs)
    moto.start()
    try:
        azurite.start()
        try:
            with Proxy(moto.endpoint_url) as sqs_proxy, Proxy(azurite.account_url) as azure_proxy:
                yield Services(moto, azurite, sqs_proxy, azure_proxy, SQSService(moto), AzureService(azurite))
        finally:
            azurite.remove()
    finally:
        moto.stop()


class SQSFeeder:
    """Keeps a queue's backlog between ``low`` and ``high`` messages until ``total`` were sent.

    moto deletes in O(queue length), so a poll of 100,000 messages against a pre-filled
    queue would measure moto; feeding as the consumer drains keeps the queue short. The
    backlog is what was sent minus what ``consumed()`` says was deleted (counted at the
    proxy: asking moto for its counts scans the whole queue several times per call).
    """

    def __init__(
        self, admin: SQSService, name: str, total: int, consumed: Callable[[], int], low: int = 1500, high: int = 3000
    ) -> None:
        self.admin = admin
        self.name = name
        self.total = total
        self.consumed = consumed
        self.low = low
        self.high = high
        self.sent = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-feeder", daemon=True)

    def prefill(self) -> None:
        count = min(self.high, self.total)
        self.admin.send(self.name, bodies(count, tag="f"), threads=SEND_THREADS["sqs"])
        self.sent = count

    def start(self) -> SQSFeeder:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            while not self._stop.is_set() and self.sent < self.total:
                backlog = self.sent - self.consumed()
                if backlog >= self.low:
                    self._stop.wait(0.05)
                    continue
                count = min(self.high - backlog, self.total - self.sent)
                self.admin.send(self.name, bodies(count, tag=f"f{self.sent}-"), threads=SEND_THREADS["sqs"])
                self.sent += count
        except BaseException as error:  # reported by stop()
            self.error = error

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)
        if self.error is not None:
            raise RuntimeError(f"the SQS feeder failed: {self.error!r}") from self.error
