"""Throughput: messages per second per contender and operation, against fluke-api 0.5.0 on loopback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.limit import CONCURRENCY as LIMIT_CONCURRENCY
from bench.report import Block, Heading, Image, Para, Table, bar_chart, num, ratio, verdict
from bench.report_sections.names import SHORT, concurrency, panel_title, sqs_concurrency
from bench.report_sections.request_counts import CHART as REQUESTS_CHART
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


def _rates(t: Throughput, target: Target) -> tuple[float, float]:
    """fluke-airflow's and fluke-api's median rates for the target's service and operation."""
    return t.rate(target.service, target.op, "ours"), t.rate(target.service, target.op, "fluke-api")


def ceiling_check(t: Throughput, target: Target, measure: str) -> Check | None:
    """fluke-airflow's rate as a share of the ceiling (the fastest client measured) for the target's
    operation, on loopback or with the round trip; None where either was not run."""
    limit = t.ceiling(target.service, target.op)
    if limit is None or not t.runs_of(target.service, target.op, "ours"):
        return None
    ours = t.rate(target.service, target.op, "ours")
    return Check(
        target,
        measure,
        f"{target.text} of the ceiling (the fastest client measured)",
        f"{num(ours)} vs {num(limit)} msg/s = {ours / limit:.2f}",
        target.met(ours / limit),
    )


def checks(results: dict[str, Any]) -> list[Check]:
    if "throughput" not in results:
        return []
    t = Throughput(results["throughput"])
    rows = []
    for target in targets_of("ceiling"):
        check = ceiling_check(t, target, TITLES[(target.service, target.op)] + ", of the ceiling")
        if check is not None:
            rows.append(check)
    for target in targets_of("throughput"):
        ours, base = _rates(t, target)
        rows.append(
            Check(
                target,
                TITLES[(target.service, target.op)],
                f"{target.text} fluke-api 0.5.0",
                f"{num(ours)} vs {num(base)} msg/s = {ratio(ours / base)}",
                target.met(ours / base),
            )
        )
    for target in targets_of("vs amazon"):
        if not t.runs_of(target.service, target.op, "airflow"):
            continue
        ours, amazon = t.rate(target.service, target.op, "ours"), t.rate(target.service, target.op, "airflow")
        rows.append(
            Check(
                target,
                TITLES[(target.service, target.op)] + ", against the amazon provider",
                f"{target.text} the amazon provider's SqsHook",
                f"{num(ours)} vs {num(amazon)} msg/s = {ratio(ours / amazon)}",
                target.met(ours / amazon),
            )
        )
    return rows


def section(results: dict[str, Any], out: Path) -> list[Block]:
    """The chapter on throughput and requests (whose own table follows, from ``request_counts``)."""
    if "throughput" not in results:
        return []
    t = Throughput(results["throughput"])
    blocks: list[Block] = [
        Heading("Throughput and requests per message"),
        Para(
            f"{t.messages:,} messages of 200 bytes per run, {t.rounds} rounds; in each round every contender "
            "runs once per service and operation, in an order reversed every other round, and the report "
            "gives medians. Each run is a fresh process (the counting proxy runs in the benchmark's "
            "process and must not share a GIL with a contender). Push fills a fresh, empty queue; "
            "poll+delete empties a fresh queue that the benchmark filled directly on the emulator, until "
            "the contender's poll ends by itself on the empty queue. Wall time runs from the contender's "
            "first request of the operation to its end; opening the queue is not timed, and its requests "
            "are not counted per message (fluke-airflow: "
            f"{t.open_cost('sqs', 'ours')} on SQS, {t.open_cost('azure', 'ours')} on Azure, once per queue object)."
        ),
        Para(
            "How each contender is driven: fluke-airflow's blocking `AmazonSQSQueue`/`AzureStorageQueue` "
            "(`push_many`, then `poll(batch_size=100)` on SQS and `poll(batch_size=32)` on Azure, all other "
            "arguments at their defaults)"
            + (", and the asyncio classes the same way" if "ours-async" in t.contenders("sqs") else "")
            + "; fluke-api 0.5.0 in its own virtualenv, `push` in a loop (it has no `push_many`) and "
            "`poll(batch_size=10)`; the amazon provider's `SqsHook` as `SqsPublishOperator` sends "
            "(`send_message` per message, with one hook reused rather than one per task) and as `SqsSensor` "
            "receives (`receive_message` of up to 10 with its default `WaitTimeSeconds=1`, then "
            "`delete_message_batch`), until a receive comes back empty."
        ),
        Image("throughput.png", "Throughput per contender"),
        REQUESTS_CHART,
    ]
    panels = []
    for target in targets_of("throughput"):
        blocks += _operation(t, target)
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
    return blocks


