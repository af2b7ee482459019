"""Idle triggers: memory, CPU and requests of many triggers waiting on empty queues in one event loop.

fluke-airflow's ``QueuePollTrigger`` runs at 500 and at 1,000 triggers (the quick preset: 50 and
100, which the targets do not judge); the amazon provider's ``SqsSensorTrigger`` at the first
count only, as a comparison.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.report import NOT_MEASURED, Block, Heading, Image, Para, Table, bar_chart, mb, num, verdict
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


def _reference(results: dict[str, Any]) -> dict[str, Any] | None:
    """The fluke run whose requests/min/trigger the larger runs must keep: the one at the smallest target count."""
    return next((r for r in idle_measured(results, "fluke") if int(r["count"]) == REFERENCE), None)


def _rate_change(run: dict[str, Any], reference: dict[str, Any]) -> float:
    """This run's requests/min/trigger against the reference run's, in percent (negative: fewer)."""
    base = requests_per_minute_per_trigger(reference)
    return 100.0 * (requests_per_minute_per_trigger(run) / base - 1.0) if base else float("nan")


def _problems(run: dict[str, Any], cpu: Target, reference: dict[str, Any] | None) -> list[str]:
    """What keeps a fluke run from its targets; empty when it meets them all."""
    problems = []
    count = int(run["count"])
    if not cpu.met(run["cpu_percent"]):
        problems.append(
            f"CPU {run['cpu_percent']:.2f} % of one core against {cpu.text}, "
            f"{run['cpu_percent'] - cpu.threshold:.2f} points "
            f"({100 * (run['cpu_percent'] / cpu.threshold - 1):.0f} %) over"
        )
    above = above_baseline(run)
    if not RSS.met(above):
        problems.append(f"{mb(above)} above the baseline against {RSS.text}, {mb(above - RSS.threshold)} over")
    if run["alive"] != count or run["failures"]:
        problems.append(f"{run['alive']} of {count:,} triggers alive at the end ({len(run['failures'])} failures)")
    if count != REFERENCE:
        if reference is None:
            problems.append(f"no {REFERENCE:,}-trigger run to compare its request rate with")
        else:
            change = _rate_change(run, reference)
            if not RATE.met(abs(change)):
                problems.append(
                    f"{requests_per_minute_per_trigger(run):.2f} requests/min/trigger, {change:+.1f} % against the "
                    f"{REFERENCE:,}-trigger run's {requests_per_minute_per_trigger(reference):.2f} "
                    f"(the same rate: within {RATE.shown}); {_behind(run)}"
                )
    return problems


LONG_POLL = 20.0
"""Seconds each idle receive asks SQS to wait (the trigger's default, SQS's longest)."""


def _served(run: dict[str, Any]) -> str:
    """What served the run's requests in its window, as measured (runs before this field: empty)."""
    spread = run.get("receive_seconds") or {}
    if "emulator_cpu_percent" not in run:
        return ""
    answered = (
        f"long polls answered in {spread['p50']:.1f} s (p50), {spread['p90']:.1f} s (p90), "
        f"{spread['max']:.1f} s at most"
        if spread.get("count")
        else "no long poll answered"
    )
    return (
        f"{answered}; moto used {run['emulator_cpu_percent']:.1f} % of a core, the benchmark process (the "
        f"counting proxy) {run['bench_cpu_percent']:.1f} %, the whole machine {run['machine_cpu_percent']:.0f} %"
    )


def _behind(run: dict[str, Any]) -> str:
    """Why a run's triggers fell behind the reference rate, from what served them."""
    spread = run.get("receive_seconds") or {}
    if not spread.get("count"):
        return "what served the requests was not measured in this run"
    if spread["p50"] > 1.1 * LONG_POLL:
        return (
            f"the service answered late: {_served(run)}. moto's long poll wakes once a second per waiting "
            f"receive ({int(run['count']):,} wake-ups a second here) and each request gets a thread of its own, "
            "so the emulator, not the triggers, bounds this run"
        )
    return (
        f"the long polls were answered on time ({_served(run)}), so the triggers sent their next receive late: "
        f"the worker used {run['cpu_percent']:.1f} % of a core"
    )


