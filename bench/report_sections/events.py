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
    return medians


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
            "emulators, not through the counting proxy. Burst: the messages are pushed at once; stream: one "
            "message at a time at a steady rate. A message is processed when a run whose task returned its "
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


def _bounds(events: dict[str, Any]) -> list[Block]:
    """What bounds the rate, from the stage timings above."""
    services = events["services"]
    bursts = [p["burst"] for p in services.values() if "burst" in p]
    streams = [p["stream"] for p in services.values() if "stream" in p]
    if not bursts or not streams:
        return []
    gap = _median([stage_medians(r)["end_gap"] for r in bursts])
    task = _median([stage_medians(r)["ti_seconds"] for r in bursts])
    start = _median([stage_medians(r)["queued_to_ti_start"] for r in bursts])
    per_run = _median([r["per_run"].get("p50") for r in bursts])
    return [
        Para(
            f"In a burst, runs end one every {_seconds(gap)} (median) with about "
            f"{num(per_run or float('nan'))} messages each (the watcher's default batch of 100): with "
            "`parallelism=1` the LocalExecutor runs one task at a time, and each run's task took "
            f"{_seconds(task)} from start to end but {_seconds(start)} from the run's queueing to the task's start."
        )
    ]