def _operation(t: Throughput, target: Target) -> list[Block]:
    """One service and operation: every contender's table row, the verdict, why, and unclean runs."""
    service, op = target.service, target.op
    ours, base = _rates(t, target)
    met = target.met(ours / base)
    rows = []
    limit = t.ceiling(service, op)
    for c in t.contenders(service):
        rates = t.rates(service, op, c)
        rows.append(
            [
                LABELS[c],
                str(batch_size(c, service))
                if op == "poll"
                else ("10 per request" if c in BATCHED_PUSH and service == "sqs" else "1 per request"),
                num(t.rate(service, op, c)),
                f"{num(min(rates))}-{num(max(rates))}",
                num(t.seconds(service, op, c), 2),
                num(t.per_message(service, op, c), 3),
                t.by_operation(service, op, c),
                ratio(t.rate(service, op, c) / base),
                ", ".join(f"{x:.2f}" for x in t.round_ratios(service, op, c)),
                f"{t.rate(service, op, c) / limit:.2f}" if limit else "-",
            ]
        )
    blocks: list[Block] = [
        Heading(TITLES[(service, op)], 3),
        Table(
            [
                "contender",
                "batch" if op == "poll" else "messages per request",
                "msg/s (median)",
                "msg/s (min-max)",
                "seconds (median)",
                "requests/msg",
                f"requests for {t.messages:,} messages (median)",
                "vs fluke-api",
                "vs fluke-api, round by round",
                "of the limit",
            ],
            rows,
        ),
        Para(f"Target: fluke-airflow {target.text} fluke-api 0.5.0. Met: {verdict(met)} ({ratio(ours / base)})."),
        *_ceiling(t, service, op),
        *_notes(t, target, met),
    ]
    odd = _unclean_runs(t, service, op)
    if odd:
        blocks.append(
            Para(
                "Not every run was clean (a poll is at least once: a message whose delete failed or whose "
                "visibility timeout ran out comes back, and a poll that ends at the first empty receive "
                "leaves messages that are still hidden): " + "; ".join(odd) + ". Rates count the "
                f"{t.messages:,} messages of the run."
            )
        )
    return blocks


def _ceiling(t: Throughput, service: str, op: str) -> list[Block]:
    limit = t.ceiling(service, op)
    if limit is None:
        return []
    target = next(x for x in targets_of("ceiling") if (x.service, x.op) == (service, op))
    share = t.rate(service, op, "ours") / limit
    return [
        Para(
            f"Ceiling: the limit contender (`bench/limit.py`: the service's asyncio SDK, batched to the service's "
            f"limits, {LIMIT_CONCURRENCY} requests in flight, no per-message work, a poll that stops at the known "
            f"count) does {num(t.rate(service, op, 'limit'))} msg/s on this machine's emulator"
            + (
                "."
                if limit == t.rate(service, op, "limit")
                else f"; a contender did better, {num(limit)} msg/s, and that is the ceiling taken."
            )
            + f" fluke-airflow reaches {share:.2f} of the ceiling (target {target.text}): {verdict(target.met(share))}."
        ),
        *([] if target.met(share) else [Para(_gap(t, service, op))]),
    ]


def _gap(t: Throughput, service: str, op: str) -> str:
    """Where a missed ceiling's time goes, from the runs themselves: the poll's end, the client's CPU
    per message (on the cores the emulator needs too) and the requests in flight."""
    ours, limit = t.seconds(service, op, "ours"), t.seconds(service, op, "limit")
    text = (
        f"Where the gap is: fluke-airflow took {ours:.2f} s for {t.messages:,} messages, "
        f"the limit contender {limit:.2f} s."
    )
    if op == "poll":
        tail, to_last = t.tail(service, op, "ours"), t.rate_to_last(service, op, "ours")
        end = (
            "its final receive, which long-polls 1 s so that a queue with messages left on some SQS servers is "
            "not taken for empty, where the limit contender stops at the count it knows"
            if service == "sqs"
            else "its final receive, the empty one that tells it the queue is done, where the limit contender stops "
            "at the count it knows"
        )
        text += (
            f" {tail:.2f} s of it came after the last batch ({end}); up to its last batch it ran at "
            f"{num(to_last)} msg/s, {to_last / t.rate(service, op, 'limit'):.2f} of the limit contender."
        )
    cpu_ours, cpu_limit = t.cpu_per_1000(service, op, "ours"), t.cpu_per_1000(service, op, "limit")
    if cpu_ours is not None and cpu_limit is not None:
        text += (
            f" Its client used {cpu_ours:.2f} CPU seconds per 1,000 messages against the limit contender's "
            f"{cpu_limit:.2f} (the client CPU section): per-message work (validation, message objects, metrics, "
            "the flow's steps) on the 2 cores the emulator and the proxy share."
        )
    mine = concurrency(service)
    text += (
        f" It keeps up to {mine} requests in flight (its default max_concurrency), "
        f"the limit contender {LIMIT_CONCURRENCY}."
        if mine != LIMIT_CONCURRENCY
        else f" Both keep up to {mine} requests in flight."
    )
    return text


