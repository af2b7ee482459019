"""Arrival latency: from a push's return to the trigger's event, at the idle cost measured by ``idle``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.report import Block, Heading, Image, Para, Table, cdf_chart
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
    return [
        Check(
            P50,
            "Arrival latency (SQS)",
            f"p50 {P50.text} with {IDLE_RATE.text} idle requests/min/trigger",
            f"p50 {p50:.2f} s, {fluke_rate:.2f} requests/min/trigger"
            + (
                f" (SqsSensorTrigger: p50 {percentile(sorted(latency['amazon']['samples']), 50):.1f} s)"
                if "amazon" in latency
                else ""
            ),
            P50.met(p50) and IDLE_RATE.met(fluke_rate),
        )
    ]


def section(results: dict[str, Any], out: Path) -> list[Block]:
    latency = results.get("latency", {})
    if not latency:
        return []
    rows = []
    for kind, r in latency.items():
        samples = sorted(r["samples"])
        rate = idle_rate(results, kind)
        idle_cost = f"{rate:.2f}" if rate is not None else ""
        p50, p90 = percentile(samples, 50), percentile(samples, 90)
        rows.append(
            [
                TRIGGER_LABELS[kind],
                str(len(samples)) + (f" ({r['missing']} missing)" if r["missing"] else ""),
                f"{p50:.2f} s",
                f"{p90:.2f} s",
                f"{min(samples):.2f}-{max(samples):.2f} s" if samples else "n/a",
                idle_cost,
            ]
        )
    cdf_chart(
        out / "latency.png",
        {TRIGGER_LABELS[k]: r["samples"] for k, r in latency.items()},
        "seconds from push to trigger event (log scale above 1 s)",
        "Arrival latency on SQS (moto)",
    )
    return [
        Heading("Arrival latency"),
        Para(
            "Time from a push's return (one message, sent directly to moto) to the trigger's event, one "
            "trigger per queue, all started together; the pushes are spread evenly over one polling cycle "
            "of the trigger (20 s; 61 s) in random order, so they meet the triggers at every phase of their "
            "cycle. Idle requests per minute per trigger come from the idle-trigger runs above (the highest of them)."
        ),
        Table(["trigger", "samples", "p50", "p90", "min-max", "idle requests/min/trigger"], rows),
        Image("latency.png", "Arrival latency distribution"),
        *_notes(latency),
    ]


def _notes(latency: dict[str, Any]) -> list[Block]:
    """Why the two triggers' latencies differ by two orders of magnitude."""
    notes: list[Block] = []
    f = latency.get("fluke")
    if f and f["samples"]:
        p50 = percentile(sorted(f["samples"]), 50)
        text = f"`QueuePollTrigger`: p50 {p50:.2f} s."
        text += (
            " The trigger's 20 s long poll returns the message within milliseconds of the push (moto wakes the "
            "waiting receive at once). A receive that came back with fewer messages than it asked for found the "
            "queue drained, so the delivery is filled only with what has arrived meanwhile (0 s receives) and "
            "goes out at once; only after a full receive do fill-up receives wait (up to 1 s, because a 0 s "
            "receive samples only some SQS servers and may come back short). The previous report measured p50 "
            "1.01 s, when every delivery waited up to a second for a fill-up receive."
        )
        if not P50.met(p50):
            text += f" Target p50 {P50.text}: missed."
        notes.append(Para(text))
    a = latency.get("amazon")
    if a and a["samples"]:
        notes.append(
            Para(
                f"`SqsSensorTrigger` with its defaults: p50 {percentile(sorted(a['samples']), 50):.1f} s, p90 "
                f"{percentile(sorted(a['samples']), 90):.1f} s: it receives with a 1 s wait once every "
                "`waiter_delay=60` s (the sensor's `poke_interval`), so a message waits on average half a minute."
            )
        )
    return notes