def _numbers(run: dict[str, Any]) -> str:
    return (
        f"{mb(above_baseline(run))}, {run['cpu_percent']:.2f} % CPU, {num(requests_per_minute(run))} requests/min "
        f"({requests_per_minute_per_trigger(run):.2f}/trigger)"
    )


def _wanted(count: int, cpu: Target) -> str:
    same_rate = (
        "" if count == REFERENCE else f", requests/min/trigger within {RATE.shown} of the {REFERENCE:,}-trigger run's"
    )
    return f"{cpu.text} of one core, {RSS.text} above baseline{same_rate}; report requests/min"


def checks(results: dict[str, Any]) -> list[Check]:
    """The targets are fluke-airflow's; the amazon trigger is only a comparison. One row per target count."""
    fluke = idle_runs(results, "fluke")
    if not fluke:
        return []
    reference = _reference(results)
    rows = []
    for index, (count, cpu) in enumerate(CPU.items()):
        measure = f"{count:,} idle `QueuePollTrigger`s in one loop"
        run = next((r for r in fluke if int(r["count"]) == count), None)
        if run is None:
            # A preset of other sizes (--quick): its run at the same place is shown, but not judged.
            other = fluke[index] if index < len(fluke) and "error" not in fluke[index] else None
            result = f"not run at {count:,}" + (
                f" (this run: {int(other['count']):,} triggers, {_numbers(other)})" if other else ""
            )
            rows.append(Check(cpu, measure, _wanted(count, cpu), result, False, measured=False))
        elif "error" in run:
            rows.append(Check(cpu, measure, _wanted(count, cpu), f"failed: {run['error']}", False, measured=False))
        else:
            problems = _problems(run, cpu, reference)
            rows.append(Check(cpu, measure, _wanted(count, cpu), _numbers(run), not problems))
    return rows


