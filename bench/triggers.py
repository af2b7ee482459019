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
from devtools.support import WaitTimeout, wait_until

KINDS = {
    "fluke": "QueuePollTrigger (fluke-airflow)",
    "fluke-botocore": "QueuePollTrigger, FLUKE_AIRFLOW_SQS_DIRECT=0",
    "amazon": "SqsSensorTrigger (amazon provider)",
}
# One polling cycle with the defaults: a 20 s long poll; a 1 s receive then a 60 s sleep.
PERIOD = {"fluke": 20.0, "fluke-botocore": 20.0, "amazon": 61.0}


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
    emulator_cpu_percent: float = float("nan")
    """moto's CPU over the window (its long polls wake every second to look at their queue)."""
    bench_cpu_percent: float = float("nan")
    """The benchmark process's CPU over the window: the proxy that counts the requests runs in it."""
    machine_cpu_percent: float = float("nan")
    """Every core's busy time over the window, in percent of one core (200 = both of two cores)."""
    receive_seconds: dict[str, float] = field(default_factory=dict)
    """How long the ``ReceiveMessage`` requests answered in the window took at the proxy (20 s
    asked for): ``p50``, ``p90``, ``max`` and ``count``."""

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
        name = services.sqs.new_queue(prefix=prefix)
        url = services.sqs.url(name).replace(services.moto.endpoint_url, services.sqs_proxy.url)
        queues.append({"name": name, "url": url})
    return queues


def _delete(services: Services, queues: list[dict[str, str]]) -> None:
    for q in queues:
        services.sqs.delete_queue(q["name"])


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
        try:
            wait_until(lambda: proxy.total("ReceiveMessage") >= count, what=f"{count} first receives", timeout=300)
        except WaitTimeout as error:  # measured all the same, as before; the log says what was missing
            log(f"  {KINDS[kind]}: not every trigger polled before the window: {error}")
        rss_started = process.memory_info().rss
        time.sleep(settle)
        opened = snapshot(proxy)
        proxy.reset()
        others = _Others(services)
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
        emulator_cpu, bench_cpu, machine_cpu = others.percent(elapsed)
        receive_seconds = _spread([r.seconds for r in proxy.records("ReceiveMessage") if r.status == 200])
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
        emulator_cpu_percent=emulator_cpu,
        bench_cpu_percent=bench_cpu,
        machine_cpu_percent=machine_cpu,
        receive_seconds=receive_seconds,
    )


def _spread(seconds: list[float]) -> dict[str, float]:
    if not seconds:
        return {"count": 0}
    ordered = sorted(seconds)
    return {
        "count": len(ordered),
        "p50": ordered[len(ordered) // 2],
        "p90": ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))],
        "max": ordered[-1],
    }


class _Others:
    """CPU of what serves the triggers over a window: moto, this process (the proxy), the machine.

    When a larger run's request rate falls, these say where: a saturated emulator answers its
    long polls late, a busy machine delays everyone."""

    def __init__(self, services: Services) -> None:
        moto = services.moto.process
        self._moto = psutil.Process(moto.pid) if moto is not None else None
        self._me = psutil.Process()
        self._start = self._sample()

    def _sample(self) -> tuple[float, float, float]:
        moto = sum(self._moto.cpu_times()[:2]) if self._moto is not None else float("nan")
        machine = psutil.cpu_times()
        busy = machine.user + machine.nice + machine.system
        busy += getattr(machine, "irq", 0) + getattr(machine, "softirq", 0)
        return moto, sum(self._me.cpu_times()[:2]), busy

    def percent(self, elapsed: float) -> tuple[float, float, float]:
        end = self._sample()
        moto, me, machine = (100.0 * (b - a) / elapsed for a, b in zip(self._start, end, strict=True))
        return moto, me, machine


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
