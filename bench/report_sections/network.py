"""Throughput with a network round trip: the loopback runs again, the proxy holding every answer.

What the request counts and the concurrency are worth where a request costs waiting rather than
emulator CPU; issue 13 sets targets for it (``network`` and ``network ceiling`` in the targets table).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.limit import CONCURRENCY as LIMIT_CONCURRENCY
from bench.report import render
from bench.report_sections import client_cpu
from bench.report_sections.names import sqs_concurrency
from bench.report_sections.stats import Throughput
from bench.report_sections.targets import Check, targets_of
from bench.report_sections.throughput import ceiling_check, versus

LABELS = {
    ("sqs", "push"): "SQS push",
    ("sqs", "poll"): "SQS poll+delete (batch 100)",
    ("azure", "push"): "Azure push",
    ("azure", "poll"): "Azure poll+delete (batch 32)",
}


def _both(n: Throughput, service: str, op: str) -> bool:
    return bool(n.runs_of(service, op, "ours")) and bool(n.runs_of(service, op, "fluke-api"))


def checks(results: dict[str, Any]) -> list[Check]:
    if "network" not in results:
        return []
    n = Throughput(results["network"])
    rows = [
        versus(n, x, "network", LABELS[(x.service, x.op)]) for x in targets_of("network") if _both(n, x.service, x.op)
    ]
    ceilings = [ceiling_check(n, x, LABELS[(x.service, x.op)], network=True) for x in targets_of("network ceiling")]
    return rows + [check for check in ceilings if check is not None]


def section(results: dict[str, Any], out: Path) -> str:
    if "network" not in results:
        return ""
    n = Throughput(results["network"])
    rtt_ms = float(results["network"]["rtt"]) * 1000
    rows = []
    for target in targets_of("network"):
        service, op = target.service, target.op
        if not _both(n, service, op):
            continue
        ours, base = n.rate(service, op, "ours"), n.rate(service, op, "fluke-api")
        ran = bool(n.runs_of(service, op, "limit"))
        ceiling = n.ceiling(service, op)
        rows.append(
            {
                "label": LABELS[(service, op)],
                "ours": ours,
                "base": base,
                "airflow": n.rate(service, op, "airflow") if n.runs_of(service, op, "airflow") else None,
                "limit": n.rate(service, op, "limit") if ran else None,
                # The cloud's bound for the limit client: requests in flight over requests per message x RTT.
                "model": LIMIT_CONCURRENCY / (n.per_message(service, op, "limit") * rtt_ms / 1000) if ran else None,
                "ratio": ours / base,
                "of_ceiling": ours / ceiling if ceiling else None,
                "target": target,
                "met": target.met(ours / base),
            }
        )
    sqs_poll = None
    if _both(n, "sqs", "poll"):
        to_last = n.rate_to_last("sqs", "poll", "ours")
        sqs_poll = {
            "seconds": n.seconds("sqs", "poll", "ours"),
            "tail": n.tail("sqs", "poll", "ours"),
            "to_last": to_last,
            "to_last_vs_api": to_last / n.rate("sqs", "poll", "fluke-api"),
            "round_trips": 1 + -(-9 // sqs_concurrency()),
        }
    return render(
        "network",
        n=n,
        rtt_ms=rtt_ms,
        limit_concurrency=LIMIT_CONCURRENCY,
        sqs_concurrency=sqs_concurrency(),
        rows=rows,
        gaps=_ceiling_gaps(n),
        cpu_measured=any(r.get("cpu_seconds") is not None for r in n.runs),
        cpu=client_cpu.numbers(n),
        sqs_poll=sqs_poll,
    )


def _ceiling_gaps(n: Throughput) -> list[dict[str, Any]]:
    """For each operation below the round-trip ceiling target, what bounds it, from the runs: the
    poll's end, and the client's CPU per message at the rate it reached (the round trip costs
    waiting, not CPU, so the CPU is what is left on the 2 cores)."""
    gaps = []
    for target in targets_of("network ceiling"):
        service, op = target.service, target.op
        ceiling = n.ceiling(service, op)
        if ceiling is None or not n.runs_of(service, op, "ours"):
            continue
        ours = n.rate(service, op, "ours")
        if target.met(ours / ceiling):
            continue
        gap: dict[str, Any] = {"label": LABELS[(service, op)], "ours": ours, "ceiling": ceiling, "poll": op == "poll"}
        gap["share"] = ours / ceiling
        if op == "poll":
            gap["tail"], gap["seconds"] = n.tail(service, op, "ours"), n.seconds(service, op, "ours")
            gap["to_last"] = n.rate_to_last(service, op, "ours") / ceiling
        cpu_ours, cpu_limit = n.cpu_per_1000(service, op, "ours"), n.cpu_per_1000(service, op, "limit")
        gap["cpu"] = None
        if cpu_ours is not None and cpu_limit is not None:
            # Per 1,000 messages x messages per second / 1,000 x 100 %: the share of a core kept busy.
            gap["cpu"] = (cpu_ours, cpu_limit, ours * cpu_ours / 10, ceiling * cpu_limit / 10)
        gaps.append(gap)
    return gaps
