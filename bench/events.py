"""Event-driven throughput: messages pushed to a queue, processed by the DAG runs they start.

A real Airflow (:class:`devtools.airflow_local.LocalAirflow`: scheduler, triggerer, DAG processor
and API server, LocalExecutor on SQLite) runs the DAGs of ``bench/dags/bench_events.py``: for
each phase and service, a DAG scheduled on an asset whose ``AssetWatcher`` runs
``QueuePollTrigger`` with its defaults on a queue of its own. The connections point straight at
the bench's moto and Azurite (no counting proxy: nothing here is counted in requests). On each
service, in turn:

* **burst**: ``burst`` messages pushed at once (SQS: batches of 10 on 4 threads; Azure: one
  request per message on 8 threads). Time from the first push to the end of the last run that
  processed one of them;
* **stream**: ``rate`` messages a second for ``seconds`` seconds, one request per message;
* **success**: the burst again, into a watcher with ``delete_on_dag_success=True``: each batch is
  kept hidden until its run succeeded, then deleted (beside ``burst``'s ack mode, which deletes a
  batch once its asset event is stored). The phase ends when the last run has ended and the
  queue is empty, as the others do.

A message counts as processed when a run whose task returned its body has succeeded; the bench
reads, through the REST API, each run's XCom, its asset events' timestamps, its task instance and
its end, and the lag of each message is its run's ``end_date`` minus the moment its push returned
(one machine, one clock). Every wait is bounded and fails saying what it waited for; Airflow is
stopped (and the queues deleted) whatever happens, and the caller records a failure as such.
"""

from __future__ import annotations

import contextlib
import datetime
import itertools
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from bench.data import bodies
from bench.protocol import ROOT
from bench.services import Services
from devtools.admin import AzureService, SQSService
from devtools.airflow_local import WORK, AirflowClient, AirflowError, LocalAirflow, wait_for_airflow

DAGS = ROOT / "bench" / "dags"
AIRFLOW_NAME = "bench-events"
LOGS = WORK / f"airflow-{AIRFLOW_NAME}" / "logs"
"""The components' logs (and the task logs): kept after the run, removed when the next one starts."""
PHASES = ("burst", "stream", "success")
BURSTS = ("burst", "success")
"""The phases that push a burst: ``success`` is ``burst`` with ``delete_on_dag_success=True``."""
SERVICES = ("sqs", "azure")
CONNECTIONS = {"sqs": "bench_events_sqs", "azure": "bench_events_azure"}
"""As ``bench/dags/bench_events.py`` names them (that file stays free of bench imports)."""
TASK = "received"
HOLDING = "holding further messages in the queue"
"""What the watcher logs when the consumer DAG has not started a run for its last event within 10 s."""


def queue_name(phase: str, service: str) -> str:
    return f"bench-events-{phase}-{service}"


def dag_id(phase: str, service: str) -> str:
    return f"bench_events_{phase}_{service}"


def dag_id_of(queue: Queue) -> str:
    """The DAG whose watcher polls ``queue``."""
    return "bench_events_" + queue.name.removeprefix("bench-events-").replace("-", "_")


def _time(value: str | None) -> float | None:
    """An API timestamp (ISO 8601, UTC) as seconds since the epoch."""
    if not value:
        return None
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {}

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]

    return {"min": ordered[0], "p50": at(50), "p90": at(90), "max": ordered[-1], "mean": statistics.fmean(ordered)}


