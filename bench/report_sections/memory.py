"""Memory while polling: fluke-airflow's RSS over a long poll, to show it streams rather than accumulates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.report import line_chart, render
from bench.report_sections.stats import slope
from bench.report_sections.targets import Check, target

GROWTH = target("memory", "sqs", "growth")
TREND = target("memory", "sqs", "trend")


class Samples:
    """RSS samples ``(messages polled, bytes)`` reduced to what the criterion for constant reads."""

    def __init__(self, mem: dict[str, Any]) -> None:
        samples = mem["samples"]
        self.samples = samples
        self.start, self.first, self.end = samples[0][1], samples[min(1, len(samples) - 1)][1], samples[-1][1]
        self.peak = max(rss for _, rss in samples)
        # The trend in bytes per message over the second half: the first batches fill caches and pools.
        half = samples[len(samples) // 2 :]
        self.slope = slope([n for n, _ in half], [rss for _, rss in half])

    @property
    def met(self) -> bool:
        return GROWTH.met(self.peak - self.first) and TREND.met(abs(self.slope))


def checks(results: dict[str, Any]) -> list[Check]:
    mem = results.get("memory")
    if not mem:
        return []
    s = Samples(mem)
    values = {"messages": mem["messages"], "first": s.first, "peak": s.peak, "end": s.end, "slope": s.slope}
    return [Check(GROWTH, "memory", s.met, values)]


def section(results: dict[str, Any], out: Path) -> str:
    mem = results.get("memory")
    if not mem:
        return ""
    s = Samples(mem)
    line_chart(
        out / "memory.png",
        {
            "fluke-airflow AmazonSQSQueue.poll(batch_size=100)": (
                [n for n, _ in s.samples],
                [rss / 1e6 for _, rss in s.samples],
            )
        },
        "messages polled",
        "RSS (MB)",
        f"RSS while polling {mem['messages']:,} messages",
    )
    return render(
        "memory",
        mem=mem,
        s=s,
        every=max(100, mem["messages"] // 100),
        requests=sum(mem["requests"].values()) / mem["messages"],
        growth=GROWTH,
        trend=TREND,
    )
