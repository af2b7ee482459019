"""Idle triggers: memory, CPU and requests of many triggers waiting on empty queues in one event loop.

fluke-airflow's ``QueuePollTrigger`` runs at 500 and at 1,000 triggers (the quick preset: 50 and
100, which the targets do not judge); the amazon provider's ``SqsSensorTrigger`` at the first
count only, as a comparison.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.report import bar_chart, render
from bench.report_sections.names import TRIGGER_LABELS
from bench.report_sections.stats import (
    above_baseline,
    idle_measured,
    idle_runs,
    requests_per_minute,
    requests_per_minute_per_trigger,
)
from bench.report_sections.targets import Check, Target, target

CPU = {500: target("idle", "sqs", "cpu at 500"), 1000: target("idle", "sqs", "cpu at 1000")}
"""The CPU target per trigger count, smallest first; the smallest count's run sets the request rate."""
RSS = target("idle", "sqs", "rss")
RATE = target("idle", "sqs", "request rate")
REFERENCE = min(CPU)
LONG_POLL = 20.0
"""Seconds each idle receive asks SQS to wait (the trigger's default, SQS's longest)."""


def _reference(results: dict[str, Any]) -> dict[str, Any] | None:
    """The fluke run whose requests/min/trigger the larger runs must keep: the one at the smallest target count."""
    return next((r for r in idle_measured(results, "fluke") if int(r["count"]) == REFERENCE), None)


def _rate_change(run: dict[str, Any], reference: dict[str, Any]) -> float:
    """This run's requests/min/trigger against the reference run's, in percent (negative: fewer)."""
    base = requests_per_minute_per_trigger(reference)
    return 100.0 * (requests_per_minute_per_trigger(run) / base - 1.0) if base else float("nan")


def _numbers(run: dict[str, Any]) -> dict[str, Any]:
    """What the report says of a run that produced numbers."""
    count, above = int(run["count"]), above_baseline(run)
    return dict(
        run,
        count=count,
        label=TRIGGER_LABELS[run["kind"]],
        above=above,
        each=above / count / 1e6,
        per_minute=requests_per_minute(run),
        per_trigger=requests_per_minute_per_trigger(run),
        # The worker's CPU per request in the window, in ms.
        per_request_ms=run["cpu_percent"] / 100 * run["window"] / max(1, sum(run["requests"].values())) * 1000,
        served=_served(run),
        operations=sorted(run["requests"].items()),
    )


def _served(run: dict[str, Any]) -> dict[str, Any] | None:
    """What served the run's requests in its window, as measured (runs before this field: None)."""
    if "emulator_cpu_percent" not in run:
        return None
    spread = run.get("receive_seconds") or {}
    return dict(run, spread=spread if spread.get("count") else None)


def _problems(run: dict[str, Any], cpu: Target, reference: dict[str, Any] | None) -> list[dict[str, Any]]:
    """What keeps a fluke run from its targets; empty when it meets them all."""
    problems: list[dict[str, Any]] = []
    count = int(run["count"])
    if not cpu.met(run["cpu_percent"]):
        share = 100 * (run["cpu_percent"] / cpu.threshold - 1)
        problems.append({"kind": "cpu", "target": cpu, "over": run["cpu_percent"] - cpu.threshold, "share": share})
    above = above_baseline(run)
    if not RSS.met(above):
        problems.append({"kind": "rss", "above": above, "over": above - RSS.threshold})
    if run["alive"] != count or run["failures"]:
        problems.append({"kind": "alive", "failures": len(run["failures"])})
    if count != REFERENCE and reference is None:
        problems.append({"kind": "no reference"})
    elif count != REFERENCE and reference is not None and not RATE.met(abs(change := _rate_change(run, reference))):
        spread = run.get("receive_seconds") or {}
        behind = "unmeasured" if not spread.get("count") else "late" if spread["p50"] > 1.1 * LONG_POLL else "triggers"
        reference_rate = requests_per_minute_per_trigger(reference)
        problems.append({"kind": "rate", "change": change, "reference": reference_rate, "behind": behind})
    return problems