# -- the queues, through the admin clients (straight to the emulators) ---------------------------------------
@dataclass
class Queue:
    services: Services
    service: str
    name: str

    @property
    def admin(self) -> SQSService | AzureService:
        return self.services.sqs if self.service == "sqs" else self.services.azure

    def create(self) -> None:
        self.admin.new_queue(self.name)

    def delete(self) -> None:
        with contextlib.suppress(Exception):
            self.admin.delete_queue(self.name)

    def total(self) -> int:
        """Messages still in the queue, visible or in flight."""
        if self.service == "sqs":
            counts = self.services.sqs.counts(self.name)
            return counts["visible"] + counts["in_flight"]
        return self.services.azure.total(self.name)

    def sender(self) -> Callable[[list[str]], None]:
        """A function that sends a few bodies (SQS: one batch of up to 10; Azure: one by one)."""
        admin, name = self.admin, self.name
        return lambda chunk: admin.send(name, chunk)

    def push_burst(self, messages: list[str]) -> dict[str, float]:
        """All at once; returns when each body's request returned (``time.time()``)."""
        send = self.sender()
        size, threads = (10, 4) if self.service == "sqs" else (1, 8)
        chunks = [messages[i : i + size] for i in range(0, len(messages), size)]

        def timed(chunk: list[str]) -> tuple[list[str], float]:
            send(chunk)
            return chunk, time.time()

        pushed: dict[str, float] = {}
        with ThreadPoolExecutor(threads) as pool:
            for chunk, at in pool.map(timed, chunks):
                pushed.update(dict.fromkeys(chunk, at))
        return pushed

    def push_stream(self, messages: list[str], rate: float) -> dict[str, float]:
        """One message every ``1 / rate`` seconds (on schedule: a slow send does not shift the rest)."""
        send = self.sender()
        pushed: dict[str, float] = {}
        start = time.monotonic()
        for index, body in enumerate(messages):
            time.sleep(max(0.0, start + index / rate - time.monotonic()))
            send([body])
            pushed[body] = time.time()
        return pushed


# -- what the runs processed ------------------------------------------------------------------------------
@dataclass
class RunRecord:
    run_id: str
    bodies: list[str]
    events: int
    event_first: float | None
    event_last: float | None
    queued: float | None
    start: float | None
    ti_queued: float | None
    ti_start: float | None
    ti_end: float | None
    end: float


