"""Push and poll+delete throughput and requests per message, contenders alternating by round.

Each round runs, for each (service, operation), every contender once, in an order that is
reversed every other round (ABC, CBA, ABC, ...). A contender's push fills a fresh queue with
``messages`` bodies of ~200 bytes; the same contender then polls that full queue empty.
Wall time counts from the contender's ``go`` to its last request (the queue is opened before,
and opening requests are counted separately); requests are counted by the proxy, per operation.
The worker also reports the CPU time (user + system, all its threads) its own process spent in
that same timed part; the emulator's and the proxy's CPU are not in it.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.protocol import Worker, worker_env
from bench.services import SEND_THREADS, Services, snapshot

# Contender ids -> labels for the report.
LABELS = {
    "ours": "fluke-airflow (sync)",
    "ours-async": "fluke-airflow (async)",
    "fluke-api": "fluke-api 0.5.0",
    "airflow": "amazon provider SqsHook",
    "limit": "limit (SDK, 16 in flight)",
}
SERVICES = {"sqs": "Amazon SQS (moto)", "azure": "Azure Queue Storage (Azurite)"}


def contenders_for(service: str, with_async: bool = True) -> list[str]:
    ours = ["ours", "ours-async"] if with_async else ["ours"]
    if service == "sqs":
        return [*ours, "fluke-api", "airflow", "limit"]
    return [*ours, "fluke-api", "limit"]


def batch_size(contender: str, service: str) -> int:
    """Ours: 100 on SQS (the issue's setting), 32 on Azure (one receive's maximum).
    fluke-api: 10, the most it can use (see fluke_api_runner). The provider: 10 per receive."""
    if contender in ("ours", "ours-async"):
        return 100 if service == "sqs" else 32
    if contender == "limit":
        return 10 if service == "sqs" else 32
    return 10


@dataclass
class Run:
    service: str
    op: str
    contender: str
    round: int
    messages: int
    seconds: float
    until_last_message: float
    requests: Counter[str]
    open_requests: Counter[str]
    handled: int = 0
    """Messages pushed, or handed to the consumer (more than ``messages`` when some came twice)."""
    left: int = 0
    """Messages in the queue afterwards (push: should be ``messages``; poll: 0)."""
    failed: int = 0
    """Pushes the contender reported as failed."""
    cpu_user: float | None = None
    """User CPU seconds of the contender's process in the timed part (None: the worker did not say)."""
    cpu_system: float | None = None
    """System CPU seconds of the contender's process in the timed part."""

    @property
    def throughput(self) -> float:
        return self.messages / self.seconds

    @property
    def cpu_seconds(self) -> float | None:
        if self.cpu_user is None or self.cpu_system is None:
            return None
        return self.cpu_user + self.cpu_system

    @property
    def per_message(self) -> float:
        return sum(self.requests.values()) / self.messages


@dataclass
class ThroughputResults:
    messages: int
    rounds: int
    runs: list[Run] = field(default_factory=list)

    def select(self, service: str, op: str, contender: str) -> list[Run]:
        return [r for r in self.runs if (r.service, r.op, r.contender) == (service, op, contender)]

    def median_throughput(self, service: str, op: str, contender: str) -> float:
        return statistics.median(r.throughput for r in self.select(service, op, contender))

    def median_per_message(self, service: str, op: str, contender: str) -> float:
        return statistics.median(r.per_message for r in self.select(service, op, contender))

    def requests_by_operation(self, service: str, op: str, contender: str) -> dict[str, float]:
        """Median requests per message, by service operation."""
        runs = self.select(service, op, contender)
        names = sorted({name for r in runs for name in r.requests})
        return {n: statistics.median(r.requests[n] / r.messages for r in runs) for n in names}

    def to_json(self) -> dict[str, Any]:
        return {
            "messages": self.messages,
            "rounds": self.rounds,
            "runs": [
                {
                    "service": r.service,
                    "op": r.op,
                    "contender": r.contender,
                    "round": r.round,
                    "messages": r.messages,
                    "seconds": r.seconds,
                    "cpu_seconds": r.cpu_seconds,
                    "cpu_user": r.cpu_user,
                    "cpu_system": r.cpu_system,
                    "until_last_message": r.until_last_message,
                    "requests": dict(r.requests),
                    "open_requests": dict(r.open_requests),
                    "handled": r.handled,
                    "left": r.left,
                    "failed": r.failed,
                }
                for r in self.runs
            ],
        }


