"""Sections printed at the end of the run: the accounting of the load and fault scenarios.

A scenario appends its accounting line to ``section(title)``; tests/conftest.py prints every section in
the terminal summary, also without ``-s``. Under pytest-xdist each worker holds its own sections, and
sends them to the controller when it finishes (tests/conftest.py), which prints them as one run's.
"""

from __future__ import annotations

SECTIONS: dict[str, list[str]] = {}


def section(title: str) -> list[str]:
    """The lines of the section ``title`` (created empty on first use), to append to."""
    return SECTIONS.setdefault(title, [])
