"""Event-driven throughput: messages pushed to a queue, processed by the DAG runs an AssetWatcher starts.

No target: the first measurement is the baseline. The section reports what ``bench/events.py``
measured and, from each run's timestamps, where a message's time went.
"""

from __future__ import annotations

import itertools
import statistics
from pathlib import Path
from typing import Any

from bench.report import Block, Heading, Para, Table, num
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


def _load(events: dict[str, Any], phase: str, r: dict[str, Any]) -> str:
    if phase == "burst":
        return f"burst of {r['messages']:,} (pushed in {r['push_seconds']:.1f} s)"
    return f"{num(events['rate'], 0)} msg/s for {num(events['stream_seconds'], 0)} s ({r['messages']:,} messages)"


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _seconds(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f} s"


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


def section(results: dict[str, Any], out: Path) -> list[Block]:
    events = results.get("events")
    if not events:
        return []
    blocks: list[Block] = [Heading("Event-driven throughput")]
    if "failed" in events:
        why = str(events["failed"]).replace("`", "'")
        blocks.append(
            Para(
                f"The measure failed in this run, so it reports no numbers: `{why}`. The rest of "
                "the report does not depend on it."
                + (f" Airflow's logs: `{_relative(events['logs'])}`." if events.get("logs") else "")
            )
        )
        return blocks
    services = events["services"]
    blocks.append(
        Para(
            "A real Airflow (scheduler, triggerer, DAG processor and API server; LocalExecutor with "
            f"`parallelism={events['airflow']['parallelism']}` on SQLite, as `devtools/airflow_local.py` runs it "
            "for the end-to-end tests) started by the bench, with DAGs (`bench/dags/bench_events.py`) scheduled "
            "on an asset whose `AssetWatcher` runs `QueuePollTrigger` with its defaults (only `conn_id`, `queue` "
            "and `dag_ids` set: batches of up to 100, SQS long polls of 20 s, Azure polls every 5 s while the "
            "queue is empty), one queue and one DAG per phase and service. The connections go straight to the "
            "emulators, not through the counting proxy. First one unmeasured warm-up message goes through each DAG "
            "(the first task of a fresh Airflow pays for its imports). Burst: the messages are pushed at once; "
            "stream: one message at a time at a steady rate. A message is processed when a run whose task returned its "
            "body has succeeded; time runs from the first push to the `end_date` of the last such run, and a "
            "message's lag from its push's return to its run's `end_date`. Lost: pushed but processed by no "
            "successful run once the queue is empty and every run finished."
        )
    )
    rows = []
    for service, phases in services.items():
        for phase, r in phases.items():
            per_run = r["per_run"]
            rows.append(
                [
                    SERVICE_LABELS.get(service, service),
                    _load(events, phase, r),
                    _seconds(r["seconds"])
                    + (f" ({_seconds(r['drain'])} after the last push)" if phase == "stream" else ""),
                    f"{num(r['rate'], 1)} msg/s",
                    f"{r['runs']} ({num(r['runs_per_1000'], 0)} per 1,000)",
                    f"{num(per_run.get('p50'), 0)} / {num(per_run.get('max'), 0)}",
                    f"{_seconds(r['lag'].get('p50'))} / {_seconds(r['lag'].get('max'))}",
                    f"{r['lost']} / {r['duplicates']}",
                ]
            )
    blocks.append(
        Table(
            [
                "service",
                "load",
                "first push to last run's end",
                "processed",
                "DAG runs",
                "messages per run (median / max)",
                "lag p50 / max",
                "lost / duplicated",
            ],
            rows,
        )
    )
    stage_rows = []
    for service, phases in services.items():
        for phase, r in phases.items():
            m = stage_medians(r)
            stage_rows.append(
                [
                    SERVICE_LABELS.get(service, service),
                    phase,
                    _seconds(r["push_to_event"].get("p50")),
                    _seconds(r.get("between_events", {}).get("p50")),
                    *(_seconds(m[key]) for key, _ in STAGES),
                    _seconds(m["turnaround"]),
                    _seconds(m["end_gap"]),
                    str(r["holding_notices"]),
                ]
            )
    blocks.append(
        Table(
            [
                "service",
                "phase",
                "push to asset event (p50 of messages)",
                "between asset events (median)",
                *(f"{label} (median of runs)" for _, label in STAGES),
                "a task's end to the next waiting task's start (median)",
                "between runs' ends (median)",
                "watcher holding notices",
            ],
            stage_rows,
            caption="Where the time goes, from each run's asset events, task instance and end",
        )
    )
    blocks += _bounds(events)
    loads = [events.get("load_average_start", [0.0])[0], events.get("load_average_end", [0.0])[0]]
    cpus = (results.get("machine") or {}).get("cpus") or 1
    if max(loads) > 0.75 * cpus:
        blocks.append(
            Para(
                f"The machine was busy during this measure (1-minute load average {loads[0]:.1f} at its start, "
                f"{loads[1]:.1f} at its end, on {cpus} CPUs): Airflow's components, the emulators and the "
                "other work shared the cores, so the times above carry that load."
            )
        )
    return blocks


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


