"""The targets the report checks, as one table, so that a threshold is changed in one place.

The sections compare their numbers with these rows and print the thresholds from them
(``Target.text``), so the summary, the tables and the prose cannot disagree. The order of
``TARGETS`` is the order of the report's summary.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

_SYMBOLS = {">=": "≥ ", "<=": "≤ ", "<": "< ", "==": ""}


@dataclass(frozen=True)
class Target:
    """``value <compare> threshold`` for one quantity (``op``) of one measure on one service.

    ``threshold`` is in the units ``results.json`` uses (bytes, percent, seconds, ratios);
    ``scale``, ``spec`` and ``unit`` say how the report writes it (``150e6`` as ``150 MB``).
    ``tolerance`` absorbs float noise in counts that are exact by construction.
    """

    measure: str
    service: str
    op: str
    threshold: float
    compare: str = "<="
    unit: str = ""
    scale: float = 1.0
    spec: str = "g"
    tolerance: float = 0.0

    def met(self, value: float) -> bool:
        if self.compare == ">=":
            return value >= self.threshold - self.tolerance
        if self.compare == "<=":
            return value <= self.threshold + self.tolerance
        if self.compare == "<":
            return value < self.threshold
        if self.compare == "==":
            return abs(value - self.threshold) < self.tolerance
        raise ValueError(f"unknown comparison {self.compare!r}")

    @property
    def shown(self) -> str:
        """The threshold as the report writes it, without the comparison: ``5x``, ``0.10``, ``150 MB``."""
        value = self.threshold / self.scale
        number = str(Fraction(value).limit_denominator(100)) if self.spec == "fraction" else f"{value:{self.spec}}"
        return number + self.unit

    @property
    def text(self) -> str:
        """The threshold with its comparison: ``≥ 5x``, ``≤ 0.21``; an exact target is just its value."""
        return _SYMBOLS[self.compare] + self.shown


TARGETS: tuple[Target, ...] = (
    # Throughput, ours over fluke-api 0.5.0 in msg/s (the network measure reuses these).
    Target("throughput", "sqs", "push", 5.0, ">=", unit="x"),
    Target("throughput", "sqs", "poll", 3.0, ">=", unit="x"),
    # Requests per message, counted at the proxy: SQS batches 10 per request.
    Target("requests", "sqs", "push", 0.10, spec=".2f", tolerance=1e-9),
    Target("requests", "sqs", "poll", 0.21, spec=".2f", tolerance=1e-9),
    Target("throughput", "azure", "push", 3.0, ">=", unit="x"),
    Target("throughput", "azure", "poll", 2.0, ">=", unit="x"),
    # Azure has no batch send: exactly one request per message.
    Target("requests", "azure", "push", 1.0, "==", spec=".1f", tolerance=1e-9),
    Target("requests", "azure", "poll", 1.05, spec=".2f", tolerance=1e-9),
    # Ours as a share of the ceiling contender (the SDK used for throughput alone, bench/limit.py).
    Target("ceiling", "sqs", "push", 0.9, ">=", spec=".1f"),
    Target("ceiling", "sqs", "poll", 0.9, ">=", spec=".1f"),
    Target("ceiling", "azure", "push", 0.9, ">=", spec=".1f"),
    Target("ceiling", "azure", "poll", 0.9, ">=", spec=".1f"),
    # On loopback never slower than the amazon provider (its SqsHook driven as its operators do).
    Target("vs amazon", "sqs", "push", 1.0, ">=", unit="x"),
    Target("vs amazon", "sqs", "poll", 1.0, ">=", unit="x"),
    # With the network measure's round trip (issue 13): ours over fluke-api, and of the ceiling.
    Target("network", "sqs", "push", 20.0, ">=", unit="x"),
    Target("network", "sqs", "poll", 4.0, ">=", unit="x"),
    Target("network", "azure", "push", 7.0, ">=", unit="x"),
    Target("network", "azure", "poll", 5.0, ">=", unit="x"),
    Target("network ceiling", "sqs", "push", 0.9, ">=", spec=".1f"),
    Target("network ceiling", "sqs", "poll", 0.9, ">=", spec=".1f"),
    Target("network ceiling", "azure", "push", 0.9, ">=", spec=".1f"),
    Target("network ceiling", "azure", "poll", 0.9, ">=", spec=".1f"),
    # Client CPU per 1,000 messages (user + system of the contender's own process, timed part only),
    # ours over fluke-api 0.5.0.
    Target("cpu", "sqs", "push", 0.5, unit="x"),
    Target("cpu", "sqs", "poll", 0.5, unit="x"),
    Target("cpu", "azure", "push", 0.5, unit="x"),
    Target("cpu", "azure", "poll", 0.5, unit="x"),
    # Idle QueuePollTriggers in one event loop, 500 and 1,000 of them: CPU in % of one core; RSS above
    # the baseline (at both counts); at the same idle request rate: the 1,000 run's requests/min/trigger
    # within this many percent of the 500 run's (fewer would mean triggers fell behind, flattering the CPU).
    Target("idle", "sqs", "cpu at 500", 5.0, unit=" %"),
    Target("idle", "sqs", "cpu at 1000", 10.0, unit=" %"),
    Target("idle", "sqs", "rss", 150e6, unit=" MB", scale=1e6),
    Target("idle", "sqs", "request rate", 5.0, unit=" %"),
    # Arrival latency, at an idle cost of at most 3 requests per minute per trigger.
    Target("latency", "sqs", "p50", 1.0, unit=" s"),
    Target("latency", "sqs", "idle requests/min/trigger", 3.0),
    # DAG-parse cost: no cloud SDK module, a share of the amazon sensor module's import time.
    Target("parse", "", "cloud SDK modules", 0),
    Target("parse", "", "share of amazon", 0.2, spec="fraction"),
    # Memory while polling: growth after the first batches, trend (absolute) in bytes per message.
    Target("memory", "sqs", "growth", 10e6, unit=" MB", scale=1e6),
    Target("memory", "sqs", "trend", 20.0, "<", unit=" bytes"),
)


def target(measure: str, service: str, op: str) -> Target:
    """The one row of ``TARGETS`` for this measure, service and quantity."""
    (row,) = (t for t in TARGETS if (t.measure, t.service, t.op) == (measure, service, op))
    return row


def targets_of(measure: str) -> tuple[Target, ...]:
    """A measure's rows, in table order (the order its sections list them)."""
    return tuple(t for t in TARGETS if t.measure == measure)


@dataclass(frozen=True)
class Check:
    """One row of the summary: a measure's result against one or more targets.

    ``target`` is the first target it checks and places the row in the summary; ``row`` names the
    macro of ``bench/templates/summary.md.j2`` that writes the row from ``values``. ``measured`` is
    False when the results hold no number to judge (a run that failed, a results.json older than
    the measure): the summary then says so instead of a verdict, and ``met`` is False.
    """

    target: Target
    row: str
    met: bool
    values: dict[str, Any]
    measured: bool = True


def in_summary_order(checks: list[Check]) -> list[Check]:
    return sorted(checks, key=lambda check: TARGETS.index(check.target))
