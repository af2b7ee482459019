"""Memory while polling: fluke-airflow's RSS over a long poll, to show it streams rather than accumulates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.report import Block, Heading, Image, Para, Table, line_chart, mb, num
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
    return [
        Check(
            GROWTH,
            f"Memory, polling {mem['messages']:,} messages",
            "constant (streamed, no accumulation)",
            f"RSS {mb(s.first)} after the first batches, peak {mb(s.peak)}, end {mb(s.end)}; "
            f"{s.slope:+.1f} bytes/message over the second half",
            s.met,
        )
    ]


def section(results: dict[str, Any], out: Path) -> list[Block]:
    mem = results.get("memory")
    if not mem:
        return []
    s = Samples(mem)
    requests = sum(mem["requests"].values())
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
    return [
        Heading("Memory while polling"),
        Para(
            f"fluke-airflow's `AmazonSQSQueue.poll(batch_size=100)` consumes {mem['messages']:,} messages in a "
            f"worker that samples its own RSS every {max(100, mem['messages'] // 100):,} messages. moto's delete "
            "costs O(queue length), so rather than a queue filled up front, a feeder keeps 1,500-3,000 "
            "messages waiting until all were sent; the consumer just polls until it has seen them all."
            + (
                f" This run used {mem['messages']:,} messages; `--full` uses 100,000."
                if mem["messages"] < 100_000
                else ""
            )
            + f" Criterion for constant: at most {GROWTH.shown} growth after the first batches, and a trend over "
            f"the second half below {TREND.shown} per message (accumulating 200-byte bodies alone would be > 200)."
        ),
        Table(
            [
                "messages",
                "seconds",
                "RSS at start",
                "after first batches",
                "peak",
                "end",
                "trend (2nd half)",
                "requests/msg",
            ],
            [
                [
                    f"{mem['messages']:,}",
                    num(mem["seconds"], 1),
                    mb(s.start),
                    mb(s.first),
                    mb(s.peak),
                    mb(s.end),
                    f"{s.slope:+.1f} B/msg",
                    f"{requests / mem['messages']:.3f}",
                ]
            ],
        ),
        Image("memory.png", "RSS while polling"),
    ]