def _bounds(events: dict[str, Any]) -> list[Block]:
    """What bounds the rate, read per phase from the stage timings above (the prose follows the numbers)."""
    services = events["services"]
    phases = {(s, p): r for s, ph in services.items() for p, r in ph.items()}
    streams = {s: ph["stream"] for s, ph in services.items() if "stream" in ph}
    if not phases:
        return []
    medians = {key: stage_medians(r) for key, r in phases.items()}
    paces = [r.get("between_events", {}).get("p50") for r in phases.values()]
    present = [p for p in paces if p is not None]
    to_run = _median([m["event_to_queued"] for m in medians.values()])
    task = _median([m["ti_seconds"] for m in medians.values()])
    turnaround = _median([m["turnaround"] for m in medians.values()])
    sentences = []
    for (service, phase), r in phases.items():
        handed = handed_rate(r)
        wait = medians[(service, phase)]["queued_to_ti_start"]
        label = f"{SERVICE_LABELS.get(service, service)} {phase}"
        if handed is None:
            continue
        pace = r.get("between_events", {}).get("p50")
        if r["rate"] < 0.8 * handed and (wait is None or pace is None or wait <= pace):
            details = r["run_details"]
            tail = max(d["end"] for d in details) - max(d["event_last"] or 0.0 for d in details)
            bound = (
                f"bound by a run's own time (the runs did not queue up: a task waited {_seconds(wait)}, median; "
                f"the last asset event's run ended {_seconds(tail)} after it)"
            )
        elif r["rate"] < 0.8 * handed:
            bound = (
                f"bound by the tasks: the runs queued up, a run's task waiting {_seconds(wait)} (median) for the "
                "one executor slot"
            )
        else:
            bound = f"bound by the watcher's hand-over: a run's task waited only {_seconds(wait)} (median)"
        sentences.append(
            f"{label}: handed to Airflow at {num(handed, 1)} msg/s, processed at {num(r['rate'], 1)} msg/s, {bound}"
        )
    blocks: list[Block] = [
        Para(
            "The watcher hands over one asset event at a time: it takes the next batch only once the consumer "
            f"DAG has a run for the last event, which the scheduler created {_seconds(to_run)} after the event "
            "(median), and it checks the DAG's run count once a second; the events came every "
            + (f"{_seconds(min(present))} to {_seconds(max(present))}" if present else "n/a")
            + " (median per phase), with up to 100 messages each (the default batch). Airflow then runs one task "
            f"at a time (`parallelism=1`): a task ran for {_seconds(task)} (median), and where the next task "
            f"was already waiting it started {_seconds(turnaround)} (median) after the last one ended: the "
            "turnaround between two tasks (in Airflow 3 every task is a new process that loads the DAG file and "
            "reports to the API server), on 2 cores that the scheduler, triggerer, DAG processor, API server and "
            "the emulators share. What bounded each phase, comparing the rate at which messages "
            "reached asset events (messages over the time to the last event) with the rate they were processed: "
            + "; ".join(sentences)
            + "."
        ),
    ]
    notes = []
    for service, r in streams.items():
        first, last = _quarters(r, "queued_to_ti_start")
        label = SERVICE_LABELS.get(service, service)
        if first is not None and last is not None and last > first + 5:
            verdict = (
                f"{label}: a run's wait for the executor slot grew from {_seconds(first)} (first quarter of the "
                f"runs) to {_seconds(last)} "
                f"(last quarter): at {num(events['rate'])} msg/s this Airflow did not keep up, and the backlog "
                "was in queued runs, not in the queue"
            )
        else:
            verdict = (
                f"{label}: a run's wait for the executor slot stayed at {_seconds(first)} to {_seconds(last)} "
                "(first and last quarter of "
                f"the runs): the stream kept up"
            )
        if r["holding_notices"]:
            verdict += f"; the watcher held messages back in the queue {r['holding_notices']} time(s)"
        notes.append(verdict)
    held = sum(r["holding_notices"] for r in streams.values())
    tail = (
        " The consumer DAGs never reached `max_active_runs` (16, Airflow's default): the watcher never logged "
        "holding messages back."
        if not held
        else ""
    )
    blocks.append(Para("In the streams: " + "; ".join(notes) + "." + tail))
    return blocks