@dataclass
class Ledger:
    """One phase on one service: what was pushed (and when), and what each finished run processed."""

    service: str
    phase: str
    pushed: dict[str, float] = field(default_factory=dict)
    runs: dict[str, RunRecord] = field(default_factory=dict)
    states: Counter[str] = field(default_factory=Counter)
    earlier: set[str] = field(default_factory=set)
    """Runs of the DAG from before the phase (the warm-up's): not the phase's."""

    @property
    def dag_id(self) -> str:
        return dag_id(self.phase, self.service)

    @property
    def processed(self) -> Counter[str]:
        return Counter(body for run in self.runs.values() for body in run.bodies)

    @property
    def lost(self) -> int:
        return len(set(self.pushed) - set(self.processed))

    @property
    def duplicates(self) -> int:
        return sum(n - 1 for n in self.processed.values() if n > 1)

    @property
    def unexpected(self) -> int:
        return len(set(self.processed) - set(self.pushed))

    def summary(self) -> str:
        return (
            f"{self.dag_id}: pushed {len(self.pushed)}, processed {len(set(self.processed) & set(self.pushed))} "
            f"(not yet: {self.lost}), duplicated {self.duplicates}, runs by state {dict(self.states)}"
        )

    def book(self, api: AirflowClient) -> list[dict[str, Any]]:
        """Every run of the DAG; each newly succeeded one read in full (XCom, asset events, task instance)."""
        runs = [run for run in api.runs(self.dag_id) if run["dag_run_id"] not in self.earlier]
        self.states = Counter(run["state"] for run in runs)
        for run in runs:
            run_id = run["dag_run_id"]
            if run["state"] != "success" or run_id in self.runs:
                continue
            got = list(api.xcom(self.dag_id, run_id, TASK) or [])
            events = api.upstream_asset_events(self.dag_id, run_id)
            stamps = [t for t in (_time(e.get("timestamp")) for e in events) if t is not None]
            ti = api.task_instance(self.dag_id, run_id, TASK)
            end = _time(run.get("end_date"))
            if end is None:
                raise AirflowError(f"{self.dag_id}/{run_id} succeeded without an end_date: {run}")
            self.runs[run_id] = RunRecord(
                run_id=run_id,
                bodies=got,
                events=len(events),
                event_first=min(stamps, default=None),
                event_last=max(stamps, default=None),
                queued=_time(run.get("queued_at")),
                start=_time(run.get("start_date")),
                ti_queued=_time(ti.get("queued_when")),
                ti_start=_time(ti.get("start_date")),
                ti_end=_time(ti.get("end_date")),
                end=end,
            )
        return runs

    def result(self, started: float, holding: int) -> dict[str, Any]:
        """The phase's numbers; times relative to ``started`` (the first push)."""
        pushes = sorted(self.pushed.values())
        runs = sorted(self.runs.values(), key=lambda r: r.end)
        run_of = {body: run for run in runs for body in run.bodies}
        pushed_by = {r.run_id: [self.pushed[b] for b in r.bodies if b in self.pushed] for r in runs}
        lags = [run_of[body].end - at for body, at in self.pushed.items() if body in run_of]
        to_event = [
            run_of[body].event_first - at  # type: ignore[operator]
            for body, at in self.pushed.items()
            if body in run_of and run_of[body].event_first is not None
        ]
        last_end = runs[-1].end if runs else float("nan")
        firsts = sorted(r.event_first for r in runs if r.event_first is not None)
        event_gaps = [b - a for a, b in itertools.pairwise(firsts)]
        messages = len(self.pushed)
        seconds = last_end - started

        def rel(value: float | None) -> float | None:
            return None if value is None else round(value - started, 3)

        def span(a: float | None, b: float | None) -> float | None:
            return None if a is None or b is None else round(b - a, 3)

        return {
            "messages": messages,
            "push_seconds": pushes[-1] - started,
            "offered_rate": messages / (pushes[-1] - started) if pushes[-1] > started else None,
            "seconds": seconds,
            "rate": messages / seconds,
            "drain": last_end - pushes[-1],
            "runs": len(runs),
            "runs_per_1000": 1000 * len(runs) / messages,
            "per_run": percentiles([float(len(r.bodies)) for r in runs]),
            "lag": percentiles(lags),
            "push_to_event": percentiles(to_event),
            "between_events": percentiles(event_gaps),
            "lost": self.lost,
            "duplicates": self.duplicates,
            "unexpected": self.unexpected,
            "holding_notices": holding,
            "run_details": [
                {
                    "messages": len(r.bodies),
                    "events": r.events,
                    "pushed_first": rel(min(pushed_by[r.run_id], default=None)),
                    "pushed_last": rel(max(pushed_by[r.run_id], default=None)),
                    "event_first": rel(r.event_first),
                    "event_last": rel(r.event_last),
                    "queued": rel(r.queued),
                    "start": rel(r.start),
                    "ti_queued": rel(r.ti_queued),
                    "ti_start": rel(r.ti_start),
                    "ti_end": rel(r.ti_end),
                    "end": rel(r.end),
                    "event_to_queued": span(r.event_last, r.queued),
                    "queued_to_ti_start": span(r.queued, r.ti_start),
                    "ti_seconds": span(r.ti_start, r.ti_end),
                    "ti_end_to_end": span(r.ti_end, r.end),
                }
                for r in runs
            ],
        }


