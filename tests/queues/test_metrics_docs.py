"""The operators' page lists every metric the queue layer emits, under its full name."""

from __future__ import annotations

from pathlib import Path

import pytest

from fluke_airflow.queues.metrics import COUNTERS, GAUGES, PREFIX, TIMERS

pytestmark = pytest.mark.unit

DOC = Path(__file__).resolve().parents[2] / "docs" / "operating.rst"


def test_every_metric_is_documented_and_no_other() -> None:
    text = DOC.read_text()
    names = {f"{PREFIX}.{name}" for name in (*COUNTERS, *GAUGES, *TIMERS)}
    for name in names:
        assert f"``{name}``" in text, f"{name} is missing from docs/operating.rst"
    documented = {
        word.strip("`") for line in text.splitlines() if line.startswith("   * - ``fluke_airflow.")
        for word in line.split()[2:3]
    }
    assert documented == names