def checks(results: dict[str, Any]) -> list[Check]:
    """The targets are fluke-airflow's; the amazon trigger is only a comparison. One row per target count."""
    fluke = idle_runs(results, "fluke")
    if not fluke:
        return []
    reference = _reference(results)
    rows = []
    for index, (count, cpu) in enumerate(CPU.items()):
        values = {"count": count, "reference": REFERENCE, "rss": RSS, "rate": RATE, "error": None, "run": None}
        run = next((r for r in fluke if int(r["count"]) == count), None)
        if run is None:
            # A preset of other sizes (--quick): its run at the same place is shown, but not judged.
            other = fluke[index] if index < len(fluke) and "error" not in fluke[index] else None
            rows.append(Check(cpu, "idle", False, values | {"other": other and _numbers(other)}, measured=False))
        elif "error" in run:
            rows.append(Check(cpu, "idle", False, values | {"error": run["error"], "other": None}, measured=False))
        else:
            met = not _problems(run, cpu, reference)
            rows.append(Check(cpu, "idle", met, values | {"run": _numbers(run), "other": None}))
    return rows


def section(results: dict[str, Any], out: Path) -> str:
    runs = idle_runs(results)
    if not runs:
        return ""
    reference = _reference(results)
    rows = []
    for r in runs:
        if "error" in r:
            rows.append(dict(r, label=TRIGGER_LABELS[r["kind"]], count=int(r["count"])))
            continue
        row = _numbers(r)
        judged = r["kind"] == "fluke" and row["count"] in CPU
        row["change"] = (
            _rate_change(r, reference)
            if reference is not None and r["kind"] == "fluke" and row["count"] != REFERENCE
            else None
        )
        row["cpu_target"] = CPU[row["count"]] if judged else None
        row["met"] = judged and not _problems(r, CPU[row["count"]], reference)
        rows.append(row)
    measured = [r for r in runs if "error" not in r]
    if measured:
        _chart(measured, out)
    fluke = [_numbers(r) for r in idle_measured(results, "fluke")]
    botocore = next((_numbers(r) for r in idle_measured(results, "fluke-botocore")), None)
    # The comparison run through botocore, and the fluke run of as many triggers, are shown together.
    same = next((r for r in fluke if botocore and r["count"] == botocore["count"]), None)
    return render(
        "idle",
        rows=rows,
        counts=sorted({int(r["count"]) for r in runs if r["kind"] == "fluke"}),
        amazon_counts=sorted({int(r["count"]) for r in runs if r["kind"] == "amazon"}),
        window=measured[0]["window"] if measured else None,
        cpu_targets=CPU,
        rss=RSS,
        rate=RATE,
        reference=REFERENCE,
        failed=[row for row in rows if "error" in row],
        fluke=fluke,
        notes=[dict(n, problems=_problems(n, CPU[n["count"]], reference)) for n in fluke if n["count"] in CPU],
        cpu_missed=any(not CPU[n["count"]].met(n["cpu_percent"]) for n in fluke if n["count"] in CPU),
        botocore=botocore if same else None,
        same=same,
        amazon=next((_numbers(r) for r in idle_measured(results, "amazon")), None),
    )


def _chart(runs: list[dict[str, Any]], out: Path) -> None:
    names = [f"{TRIGGER_LABELS[r['kind']].split(' ')[0]} x{int(r['count']):,}" for r in runs]
    bar_chart(
        out / "idle.png",
        [
            ("RSS above baseline (MB)", names, [above_baseline(r) / 1e6 for r in runs], None),
            ("CPU, % of one core", names, [r["cpu_percent"] for r in runs], None),
            ("requests/min/trigger", names, [requests_per_minute_per_trigger(r) for r in runs], None),
        ],
        "",
        "Idle triggers in one event loop",
    )
