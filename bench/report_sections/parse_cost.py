"""DAG-parse cost: what importing the provider adds to a DAG file's parse, next to the amazon sensor."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from bench.report import Block, Heading, Image, Para, Table, bar_chart, mb, num, verdict
from bench.report_sections.targets import Check, target

CLOUD = target("parse", "", "cloud SDK modules")
SHARE = target("parse", "", "share of amazon")

IMPORTS = {
    "ours": "import fluke_airflow.operators, fluke_airflow.sensors",
    "amazon": "import airflow.providers.amazon.aws.sensors.sqs",
}


class Parse:
    """The parse runs of both contenders: medians, and the cloud SDK modules each loaded."""

    def __init__(self, parse: dict[str, list[dict[str, Any]]]) -> None:
        self.runs = parse
        self.cloud = {name: sorted({mod for run in parse[name] for mod in run["cloud_modules"]}) for name in parse}

    def med(self, name: str, key: str) -> float:
        return float(statistics.median(run[key] for run in self.runs[name]))

    @property
    def share(self) -> float:
        """fluke-airflow's import time over the amazon sensor module's."""
        return self.med("ours", "seconds") / self.med("amazon", "seconds")

    @property
    def met(self) -> bool:
        return CLOUD.met(len(self.cloud["ours"])) and SHARE.met(self.share)


def checks(results: dict[str, Any]) -> list[Check]:
    if not results.get("parse"):
        return []
    p = Parse(results["parse"])
    return [
        Check(
            CLOUD,
            "DAG-parse cost",
            f"no cloud SDK loaded; {SHARE.text} of the amazon SQS sensor module",
            f"{p.med('ours', 'seconds') * 1000:.0f} ms vs {p.med('amazon', 'seconds') * 1000:.0f} ms "
            f"({p.share:.2f}); cloud SDK modules loaded: {len(p.cloud['ours'])}",
            p.met,
        )
    ]


def section(results: dict[str, Any], out: Path) -> list[Block]:
    parse = results.get("parse")
    if not parse:
        return []
    p = Parse(parse)
    cloud, med = p.cloud, p.med
    rows = [
        [
            f"`{IMPORTS[name]}`",
            f"{med(name, 'seconds') * 1000:.0f} ms",
            f"{min(r['seconds'] for r in parse[name]) * 1000:.0f}-"
            f"{max(r['seconds'] for r in parse[name]) * 1000:.0f} ms",
            num(med(name, "modules")),
            mb(med(name, "rss")),
            (f"{len(cloud[name])} (" + ", ".join(sorted({c.split(".")[0] for c in cloud[name]})) + ")")
            if cloud[name]
            else "none",
        ]
        for name in ("ours", "amazon")
    ]
    _chart(p, out)
    return [
        Heading("DAG-parse cost"),
        Para(
            f"{len(parse['ours'])} fresh interpreters per contender, alternating; each imports `airflow.sdk` (as "
            "every DAG file does), then the contender's modules, and reports the second import's wall time, "
            "the modules it added, the RSS it added, and every `boto3`, `botocore`, `aiobotocore` or `azure` "
            "module loaded. This checkout's own modules have no bytecode (the Makefile sets "
            "`PYTHONDONTWRITEBYTECODE`), while an installed wheel does: the runs use a private "
            "`PYTHONPYCACHEPREFIX` warmed by one unmeasured run each, so they time importing, not compiling."
        ),
        Table(
            [
                "import (after `import airflow.sdk`)",
                "time (median)",
                "min-max",
                "modules added",
                "RSS added",
                "cloud SDK modules loaded",
            ],
            rows,
        ),
        Para(
            f"fluke-airflow's imports take {p.share:.2f} of the amazon sensor module's time, "
            f"{med('ours', 'modules') / med('amazon', 'modules'):.2f} of its modules and "
            f"{med('ours', 'rss') / max(1.0, med('amazon', 'rss')):.2f} of its memory. Target: no cloud SDK and at "
            f"most {SHARE.threshold:g} of it. Met: {verdict(p.met)}."
            + (
                ""
                if not cloud["ours"]
                else " Cloud SDK modules loaded by ours: " + ", ".join(f"`{c}`" for c in cloud["ours"][:10])
            )
        ),
        Image("parse.png", "DAG-parse cost"),
    ]


def _chart(p: Parse, out: Path) -> None:
    names = ["fluke-airflow", "amazon sensor"]
    bar_chart(
        out / "parse.png",
        [
            ("import time (ms)", names, [p.med("ours", "seconds") * 1000, p.med("amazon", "seconds") * 1000], None),
            ("modules added", names, [p.med("ours", "modules"), p.med("amazon", "modules")], None),
            ("RSS added (MB)", names, [p.med("ours", "rss") / 1e6, p.med("amazon", "rss") / 1e6], None),
        ],
        "",
        "What a DAG file's import adds after airflow.sdk (median)",
    )
