"""Turn ``results.json`` into the report (``README.md``) and its charts.

Each measure has its module under :mod:`bench.report_sections`, which computes the numbers and
verdicts, and its template under ``bench/templates/``, which says them; the thresholds they are
judged by live in one table (:mod:`bench.report_sections.targets`). This module only puts the
sections in order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from bench.report import markdown
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

TITLE = "# fluke-airflow benchmarks"


class Measure(Protocol):
    """What a measure module offers: its summary rows, and its Markdown (writing its charts to ``out``)."""

    def checks(self, results: dict[str, Any]) -> list[Check]: ...

    def section(self, results: dict[str, Any], out: Path) -> str: ...


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


def build(results: dict[str, Any], out: Path) -> str:
    """The report's Markdown; the sections write their charts into ``out`` on the way."""
    checks = in_summary_order([check for measure in MEASURES for check in measure.checks(results)])
    sections = [measure.section(results, out) for measure in MEASURES]
    return markdown("\n\n".join([TITLE, overview.section(results, checks), *sections, environment.section(results)]))


def write_report(results: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "README.md").write_text(build(results, out))
