"""Client CPU per 1,000 messages: what each contender's own process spends, whatever the emulator costs.

Every throughput worker reports the user + system CPU time of its process (all threads,
``getrusage(RUSAGE_SELF)``) over the same timed part as its wall time; the emulators and the
proxy run in other processes, so none of their CPU is in it. The network section reuses
:func:`table` and :func:`misses` for its runs with a round trip.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.report import NOT_MEASURED, Block, Heading, Image, Para, Table, bar_chart, ratio, verdict
from bench.report_sections.names import SHORT, panel_title
from bench.report_sections.stats import Throughput
from bench.report_sections.targets import Check, Target, targets_of
from bench.throughput import LABELS

CHART = Image("cpu.png", "Client CPU seconds per 1,000 messages per contender")


def _cpu(t: Throughput, target: Target) -> tuple[float | None, float | None]:
    """fluke-airflow's and fluke-api's median CPU seconds per 1,000 messages (None: not measured)."""
    return (
        t.cpu_per_1000(target.service, target.op, "ours"),
        t.cpu_per_1000(target.service, target.op, "fluke-api"),
    )


def _seconds(value: float | None) -> str:
    return "not measured" if value is None else f"{value:.3f}"


def _measured(t: Throughput) -> bool:
    return any(r.get("cpu_seconds") is not None for r in t.runs)


def checks(results: dict[str, Any]) -> list[Check]:
    if "throughput" not in results:
        return []
    t = Throughput(results["throughput"])
    rows = []
    for target in targets_of("cpu"):
        ours, base = _cpu(t, target)
        measure = f"{panel_title(target.service, target.op)}: client CPU per 1,000 messages"
        wanted = f"{target.text} fluke-api 0.5.0's"
        if ours is None or not base:
            missing = [name for name, value in (("fluke-airflow", ours), ("fluke-api", base)) if not value]
            rows.append(
                Check(
                    target,
                    measure,
                    wanted,
                    f"not measured (no CPU time for {', '.join(missing)})",
                    False,
                    measured=False,
                )
            )
            continue
        rows.append(
            Check(
                target,
                measure,
                wanted,
                f"{ours:.3f} vs {base:.3f} CPU s = {ratio(ours / base)}",
                target.met(ours / base),
            )
        )
    return rows


def misses(t: Throughput) -> tuple[list[str], list[str]]:
    """The targets this measure misses (with by how much) and the ones it could not judge."""
    missed, unmeasured = [], []
    for target in targets_of("cpu"):
        label = panel_title(target.service, target.op)
        ours, base = _cpu(t, target)
        if ours is None or not base:
            if t.runs_of(target.service, target.op, "ours"):
                unmeasured.append(label)
            continue
        if not target.met(ours / base):
            allowed = target.threshold * base
            missed.append(
                f"{label} at {ratio(ours / base)} ({ours:.3f} vs {base:.3f} CPU s per 1,000 messages; the target "
                f"allows {allowed:.3f} s, so fluke-airflow would need {ours - allowed:.3f} s less, "
                f"{100 * (ours - allowed) / ours:.0f} % of its CPU)"
                + _bound(t, target.service, target.op, ours, allowed)
            )
    return missed, unmeasured


def _bound(t: Throughput, service: str, op: str, ours: float, allowed: float) -> str:
    """What bounds a miss: the SDK's own cost per message, as the limit contender (the SDK's asyncio
    client, no per-message work of its own) measured it in the same run."""
    sdk = t.cpu_per_1000(service, op, "limit")
    if sdk is None:
        return ""
    if service == "sqs" and op == "poll":
        return (
            f"; the SDK alone (the limit contender) used {sdk:.3f} s. fluke-airflow's receives and deletes already "
            "skip botocore's per-request machinery (`queues/sqs_direct.py`); what is left is botocore's serialising, "
            "signing and parsing, the HTTP client's own work per request, and fluke-airflow's work per message "
            "(message objects, the flow's steps, metrics, the thread pool). The next step would be an HTTP client "
            "and a JSON parser of our own, beside botocore's, which is not built"
        )
    if sdk >= allowed:
        return (
            f"; the SDK alone (the limit contender) used {sdk:.3f} s, already above what the target allows: no "
            "client that makes each request through this SDK's client meets it; it would take a request path "
            "beside the client's per-request machinery, as `queues/sqs_direct.py` has for SQS's receives and "
            "deletes, which this operation does not have"
        )
    return (
        f"; the SDK alone (the limit contender) used {sdk:.3f} s, so {ours - sdk:.3f} s per 1,000 messages are "
        "fluke-airflow's own work around the requests (message objects, the flow's steps, metrics, the blocking "
        "classes' thread pool)"
    )


def table(t: Throughput) -> Table:
    """One row per service and operation: every contender's median CPU seconds per 1,000 messages."""
    order = ("ours", "ours-async", "fluke-api", "airflow", "limit")
    contenders = [c for c in order if any(t.runs_of(x.service, x.op, c) for x in targets_of("cpu"))]
    rows = []
    for target in targets_of("cpu"):
        service, op = target.service, target.op
        if not t.runs_of(service, op, "ours"):
            continue
        ours, base = _cpu(t, target)
        cells = []
        for c in contenders:
            if not t.runs_of(service, op, c):
                cells.append("-")
                continue
            value = t.cpu_per_1000(service, op, c)
            busy = t.cpu_busy(service, op, c)
            cells.append(_seconds(value) + (f" ({100 * busy:.0f} %)" if busy is not None else ""))
        rows.append(
            [
                panel_title(service, op),
                *cells,
                ratio(ours / base) if ours is not None and base else "not measured",
                ", ".join(f"{x:.2f}" for x in t.cpu_round_ratios(service, op, "ours")) or "-",
                f"{target.text}: " + (verdict(target.met(ours / base)) if ours is not None and base else NOT_MEASURED),
            ]
        )
    return Table(
        [
            "operation",
            *[f"{LABELS[c]}" for c in contenders],
            "fluke-airflow / fluke-api",
            "round by round",
            "issue's target",
        ],
        rows,
        "client CPU seconds per 1,000 messages (median over rounds; in brackets: CPU over wall time, "
        "the share of one core the client kept busy)",
    )


