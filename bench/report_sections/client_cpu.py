"""Client CPU per 1,000 messages: what each contender's own process spends, whatever the emulator costs.

Every throughput worker reports the user + system CPU time of its process (all threads,
``getrusage(RUSAGE_SELF)``) over the same timed part as its wall time; the emulators and the
proxy run in other processes, so none of their CPU is in it. The network section reuses
:func:`numbers` (and the template's macros, ``cpu.md.j2``) for its runs with a round trip.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.report import bar_chart, render
from bench.report_sections.names import SHORT, panel_title
from bench.report_sections.stats import Throughput
from bench.report_sections.targets import Check, Target, targets_of
from bench.throughput import LABELS

CONTENDERS = ("ours", "ours-async", "fluke-api", "airflow", "limit")


def _cpu(t: Throughput, target: Target) -> tuple[float | None, float | None]:
    """fluke-airflow's and fluke-api's median CPU seconds per 1,000 messages (None: not measured)."""
    return (
        t.cpu_per_1000(target.service, target.op, "ours"),
        t.cpu_per_1000(target.service, target.op, "fluke-api"),
    )


def checks(results: dict[str, Any]) -> list[Check]:
    if "throughput" not in results:
        return []
    t = Throughput(results["throughput"])
    rows = []
    for target in targets_of("cpu"):
        ours, base = _cpu(t, target)
        values: dict[str, Any] = {"title": panel_title(target.service, target.op), "ours": ours, "base": base}
        if ours is None or not base:
            missing = [name for name, value in (("fluke-airflow", ours), ("fluke-api", base)) if not value]
            rows.append(Check(target, "cpu", False, values | {"missing": missing}, measured=False))
        else:
            rows.append(Check(target, "cpu", target.met(ours / base), values | {"missing": [], "ratio": ours / base}))
    return rows


def numbers(t: Throughput) -> dict[str, Any]:
    """The CPU table (one row per service and operation, every contender's median CPU seconds per
    1,000 messages), the targets it misses with by how much and what bounds them, and the ones it
    could not judge."""
    contenders = [c for c in CONTENDERS if any(t.runs_of(x.service, x.op, c) for x in targets_of("cpu"))]
    rows, missed, unmeasured = [], [], []
    for target in targets_of("cpu"):
        service, op = target.service, target.op
        if not t.runs_of(service, op, "ours"):
            continue
        label = panel_title(service, op)
        ours, base = _cpu(t, target)
        ratio = ours / base if ours is not None and base else None
        cells = [
            {
                "ran": bool(t.runs_of(service, op, c)),
                "value": t.cpu_per_1000(service, op, c),
                "busy": None if (busy := t.cpu_busy(service, op, c)) is None else 100 * busy,
            }
            for c in contenders
        ]
        met = ratio is not None and target.met(ratio)
        rounds = t.cpu_round_ratios(service, op, "ours")
        rows.append({"label": label, "cells": cells, "ratio": ratio, "rounds": rounds, "target": target, "met": met})
        if ratio is None:
            unmeasured.append(label)
        elif not met:
            missed.append(_miss(t, target, label, ratio))
    return {"contenders": [LABELS[c] for c in contenders], "rows": rows, "missed": missed, "unmeasured": unmeasured}


def _miss(t: Throughput, target: Target, label: str, ratio: float) -> dict[str, Any]:
    """A missed target by how much, and what bounds it: the SDK's own cost per message, as the limit
    contender (the SDK's asyncio client, no per-message work of its own) measured it in the same run."""
    ours, base = _cpu(t, target)
    assert ours is not None and base is not None
    allowed = target.threshold * base
    sdk = t.cpu_per_1000(target.service, target.op, "limit")
    bound = None
    if sdk is not None:
        sqs_poll = (target.service, target.op) == ("sqs", "poll")
        bound = "sqs poll" if sqs_poll else "sdk" if sdk >= allowed else "own"
    return {
        "label": label,
        "ratio": ratio,
        "ours": ours,
        "base": base,
        "allowed": allowed,
        "need": ours - allowed,
        "need_share": 100 * (ours - allowed) / ours,
        "sdk": sdk,
        "bound": bound,
        "own": None if sdk is None else ours - sdk,
    }


def section(results: dict[str, Any], out: Path) -> str:
    if "throughput" not in results:
        return ""
    t = Throughput(results["throughput"])
    measured = any(r.get("cpu_seconds") is not None for r in t.runs)
    if measured:
        _chart(t, out)
    return render(
        "client_cpu",
        measured=measured,
        cpu=numbers(t),
        targets=sorted({x.text for x in targets_of("cpu")}),
        fluke_api=results.get("versions_fluke_api", {}),
    )


def _chart(t: Throughput, out: Path) -> None:
    panels = []
    for target in targets_of("cpu"):
        service, op = target.service, target.op
        contenders = [c for c in t.contenders(service) if t.cpu_per_1000(service, op, c) is not None]
        if not contenders:
            continue
        values = [t.cpu_per_1000s(service, op, c) for c in contenders]
        panels.append(
            (
                panel_title(service, op),
                [SHORT[c] for c in contenders],
                [t.cpu_per_1000(service, op, c) or 0.0 for c in contenders],
                [(min(v), max(v)) for v in values],
            )
        )
    if panels:
        bar_chart(
            out / "cpu.png",
            panels,
            "CPU s per 1,000 messages",
            "Client CPU (user + system of the contender's process, timed part only; median, bars: min-max)",
        )
