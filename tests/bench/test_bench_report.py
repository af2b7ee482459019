"""The benchmark report: docs/benchmarks/README.md is what the report code and its templates
render from docs/benchmarks/results.json, and the templates' wrapped lines come out as Markdown's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.build_report import build
from bench.report import markdown

pytestmark = pytest.mark.unit

DOCS = Path(__file__).resolve().parents[2] / "docs" / "benchmarks"


def test_committed_report_is_what_its_results_render(tmp_path: Path) -> None:
    """A change to the report's code, its templates or a default it cites (max_concurrency) needs
    the page re-rendered: python -m bench --report-only."""
    results = json.loads((DOCS / "results.json").read_text())

    rendered = build(results, tmp_path)

    assert rendered == (DOCS / "README.md").read_text(), "re-render it: python -m bench --report-only"
    assert {path.name for path in tmp_path.iterdir()} >= {"throughput.png", "requests.png", "cpu.png", "idle.png"}


def test_markdown_joins_wrapped_lines_per_block() -> None:
    kept = ["```", "make bench   # as it is", "not joined", "```", "![chart](x.png)", ""]
    wrapped = ["## A heading", "A paragraph wrapped", "over two lines.", "", ""]
    wrapped += ["| a | b |", "| --- | --- |", "| 1 |", "- |", "| 2 | 3 |", ""]
    wrapped += ["- an item", "wrapped", "- another item", "", *kept]

    joined = ["## A heading", "A paragraph wrapped over two lines.", ""]
    joined += ["| a | b |", "| --- | --- |", "| 1 | - |", "| 2 | 3 |", ""]
    joined += ["- an item wrapped", "- another item", "", *kept]
    assert markdown("\n".join(wrapped)) == "\n".join(joined)


def test_a_measure_run_on_its_own_replaces_only_its_section_and_says_so() -> None:
    """``python -m bench --only events`` keeps the report's other measures (``merged``)."""
    from bench.__main__ import merged

    earlier = {"date": "d1", "command": "make bench", "throughput": {"a": 1}, "events": {"old": True}}
    again = {"date": "d2", "command": "python -m bench --only events", "events": {"new": True},
             "machine": {"load_average_start": [3.0, 2.0, 1.0]}}  # fmt: skip
    result = merged(earlier, again)
    assert result["throughput"] == {"a": 1} and result["events"] == {"new": True} and result["date"] == "d1"
    (note,) = result["notes"]
    assert "events" in note and "python -m bench --only events" in note and "d2" in note
