"""Arrival latency: from a push's return to the trigger's event, at the idle cost measured by ``idle``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.report import cdf_chart, render
from bench.report_sections.names import TRIGGER_LABELS
from bench.report_sections.stats import idle_rate, percentile
from bench.report_sections.targets import Check, target

P50 = target("latency", "sqs", "p50")
IDLE_RATE = target("latency", "sqs", "idle requests/min/trigger")


def checks(results: dict[str, Any]) -> list[Check]:
    """Latency is only worth its idle cost: the check reads the idle run's requests per trigger too."""
    latency = results.get("latency", {})
    f = latency.get("fluke") if latency else None
    if not f:
        return []
    p50 = percentile(sorted(f["samples"]), 50)
    rate = idle_rate(results, "fluke")
    fluke_rate = float("nan") if rate is None else rate
    amazon = percentile(sorted(latency["amazon"]["samples"]), 50) if "amazon" in latency else None
    values = {"idle_rate": IDLE_RATE, "p50": p50, "rate": fluke_rate, "amazon_p50": amazon}
    return [Check(P50, "latency", P50.met(p50) and IDLE_RATE.met(fluke_rate), values)]


def section(results: dict[str, Any], out: Path) -> str:
    latency = results.get("latency", {})
    if not latency:
        return ""
    rows = []
    for kind, r in latency.items():
        samples = sorted(r["samples"])
        rows.append(
            {
                "kind": kind,
                "label": TRIGGER_LABELS[kind],
                "samples": samples,
                "missing": r["missing"],
                "p50": percentile(samples, 50),
                "p90": percentile(samples, 90),
                "idle_rate": idle_rate(results, kind),
                "met": bool(samples) and P50.met(percentile(samples, 50)),
            }
        )
    cdf_chart(
        out / "latency.png",
        {TRIGGER_LABELS[k]: r["samples"] for k, r in latency.items()},
        "seconds from push to trigger event (log scale above 1 s)",
        "Arrival latency on SQS (moto)",
    )
    notes = {row["kind"]: row for row in rows if row["samples"]}
    return render("latency", rows=rows, fluke=notes.get("fluke"), amazon=notes.get("amazon"), p50_target=P50)
