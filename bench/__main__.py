"""``make bench`` / ``python -m bench``: run every measure and write the report.

Sizes: the default run uses the issue's 2,000 messages of ~200 bytes, 3 alternating rounds,
500 and 1,000 idle triggers, a 20,000-message memory run and the ``events`` measure (a real
Airflow: a burst of 1,000 and 5 msg/s for 60 s, per service, and the burst again into a watcher with
``delete_on_dag_success``): about 35 minutes on 2 cores, most of
it spent on the emulators (fluke-api and the provider send 2,000 requests one by one), on the
triggers' 20 s and 61 s cycles, which the idle and latency measures must wait out (the 1,000-trigger
run alone takes about 4 minutes: its 1,000 queues are created and deleted one by one), and on
Airflow (``events`` alone took 10-12 minutes at a load average of 10-17; less on a quiet machine).
``--quick`` is a smoke run of about 8 minutes (``events``: a burst of 200 and 20 s of stream) that
writes its report under ``.work/bench/`` instead of ``docs/benchmarks/``, runs 50 and 100 idle
triggers (too few for the idle targets, which the report then shows as not measured) and leaves out
``SqsSensorTrigger`` (its 61 s cycle); ``--full`` uses the issue's sizes throughout (5 rounds, the
asyncio classes' throughput too, 100,000 messages for the memory run, 2-minute idle windows): about
60-75 minutes.
``--report-only`` re-renders the report from the last run's ``results.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, replace
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from bench.protocol import ROOT, WorkerError, worker_env

WORK = ROOT / ".work" / "bench"
DOCS = ROOT / "docs" / "benchmarks"


@dataclass(frozen=True)
class Sizes:
    name: str
    messages: int
    rounds: int
    with_async: bool
    idle_triggers: tuple[int, ...]
    """QueuePollTriggers per idle run, one run per count; the amazon trigger runs at the first only."""
    idle_window: float
    latency_samples: int
    amazon_triggers: bool
    parse_runs: int
    memory_messages: int
    events_burst: int
    """Messages of the ``events`` measure's burst, per service."""
    events_rate: float
    """Messages per second of its steady stream, for ``events_seconds`` seconds."""
    events_seconds: float


PRESETS = {
    "quick": Sizes("quick", 500, 1, False, (50, 100), 15.0, 5, False, 3, 3_000, 200, 5.0, 20.0),
    "default": Sizes("default", 2_000, 3, False, (500, 1_000), 60.0, 10, True, 5, 20_000, 1_000, 5.0, 60.0),
    "full": Sizes("full", 2_000, 5, True, (500, 1_000), 120.0, 20, True, 9, 100_000, 1_000, 5.0, 60.0),
}
MEASURES = ("parse", "throughput", "network", "memory", "idle", "latency", "events")
NETWORK_RTT = 0.02
"""Seconds the proxy adds to every answer in the ``network`` measure: a round trip to a cloud
region, so that requests cost waiting (which concurrency overlaps) rather than emulator CPU."""


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def machine() -> dict[str, Any]:
    model = "unknown"
    memory = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory": memory,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_average_start": list(os.getloadavg()),
    }


def versions() -> dict[str, str]:
    from fluke_airflow import __version__

    names = [
        "apache-airflow",
        "apache-airflow-task-sdk",
        "apache-airflow-providers-amazon",
        "boto3",
        "botocore",
        "aiobotocore",
        "aiohttp",
        "azure-storage-queue",
        "azure-core",
        "moto",
        "matplotlib",
    ]
    found = {"fluke-airflow": __version__, **{name: _version(name) for name in names}}
    package = ROOT / "node_modules" / "azurite" / "package.json"
    found["azurite"] = json.loads(package.read_text())["version"] if package.exists() else "missing"
    return found


