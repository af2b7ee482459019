"""Memory while polling many messages: the blocking ``poll`` should stream, not accumulate.

fluke-airflow's ``AmazonSQSQueue.poll(batch_size=100)`` consumes ``messages`` messages in a
worker that samples its own RSS every ``sample_every`` messages. moto's delete costs O(queue
length), so instead of a queue filled up front (100,000 messages would measure moto), a
feeder thread keeps 1,500-3,000 messages waiting until all were sent. The consumer does not
know: it polls until it has seen them all (a poll ends when a receive comes back short, which
can happen when the feeder falls behind; the worker then starts another).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from bench.services import Services, SQSFeeder, snapshot
from bench.throughput import Contenders


@dataclass
class MemoryResult:
    messages: int
    seconds: float
    samples: list[tuple[int, int]]
    requests: dict[str, int]

    @property
    def start(self) -> int:
        return self.samples[0][1]

    @property
    def peak(self) -> int:
        return max(rss for _, rss in self.samples)

    @property
    def end(self) -> int:
        return self.samples[-1][1]

    @property
    def after_first_batch(self) -> int:
        """RSS once the first samples are in: the client, its pools and first buffers exist."""
        return self.samples[min(1, len(self.samples) - 1)][1]


def run_memory(services: Services, contenders: Contenders, messages: int, log: Any = print) -> MemoryResult:
    queue = services.sqs.new_queue(prefix="mem")
    proxy = services.sqs_proxy

    def consumed() -> int:
        return sum(r.entries or 0 for r in proxy.records("DeleteMessageBatch") if r.status == 200)

    feeder = SQSFeeder(services.sqs, queue, messages, consumed)
    feeder.prefill()
    worker = contenders.start("ours", "ours:sqs:stream")
    try:
        worker.send(
            **contenders.spec(
                "ours",
                "sqs",
                "stream",
                queue,
                messages=messages,
                batch_size=100,
                sample_every=max(100, messages // 100),
                timeout=max(600, messages // 20),
            )
        )
        worker.expect("ready", timeout=120)
        proxy.reset()
        worker.send(event="go")
        feeder.start()
        started = time.monotonic()
        done = worker.expect("done", timeout=max(900, messages // 20 + 300))
        log(f"  polled {done['count']} messages in {time.monotonic() - started:.1f}s")
        requests = dict(snapshot(proxy))
    finally:
        feeder.stop()
        worker.finish()
        services.sqs.delete_queue(queue)
    if done["count"] != messages:
        raise RuntimeError(f"the memory run polled {done['count']} of {messages} messages")
    return MemoryResult(
        messages=messages,
        seconds=float(done["seconds"]),
        samples=[(int(n), int(rss)) for n, rss in done["rss"]],
        requests=requests,
    )