class Contenders:
    """Starts a worker for one contender and runs one operation in it."""

    def __init__(self, services: Services, fluke_api_python: Path, work: Path) -> None:
        self.services = services
        self.fluke_api_python = fluke_api_python
        self.work = work
        self.env = worker_env(services.airflow_connections(), work / "airflow-home")
        self.fluke_api_env = dict(
            self.env,
            AWS_ENDPOINT_URL_SQS=services.sqs_proxy.url,
            AWS_DEFAULT_REGION=services.moto.region,
        )

    def spec(self, contender: str, service: str, op: str, queue: str, **extra: Any) -> dict[str, Any]:
        spec = {"contender": contender, "service": service, "op": op, "queue": queue, **extra}
        if service == "sqs":
            spec["sqs"] = self.services.sqs_spec()
        else:
            spec["azure_conn_string"] = self.services.azure_conn_string
        return spec

    def start(self, contender: str, name: str) -> Worker:
        log = self.work / "logs" / "workers.log"
        if contender == "fluke-api":
            argv = [str(self.fluke_api_python), str(Path(__file__).with_name("fluke_api_runner.py"))]
            return Worker(argv, self.fluke_api_env, log, name)
        return Worker([sys.executable, "-m", "bench.runner"], self.env, log, name)

    def run(self, contender: str, service: str, op: str, queue: str, timeout: float, **extra: Any) -> dict[str, Any]:
        """Run one operation; returns the worker's ``done`` event plus the proxy's counts."""
        proxy = self.services.sqs_proxy if service == "sqs" else self.services.azure_proxy
        worker = self.start(contender, f"{contender}:{service}:{op}")
        try:
            proxy.reset()
            worker.send(**self.spec(contender, service, op, queue, **extra))
            worker.expect("ready", timeout=120)
            opened = snapshot(proxy)
            proxy.reset()
            worker.send(event="go")
            done = worker.expect("done", timeout=timeout)
            done["requests"] = snapshot(proxy)
            done["open_requests"] = opened
        finally:
            worker.finish()
        return done

    def versions(self) -> dict[str, str]:
        worker = Worker(
            [str(self.fluke_api_python), str(Path(__file__).with_name("fluke_api_runner.py"))],
            self.fluke_api_env,
            self.work / "logs" / "workers.log",
            "fluke-api:versions",
        )
        try:
            worker.send(op="versions")
            return dict(worker.expect("versions", timeout=60)["versions"])
        finally:
            worker.finish()


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


def _left(services: Services, service: str, queue: str) -> int:
    """Messages in the queue, visible or not (asked directly on the emulator)."""
    if service == "sqs":
        counts = services.sqs.counts(queue)
        return counts["visible"] + counts["in_flight"]
    return services.azure.total(queue)


def _seed(services: Services, service: str, queue: str, messages: int, tag: str) -> None:
    from bench.data import bodies

    admin = services.sqs if service == "sqs" else services.azure
    admin.send(queue, bodies(messages, tag=tag), threads=SEND_THREADS[service])


def run_throughput(
    services: Services,
    contenders: Contenders,
    messages: int,
    rounds: int,
    with_async: bool = True,
    log: Any = print,
) -> ThroughputResults:
    """Push: each contender fills a fresh queue. Poll: each contender empties a fresh queue that
    the benchmark filled directly. A queue is deleted as soon as it was checked, so only one
    queue holds messages at any time, and each Azure run starts on a restarted (empty)
    Azurite: Azurite's delete and receive cost grows with every message it holds, deleted
    queues' included, and moto's with every message of the queue."""
    results = ThroughputResults(messages=messages, rounds=rounds)
    timeout = max(300.0, messages * 0.1)
    for round_index in range(rounds):
        for service in ("sqs", "azure"):
            order = contenders_for(service, with_async)
            if round_index % 2:
                order = order[::-1]
            admin = services.sqs if service == "sqs" else services.azure
            for op in ("push", "poll"):
                for contender in order:
                    if service == "azure":
                        services.fresh_azurite()
                        admin = services.azure
                    queue = admin.new_queue(prefix=f"tp-{op}")
                    try:
                        if op == "poll":
                            _seed(services, service, queue, messages, tag=f"s{round_index}-")
                        started = time.monotonic()
                        done = contenders.run(
                            contender,
                            service,
                            op,
                            queue,
                            timeout,
                            messages=messages,
                            batch_size=batch_size(contender, service),
                            tag=f"r{round_index}-",
                        )
                        # Recorded, not enforced: a push may fail a message, a poll may hand one out
                        # twice (at least once) or end while some are still hidden; the report says so.
                        left = _left(services, service, queue)
                    finally:
                        admin.delete_queue(queue)
                    run = Run(
                        service,
                        op,
                        contender,
                        round_index,
                        messages,
                        float(done["seconds"]),
                        float(done["until_last_message"]),
                        Counter(done["requests"]),
                        Counter(done["open_requests"]),
                        int(done["count"]),
                        left,
                        int(done.get("failed", 0)),
                        _float_or_none(done.get("cpu_user")),
                        _float_or_none(done.get("cpu_system")),
                    )
                    results.runs.append(run)
                    cpu = run.cpu_seconds
                    log(
                        f"  round {round_index + 1}/{rounds} {service:5} {op:4} {LABELS[contender]:26} "
                        f"{run.throughput:8.0f} msg/s  {run.per_message:.3f} req/msg  "
                        + (f"{cpu * 1000 / messages:.3f} CPU s/1k msg  " if cpu is not None else "CPU not reported  ")
                        + f"({time.monotonic() - started:.1f}s)"
                    )
    return results
