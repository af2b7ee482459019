"""A real StatsD server for the tests: a UDP socket on loopback that keeps every line it is sent,
and Airflow's stats client pointed at it (as ``[metrics] statsd_on`` does in a deployment)."""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

_LINE = re.compile(r"^(?P<name>[^,:]+)(?P<tags>(?:,[^,:=]+=[^,:]*)*):(?P<value>[^|]+)\|(?P<kind>[a-z]+)")


@dataclass(frozen=True)
class Metric:
    name: str
    tags: dict[str, str]
    value: float
    kind: str  # c (counter), g (gauge), ms (timer)


@dataclass
class StatsdListener:
    """Every metric received, parsed from the StatsD line protocol (InfluxDB-style tags)."""

    sock: socket.socket = field(default_factory=lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    lines: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65535)
            except (TimeoutError, OSError):
                continue
            self.lines.extend(data.decode("utf-8", "replace").splitlines())

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()

    def clear(self) -> None:
        self.lines.clear()

    def metrics(self, prefix: str = "airflow.fluke_airflow.") -> list[Metric]:
        found = []
        for line in list(self.lines):
            match = _LINE.match(line)
            if match and match["name"].startswith(prefix):
                tags = dict(t.split("=", 1) for t in match["tags"].split(",") if t)
                found.append(Metric(match["name"][len(prefix) :], tags, float(match["value"]), match["kind"]))
        return found

    def counts(self, **tags: str) -> Counter[str]:
        """Counter totals by name, of the metrics whose tags include ``tags``."""
        totals: Counter[str] = Counter()
        for m in self.metrics():
            if m.kind == "c" and all(m.tags.get(k) == v for k, v in tags.items()):
                totals[m.name] += int(m.value)
        return totals

    def of(self, name: str, **tags: str) -> list[Metric]:
        return [m for m in self.metrics() if m.name == name and all(m.tags.get(k) == v for k, v in tags.items())]


def statsd_config(port: int) -> dict[str, str]:
    """The ``[metrics]`` settings (as environment variables) that send Airflow's metrics to ``port``."""
    return {
        "AIRFLOW__METRICS__STATSD_ON": "True",
        "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
        "AIRFLOW__METRICS__STATSD_PORT": str(port),
        "AIRFLOW__METRICS__STATSD_PREFIX": "airflow",
        "AIRFLOW__METRICS__STATSD_INFLUXDB_ENABLED": "True",
    }


@contextlib.contextmanager
def statsd_in_this_process(monkeypatch: pytest.MonkeyPatch) -> Iterator[StatsdListener]:
    """A listener, and this process's stats client sending to it, as Airflow's task runner and
    triggerer set it up from ``[metrics]`` (dag.test() runs tasks here without that set-up)."""
    from airflow.sdk.observability import stats
    from airflow.sdk.observability.metrics import stats_utils

    listener = StatsdListener()
    for name, value in statsd_config(listener.port).items():
        monkeypatch.setenv(name, value)
    stats.initialize(factory=stats_utils.get_stats_factory(), export_legacy_names=False)
    try:
        yield listener
    finally:
        monkeypatch.setenv("AIRFLOW__METRICS__STATSD_ON", "False")
        stats.initialize(factory=stats_utils.get_stats_factory(), export_legacy_names=False)
        listener.close()
