"""Turn ``results.json`` into the report (Markdown) and its charts.

Each measure has its module under :mod:`bench.report_sections`, the thresholds it is judged by
live in one table (:mod:`bench.report_sections.targets`), and :mod:`bench.report` renders the
blocks to Markdown; this module only puts the sections in order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from bench.report import Block, Report, to_markdown
from bench.report_sections import (
    client_cpu,
    environment,
    events,
    idle,
    latency,
    memory,
    network,
    overview,
    parse_cost,
    request_counts,
    throughput,
)
from bench.report_sections.targets import Check, in_summary_order


class Measure(Protocol):
    """What a measure module offers: its summary rows, and its blocks (writing its charts to ``out``)."""

    def checks(self, results: dict[str, Any]) -> list[Check]: ...

    def section(self, results: dict[str, Any], out: Path) -> list[Block]: ...


MEASURES: tuple[Measure, ...] = (
    throughput,
    request_counts,
    client_cpu,
    network,
    idle,
    latency,
    events,
    parse_cost,
    memory,
)
"""In the report's order; the summary follows the targets table instead."""


def build(results: dict[str, Any], out: Path) -> Report:
    report = Report("fluke-airflow benchmarks")
    checks = in_summary_order([check for measure in MEASURES for check in measure.checks(results)])
    opening = overview.section(results, checks)
    closing = environment.section(results)
    report.add(*opening)
    for measure in MEASURES:
        report.add(*measure.section(results, out))
    report.add(*closing)
    return report


def write_report(results: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    report = build(results, out)
    (out / "README.md").write_text(to_markdown(report))
