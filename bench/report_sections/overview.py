"""The report's opening: how it was measured, the summary of every target, and how to read a miss."""

from __future__ import annotations

from typing import Any

from bench.report import NOT_MEASURED, Block, Heading, Para, Table, verdict
from bench.report_sections.targets import Check


def section(results: dict[str, Any], checks: list[Check]) -> list[Block]:
    """``checks`` are the summary's rows, in the order of the targets table."""
    sizes = results["sizes"]
    m = results["machine"]
    blocks: list[Block] = [
        Para(
            f"Measured on {results['date']} with `{results['command']}` ({sizes['name']} sizes). Every contender "
            "talks to local emulators on loopback (moto's SQS server and Azurite's queue service) through a "
            "counting reverse proxy (`devtools/proxy.py`), which counts requests per operation at the server "
            "side. Requests do not depend on the machine; times do, and on this machine the emulators, the "
            "proxy and the contender share 2 cores, so the ratios, not the absolute rates, are what carries "
            "over to the cloud, where each request costs milliseconds of network instead."
        ),
        Heading("Summary"),
        Table(
            ["measure", "target", "result", "met?"],
            [
                [check.measure, check.wanted, check.result, verdict(check.met) if check.measured else NOT_MEASURED]
                for check in checks
            ],
        ),
    ]
    loads = [m["load_average_start"][0], *m.get("load_average_end", [0.0])[:1]]
    if max(loads) > 0.75 * (m["cpus"] or 1):
        # A busy machine makes times noisy, not request counts: say so before the numbers.
        blocks.append(
            Para(
                f"The machine was not idle: its 1-minute load average was {loads[0]:.1f} at the start and "
                f"{loads[-1]:.1f} at the end on {m['cpus']} CPUs, other work running alongside. Times therefore "
                "vary from round to round (see the min-max columns) and the medians carry that noise; request "
                "counts do not."
            )
        )
    blocks.append(
        Para(
            "Targets that are missed are marked **no** in the summary; each section below says why, with the "
            "numbers, and what would close the gap."
            + (
                " Targets marked **not measured** had no number in this run to judge them by (a run that failed, "
                "a size this preset does not run, or results older than the measure); they count as not met."
                if any(not check.measured for check in checks)
                else ""
            )
            + " Nothing in the benchmark was tuned to a target: every "
            "contender runs with its defaults except where stated (batch sizes, and the provider's hook reused)."
        )
    )
    return blocks
