"""The report's opening: how it was measured, the summary of every target, and how to read a miss."""

from __future__ import annotations

from typing import Any

from bench.report import render
from bench.report_sections.targets import Check


def section(results: dict[str, Any], checks: list[Check]) -> str:
    """``checks`` are the summary's rows, in the order of the targets table."""
    m = results["machine"]
    loads = [m["load_average_start"][0], *m.get("load_average_end", [0.0])[:1]]
    # A busy machine makes times noisy, not request counts: the template says so before the numbers.
    busy = max(loads) > 0.75 * (m["cpus"] or 1)
    return render("overview", results=results, checks=checks, loads=loads, busy=busy)