def section(results: dict[str, Any], out: Path) -> list[Block]:
    runs = idle_runs(results)
    if not runs:
        return []
    reference = _reference(results)
    rows = []
    for r in runs:
        kind, count = r["kind"], int(r["count"])
        if "error" in r:
            rows.append([TRIGGER_LABELS[kind], f"{count:,}", *["-"] * 6, "failed", NOT_MEASURED])
            continue
        above = above_baseline(r)
        per_min = requests_per_minute(r)
        if kind != "fluke":
            judged = "(comparison)"
        elif count in CPU:
            cpu = CPU[count]
            rate = "" if count == REFERENCE else f", rate within {RATE.shown}"
            judged = f"{cpu.text}, {RSS.text}{rate}: " + verdict(not _problems(r, cpu, reference))
        else:
            judged = f"- (the targets are for {' and '.join(f'{c:,}' for c in CPU)} triggers)"
        rows.append(
            [
                TRIGGER_LABELS[kind],
                f"{count:,}",
                mb(r["baseline_rss"]),
                mb(above),
                f"{above / count / 1e6:.2f} MB",
                f"{r['cpu_percent']:.2f} %",
                num(per_min),
                f"{per_min / count:.2f}"
                + (
                    f" ({_rate_change(r, reference):+.1f} %)"
                    if reference is not None and kind == "fluke" and count != REFERENCE
                    else ""
                ),
                f"{r['alive']:,} / {count:,}",
                judged,
            ]
        )
    measured = [r for r in runs if "error" not in r]
    if measured:
        _chart(measured, out)
    counts = sorted({int(r["count"]) for r in runs if r["kind"] == "fluke"})
    amazon_counts = " and ".join(f"{c:,}" for c in sorted({int(r["count"]) for r in runs if r["kind"] == "amazon"}))
    window = num(measured[0]["window"]) if measured else "n/a"
    return [
        Heading("Idle triggers"),
        Para(
            "Each trigger waits on an empty queue of its own, its `run()` generator consumed by a task in "
            "one event loop of a worker process, the connection read from `AIRFLOW_CONN_BENCH_SQS`, as the "
            "triggerer runs them: "
            + " and ".join(f"{c:,}" for c in counts)
            + " `QueuePollTrigger`s (one run per count)"
            + (f", and {amazon_counts} `SqsSensorTrigger`s for comparison" if amazon_counts else "")
            + ". `QueuePollTrigger` is created as a deferred `QueuePollSensor` creates it "
            "(`single_event=True`, all else default: 20 s long polls); `SqsSensorTrigger` with its defaults "
            "(`max_messages=5`, `wait_time_seconds=1`, `waiter_delay=60`). The triggers start one after "
            "another over one polling cycle (20 s; 61 s), as deferred tasks arrive at different times; "
            "once every trigger has sent its first receive, and 5 s more, a window of "
            f"{window} s measures the worker's "
            "RSS (peak, above the baseline: the loop running with every library imported, before the first "
            "trigger), its CPU time over wall time, and the requests at the proxy. Opening requests "
            "(`GetQueueUrl`, `GetQueueAttributes`) fall before the window. The targets hold at the same idle "
            f"request rate: a larger run's requests/min/trigger must stay within {RATE.shown} of the "
            f"{REFERENCE:,}-trigger run's (in brackets), or its triggers fell behind."
        ),
        Table(
            [
                "trigger",
                "triggers",
                "baseline RSS",
                "RSS above baseline (peak)",
                "per trigger",
                "CPU (one core)",
                "requests/min",
                "requests/min/trigger",
                "alive at the end",
                "target",
            ],
            rows,
        ),
        *([Image("idle.png", "Idle triggers: memory, CPU and requests")] if measured else []),
        *_notes(results),
    ]


def _per_request_ms(run: dict[str, Any]) -> float:
    """CPU of the worker per request in the window, in ms."""
    return float(run["cpu_percent"]) / 100 * float(run["window"]) / max(1, sum(run["requests"].values())) * 1000


def _where_the_cpu_goes(results: dict[str, Any], missed: list[dict[str, Any]]) -> list[Block]:
    """The CPU per request, sent directly and through botocore (the comparison run), and
    for a missed CPU target what remains."""
    fluke = idle_measured(results, "fluke")
    botocore = idle_measured(results, "fluke-botocore")
    if not fluke:
        return []
    same = next((r for r in fluke if botocore and int(r["count"]) == int(botocore[0]["count"])), None)
    text = (
        "Where the CPU goes: every idle request is one 20 s `ReceiveMessage` (SQS's longest wait), so the CPU "
        "grows with the number of triggers at a fixed rate, and the cost per request is what can shrink. "
        "`QueuePollTrigger` sends it straight through the client's HTTP session (`queues/sqs_direct.py`: "
        "botocore's serializer, once per set of parameters, its signer, HTTP session and parser; none of the "
        "client's per-request event hooks, User-Agent building, parameter validation, endpoint rules and retry "
        "books, which a profile showed to be most of the cost): "
        + ", ".join(f"{_per_request_ms(r):.2f} ms per request at {int(r['count']):,} triggers" for r in fluke)
    )
    if same is not None:
        b = botocore[0]
        text += (
            f"; the same {int(b['count']):,} triggers with `FLUKE_AIRFLOW_SQS_DIRECT=0` (every receive "
            f"through botocore's client) {_per_request_ms(b):.2f} ms per request and {b['cpu_percent']:.2f} % of a "
            f"core, against {same['cpu_percent']:.2f} %"
        )
    text += "."
    if missed:
        text += (
            " What remains per request is aiohttp's request and response handling, SigV4 signing, the trigger's "
            "own step through the poll flow and the event loop; the next step would be an HTTP client of our "
            "own for the long poll, at the price of maintaining connection handling by hand."
        )
    return [Para(text)]


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


