"""DAG-parse cost: what importing the operators and sensors adds after ``airflow.sdk``.

Each measurement is a fresh interpreter that imports ``airflow.sdk`` (what every DAG file
does), then the contender's modules, and reports the wall time of the second import, the
modules it added, the RSS it added, and whether any cloud SDK module is loaded at all.
Contenders alternate (ours, amazon, ours, ...); the report takes medians.

Bytecode: this checkout's modules have no ``.pyc`` files (the Makefile sets
``PYTHONDONTWRITEBYTECODE``), whereas an installed wheel has them. The
measurements use a private ``PYTHONPYCACHEPREFIX`` under ``.work/bench`` warmed by one
unmeasured run per contender, so they time importing, not compiling.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CONTENDERS = {
    "ours": ["fluke_airflow.operators", "fluke_airflow.sensors"],
    "amazon": ["airflow.providers.amazon.aws.sensors.sqs"],
}
LABELS = {
    "ours": "import fluke_airflow.operators, fluke_airflow.sensors",
    "amazon": "import airflow.providers.amazon.aws.sensors.sqs",
}
CLOUD_SDKS = ("boto3", "botocore", "aiobotocore", "azure")

_PROBE = """
import importlib, json, sys, time
import psutil
process = psutil.Process()
import airflow.sdk
before = set(sys.modules)
rss0 = process.memory_info().rss
t0 = time.perf_counter()
for name in sys.argv[1:]:
    importlib.import_module(name)
elapsed = time.perf_counter() - t0
rss1 = process.memory_info().rss
cloud = sorted(m for m in sys.modules if m.split(".")[0] in {cloud!r})
print("@@parse@@ " + json.dumps({{
    "seconds": elapsed,
    "modules": len(set(sys.modules) - before),
    "rss": rss1 - rss0,
    "cloud_modules": cloud,
    "cloud_before": sorted(m for m in before if m.split(".")[0] in {cloud!r}),
}}))
"""


@dataclass
class ParseResults:
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def median(self, contender: str, key: str) -> float:
        return float(statistics.median(run[key] for run in self.runs[contender]))

    def cloud_modules(self, contender: str) -> list[str]:
        return sorted({m for run in self.runs[contender] for m in run["cloud_modules"]})


def _probe(modules: list[str], env: dict[str, str]) -> dict[str, Any]:
    script = _PROBE.format(cloud=CLOUD_SDKS)
    done = subprocess.run(
        [sys.executable, "-c", script, *modules], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    for line in done.stdout.splitlines():
        if line.startswith("@@parse@@ "):
            return json.loads(line[len("@@parse@@ ") :])  # type: ignore[no-any-return]
    raise RuntimeError(f"the parse probe failed ({done.returncode}): {done.stderr[-2000:]}")


def run_parse_cost(env: dict[str, str], work: Path, runs: int, log: Any = print) -> ParseResults:
    env = dict(env, PYTHONPYCACHEPREFIX=str(work / "pycache"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    for modules in CONTENDERS.values():  # warm the bytecode cache
        _probe(modules, env)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    results = ParseResults({name: [] for name in CONTENDERS})
    for index in range(runs):
        order = list(CONTENDERS) if index % 2 == 0 else list(CONTENDERS)[::-1]
        for name in order:
            result = _probe(CONTENDERS[name], env)
            results.runs[name].append(result)
        log(
            f"  run {index + 1}/{runs}: ours {results.runs['ours'][-1]['seconds'] * 1000:.0f} ms, "
            f"amazon {results.runs['amazon'][-1]['seconds'] * 1000:.0f} ms"
        )
    return results
