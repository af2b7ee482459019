"""Throughput: messages per second per contender and operation, against fluke-api 0.5.0 on loopback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.limit import CONCURRENCY as LIMIT_CONCURRENCY
from bench.report import bar_chart, render
from bench.report_sections.names import SHORT, concurrency, panel_title, sqs_concurrency
from bench.report_sections.stats import Throughput
from bench.report_sections.targets import Check, Target, targets_of
from bench.throughput import LABELS, batch_size

BATCHED_PUSH = ("ours", "ours-async", "limit")
"""The contenders that send SQS messages 10 per request (the others one by one)."""
TITLES = {
    ("sqs", "push"): "SQS push throughput (`push_many`)",
    ("sqs", "poll"): "SQS poll+delete throughput (batch 100)",
    ("azure", "push"): "Azure push throughput",
    ("azure", "poll"): "Azure poll+delete throughput",
}


def versus(t: Throughput, target: Target, row: str, title: str, base: str = "fluke-api") -> Check:
    """fluke-airflow's median rate over another contender's, judged by ``target`` (loopback or round trip)."""
    ours, theirs = t.rate(target.service, target.op, "ours"), t.rate(target.service, target.op, base)
    values = {"title": title, "ours": ours, "base": theirs, "ratio": ours / theirs}
    return Check(target, row, target.met(ours / theirs), values)


def ceiling_check(t: Throughput, target: Target, title: str, network: bool = False) -> Check | None:
    """fluke-airflow's rate as a share of the ceiling (the fastest client measured) for the target's
    operation, on loopback or with the round trip; None where either was not run."""
    limit = t.ceiling(target.service, target.op)
    if limit is None or not t.runs_of(target.service, target.op, "ours"):
        return None
    ours = t.rate(target.service, target.op, "ours")
    values = {"title": title, "network": network, "ours": ours, "ceiling": limit, "share": ours / limit}
    return Check(target, "ceiling", target.met(ours / limit), values)


def checks(results: dict[str, Any]) -> list[Check]:
    if "throughput" not in results:
        return []
    t = Throughput(results["throughput"])
    rows = [ceiling_check(t, x, TITLES[(x.service, x.op)]) for x in targets_of("ceiling")]
    rows += [versus(t, x, "throughput", TITLES[(x.service, x.op)]) for x in targets_of("throughput")]
    rows += [
        versus(t, x, "amazon", TITLES[(x.service, x.op)], "airflow")
        for x in targets_of("vs amazon")
        if t.runs_of(x.service, x.op, "airflow")
    ]
    return [row for row in rows if row is not None]


def section(results: dict[str, Any], out: Path) -> str:
    """The chapter on throughput and requests (whose own table follows, from ``request_counts``)."""
    if "throughput" not in results:
        return ""
    t = Throughput(results["throughput"])
    _chart(t, out)
    return render(
        "throughput",
        t=t,
        limit_concurrency=LIMIT_CONCURRENCY,
        open_cost={service: t.open_cost(service, "ours") for service in ("sqs", "azure")},
        with_async="ours-async" in t.contenders("sqs"),
        operations=[_operation(t, target) for target in targets_of("throughput")],
    )


def _operation(t: Throughput, target: Target) -> dict[str, Any]:
    """One service and operation: every contender's row, the verdict, and the numbers its notes cite."""
    service, op = target.service, target.op
    ours, base = t.rate(service, op, "ours"), t.rate(service, op, "fluke-api")
    limit = t.ceiling(service, op)
    rows = [
        {
            "label": LABELS[c],
            "batch": batch_size(c, service),
            "batched": c in BATCHED_PUSH and service == "sqs",
            "rate": t.rate(service, op, c),
            "rates": t.rates(service, op, c),
            "seconds": t.seconds(service, op, c),
            "per_message": t.per_message(service, op, c),
            "requests": t.by_operation(service, op, c),
            "vs_api": t.rate(service, op, c) / base,
            "rounds": t.round_ratios(service, op, c),
            "of_limit": t.rate(service, op, c) / limit if limit else None,
        }
        for c in t.contenders(service)
    ]
    ours_requests = t.per_message(service, op, "ours")
    api_requests = t.per_message(service, op, "fluke-api")
    numbers: dict[str, Any] = {
        "service": service,
        "op": op,
        "title": TITLES[(service, op)],
        "rows": rows,
        "target": target,
        "met": target.met(ours / base),
        "ratio": ours / base,
        "ceiling": None,
        "concurrency": concurrency(service),
        "sqs_concurrency": sqs_concurrency(),
        "seconds": t.seconds(service, op, "ours"),
        "ours_requests": ours_requests,
        "api_requests": api_requests,
        "requests": ours_requests * t.messages,
        "batches": t.messages // 10,
        "deletes_share": (1 / ours_requests, 1 / api_requests),
        "unclean": _unclean_runs(t, service, op),
    }
    if op == "poll":
        to_last = t.rate_to_last(service, op, "ours")
        numbers |= {"tail": t.tail(service, op, "ours"), "to_last": to_last, "to_last_vs_api": to_last / base}
    if limit is not None:
        wanted = next(x for x in targets_of("ceiling") if (x.service, x.op) == (service, op))
        limit_rate = t.rate(service, op, "limit")
        numbers["ceiling"] = {
            "target": wanted,
            "value": limit,
            "share": ours / limit,
            "met": wanted.met(ours / limit),
            "limit": limit_rate,
            "limit_seconds": t.seconds(service, op, "limit"),
            "cpu": (t.cpu_per_1000(service, op, "ours"), t.cpu_per_1000(service, op, "limit")),
            "to_last": numbers["to_last"] / limit_rate if op == "poll" else None,
        }
    return numbers


def _unclean_runs(t: Throughput, service: str, op: str) -> list[dict[str, Any]]:
    """Runs whose pushes failed or whose poll did not hand out exactly the queue's messages."""
    return [
        dict(r, label=LABELS[r["contender"]])
        for r in t.runs
        if (r["service"], r["op"]) == (service, op)
        and "handled" in r
        and (
            (op == "push" and (r["failed"] or r["left"] != r["messages"]))
            or (op == "poll" and (r["handled"] != r["messages"] or r["left"]))
        )
    ]


def _chart(t: Throughput, out: Path) -> None:
    panels = []
    for target in targets_of("throughput"):
        contenders = t.contenders(target.service)
        panels.append(
            (
                panel_title(target.service, target.op),
                [SHORT[c] for c in contenders],
                [t.rate(target.service, target.op, c) for c in contenders],
                [
                    (min(t.rates(target.service, target.op, c)), max(t.rates(target.service, target.op, c)))
                    for c in contenders
                ],
            )
        )
    bar_chart(
        out / "throughput.png",
        panels,
        "messages per second (median; bars: min-max)",
        f"Throughput, {t.messages:,} messages of 200 bytes, {t.rounds} alternating rounds",
    )