def command_line(argv: list[str]) -> str:
    if os.environ.get("MAKELEVEL"):
        extra = os.environ.get("BENCH_ARGS", "").strip()
        return "make bench" + (f" BENCH_ARGS='{extra}'" if extra else "")
    return " ".join(["python -m bench", *argv])


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="a smoke run of about 8 minutes (report under .work/bench)")
    size.add_argument("--full", action="store_true", help="the issue's sizes throughout (60-75 minutes)")
    parser.add_argument("--messages", type=int, help="messages per throughput run (default 2000)")
    parser.add_argument("--rounds", type=int, help="alternating rounds of the throughput runs")
    parser.add_argument("--only", nargs="+", choices=MEASURES, help="run only these measures")
    parser.add_argument("--out", type=Path, help="report folder (default docs/benchmarks; --quick: .work/bench/report)")
    parser.add_argument(
        "--unpatched-moto", action="store_true", help="moto without the speed patches (bench/moto_server.py says why)"
    )
    parser.add_argument("--report-only", action="store_true", help="re-render the report from the last results.json")
    return parser.parse_args(argv)


def save(results: dict[str, Any]) -> None:
    """Keep what was measured so far (``.work/bench/partial.json``), should a later measure fail."""
    WORK.mkdir(parents=True, exist_ok=True)
    (WORK / "partial.json").write_text(json.dumps(results, indent=1, default=str) + "\n")


def log(message: str) -> None:
    print(message, flush=True)


def run_events_measure(services: Any, sizes: Sizes) -> dict[str, Any]:
    """The ``events`` measure, or ``{"failed": why}``: a real Airflow has more ways to fail than the other
    measures (a component that does not come up, a run that fails, a wait that runs out), and the rest of
    the report does not depend on it. Its Airflow is stopped either way (``run_events`` sees to that)."""
    from bench.events import LOGS, run_events

    log(
        f"Event-driven throughput: a burst of {sizes.events_burst}, then {sizes.events_rate:g} msg/s for "
        f"{sizes.events_seconds:.0f}s, per service, in a real Airflow"
    )
    started = time.monotonic()
    try:
        return run_events(services, sizes.events_burst, sizes.events_rate, sizes.events_seconds, log=log)
    except Exception as error:
        log(f"  the events measure failed: {type(error).__name__}: {error}")
        return {
            "failed": f"{type(error).__name__}: {error}",
            "logs": str(LOGS),
            "burst": sizes.events_burst,
            "rate": sizes.events_rate,
            "stream_seconds": sizes.events_seconds,
            "seconds": time.monotonic() - started,
        }