# -- the measure ------------------------------------------------------------------------------------------
class EventsBench:
    def __init__(self, services: Services, airflow: LocalAirflow, api: AirflowClient, log: Any) -> None:
        self.services = services
        self.airflow = airflow
        self.api = api
        self.log = log

    def triggerer_log(self, start: int) -> str:
        path = self.airflow.log_path("triggerer")
        with open(path, "rb") as f:
            f.seek(start)
            return f.read().decode(errors="replace")

    def log_size(self) -> int:
        return self.airflow.log_path("triggerer").stat().st_size

    def wait_polling(self, queues: list[Queue], since: int, timeout: float) -> None:
        def polling() -> bool:
            self.airflow.check_running()
            text = self.triggerer_log(since)
            return all(f"queue '{q.name}' done: polling" in text for q in queues)

        wait_for_airflow(
            polling,
            what=f"the watchers of {[q.name for q in queues]} to poll their queues (a first receive done; "
            f"triggerer log: {self.airflow.log_path('triggerer')})",
            timeout=timeout,
            interval=1.0,
        )

    def wait_processed(self, queue: Queue, ledger: Ledger, timeout: float) -> None:
        def done() -> bool:
            self.airflow.check_running()
            runs = ledger.book(self.api)
            failed = [r["dag_run_id"] for r in runs if r["state"] == "failed"]
            if failed:
                details = "; ".join(f"{run}: {self.api.summary(ledger.dag_id, run)}" for run in failed[:3])
                raise AirflowError(f"{ledger.dag_id}: {len(failed)} run(s) failed ({details})")
            finished = all(r["state"] == "success" for r in runs)
            return finished and ledger.lost == 0 and queue.total() == 0

        try:
            wait_for_airflow(
                done, what=f"{ledger.dag_id}'s runs to process every message pushed", timeout=timeout, interval=2.0
            )
        except AirflowError as error:
            with contextlib.suppress(Exception):
                error = AirflowError(f"{error}; {ledger.summary()}; left in the queue: {queue.total()}")
            raise error from None

    def run_ids(self, dag: str) -> set[str]:
        return {run["dag_run_id"] for run in self.api.runs(dag)}

    def warm_up(self, queues: list[Queue], timeout: float) -> None:
        """One message through each DAG, not measured: the first task in a fresh Airflow pays for imports
        (8 s instead of 0.2-0.5 s in a trial run), which is a start-up cost, not a rate."""
        for queue in queues:
            queue.sender()([f"warm-up {queue.name}"])

        def done() -> bool:
            self.airflow.check_running()
            for queue in queues:
                runs = self.api.runs(dag_id_of(queue))
                if [r for r in runs if r["state"] == "failed"]:
                    raise AirflowError(f"{dag_id_of(queue)}: the warm-up run failed")
                if not runs or any(r["state"] != "success" for r in runs) or queue.total():
                    return False
            return True

        wait_for_airflow(
            done,
            what=f"one warm-up run of each of {[dag_id_of(q) for q in queues]} to succeed",
            timeout=timeout,
            interval=1.0,
        )

    def phase(self, queue: Queue, phase: str, messages: list[str], rate: float, timeout: float) -> dict[str, Any]:
        ledger = Ledger(queue.service, phase, earlier=self.run_ids(dag_id(phase, queue.service)))
        since = self.log_size()
        started = time.time()
        if phase in BURSTS:
            ledger.pushed = queue.push_burst(messages)
        else:
            ledger.pushed = queue.push_stream(messages, rate)
        self.log(f"    pushed {len(messages)} in {time.time() - started:.1f}s; waiting for the runs")
        self.wait_processed(queue, ledger, timeout)
        holding = sum(1 for line in self.triggerer_log(since).splitlines() if HOLDING in line and queue.name in line)
        result = ledger.result(started, holding)
        if result["unexpected"]:
            raise AirflowError(f"{ledger.dag_id} processed {result['unexpected']} bodies nobody pushed")
        self.log(
            f"    {result['rate']:.1f} msg/s over {result['seconds']:.1f}s, {result['runs']} runs, "
            f"lag p50 {result['lag']['p50']:.1f}s max {result['lag']['max']:.1f}s, lost {result['lost']}, "
            f"duplicated {result['duplicates']}"
        )
        return result


