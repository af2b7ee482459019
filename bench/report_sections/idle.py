"""Idle triggers: memory, CPU and requests of many triggers waiting on empty queues in one event loop."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.report import Block, Heading, Image, Para, Table, bar_chart, mb, num, verdict
from bench.report_sections.names import TRIGGER_LABELS
from bench.report_sections.stats import above_baseline, requests_per_minute, requests_per_minute_per_trigger
from bench.report_sections.targets import Check, target

RSS = target("idle", "sqs", "rss")
CPU = target("idle", "sqs", "cpu")


def _met(run: dict[str, Any]) -> bool:
    return RSS.met(above_baseline(run)) and CPU.met(run["cpu_percent"])


def checks(results: dict[str, Any]) -> list[Check]:
    """The targets are fluke-airflow's; the amazon trigger is only a comparison."""
    idle = results.get("idle", {})
    f = idle.get("fluke") if idle else None
    if not f:
        return []
    return [
        Check(
            RSS,
            f"{f['count']} idle `QueuePollTrigger`s in one loop",
            f"{RSS.text} above baseline, {CPU.text} of one core; report requests/min",
            f"{mb(above_baseline(f))}, {f['cpu_percent']:.2f} % CPU, {num(requests_per_minute(f))} requests/min",
            _met(f),
        )
    ]


def section(results: dict[str, Any], out: Path) -> list[Block]:
    idle = results.get("idle", {})
    if not idle:
        return []
    rows = []
    for kind, r in idle.items():
        above = above_baseline(r)
        per_min = requests_per_minute(r)
        ok = kind != "fluke" or _met(r)
        rows.append(
            [
                TRIGGER_LABELS[kind],
                str(r["count"]),
                mb(r["baseline_rss"]),
                mb(above),
                f"{above / r['count'] / 1e6:.2f} MB",
                f"{r['cpu_percent']:.2f} %",
                num(per_min),
                f"{per_min / r['count']:.2f}",
                f"{r['alive']} / {r['count']}",
                (f"{RSS.text}, {CPU.text}: " + verdict(ok)) if kind == "fluke" else "(comparison)",
            ]
        )
    _chart(idle, out)
    return [
        Heading("Idle triggers"),
        Para(
            "Each trigger waits on an empty queue of its own, its `run()` generator consumed by a task in "
            "one event loop of a worker process, the connection read from `AIRFLOW_CONN_BENCH_SQS`, as the "
            "triggerer runs them. `QueuePollTrigger` is created as a deferred `QueuePollSensor` creates it "
            "(`single_event=True`, all else default: 20 s long polls); `SqsSensorTrigger` with its defaults "
            "(`max_messages=5`, `wait_time_seconds=1`, `waiter_delay=60`). The triggers start one after "
            "another over one polling cycle (20 s; 61 s), as deferred tasks arrive at different times; "
            "once every trigger has sent its first receive, and 5 s more, a window of "
            f"{num(next(iter(idle.values()))['window'])} s measures the worker's "
            "RSS (peak, above the baseline: the loop running with every library imported, before the first "
            "trigger), its CPU time over wall time, and the requests at the proxy. Opening requests "
            "(`GetQueueUrl`, `GetQueueAttributes`) fall before the window."
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
        Image("idle.png", "Idle triggers: memory, CPU and requests"),
        *_notes(idle),
    ]


def _chart(idle: dict[str, Any], out: Path) -> None:
    kinds = list(idle)
    names = [TRIGGER_LABELS[k].split(" ")[0] for k in kinds]
    bar_chart(
        out / "idle.png",
        [
            ("RSS above baseline (MB)", names, [above_baseline(idle[k]) / 1e6 for k in kinds], None),
            ("CPU, % of one core", names, [idle[k]["cpu_percent"] for k in kinds], None),
            ("requests/min/trigger", names, [requests_per_minute_per_trigger(idle[k]) for k in kinds], None),
        ],
        "",
        f"{next(iter(idle.values()))['count']} idle triggers in one event loop",
    )


def _notes(idle: dict[str, Any]) -> list[Block]:
    """Where the memory and CPU go, and for a missed target, what would close it."""
    notes: list[Block] = []
    f = idle.get("fluke")
    if f:
        above = above_baseline(f)
        requests = sum(f["requests"].values())
        per_trigger = above / f["count"]
        text = (
            f"{f['count']} `QueuePollTrigger` instances hold {mb(above)} above the baseline, "
            f"{per_trigger / 1e6:.2f} MB each, and "
            f"use {f['cpu_percent']:.2f} % of one core for {requests * 60 / f['window']:,.0f} requests per minute "
            f"({requests * 60 / f['window'] / f['count']:.2f} per trigger: one 20 s long poll after another)."
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
        if not RSS.met(above):
            text += f" Target {RSS.text}: missed."
        if not CPU.met(f["cpu_percent"]):
            text += (
                f" Target {CPU.text} CPU: missed. {requests:,} requests in {f['window']:.0f} s cost "
                f"{f['cpu_percent'] / 100 * f['window'] / max(1, requests) * 1000:.1f} ms of CPU each, nearly "
                "all of it inside aiobotocore/botocore and aiohttp (a profile of idle triggers: the event hooks "
                "emitted per request, building the User-Agent header, signing, serialising and parsing); the rate "
                "is fixed by the 20 s long polls (SQS's longest), and sharing clients does not change the work "
                "per request (the previous report, with a client per trigger, measured 5.05 %). What would "
                "close it: a receive path that skips botocore's per-request machinery, "
                "as Kombu's SQS transport does (its own HTTP client, botocore only to sign), at the price of "
                "maintaining SQS's protocol by hand."
            )
        notes.append(Para(text))
    a = idle.get("amazon")
    if a:
        above = above_baseline(a)
        ops = ", ".join(f"{k} {v:,}" for k, v in sorted(a["requests"].items()))
        notes.append(
            Para(
                "`SqsSensorTrigger` with its defaults polls once a minute "
                f"({requests_per_minute_per_trigger(a):.2f} "
                f"requests/min/trigger; {ops} in the window) and builds a new hook, boto3 session and aiobotocore "
                f"client for every poll, then closes it: {mb(above)} above the baseline (the freed memory of those "
                f"short-lived clients stays with the process) and {a['cpu_percent']:.1f} % of one core. Building "
                f"{a['count']} clients a minute keeps the event loop busy and stretches each cycle beyond the 61 s "
                "its settings imply. It makes fewer requests than `QueuePollTrigger`, at the price of the latency "
                "below."
            )
        )
    return notes