def _unclean_runs(t: Throughput, service: str, op: str) -> list[str]:
    """Runs whose pushes failed or whose poll did not hand out exactly the queue's messages."""
    odd = []
    for r in t.runs:
        if (r["service"], r["op"]) != (service, op) or "handled" not in r:
            continue
        who = f"{LABELS[r['contender']]}, round {r['round'] + 1}"
        if op == "push" and (r["failed"] or r["left"] != r["messages"]):
            odd.append(f"{who}: {r['failed']} push(es) reported failed, {r['left']:,} messages in the queue")
        if op == "poll" and (r["handled"] != r["messages"] or r["left"]):
            odd.append(
                f"{who}: handed out {r['handled']:,} for {r['messages']:,} messages, "
                f"{r['left']:,} left in the queue when the poll ended"
            )
    return odd


def _notes(t: Throughput, target: Target, met: bool) -> list[Block]:
    """Why the numbers are what they are, and for a missed target, what bounds them on the emulators."""
    service, op = target.service, target.op
    notes: list[Block] = []
    ours_req = t.per_message(service, op, "ours")
    api_req = t.per_message(service, op, "fluke-api")
    ours_rate = t.rate(service, op, "ours")
    api_rate = t.rate(service, op, "fluke-api")
    ours_s = t.seconds(service, op, "ours")
    requests = ours_req * t.messages
    if service == "sqs" and op == "push":
        notes.append(
            Para(
                f"fluke-airflow sends {ours_req:.2f} requests per message ({t.messages // 10:,} `SendMessageBatch` "
                f"of 10, {sqs_concurrency()} at a time) where fluke-api and `SqsPublishOperator` send one "
                "`SendMessage` each, one "
                "after the other."
            )
        )
    if service == "sqs" and op == "poll":
        tail = t.tail("sqs", "poll", "ours")
        to_last = t.rate_to_last("sqs", "poll", "ours")
        text = (
            f"All contenders make about the same {api_req:.2f} requests per message (fluke-airflow {ours_req:.3f}): "
            "`ReceiveMessage` returns at most 10 messages and `DeleteMessageBatch` takes at most 10, whatever the "
            "batch size. So batch 100 cannot save requests on SQS, only overlap them: once a receive came back "
            "full, fluke-airflow asks for the rest of the batch with concurrent receives, and deletes a batch "
            f"with concurrent `DeleteMessageBatch` requests ({sqs_concurrency()} at a time, the default "
            "`max_concurrency`), sent together with the next batch's first receive once the consumer asks for it. "
            f"Of its {ours_s:.2f} s, {tail:.2f} s (median) come after the last batch: its final, empty receive "
            "long-polls for `wait_time_seconds=1` (the default) so that a queue with messages left on some SQS "
            "servers is not taken for empty, which fluke-api (no long polling) does not do; up to its last batch "
            f"fluke-airflow ran at {num(to_last)} msg/s ({to_last / api_rate:.2f}x)."
        )
        if not met:
            text += (
                f" Target {target.shown}: missed ({ours_rate / api_rate:.2f}x). Against moto every request costs "
                "the emulator's CPU on the same 2 cores as the client and the proxy, so overlapping requests only "
                "hides the client's and the proxy's share of each; the final 1 s wait is a deliberate cost of not "
                "ending a poll early on the real service. Against SQS, where a request is a network round trip of "
                "tens of milliseconds, ten overlapped receives and deletes take the time of about one."
            )
        notes.append(Para(text))
    if service == "azure" and op == "push":
        notes.append(
            Para(
                "Azure has no batch send: every contender makes one request per message; fluke-airflow sends "
                "16 at a time (`max_concurrency` default), fluke-api one after the other."
                + (
                    ""
                    if met
                    else f" Target {target.shown}: missed ({ours_rate / api_rate:.2f}x): Azurite handles requests "
                    "on one thread, so concurrency hides only the client's and the proxy's share of each request."
                )
            )
        )
    if service == "azure" and op == "poll":
        text = (
            f"fluke-airflow makes {ours_req:.3f} requests per message ({requests:,.0f} for {t.messages:,}) against "
            f"fluke-api's {api_req:.3f}: it receives 32 per request (fluke-api caps `messages_per_page` at 10) and "
            "deletes 16 at a time; fluke-api deletes one at a time. Deletes are "
            f"{1 / ours_req:.0%} of fluke-airflow's requests and {1 / api_req:.0%} of fluke-api's."
        )
        if not met:
            text += (
                f" Target {target.shown}: missed ({ours_rate / api_rate:.2f}x). Azurite executes requests on one "
                "Node.js thread and each receive or delete costs O(messages stored), so the emulator's time per "
                "delete bounds every client alike; concurrent deletes only hide the client's and the proxy's "
                "share. Against the real service, where a delete is a network round trip, 16 concurrent deletes "
                "would overlap those round trips."
            )
        notes.append(Para(text))
    return notes