def _notes(results: dict[str, Any]) -> list[Block]:
    """Where the memory and CPU go, how they scale from one count to the next, and for a missed target,
    by how much and what would close it."""
    notes: list[Block] = []
    fluke = idle_measured(results, "fluke")
    reference = _reference(results)
    for r in idle_runs(results):
        if "error" in r:
            notes.append(
                Para(f"The run of {int(r['count']):,} {TRIGGER_LABELS[r['kind']]} failed: {r['error']}. Not measured.")
            )
    if fluke:
        first = fluke[0]
        above = above_baseline(first)
        text = (
            f"{first['count']:,} `QueuePollTrigger` instances hold {mb(above)} above the baseline, "
            f"{above / first['count'] / 1e6:.2f} MB each, and use {first['cpu_percent']:.2f} % of one core for "
            f"{num(requests_per_minute(first))} requests per minute ({requests_per_minute_per_trigger(first):.2f} "
            "per trigger: one 20 s long poll after another)."
        )
        for r in fluke[1:]:
            text += (
                f" {r['count']:,} hold {mb(above_baseline(r))} ({above_baseline(r) / r['count'] / 1e6:.2f} MB each) "
                f"and use {r['cpu_percent']:.2f} % for {num(requests_per_minute(r))} requests per minute "
                f"({requests_per_minute_per_trigger(r):.2f} per trigger): {r['count'] / first['count']:.0f}x the "
                f"triggers for {r['cpu_percent'] / first['cpu_percent']:.2f}x the CPU and "
                f"{above_baseline(r) / above:.2f}x the memory above the baseline."
                if above > 0 and first["cpu_percent"] > 0
                else ""
            )
        text += (
            " All triggers of one connection share one aiobotocore client (up to 200 triggers per client, "
            "256 pooled connections each, so every trigger's long poll has a connection) and one set of "
            "credentials: a client of its own per trigger, with its copy of botocore's event-handler tables, "
            "endpoint-rule objects, retry handlers and aiohttp connector, cost about 1.5 MB per trigger before "
            "(757 MB for 500 in the previous report). What remains per trigger is the trigger, its queue "
            "object, its task and its request in flight; the process-wide botocore data (service model, "
            "endpoints) is loaded once, after the baseline."
        )
        notes.append(Para(text))
        cpu_missed = []
        for r in fluke:
            count = int(r["count"])
            if count not in CPU:
                continue
            problems = _problems(r, CPU[count], reference)
            if problems:
                notes.append(Para(f"Targets at {count:,} triggers missed: " + "; ".join(problems) + "."))
            elif _served(r):
                notes.append(Para(f"At {count:,} triggers: {_served(r)}."))
            if not CPU[count].met(r["cpu_percent"]):
                cpu_missed.append(r)
        notes.extend(_where_the_cpu_goes(results, cpu_missed))
    amazon = idle_measured(results, "amazon")
    if amazon:
        a = amazon[0]
        above = above_baseline(a)
        ops = ", ".join(f"{k} {v:,}" for k, v in sorted(a["requests"].items()))
        notes.append(
            Para(
                "`SqsSensorTrigger` with its defaults polls once a minute "
                f"({requests_per_minute_per_trigger(a):.2f} "
                f"requests/min/trigger; {ops} in the window) and builds a new hook, boto3 session and aiobotocore "
                f"client for every poll, then closes it: {mb(above)} above the baseline (the freed memory of those "
                f"short-lived clients stays with the process) and {a['cpu_percent']:.1f} % of one core. Building "
                f"{a['count']:,} clients a minute keeps the event loop busy and stretches each cycle beyond the 61 s "
                "its settings imply. It makes fewer requests than `QueuePollTrigger`, at the price of the latency "
                "below."
            )
        )
    return notes