def section(results: dict[str, Any], out: Path) -> list[Block]:
    if "throughput" not in results:
        return []
    t = Throughput(results["throughput"])
    blocks: list[Block] = [Heading("Client CPU per 1,000 messages", 3)]
    if not _measured(t):
        return [
            *blocks,
            Para(
                "Not measured: the runs in this results.json carry no CPU time (they predate the measure, or no "
                "worker reported it), so the targets on client CPU are **not measured** in the summary."
            ),
        ]
    missed, unmeasured = misses(t)
    fv = results.get("versions_fluke_api", {})
    blocks += [
        Para(
            "The CPU time (user + system, every thread) of the contender's own worker process over the same timed "
            "part as its wall time, from its first request of the operation to its end, read with "
            "`getrusage(RUSAGE_SELF)` inside the worker: the interpreter's start, the imports and opening the "
            "queue are not in it, nor the emulator's or the proxy's CPU (other processes). It depends less than "
            "the wall time on how busy the machine is (other work still slows every instruction somewhat) and not "
            "on how fast the emulator answers: a request waiting for its answer costs no CPU. fluke-api runs with "
            f"its own pins (boto3 {fv.get('boto3', '?')}, azure-storage-queue {fv.get('azure-storage-queue', '?')}), "
            "the others with this checkout's SDKs."
        ),
        table(t),
        CHART,
        Para(
            f"Target: fluke-airflow {' / '.join(sorted({x.text for x in targets_of('cpu')}))} fluke-api 0.5.0's "
            "CPU per 1,000 messages on each operation. "
            + ("Met on every operation measured." if not missed else "Missed on " + "; ".join(missed) + ".")
            + (f" Not measured: {', '.join(unmeasured)}." if unmeasured else "")
        ),
    ]
    _chart(t, out)
    return blocks


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
            out / CHART.file,
            panels,
            "CPU s per 1,000 messages",
            "Client CPU (user + system of the contender's process, timed part only; median, bars: min-max)",
        )
