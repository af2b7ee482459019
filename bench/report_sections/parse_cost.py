"""DAG-parse cost: what importing the provider adds to a DAG file's parse, next to the amazon sensor."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from bench.report import bar_chart, render
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
    values = {
        "share_target": SHARE,
        "ours_ms": p.med("ours", "seconds") * 1000,
        "amazon_ms": p.med("amazon", "seconds") * 1000,
        "share": p.share,
        "cloud": len(p.cloud["ours"]),
    }
    return [Check(CLOUD, "parse", p.met, values)]


def section(results: dict[str, Any], out: Path) -> str:
    parse = results.get("parse")
    if not parse:
        return ""
    p = Parse(parse)
    rows = [
        {
            "import": IMPORTS[name],
            "ms": p.med(name, "seconds") * 1000,
            "min_ms": min(r["seconds"] for r in parse[name]) * 1000,
            "max_ms": max(r["seconds"] for r in parse[name]) * 1000,
            "modules": p.med(name, "modules"),
            "rss": p.med(name, "rss"),
            "cloud": p.cloud[name],
            "packages": sorted({c.split(".")[0] for c in p.cloud[name]}),
        }
        for name in ("ours", "amazon")
    ]
    _chart(p, out)
    return render(
        "parse_cost",
        runs=len(parse["ours"]),
        rows=rows,
        share=p.share,
        modules=p.med("ours", "modules") / p.med("amazon", "modules"),
        memory=p.med("ours", "rss") / max(1.0, p.med("amazon", "rss")),
        share_target=SHARE,
        met=p.met,
    )


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
