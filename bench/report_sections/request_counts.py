"""Requests per message, counted at the proxy: what a cloud bill would count, whatever the machine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.report import bar_chart, render
from bench.report_sections.names import SERVICE_NAMES, SHORT, panel_title
from bench.report_sections.stats import Throughput
from bench.report_sections.targets import Check, target, targets_of


def checks(results: dict[str, Any]) -> list[Check]:
    """One summary row per service, push and poll+delete together."""
    if "throughput" not in results:
        return []
    t = Throughput(results["throughput"])
    rows = []
    for service, name in SERVICE_NAMES.items():
        push, poll = target("requests", service, "push"), target("requests", service, "poll")
        push_count = t.per_message(service, "push", "ours")
        poll_count = t.per_message(service, "poll", "ours")
        values = {"service": name, "poll": poll, "push_count": push_count, "poll_count": poll_count}
        rows.append(Check(push, "requests", push.met(push_count) and poll.met(poll_count), values))
    return rows


def section(results: dict[str, Any], out: Path) -> str:
    """fluke-airflow's counts against the targets; the chart compares every contender's."""
    if "throughput" not in results:
        return ""
    t = Throughput(results["throughput"])
    _chart(t, out)
    counts = []
    for row in targets_of("requests"):
        measured = t.per_message(row.service, row.op, "ours")
        label = panel_title(row.service, row.op)
        counts.append({"label": label, "target": row, "value": measured, "met": row.met(measured)})
    return render("request_counts", counts=counts)


def _chart(t: Throughput, out: Path) -> None:
    panels = []
    for row in targets_of("requests"):
        contenders = t.contenders(row.service)
        panels.append(
            (
                panel_title(row.service, row.op),
                [SHORT[c] for c in contenders],
                [t.per_message(row.service, row.op, c) for c in contenders],
                None,
            )
        )
    bar_chart(out / "requests.png", panels, "requests per message", "Requests per message, counted at the proxy")
