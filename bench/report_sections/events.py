"""Event-driven throughput: messages pushed to a queue, processed by the DAG runs an AssetWatcher starts.

No target: the first measurement is the baseline. The section reports what ``bench/events.py``
measured and, from each run's timestamps, where a message's time went.
"""

from __future__ import annotations

import itertools
import statistics
from pathlib import Path
from typing import Any

from bench.report import render
from bench.report_sections.targets import Check

SERVICE_LABELS = {"sqs": "SQS (moto)", "azure": "Azure (Azurite)"}
STAGES = (
    ("event_to_queued", "asset event to run queued"),
    ("queued_to_ti_start", "run queued to task start"),
    ("ti_seconds", "task start to end"),
    ("ti_end_to_end", "task end to run end"),
)


def checks(results: dict[str, Any]) -> list[Check]:
    return []


def _relative(path: str) -> str:
    from bench.protocol import ROOT

    return str(Path(path).relative_to(ROOT)) if Path(path).is_relative_to(ROOT) else path


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def stage_medians(r: dict[str, Any]) -> dict[str, float | None]:
    """Per phase: the median over its runs of each stage, and the median gap between runs' ends."""
    details = r["run_details"]
    medians = {key: _median([d[key] for d in details]) for key, _ in STAGES}
    ends = sorted(d["end"] for d in details)
    medians["end_gap"] = _median([b - a for a, b in itertools.pairwise(ends)]) if len(ends) > 1 else None
    medians["turnaround"] = _median(turnarounds(details))
    return medians


def turnarounds(details: list[dict[str, Any]]) -> list[float | None]:
    """From one task's end to the next one's start, where the next was queued already (it waited for
    the one executor slot): the executor's time between two tasks."""
    tasks = sorted((d for d in details if d["ti_start"] is not None), key=lambda d: d["ti_start"])
    return [
        b["ti_start"] - a["ti_end"]
        for a, b in itertools.pairwise(tasks)
        if a["ti_end"] is not None and b["ti_queued"] is not None and b["ti_queued"] <= a["ti_end"]
    ]


def section(results: dict[str, Any], out: Path) -> str:
    events = results.get("events")
    if not events:
        return ""
    if "failed" in events:
        logs = _relative(events["logs"]) if events.get("logs") else None
        return render("events", failed=str(events["failed"]).replace("`", "'"), logs=logs)
    phases = [
        dict(r, label=SERVICE_LABELS.get(service, service), phase=phase, stages=stage_medians(r))
        for service, service_phases in events["services"].items()
        for phase, r in service_phases.items()
    ]
    loads = [events.get("load_average_start", [0.0])[0], events.get("load_average_end", [0.0])[0]]
    cpus = (results.get("machine") or {}).get("cpus") or 1
    modes = [
        {"label": SERVICE_LABELS.get(service, service), "ack": ph["burst"], "success": ph["success"]}
        for service, ph in events["services"].items()
        if "burst" in ph and "success" in ph
    ]
    return render(
        "events",
        failed=None,
        events=events,
        phases=phases,
        modes=modes,
        stages=STAGES,
        bounds=_bounds(events),
        loads=loads,
        cpus=cpus,
        busy=max(loads) > 0.75 * cpus,
    )


def _quarters(r: dict[str, Any], key: str) -> tuple[float | None, float | None]:
    """The median of ``key`` over the first and over the last quarter of a phase's runs (by end)."""
    details = sorted(r["run_details"], key=lambda d: d["end"])
    size = max(1, len(details) // 4)
    return _median([d[key] for d in details[:size]]), _median([d[key] for d in details[-size:]])


def handed_rate(r: dict[str, Any]) -> float | None:
    """Messages per second the watcher handed to Airflow: the phase's messages over the time from the
    first push to its last asset event."""
    lasts = [d["event_last"] for d in r["run_details"] if d["event_last"] is not None]
    return r["messages"] / max(lasts) if lasts and max(lasts) > 0 else None


def _bounds(events: dict[str, Any]) -> dict[str, Any] | None:
    """What bounds the rate, read per phase from the stage timings above (the prose follows the numbers)."""
    services = events["services"]
    phases = {(s, p): r for s, ph in services.items() for p, r in ph.items()}
    if not phases:
        return None
    medians = {key: stage_medians(r) for key, r in phases.items()}
    paces = [p for r in phases.values() if (p := r.get("between_events", {}).get("p50")) is not None]
    bounds = []
    for (service, phase), r in phases.items():
        handed = handed_rate(r)
        if handed is None:
            continue
        wait = medians[(service, phase)]["queued_to_ti_start"]
        pace = r.get("between_events", {}).get("p50")
        details = r["run_details"]
        bound = {"label": f"{SERVICE_LABELS.get(service, service)} {phase}", "handed": handed, "rate": r["rate"]}
        bound["wait"], bound["by"] = wait, "hand-over"
        if r["rate"] < 0.8 * handed and (wait is None or pace is None or wait <= pace):
            bound["by"] = "run"
            bound["tail"] = max(d["end"] for d in details) - max(d["event_last"] or 0.0 for d in details)
        elif r["rate"] < 0.8 * handed:
            bound["by"] = "tasks"
        bounds.append(bound)
    streams = []
    for service, phases_of in services.items():
        if "stream" not in phases_of:
            continue
        first, last = _quarters(phases_of["stream"], "queued_to_ti_start")
        grew = first is not None and last is not None and last > first + 5
        label = SERVICE_LABELS.get(service, service)
        streams.append({"label": label, "first": first, "last": last, "grew": grew, **phases_of["stream"]})
    return {
        "to_run": _median([m["event_to_queued"] for m in medians.values()]),
        "task": _median([m["ti_seconds"] for m in medians.values()]),
        "turnaround": _median([m["turnaround"] for m in medians.values()]),
        "paces": (min(paces), max(paces)) if paces else None,
        "phases": bounds,
        "streams": streams,
        "held": sum(s["holding_notices"] for s in streams),
    }
