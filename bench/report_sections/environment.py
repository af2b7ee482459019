"""The report's end: the machine and versions of the run, its notes, the emulators' caveats, how to reproduce.

Not a measure: nothing here is judged against a target, but every number above depends on it.
"""

from __future__ import annotations

from typing import Any

from bench.report import Block, Bullets, Code, Heading, Para, Table


def section(results: dict[str, Any]) -> list[Block]:
    m = results["machine"]
    v = results["versions"]
    fv = results.get("versions_fluke_api", {})
    return [
        Heading("Setup"),
        Table(
            ["", ""],
            [
                ["date", results["date"]],
                ["command", f"`{results['command']}`"],
                ["run time", f"{results.get('seconds', 0) / 60:.1f} min"],
                ["machine", f"{m['cpus']} CPUs ({m['cpu_model']}), {m['memory']}, Linux {m['kernel']}"],
                [
                    "load average (1/5/15 min)",
                    "start "
                    + " / ".join(f"{x:.2f}" for x in m["load_average_start"])
                    + ", end "
                    + " / ".join(f"{x:.2f}" for x in m.get("load_average_end", [0, 0, 0])),
                ],
                ["Python", m["python"]],
                [
                    "fluke-airflow",
                    f"{v['fluke-airflow']} (this checkout), with Airflow {v['apache-airflow']} (task SDK "
                    f"{v['apache-airflow-task-sdk']}), boto3 {v['boto3']}, botocore {v['botocore']}, aiobotocore "
                    f"{v['aiobotocore']}, aiohttp {v['aiohttp']}, azure-storage-queue {v['azure-storage-queue']}, "
                    f"azure-core {v['azure-core']}",
                ],
                [
                    "fluke-api",
                    f"{fv.get('fluke-api', '?')} in its own virtualenv (`.work/bench/fluke-api-venv`, same Python): "
                    f"boto3 {fv.get('boto3', '?')}, botocore {fv.get('botocore', '?')}, azure-storage-queue "
                    f"{fv.get('azure-storage-queue', '?')}, azure-core {fv.get('azure-core', '?')}, requests "
                    f"{fv.get('requests', '?')}",
                ],
                [
                    "amazon provider",
                    f"apache-airflow-providers-amazon {v['apache-airflow-providers-amazon']} "
                    "(same virtualenv as fluke-airflow)",
                ],
                [
                    "emulators",
                    f"moto {v['moto']} (server mode, "
                    f"{'with bench/moto_server.py patches' if results.get('moto_patched') else 'unpatched'}), "
                    f"Azurite {v['azurite']} (queue service)",
                ],
                ["charts", f"matplotlib {v.get('matplotlib', '?')}"],
            ],
        ),
        *_notes(results),
        Heading("Emulator caveats", 3),
        Bullets(
            [
                "moto 5.2.5 as shipped is quadratic in a queue's length: every sent message recomputes all queue "
                "attributes (three scans of the queue, two datetimes per message), every received message does "
                "so three times, and every delete scans the queue twice. At 2,000 messages every contender ran "
                "at ~35 messages/s whatever its client did. `bench/moto_server.py` starts moto with patches "
                "that change cost, not behaviour (documented in that file); `--unpatched-moto` runs it without "
                "them (the thread-safety patch of `devtools/moto_server.py` applies in every run).",
                "Azurite runs on one Node.js thread and keeps every queue's messages in one indexed Loki "
                "collection, so a receive or delete costs O(messages in the account), deleted queues' messages "
                "included until its garbage collection runs. The benchmark restarts Azurite (empty) before every "
                "Azure throughput run and runs it with `--inMemoryPersistence --silent` (no database "
                "saved every 5 s, no access log line per request: together about half of its time per request "
                "at 2,000 messages); still, against Azurite a client's concurrency hides only its own and the "
                "proxy's share of each request.",
                "The proxy is written in Python and opens a new upstream connection per request; it adds about a "
                "millisecond or more to every request, like a (fast) network would, to every contender alike.",
                "Latency on moto: a long poll returns a new message within milliseconds (checked during "
                "development), unlike real SQS, where delivery takes tens of milliseconds.",
            ]
        ),
        Heading("Reproduce", 3),
        Code(
            "make bench                          # default sizes (this report)\n"
            "make bench BENCH_ARGS=--quick       # smoke run, report under .work/bench/report\n"
            "make bench BENCH_ARGS=--full        # the issue's sizes throughout\n"
            "python -m bench --report-only       # re-render from docs/benchmarks/results.json"
        ),
        Para(
            "Raw numbers: `results.json` in this folder. Worker, emulator and fluke-api install logs: "
            "`.work/bench/logs/`."
        ),
    ]


def _notes(results: dict[str, Any]) -> list[Block]:
    """What the run itself recorded (skipped measures, retries), when it recorded anything."""
    if not results.get("notes"):
        return []
    return [Heading("Notes on this run", 3), Bullets([str(note) for note in results["notes"]])]
