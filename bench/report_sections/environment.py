"""The report's end: the machine and versions of the run, its notes, the emulators' caveats, how to reproduce.

Not a measure: nothing here is judged against a target, but every number above depends on it.
"""

from __future__ import annotations

from typing import Any

from bench.report import render


def section(results: dict[str, Any]) -> str:
    return render(
        "environment",
        results=results,
        m=results["machine"],
        v=results["versions"],
        fluke_api=results.get("versions_fluke_api", {}),
        minutes=results.get("seconds", 0) / 60,
    )
