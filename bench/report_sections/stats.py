"""Statistics over ``results.json`` that more than one section needs, kept apart from the prose."""

from __future__ import annotations

import statistics
from collections import Counter
from typing import Any


class Throughput:
    """The runs of a throughput (or network) measure, with medians per service, operation and contender."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.messages = int(data["messages"])
        self.rounds = int(data["rounds"])
        self.runs = data["runs"]

    def runs_of(self, service: str, op: str, contender: str) -> list[dict[str, Any]]:
        return [r for r in self.runs if (r["service"], r["op"], r["contender"]) == (service, op, contender)]

    def contenders(self, service: str) -> list[str]:
        seen: list[str] = []
        for r in self.runs:
            if r["service"] == service and r["contender"] not in seen:
                seen.append(r["contender"])
        order = ["ours", "ours-async", "fluke-api", "airflow", "limit"]
        return sorted(seen, key=order.index)

    def rates(self, service: str, op: str, contender: str) -> list[float]:
        return [r["messages"] / r["seconds"] for r in self.runs_of(service, op, contender)]

    def rate(self, service: str, op: str, contender: str) -> float:
        return statistics.median(self.rates(service, op, contender))

    def ceiling(self, service: str, op: str) -> float | None:
        """The fastest client measured for an operation: the limit contender's median rate, or a
        contender's that beat it; None if the limit contender did not run (older reports)."""
        if not self.runs_of(service, op, "limit"):
            return None
        return max(self.rate(service, op, c) for c in self.contenders(service) if self.runs_of(service, op, c))

    def rate_to_last(self, service: str, op: str, contender: str) -> float:
        return statistics.median(r["messages"] / r["until_last_message"] for r in self.runs_of(service, op, contender))

    def round_ratios(self, service: str, op: str, contender: str) -> list[float]:
        """Per round, this contender's rate over fluke-api's in the same round (run minutes apart)."""
        ratios = []
        for index in range(self.rounds):
            mine = [r for r in self.runs_of(service, op, contender) if r["round"] == index]
            base = [r for r in self.runs_of(service, op, "fluke-api") if r["round"] == index]
            if mine and base:
                ratios.append((base[0]["seconds"] / base[0]["messages"]) / (mine[0]["seconds"] / mine[0]["messages"]))
        return ratios

    def seconds(self, service: str, op: str, contender: str) -> float:
        return statistics.median(r["seconds"] for r in self.runs_of(service, op, contender))

    def tail(self, service: str, op: str, contender: str) -> float:
        """Median time between the last batch handed over and the end of the poll."""
        return statistics.median(r["seconds"] - r["until_last_message"] for r in self.runs_of(service, op, contender))

    def cpu_per_1000s(self, service: str, op: str, contender: str) -> list[float]:
        """Per run that reported it, the contender's CPU seconds (user + system) per 1,000 messages."""
        return [
            1000 * float(r["cpu_seconds"]) / r["messages"]
            for r in self.runs_of(service, op, contender)
            if r.get("cpu_seconds") is not None
        ]

    def cpu_per_1000(self, service: str, op: str, contender: str) -> float | None:
        """Median over rounds of the CPU seconds per 1,000 messages; None if no run reported it."""
        values = self.cpu_per_1000s(service, op, contender)
        return statistics.median(values) if values else None

    def cpu_busy(self, service: str, op: str, contender: str) -> float | None:
        """Median over rounds of CPU seconds over wall seconds: how much of one core the client kept busy."""
        values = [
            float(r["cpu_seconds"]) / r["seconds"]
            for r in self.runs_of(service, op, contender)
            if r.get("cpu_seconds") is not None and r["seconds"] > 0
        ]
        return statistics.median(values) if values else None

    def cpu_round_ratios(self, service: str, op: str, contender: str) -> list[float]:
        """Per round, this contender's CPU per message over fluke-api's in the same round."""
        ratios = []
        for index in range(self.rounds):
            mine = [r for r in self.runs_of(service, op, contender) if r["round"] == index]
            base = [r for r in self.runs_of(service, op, "fluke-api") if r["round"] == index]
            if mine and base and mine[0].get("cpu_seconds") is not None and base[0].get("cpu_seconds"):
                ratios.append(
                    (mine[0]["cpu_seconds"] / mine[0]["messages"]) / (base[0]["cpu_seconds"] / base[0]["messages"])
                )
        return ratios

    def per_message(self, service: str, op: str, contender: str) -> float:
        return statistics.median(
            sum(r["requests"].values()) / r["messages"] for r in self.runs_of(service, op, contender)
        )

    def by_operation(self, service: str, op: str, contender: str) -> str:
        runs = self.runs_of(service, op, contender)
        names = sorted({n for r in runs for n in r["requests"]})
        parts = []
        for name in names:
            count = statistics.median(r["requests"].get(name, 0) for r in runs)
            parts.append(f"{name} {count:,.0f}")
        return ", ".join(parts)

    def open_cost(self, service: str, contender: str) -> str:
        runs = self.runs_of(service, "push", contender)
        if not runs:
            return ""
        counter = Counter(runs[0]["open_requests"])
        return ", ".join(f"{k} {v}" for k, v in sorted(counter.items())) or "none"


def percentile(ordered: list[float], q: float) -> float:
    """The q-th percentile of sorted samples; NaN for none, the sample itself for one."""
    if not ordered:
        return float("nan")
    if len(ordered) == 1:
        return ordered[0]
    return float(statistics.quantiles(ordered, n=100, method="inclusive")[int(q) - 1])


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys over xs; 0 when there is no spread to fit."""
    if len(xs) < 2:
        return 0.0
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0


def idle_runs(results: dict[str, Any], kind: str | None = None) -> list[dict[str, Any]]:
    """The idle-trigger runs, in the order they ran, of one trigger kind or all; a run that failed has
    ``error`` instead of numbers. Reads both layouts: a list of runs, and the older one run per kind."""
    idle = results.get("idle") or []
    runs = [dict(run, kind=name) for name, run in idle.items()] if isinstance(idle, dict) else list(idle)
    return [r for r in runs if kind is None or r["kind"] == kind]


def idle_measured(results: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    """The idle runs of one kind that produced numbers, smallest count first."""
    return sorted((r for r in idle_runs(results, kind) if "error" not in r), key=lambda r: int(r["count"]))


def idle_rate(results: dict[str, Any], kind: str) -> float | None:
    """The highest requests/min/trigger of a kind's idle runs (the idle cost a latency is paid with)."""
    runs = idle_measured(results, kind)
    return max(requests_per_minute_per_trigger(r) for r in runs) if runs else None


def above_baseline(run: dict[str, Any]) -> float:
    """Peak RSS of an idle-trigger run above the worker's RSS before the first trigger."""
    return run["rss_peak"] - run["baseline_rss"]


def requests_per_minute(run: dict[str, Any]) -> float:
    """Requests at the proxy per minute of an idle-trigger run's window, all triggers together."""
    return sum(run["requests"].values()) * 60 / run["window"]


def requests_per_minute_per_trigger(run: dict[str, Any]) -> float:
    return requests_per_minute(run) / run["count"]