def provider_path(airflow: LocalAirflow) -> str:
    """Where the Airflow components import fluke_airflow from (their environment, their directory)."""
    result = subprocess.run(
        [sys.executable, "-c", "import fluke_airflow; print(fluke_airflow.__file__)"],
        env=airflow.env(),
        cwd=airflow.home,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode:
        raise AirflowError(f"fluke_airflow does not import in Airflow's environment: {result.stderr[-500:]}")
    return result.stdout.strip()


def run_events(
    services: Services,
    burst: int,
    rate: float,
    seconds: float,
    log: Any = print,
) -> dict[str, Any]:
    """Both phases on both services, in one Airflow; raises if any wait runs out or a run fails."""
    services.fresh_azurite()  # empty: Azurite's receives cost O(messages it holds), deleted queues' too
    queues = {(p, s): Queue(services, s, queue_name(p, s)) for p in PHASES for s in SERVICES}
    connections = {
        CONNECTIONS["sqs"]: {
            "conn_type": "aws",
            "login": services.moto.access_key_id,
            "password": services.moto.secret_access_key,
            "extra": {"endpoint_url": services.moto.endpoint_url, "region_name": services.moto.region},
        },
        CONNECTIONS["azure"]: {
            "conn_type": "azure_storage_queue",
            "extra": {"connection_string": services.azurite.connection_string},
        },
    }
    # The components import this checkout's provider and DAGs, whatever the virtualenv points at.
    pythonpath = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    airflow = LocalAirflow.create(
        AIRFLOW_NAME, connections=connections, dag_folders=[DAGS], extra_env={"PYTHONPATH": pythonpath}
    )
    found = provider_path(airflow)
    if not found.startswith(str(ROOT) + os.sep):
        raise AirflowError(f"Airflow's components would import fluke_airflow from {found}, not from {ROOT}")
    results: dict[str, Any] = {
        "burst": burst,
        "rate": rate,
        "stream_seconds": seconds,
        "airflow": {"executor": "LocalExecutor", "parallelism": 1, "database": "sqlite"},
        "services": {},
        "load_average_start": list(os.getloadavg()),
    }
    clock = time.monotonic()
    try:
        for queue in queues.values():
            queue.create()
        log("  starting Airflow (scheduler, triggerer, dag-processor, api-server)")
        with airflow:
            results["airflow_start_seconds"] = time.monotonic() - clock
            api = airflow.client()
            try:
                bench = EventsBench(services, airflow, api, log)
                dag_ids = [dag_id(p, s) for p in PHASES for s in SERVICES]
                since = bench.log_size()
                api.wait_for_dags(dag_ids, timeout=240)
                for name in dag_ids:
                    api.unpause(name)
                bench.wait_polling(list(queues.values()), since, timeout=240)
                results["ready_seconds"] = time.monotonic() - clock
                log("  one warm-up message through each DAG")
                bench.warm_up(list(queues.values()), timeout=240)
                results["warm_up_seconds"] = time.monotonic() - clock - results["ready_seconds"]
                tag = uuid.uuid4().hex[:6]
                for service in SERVICES:
                    measured: dict[str, Any] = {}
                    log(f"  {service}: a burst of {burst}")
                    measured["burst"] = bench.phase(
                        queues[("burst", service)],
                        "burst",
                        bodies(burst, tag=f"b-{service}-{tag}-"),
                        rate,
                        timeout=180 + 0.5 * burst,
                    )
                    count = round(rate * seconds)
                    log(f"  {service}: a stream of {rate:g} msg/s for {seconds:.0f}s ({count} messages)")
                    measured["stream"] = bench.phase(
                        queues[("stream", service)],
                        "stream",
                        bodies(count, tag=f"s-{service}-{tag}-"),
                        rate,
                        timeout=seconds + 300,
                    )
                    log(f"  {service}: a burst of {burst} into a delete_on_dag_success watcher")
                    measured["success"] = bench.phase(
                        queues[("success", service)],
                        "success",
                        bodies(burst, tag=f"k-{service}-{tag}-"),
                        rate,
                        timeout=180 + 0.5 * burst,
                    )
                    results["services"][service] = measured
            finally:
                for name in (dag_id(p, s) for p in PHASES for s in SERVICES):
                    with contextlib.suppress(Exception):
                        api.pause(name)
                api.close()
            log("  stopping Airflow")
    finally:
        for queue in queues.values():
            queue.delete()
    results["seconds"] = time.monotonic() - clock
    results["load_average_end"] = list(os.getloadavg())
    return results
