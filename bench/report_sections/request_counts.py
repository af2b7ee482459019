"""Requests per message, counted at the proxy: what a cloud bill would count, whatever the machine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.report import Block, Heading, Image, Para, Table, bar_chart, verdict
from bench.report_sections.names import SHORT, panel_title
from bench.report_sections.stats import Throughput
from bench.report_sections.targets import Check, target, targets_of

CHART = Image("requests.png", "Requests per message per contender")
"""Shown in the throughput chapter's introduction, next to the throughput chart."""

ROWS = {
    ("sqs", "push"): ("SQS push", "SendMessageBatch carries 10 entries (its limit)"),
    ("sqs", "poll"): (
        "SQS poll+delete",
        "ReceiveMessage returns ≤ 10, DeleteMessageBatch takes ≤ 10: 0.2, "
        "plus the one empty receive that ends the poll",
    ),
    ("azure", "push"): ("Azure push", "Azure has no batch send: one Put Message each, sent concurrently"),
    ("azure", "poll"): (
        "Azure poll+delete",
        "one Get Messages per 32, one Delete Message each, plus the empty receive at the end",
    ),
}
"""Per target: the table's row label and why fluke-airflow's count is what it is."""

SUMMARY = {"sqs": "SQS requests per message", "azure": "Azure requests per message"}


def checks(results: dict[str, Any]) -> list[Check]:
    """One summary row per service, push and poll+delete together."""
    if "throughput" not in results:
        return []
    t = Throughput(results["throughput"])
    rows = []
    for service, measure in SUMMARY.items():
        push, poll = target("requests", service, "push"), target("requests", service, "poll")
        push_count = t.per_message(service, "push", "ours")
        poll_count = t.per_message(service, "poll", "ours")
        rows.append(
            Check(
                push,
                measure,
                f"push {push.text}, poll+delete {poll.text}",
                f"push {push_count:.3f}, poll+delete {poll_count:.3f}",
                push.met(push_count) and poll.met(poll_count),
            )
        )
    return rows


def section(results: dict[str, Any], out: Path) -> list[Block]:
    """fluke-airflow's counts against the targets; the chart compares every contender's."""
    if "throughput" not in results:
        return []
    t = Throughput(results["throughput"])
    rows = []
    for row in targets_of("requests"):
        measured = t.per_message(row.service, row.op, "ours")
        label, why = ROWS[(row.service, row.op)]
        rows.append([label, f"{measured:.3f}", row.text, verdict(row.met(measured)), why])
    _chart(t, out)
    return [
        Heading("Requests per message", 3),
        Table(["", "measured (fluke-airflow)", "target", "met?", "why this number"], rows),
        Para(
            "These counts come from the proxy, so they are what a cloud bill would count; `make test` checks "
            "the same limits exactly on 200 messages (`tests/queues/test_request_counts.py`)."
        ),
    ]


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
    bar_chart(out / CHART.file, panels, "requests per message", "Requests per message, counted at the proxy")