def run(args: argparse.Namespace, sizes: Sizes, argv: list[str]) -> dict[str, Any]:
    from bench.flukeapi import ensure_venv
    from bench.memory import run_memory
    from bench.parse_cost import run_parse_cost
    from bench.services import running_services
    from bench.throughput import Contenders, run_throughput
    from bench.triggers import run_idle, run_latency

    measures = set(args.only or MEASURES)
    started = time.monotonic()
    results: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": command_line(argv),
        "sizes": asdict(sizes),
        "machine": machine(),
        "versions": versions(),
        "moto_patched": not args.unpatched_moto,
        "measures": sorted(measures),
    }
    WORK.mkdir(parents=True, exist_ok=True)
    airflow_home = WORK / "airflow-home"
    log(f"fluke-airflow benchmarks ({sizes.name}): {', '.join(m for m in MEASURES if m in measures)}")

    if "parse" in measures:
        log("DAG-parse cost")
        parse = run_parse_cost(worker_env({}, airflow_home), WORK, sizes.parse_runs, log=log)
        results["parse"] = parse.runs
        save(results)

    log("fluke-api 0.5.0: its own virtualenv")
    fluke_api_python = ensure_venv(WORK)
    with running_services(WORK / "logs", patch_moto=not args.unpatched_moto) as services:
        contenders = Contenders(services, fluke_api_python, WORK)
        results["versions_fluke_api"] = contenders.versions()
        if "throughput" in measures:
            log(f"Throughput: {sizes.messages} messages, {sizes.rounds} round(s)")
            throughput = run_throughput(
                services, contenders, sizes.messages, sizes.rounds, with_async=sizes.with_async, log=log
            )
            results["throughput"] = throughput.to_json()
            save(results)
        if "network" in measures:
            from devtools.proxy import Latency

            messages = min(1_000, sizes.messages)
            log(f"Network: {messages} messages, {sizes.rounds} round(s), {NETWORK_RTT * 1000:.0f} ms per request")
            for proxy in (services.sqs_proxy, services.azure_proxy):
                proxy.inject(Latency(seconds=NETWORK_RTT, after=True))
            try:
                network = run_throughput(services, contenders, messages, sizes.rounds, with_async=False, log=log)
            finally:
                for proxy in (services.sqs_proxy, services.azure_proxy):
                    proxy.clear_faults()
            results["network"] = {"rtt": NETWORK_RTT, **network.to_json()}
            save(results)
        if "memory" in measures:
            log(f"Memory: polling {sizes.memory_messages} messages")
            memory = run_memory(services, contenders, sizes.memory_messages, log=log)
            results["memory"] = asdict(memory)
            save(results)
        kinds = ["fluke", "amazon"] if sizes.amazon_triggers else ["fluke"]
        if "idle" in measures:
            # One run per (kind, count): a list, where results before the 1,000-trigger run keyed one run by kind.
            results["idle"] = []
            runs = [("fluke", count) for count in sizes.idle_triggers]
            runs.append(("fluke-botocore", sizes.idle_triggers[0]))  # what the direct requests save
            if sizes.amazon_triggers:
                runs.append(("amazon", sizes.idle_triggers[0]))
            for kind, count in runs:
                log(f"Idle triggers: {count} x {kind}")
                try:
                    idle = run_idle(services, contenders.env, WORK, kind, count, window=sizes.idle_window, log=log)
                except (WorkerError, RuntimeError, OSError) as error:
                    # The report shows the run as failed (its targets not measured); the other runs go on.
                    log(f"  failed: {error}")
                    results["idle"].append({"kind": kind, "count": count, "error": f"{type(error).__name__}: {error}"})
                    results.setdefault("notes", []).append(f"Idle run of {count} {kind} triggers failed: {error}")
                else:
                    results["idle"].append(
                        {**vars(idle), "requests": dict(idle.requests), "open_requests": dict(idle.open_requests)}
                    )
                save(results)
        if "latency" in measures:
            results["latency"] = {}
            for kind in kinds:
                log(f"Arrival latency: {kind}")
                latency = run_latency(services, contenders.env, WORK, kind, sizes.latency_samples, log=log)
                results["latency"][kind] = asdict(latency)
                save(results)
        if "events" in measures:
            results["events"] = run_events_measure(services, sizes)
            save(results)
    results["machine"]["load_average_end"] = list(os.getloadavg())
    results["seconds"] = time.monotonic() - started
    return results


def merged(earlier: dict[str, Any], again: dict[str, Any]) -> dict[str, Any]:
    """``--only``: the measures run again replace theirs in the report's earlier results, which keep
    the rest (and a note saying which sections come from which run)."""
    measures = [m for m in MEASURES if m in again]
    note = (
        f"The {', '.join(measures)} measure(s) were run again on their own ({again['command']}, {again['date']}, "
        f"1-minute load average {again['machine']['load_average_start'][0]:.1f} at the start); their section(s) "
        "report that run, the others the run described above."
    )
    return {**earlier, **{m: again[m] for m in measures}, "notes": [*earlier.get("notes", []), note]}


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    sizes = PRESETS["quick" if args.quick else "full" if args.full else "default"]
    if args.messages:
        sizes = replace(sizes, messages=args.messages)
    if args.rounds:
        sizes = replace(sizes, rounds=args.rounds)
    out = args.out or (WORK / "report" if args.quick else DOCS)
    out.mkdir(parents=True, exist_ok=True)
    raw = out / "results.json"
    if args.report_only:
        results = json.loads(raw.read_text())
    else:
        results = run(args, sizes, argv)
        if args.only and raw.exists():
            results = merged(json.loads(raw.read_text()), results)
        raw.write_text(json.dumps(results, indent=1, default=str) + "\n")
    from bench.build_report import write_report

    write_report(results, out)
    log(f"Report: {out / 'README.md'} (and charts); took {results.get('seconds', 0) / 60:.1f} min")


if __name__ == "__main__":
    main()
