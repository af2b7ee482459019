"""``make demo``: the example DAGs in a real local Airflow against local SQS and Azure emulators.

Starts moto (SQS) and Azurite (Azure Queue Storage) on loopback, a real Airflow (API server,
scheduler, DAG processor, triggerer) with the example DAGs and their connections, runs every
example DAG (the event-driven one is started by messages arriving in its queue), prints what
each did, and exits 0 when all did what they should, 1 otherwise.

    python -m devtools.demo                 # run and stop
    python -m devtools.demo --keep-running  # then keep Airflow up for a look at the UI

Airflow's logs go to files under ``.work/airflow-demo/logs``; only the summary is printed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devtools.admin import AzureService, SQSService
from devtools.airflow_local import (
    WORK,
    AirflowClient,
    AirflowError,
    LocalAirflow,
    emulator_connections,
    wait_for_airflow,
)
from devtools.emulators import AzuriteQueue, MotoSQS

SQS_QUEUES = ("fluke-orders", "fluke-jobs", "fluke-arrivals")
AZURE_QUEUES = ("fluke-invoices", "fluke-events")
MANUAL_DAGS = (
    "example_queue_sqs",
    "example_queue_azure",
    "example_queue_deferrable_mapping",
    "example_queue_task_poll",
)
EVENT_DAG = "example_queue_event_driven"
ARRIVALS = [json.dumps({"order": 1000 + i, "sku": f"sku-{i}"}) for i in range(250)]  # a burst
EVENTS = [f"event-{i}" for i in range(12)]
JOBS_DELAY = 10


def say(text: str = "") -> None:
    print(text, flush=True)


@dataclass
class Outcome:
    dag_id: str
    ok: bool
    state: str
    summary: str
    problems: list[str] = field(default_factory=list)


class Demo:
    def __init__(self, airflow: LocalAirflow, api: AirflowClient, moto: MotoSQS, azurite: AzuriteQueue) -> None:
        self.airflow, self.api = airflow, api
        self.sqs, self.azure = SQSService(moto), AzureService(azurite)

    def close(self) -> None:
        # Open keep-alive connections would make Azurite wait before it exits.
        self.azure.close()
        self.sqs.close()

    # -- queues ----------------------------------------------------------------------------------------
    def create_queues(self) -> None:
        for name in SQS_QUEUES:
            # fluke-jobs hides new messages for a few seconds, so the deferrable example's sensor
            # visibly waits in the triggerer until its seeded jobs arrive. (It also keeps the demo
            # clear of an Airflow 3.3.2 race, apache/airflow#67287: a trigger that fires within a
            # second or two of the deferral can get its task failed by a stale executor event.)
            attributes = {"DelaySeconds": str(JOBS_DELAY)} if name == "fluke-jobs" else {}
            self.sqs.new_queue(name, **attributes)
        for name in AZURE_QUEUES:
            self.azure.new_queue(name)

    def left_in(self, queue: str) -> int:
        """Messages still in a queue (visible or in flight)."""
        if queue in SQS_QUEUES:
            counts = self.sqs.counts(queue)
            return counts["visible"] + counts["in_flight"]
        return self.azure.total(queue)

    # -- helpers ---------------------------------------------------------------------------------------
    def xcom(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> Any:
        try:
            return self.api.xcom(dag_id, run_id, task_id, map_index=map_index)
        except AirflowError:
            return None

    def task_log(self, dag_id: str, run_id: str, task_id: str) -> str:
        folder = self.airflow.logs / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
        if not folder.is_dir():
            return ""
        return "".join(p.read_text(errors="replace") for p in sorted(folder.iterdir()) if p.is_file())

    def finish(self, dag_id: str, run_id: str, describe: Callable[[str], tuple[str, list[str]]]) -> Outcome:
        try:
            run = self.api.wait_for_run(dag_id, run_id, timeout=300, airflow=self.airflow)
        except AirflowError as error:
            return Outcome(dag_id, False, "timeout", self.api.summary(dag_id, run_id), [str(error)])
        states = self.api.summary(dag_id, run_id)
        if run["state"] != "success":
            return Outcome(dag_id, False, run["state"], f"tasks: {states}", ["the run did not succeed"])
        text, problems = describe(run_id)
        return Outcome(dag_id, not problems, run["state"], text, problems)

    # -- what each example DAG should have done --------------------------------------------------------
    def sqs_example(self, run_id: str) -> tuple[str, list[str]]:
        d = "example_queue_sqs"
        pushed, peeked = len(self.xcom(d, run_id, "push") or []), self.xcom(d, run_id, "peek") or []
        received, total = self.xcom(d, run_id, "wait_for_orders") or [], self.xcom(d, run_id, "total")
        left = self.left_in("fluke-orders")
        text = (
            f"pushed {pushed}, peeked {len(peeked)}, sensor received {len(received)} (total task counted {total}), "
            f"{left} left in queue fluke-orders"
        )
        expected = (pushed, len(peeked), len(received), total, left) == (25, 5, 20, 20, 5)
        return text, [] if expected else ["expected pushed 25, peeked 5, received 20, total 20, 5 left"]

    def azure_example(self, run_id: str) -> tuple[str, list[str]]:
        d = "example_queue_azure"
        pushed, peeked = len(self.xcom(d, run_id, "push") or []), self.xcom(d, run_id, "peek") or []
        received, count = self.xcom(d, run_id, "take_invoices") or [], self.xcom(d, run_id, "count")
        left = self.left_in("fluke-invoices")
        text = (
            f"pushed {pushed}, peeked {len(peeked)}, sensor received {len(received)} (deleted before delivery), "
            f"count task counted {count}, {left} left in queue fluke-invoices"
        )
        expected = (pushed, len(peeked), len(received), count, left) == (40, 10, 40, 40, 0)
        return text, [] if expected else ["expected pushed 40, peeked 10, received 40, count 40, 0 left"]

    def deferrable_example(self, run_id: str) -> tuple[str, list[str]]:
        d = "example_queue_deferrable_mapping"
        # QueuePushOperator's XCom: the message ids the service gave the pushed messages.
        seeded, received = len(self.xcom(d, run_id, "seed") or []), self.xcom(d, run_id, "wait_for_jobs") or []
        mapped = [ti for ti in self.api.task_instances(d, run_id) if ti["task_id"] == "process"]
        results = [self.xcom(d, run_id, "process", map_index=ti["map_index"]) for ti in mapped]
        ok_mapped = sum(ti["state"] == "success" for ti in mapped)
        sensor_log = self.task_log(d, run_id, "wait_for_jobs")
        deferred = "Pausing task as DEFERRED" in sensor_log and "Trigger fired event" in sensor_log
        left = self.left_in("fluke-jobs")
        where = "waited in the triggerer (deferred)" if deferred else "did NOT defer"
        text = (
            f"seeded {seeded}, sensor {where} and received {len(received)}, "
            f"{len(mapped)} mapped process tasks ({ok_mapped} succeeded: {', '.join(map(str, results))}), "
            f"{left} left in queue fluke-jobs"
        )
        expected = deferred and (seeded, len(received), len(mapped), ok_mapped, left) == (3, 3, 3, 3, 0)
        return text, [] if expected else ["expected a deferred sensor, 3 messages and 3 successful mapped tasks"]

    def task_poll_example(self, run_id: str) -> tuple[str, list[str]]:
        drained = self.xcom("example_queue_task_poll", run_id, "drain")
        left = self.left_in("fluke-events")
        text = f"the task polled with the hook and processed {drained} message(s), {left} left in queue fluke-events"
        return text, [] if (drained, left) == (len(EVENTS), 0) else [f"expected {len(EVENTS)} processed, 0 left"]

    def event_example(self, earlier: set[str]) -> Outcome:
        d = EVENT_DAG

        def finished_runs() -> list[dict[str, Any]] | None:
            runs = [r for r in self.api.runs(d) if r["dag_run_id"] not in earlier]
            if not runs or any(r["state"] not in ("success", "failed") for r in runs):
                return None
            seen = sum(self.xcom(d, r["dag_run_id"], "handle") or 0 for r in runs)
            return runs if seen >= len(ARRIVALS) or any(r["state"] == "failed" for r in runs) else None

        try:
            runs = wait_for_airflow(finished_runs, what="the runs started by the burst of arrivals", timeout=300)
        except AirflowError as error:
            return Outcome(d, False, "timeout", "no run was started by the messages", [str(error)])
        if any(r["state"] != "success" for r in runs):
            states = "; ".join(self.api.summary(d, r["dag_run_id"]) for r in runs)
            return Outcome(d, False, "failed", f"tasks: {states}", ["a run did not succeed"])
        seen = sum(self.xcom(d, r["dag_run_id"], "handle") or 0 for r in runs)
        with contextlib.suppress(AirflowError):  # reported below as what is left
            wait_for_airflow(lambda: self.left_in("fluke-arrivals") == 0, what="fluke-arrivals to be empty", timeout=60)
        left = self.left_in("fluke-arrivals")
        kinds = {r["run_type"] for r in runs}
        text = (
            f"a burst of {len(ARRIVALS)} messages pushed to fluke-arrivals started {len(runs)} run(s) "
            f"({', '.join(sorted(kinds))}, one at a time: max_active_runs=1); "
            f"their tasks saw {seen} message(s) in the triggering asset events; {left} left in the queue "
            "(each batch deleted after its asset event was stored)"
        )
        ok = kinds == {"asset_triggered"} and seen == len(ARRIVALS) and left == 0
        expected = f"expected asset-triggered runs seeing each of the {len(ARRIVALS)} messages once, none left"
        return Outcome(d, ok, "success", text, [] if ok else [expected])

    # -- the whole demo --------------------------------------------------------------------------------
    def run(self) -> list[Outcome]:
        """Run the example DAGs one after the other (clearer output, and one task slot is enough)."""
        api = self.api
        earlier = {r["dag_run_id"] for r in api.runs(EVENT_DAG)}
        checks = {
            "example_queue_sqs": self.sqs_example,
            "example_queue_azure": self.azure_example,
            "example_queue_deferrable_mapping": self.deferrable_example,
            "example_queue_task_poll": self.task_poll_example,
        }
        self.azure.send("fluke-events", EVENTS)
        say(f"Pushed {len(EVENTS)} messages to fluke-events for example_queue_task_poll")
        say()
        outcomes = []
        for dag_id in MANUAL_DAGS:
            api.unpause(dag_id)
            run_id = api.trigger(dag_id)["dag_run_id"]
            outcome = self.finish(dag_id, run_id, checks[dag_id])
            report(outcome)
            outcomes.append(outcome)

        api.unpause(EVENT_DAG)
        self.sqs.send("fluke-arrivals", ARRIVALS)
        outcome = self.event_example(earlier)
        report(outcome)
        outcomes.append(outcome)
        return outcomes


def report(outcome: Outcome) -> None:
    mark = "ok  " if outcome.ok else "FAIL"
    say(f"  [{mark}] {outcome.dag_id} ({outcome.state}): {outcome.summary}")
    for problem in outcome.problems:
        say(f"         problem: {problem}")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep-running", action="store_true", help="keep Airflow up after the run (Ctrl-C stops it)")
    parser.add_argument("--port", type=int, default=None, help="API server / UI port (default: a free one)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)

    started = time.monotonic()
    logs = WORK / "demo"
    logs.mkdir(parents=True, exist_ok=True)
    moto = MotoSQS.create(log_path=logs / "moto.log")
    azurite = AzuriteQueue.create(log_path=logs / "azurite.log")
    outcomes: list[Outcome] = []
    airflow: LocalAirflow | None = None
    demo: Demo | None = None
    try:
        from importlib.metadata import version

        say(
            f"fluke-airflow demo: Airflow {version('apache-airflow')} with local SQS (moto) "
            "and Azure Queue Storage (Azurite)"
        )
        moto.start()
        azurite.start()
        say(f"  SQS emulator   {moto.endpoint_url}   queues: {', '.join(SQS_QUEUES)}")
        say(f"  Azure emulator {azurite.account_url}   queues: {', '.join(AZURE_QUEUES)}")
        airflow = LocalAirflow.create("demo", connections=emulator_connections(moto, azurite), port=args.port)
        say(f"  Starting Airflow (api-server, scheduler, dag-processor, triggerer) in {_rel(airflow.home)} ...")
        t0 = time.monotonic()
        try:
            airflow.start()
        except AirflowError as error:
            say(f"Airflow did not start: {error}")
            return 1
        api = airflow.client()
        demo = Demo(airflow, api, moto, azurite)
        demo.create_queues()
        api.wait_for_dags([*MANUAL_DAGS, EVENT_DAG])
        say(f"  Airflow is up at {airflow.url} after {time.monotonic() - t0:.0f}s; example DAGs parsed")
        say("  Connections: fluke_sqs (aws -> moto), fluke_azure (azure_storage_queue -> Azurite)")
        say()
        outcomes = demo.run()
        failed = [o for o in outcomes if not o.ok]
        say()
        if failed:
            say(f"{len(failed)} of {len(outcomes)} example DAGs did not do what they should.")
        else:
            say(f"All {len(outcomes)} example DAGs did what they should.")
        say(f"Took {time.monotonic() - started:.0f}s. Airflow's logs: {_rel(airflow.logs)}")
        if args.keep_running:
            say()
            say(f"Airflow keeps running: open {airflow.url}  (user: admin, password: {airflow.password})")
            say("Press Ctrl-C to stop it.")
            while True:
                airflow.check_running()
                time.sleep(2)
        return 1 if failed else 0
    except KeyboardInterrupt:
        say("\nStopping.")
        return 0 if outcomes and all(o.ok for o in outcomes) else 1
    except AirflowError as error:
        say(f"Demo failed: {error}")
        return 1
    finally:
        if demo is not None:
            demo.close()
        if airflow is not None:
            airflow.stop()
        moto.stop()
        azurite.remove()


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    sys.exit(main())
