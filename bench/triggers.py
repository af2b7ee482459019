"""Idle triggers (memory, CPU, requests per minute) and arrival latency, on SQS.

Both experiments run the triggers in a worker process (:mod:`bench.trigger_worker`), each
trigger on a queue of its own, and count requests at the proxy in front of moto.

* Idle: ``count`` triggers on empty queues, started one after another over ``ramp`` seconds
  (a triggerer receives deferred tasks at different times; the amazon trigger's 60 s cycle
  would otherwise put all its requests into one burst). Once every trigger has sent its first
  receive, and ``settle`` seconds more, a window of
  ``window`` seconds: RSS above the baseline (the loop with every library imported, before the
  first trigger), CPU time of the process over wall time, and requests per minute.
* Latency: ``samples`` triggers, all started at once; after ``settle`` seconds, one message is
  pushed to each queue (directly to moto), at times spread evenly over one polling ``period``
  of that trigger in random order, so the pushes meet the triggers at every phase of their
  cycle. Latency is the time from the push's return to the trigger's event.
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from bench.protocol import Worker
from bench.services import Services, snapshot

KINDS = {"fluke": "QueuePollTrigger (fluke-airflow)", "amazon": "SqsSensorTrigger (amazon provider)"}
# One polling cycle with the defaults: a 20 s long poll; a 1 s receive then a 60 s sleep.
PERIOD = {"fluke": 20.0, "amazon": 61.0}


@dataclass
class IdleResult:
    kind: str
    count: int
    window: float
    baseline_rss: int
    rss_started: int
    rss_end: int
    rss_peak: int
    cpu_percent: float
    requests: Counter[str]
    open_requests: Counter[str]
    alive: int
    failures: list[str] = field(default_factory=list)

    @property
    def rss_above_baseline(self) -> int:
        return self.rss_peak - self.baseline_rss

    @property
    def requests_per_minute(self) -> float:
        return sum(self.requests.values()) * 60.0 / self.window

    @property
    def per_trigger_per_minute(self) -> float:
        return self.requests_per_minute / self.count


@dataclass
class LatencyResult:
    kind: str
    samples: list[float]
    missing: int

    def percentile(self, q: float) -> float:
        ordered = sorted(self.samples)
        if not ordered:
            return float("nan")
        if len(ordered) == 1:
            return ordered[0]
        return float(statistics.quantiles(ordered, n=100, method="inclusive")[int(q) - 1])


def _queues(services: Services, count: int, prefix: str) -> list[dict[str, str]]:
    """``count`` new queues; the URLs point at the proxy (moto answers for any host)."""
    queues = []
    for _ in range(count):
        name = services.sqs.create(prefix)
        url = services.sqs.url(name).replace(services.moto.endpoint_url, services.sqs_proxy.url)
        queues.append({"name": name, "url": url})
    return queues


def _delete(services: Services, queues: list[dict[str, str]]) -> None:
    for q in queues:
        services.sqs.delete(q["name"])


def _worker(env: dict[str, str], work: Path, kind: str) -> Worker:
    return Worker(
        [sys.executable, "-m", "bench.trigger_worker"], env, work / "logs" / "triggers.log", f"triggers:{kind}"
    )


def run_idle(
    services: Services,
    env: dict[str, str],
    work: Path,
    kind: str,
    count: int,
    window: float,
    settle: float = 5.0,
    log: Any = print,
) -> IdleResult:
    ramp = PERIOD[kind]
    queues = _queues(services, count, f"idle-{kind}")
    proxy = services.sqs_proxy
    worker = _worker(env, work, kind)
    try:
        process = psutil.Process(worker.pid)
        worker.send(kind=kind, queues=queues, ramp=ramp)
        worker.expect("baseline", timeout=120)
        baseline = process.memory_info().rss
        proxy.reset()
        worker.send(event="go")
        worker.expect("started", timeout=ramp + 300)
        # Every trigger has opened its queue and sent its first receive (on a loaded machine the
        # last ones can still be opening when the ramp ends); only then the settle time and the window.
        deadline = time.monotonic() + 300
        while proxy.total("ReceiveMessage") < count and time.monotonic() < deadline:
            time.sleep(0.2)
        rss_started = process.memory_info().rss
        time.sleep(settle)
        opened = snapshot(proxy)
        proxy.reset()
        cpu0 = sum(process.cpu_times()[:2])
        t0 = time.monotonic()
        peak = process.memory_info().rss
        log(f"  {KINDS[kind]}: {count} started; measuring for {window:.0f}s")
        while time.monotonic() - t0 < window:
            time.sleep(min(1.0, max(0.0, window - (time.monotonic() - t0))))
            peak = max(peak, process.memory_info().rss)
        cpu1 = sum(process.cpu_times()[:2])
        elapsed = time.monotonic() - t0
        requests = snapshot(proxy)
        rss_end = process.memory_info().rss
        worker.send(event="stop")
        stopped = worker.expect("stopped", timeout=120)
    finally:
        worker.finish()
        _delete(services, queues)
    return IdleResult(
        kind=kind,
        count=count,
        window=elapsed,
        baseline_rss=baseline,
        rss_started=rss_started,
        rss_end=rss_end,
        rss_peak=max(peak, rss_end),
        cpu_percent=100.0 * (cpu1 - cpu0) / elapsed,
        requests=requests,
        open_requests=opened,
        alive=int(stopped["alive"]),
        failures=list(stopped["failures"]),
    )


def run_latency(
    services: Services,
    env: dict[str, str],
    work: Path,
    kind: str,
    samples: int,
    settle: float = 3.0,
    seed: int = 4,
    log: Any = print,
) -> LatencyResult:
    period = PERIOD[kind]
    queues = _queues(services, samples, f"lat-{kind}")
    worker = _worker(env, work, kind)
    rng = random.Random(seed)
    order = list(range(samples))
    rng.shuffle(order)
    pushed: dict[str, float] = {}
    fired: dict[str, float] = {}
    try:
        worker.send(kind=kind, queues=queues, ramp=0.0)
        worker.expect("baseline", timeout=120)
        worker.send(event="go")
        worker.expect("started", timeout=300)
        start = time.monotonic() + settle
        log(f"  {KINDS[kind]}: pushing {samples} messages over {period:.0f}s")
        for slot, index in enumerate(order):
            at = start + period * slot / samples
            time.sleep(max(0.0, at - time.monotonic()))
            name = queues[index]["name"]
            services.sqs.send(name, [f"latency probe {index}"], threads=1)
            pushed[name] = time.monotonic()
        deadline = time.monotonic() + 2 * period + 30
        while len(fired) < samples and time.monotonic() < deadline:
            try:
                event = worker.expect("fired", timeout=max(1.0, deadline - time.monotonic()))
            except Exception:
                break
            if event.get("status") == "success":
                fired[event["queue"]] = float(event["t"])
        if len(fired) < samples:
            worker.kill()
        else:
            worker.send(event="stop")
            worker.expect("stopped", timeout=60)
    finally:
        worker.finish()
        _delete(services, queues)
    latencies = [fired[name] - pushed[name] for name in fired if name in pushed]
    return LatencyResult(kind=kind, samples=latencies, missing=samples - len(latencies))
