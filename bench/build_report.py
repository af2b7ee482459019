"""Turn ``results.json`` into the report (Markdown + reST) and its charts."""

from __future__ import annotations

import statistics
from collections import Counter
from pathlib import Path
from typing import Any

from bench.report import (
    Bullets,
    Code,
    Heading,
    Image,
    Para,
    Report,
    Table,
    bar_chart,
    cdf_chart,
    line_chart,
    mb,
    num,
    ratio,
    to_markdown,
    to_rst,
    verdict,
)
from bench.throughput import LABELS, batch_size

TRIGGER_LABELS = {"fluke": "QueuePollTrigger (fluke-airflow)", "amazon": "SqsSensorTrigger (amazon provider)"}
SHORT = {
    "ours": "fluke-airflow",
    "ours-async": "fluke-airflow async",
    "fluke-api": "fluke-api 0.5.0",
    "airflow": "SqsHook",
}


# -- throughput helpers ---------------------------------------------------------------------------------
class Throughput:
    def __init__(self, data: dict[str, Any]) -> None:
        self.messages = int(data["messages"])
        self.rounds = int(data["rounds"])
        self.runs = data["runs"]

    def runs_of(self, service: str, op: str, contender: str) -> list[dict[str, Any]]:
        return [r for r in self.runs if (r["service"], r["op"], r["contender"]) == (service, op, contender)]

    def contenders(self, service: str) -> list[str]:
        seen: list[str] = []
        for r in self.runs:
            if r["service"] == service and r["contender"] not in seen:
                seen.append(r["contender"])
        order = ["ours", "ours-async", "fluke-api", "airflow"]
        return sorted(seen, key=order.index)

    def rates(self, service: str, op: str, contender: str) -> list[float]:
        return [r["messages"] / r["seconds"] for r in self.runs_of(service, op, contender)]

    def rate(self, service: str, op: str, contender: str) -> float:
        return statistics.median(self.rates(service, op, contender))

    def rate_to_last(self, service: str, op: str, contender: str) -> float:
        return statistics.median(r["messages"] / r["until_last_message"] for r in self.runs_of(service, op, contender))

    def round_ratios(self, service: str, op: str, contender: str) -> list[float]:
        """Per round, this contender's rate over fluke-api's in the same round (run minutes apart)."""
        ratios = []
        for index in range(self.rounds):
            mine = [r for r in self.runs_of(service, op, contender) if r["round"] == index]
            base = [r for r in self.runs_of(service, op, "fluke-api") if r["round"] == index]
            if mine and base:
                ratios.append((base[0]["seconds"] / base[0]["messages"]) / (mine[0]["seconds"] / mine[0]["messages"]))
        return ratios

    def seconds(self, service: str, op: str, contender: str) -> float:
        return statistics.median(r["seconds"] for r in self.runs_of(service, op, contender))

    def tail(self, service: str, op: str, contender: str) -> float:
        """Median time between the last batch handed over and the end of the poll."""
        return statistics.median(r["seconds"] - r["until_last_message"] for r in self.runs_of(service, op, contender))

    def per_message(self, service: str, op: str, contender: str) -> float:
        return statistics.median(
            sum(r["requests"].values()) / r["messages"] for r in self.runs_of(service, op, contender)
        )

    def by_operation(self, service: str, op: str, contender: str) -> str:
        runs = self.runs_of(service, op, contender)
        names = sorted({n for r in runs for n in r["requests"]})
        parts = []
        for name in names:
            count = statistics.median(r["requests"].get(name, 0) for r in runs)
            parts.append(f"{name} {count:,.0f}")
        return ", ".join(parts)

    def open_cost(self, service: str, contender: str) -> str:
        runs = self.runs_of(service, "push", contender)
        if not runs:
            return ""
        counter = Counter(runs[0]["open_requests"])
        return ", ".join(f"{k} {v}" for k, v in sorted(counter.items())) or "none"


def _mb_per_s(messages: int, seconds: float) -> str:
    return f"{messages * 200 / seconds / 1e6:.2f}"


def build(results: dict[str, Any], out: Path) -> Report:
    report = Report("fluke-airflow benchmarks")
    sizes = results["sizes"]
    m = results["machine"]
    v = results["versions"]
    fv = results.get("versions_fluke_api", {})
    summary: list[list[str]] = []
    sections: list[Any] = []

    # -- throughput -------------------------------------------------------------------------------------
    if "throughput" in results:
        t = Throughput(results["throughput"])
        targets = {
            ("sqs", "push"): 5.0,
            ("sqs", "poll"): 3.0,
            ("azure", "push"): 3.0,
            ("azure", "poll"): 2.0,
        }
        names = {
            ("sqs", "push"): "SQS push throughput (`push_many`)",
            ("sqs", "poll"): "SQS poll+delete throughput (batch 100)",
            ("azure", "push"): "Azure push throughput",
            ("azure", "poll"): "Azure poll+delete throughput",
        }
        panels = []
        request_panels = []
        for (service, op), target in targets.items():
            contenders = t.contenders(service)
            base = t.rate(service, op, "fluke-api")
            ours = t.rate(service, op, "ours")
            met = ours / base >= target
            summary.append(
                [
                    names[(service, op)],
                    f"≥ {target:g}x fluke-api 0.5.0",
                    f"{num(ours)} vs {num(base)} msg/s = {ratio(ours / base)}",
                    verdict(met),
                ]
            )
            rows = []
            for c in contenders:
                rates = t.rates(service, op, c)
                rows.append(
                    [
                        LABELS[c],
                        str(batch_size(c, service))
                        if op == "poll"
                        else ("10 per request" if c.startswith("ours") and service == "sqs" else "1 per request"),
                        num(t.rate(service, op, c)),
                        f"{num(min(rates))}-{num(max(rates))}",
                        num(t.seconds(service, op, c), 2),
                        num(t.per_message(service, op, c), 3),
                        t.by_operation(service, op, c),
                        ratio(t.rate(service, op, c) / base),
                        ", ".join(f"{x:.2f}" for x in t.round_ratios(service, op, c)),
                    ]
                )
            panels.append(
                (
                    f"{'SQS' if service == 'sqs' else 'Azure'} {op}{'+delete' if op == 'poll' else ''}",
                    [SHORT[c] for c in contenders],
                    [t.rate(service, op, c) for c in contenders],
                    [(min(t.rates(service, op, c)), max(t.rates(service, op, c))) for c in contenders],
                )
            )
            request_panels.append(
                (
                    f"{'SQS' if service == 'sqs' else 'Azure'} {op}{'+delete' if op == 'poll' else ''}",
                    [SHORT[c] for c in contenders],
                    [t.per_message(service, op, c) for c in contenders],
                    None,
                )
            )
            sections.append(Heading(names[(service, op)], 3))
            sections.append(
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
                    ],
                    rows,
                )
            )
            sections.append(
                Para(
                    f"Target: fluke-airflow ≥ {target:g}x fluke-api 0.5.0. Met: {verdict(met)} ({ratio(ours / base)})."
                )
            )
            sections.extend(_throughput_notes(t, service, op, met, target))
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
            if odd:
                sections.append(
                    Para(
                        "Not every run was clean (a poll is at least once: a message whose delete failed or whose "
                        "visibility timeout ran out comes back, and a poll that ends at the first empty receive "
                        "leaves messages that are still hidden): " + "; ".join(odd) + ". Rates count the "
                        f"{t.messages:,} messages of the run."
                    )
                )
        bar_chart(
            out / "throughput.png",
            panels,
            "messages per second (median; bars: min-max)",
            f"Throughput, {t.messages:,} messages of 200 bytes, {t.rounds} alternating rounds",
        )
        bar_chart(
            out / "requests.png", request_panels, "requests per message", "Requests per message, counted at the proxy"
        )

        # requests per message targets
        sqs_push = t.per_message("sqs", "push", "ours")
        sqs_poll = t.per_message("sqs", "poll", "ours")
        az_push = t.per_message("azure", "push", "ours")
        az_poll = t.per_message("azure", "poll", "ours")
        sqs_ok = sqs_push <= 0.10 + 1e-9 and sqs_poll <= 0.21 + 1e-9
        az_ok = abs(az_push - 1.0) < 1e-9 and az_poll <= 1.05 + 1e-9
        summary.insert(
            2,
            [
                "SQS requests per message",
                "push ≤ 0.10, poll+delete ≤ 0.21",
                f"push {sqs_push:.3f}, poll+delete {sqs_poll:.3f}",
                verdict(sqs_ok),
            ],
        )
        summary.append(
            [
                "Azure requests per message",
                "push 1.0, poll+delete ≤ 1.05",
                f"push {az_push:.3f}, poll+delete {az_poll:.3f}",
                verdict(az_ok),
            ]
        )
        throughput_blocks: list[Any] = [
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
            Image("requests.png", "Requests per message per contender"),
            *sections,
            Heading("Requests per message", 3),
            Table(
                ["", "measured (fluke-airflow)", "target", "met?", "why this number"],
                [
                    [
                        "SQS push",
                        f"{sqs_push:.3f}",
                        "≤ 0.10",
                        verdict(sqs_push <= 0.10 + 1e-9),
                        "SendMessageBatch carries 10 entries (its limit)",
                    ],
                    [
                        "SQS poll+delete",
                        f"{sqs_poll:.3f}",
                        "≤ 0.21",
                        verdict(sqs_poll <= 0.21 + 1e-9),
                        "ReceiveMessage returns ≤ 10, DeleteMessageBatch takes ≤ 10: 0.2, "
                        "plus the one empty receive that ends the poll",
                    ],
                    [
                        "Azure push",
                        f"{az_push:.3f}",
                        "1.0",
                        verdict(abs(az_push - 1.0) < 1e-9),
                        "Azure has no batch send: one Put Message each, sent concurrently",
                    ],
                    [
                        "Azure poll+delete",
                        f"{az_poll:.3f}",
                        "≤ 1.05",
                        verdict(az_poll <= 1.05 + 1e-9),
                        "one Get Messages per 32, one Delete Message each, plus the empty receive at the end",
                    ],
                ],
            ),
            Para(
                "These counts come from the proxy, so they are what a cloud bill would count; `make test` checks "
                "the same limits exactly on 200 messages (`tests/queues/test_request_counts.py`)."
            ),
        ]
    else:
        throughput_blocks = []

    # -- the same, with a network round trip -----------------------------------------------------------------
    network_blocks: list[Any] = []
    if "network" in results:
        n = Throughput(results["network"])
        rtt_ms = float(results["network"]["rtt"]) * 1000
        targets = {("sqs", "push"): 5.0, ("sqs", "poll"): 3.0, ("azure", "push"): 3.0, ("azure", "poll"): 2.0}
        op_labels = {
            ("sqs", "push"): "SQS push",
            ("sqs", "poll"): "SQS poll+delete (batch 100)",
            ("azure", "push"): "Azure push",
            ("azure", "poll"): "Azure poll+delete (batch 32)",
        }
        rows = []
        reached = []
        for key, label in op_labels.items():
            service, op = key
            if not n.runs_of(service, op, "ours") or not n.runs_of(service, op, "fluke-api"):
                continue
            ours, base = n.rate(service, op, "ours"), n.rate(service, op, "fluke-api")
            airflow = n.rate(service, op, "airflow") if n.runs_of(service, op, "airflow") else None
            ok = ours / base >= targets[key]
            reached.append((label, ours / base, targets[key], ok))
            rows.append(
                [
                    label,
                    num(ours),
                    num(base),
                    num(airflow) if airflow is not None else "-",
                    ratio(ours / base),
                    f"≥ {targets[key]:g}x: {verdict(ok)}",
                ]
            )
        missed = [f"{label} {r:.2f}x (target {t:g}x)" for label, r, t, ok in reached if not ok]
        network_blocks = [
            Heading("Throughput with a network round trip"),
            Para(
                f"The runs above, again, with the counting proxy holding every answer {rtt_ms:.0f} ms (a round trip "
                f"to a cloud region; the emulators' own time per request stays), {n.messages:,} messages per run, "
                f"{n.rounds} round(s), contenders alternating as above. On loopback a request costs the emulator's "
                "CPU, which the 2 cores share with the client and the proxy, so overlapping requests gains little; "
                "with a round trip, a request mostly waits, and concurrent requests overlap their waits as they "
                "would against SQS and Azure. This is not a target of the issue (the targets are measured above); "
                "it shows what the requests per message and the concurrency are worth where requests cost "
                "network time."
            ),
            Table(
                [
                    "operation",
                    "fluke-airflow msg/s",
                    "fluke-api msg/s",
                    "amazon SqsHook msg/s",
                    "fluke-airflow vs fluke-api",
                    "issue's target (as on loopback)",
                ],
                rows,
            ),
            Para(
                "Every ratio reaches the issue's target with a round trip."
                if not missed
                else "Below the issue's target even with a round trip: " + "; ".join(missed) + "."
            ),
        ]
        if n.runs_of("sqs", "poll", "ours") and n.runs_of("sqs", "poll", "fluke-api"):
            tail, to_last = n.tail("sqs", "poll", "ours"), n.rate_to_last("sqs", "poll", "ours")
            base = n.rate("sqs", "poll", "fluke-api")
            network_blocks.append(
                Para(
                    f"SQS poll+delete with a round trip: of fluke-airflow's {n.seconds('sqs', 'poll', 'ours'):.2f} s, "
                    f"{tail:.2f} s come after the last batch (the final receive long-polls 1 s so that a queue with "
                    f"messages left on some SQS servers is not taken for empty); up to its last batch it ran at "
                    f"{num(to_last)} msg/s ({to_last / base:.2f}x). A batch of 100 takes one receive, then 9 "
                    "receives and 10 deletes in waves of 8 (`max_concurrency`), about 5 round trips where "
                    "fluke-api takes 20 for the same 100 messages. What would close the rest: one wave per batch "
                    "(`max_concurrency=10`), deleting a batch while the next one is received, and, on long drains, "
                    "the final second weighing less."
                )
            )

    # -- idle triggers ------------------------------------------------------------------------------------
    idle_blocks: list[Any] = []
    idle = results.get("idle", {})
    if idle:
        rows = []
        for kind, r in idle.items():
            above = r["rss_peak"] - r["baseline_rss"]
            requests = sum(r["requests"].values())
            per_min = requests * 60 / r["window"]
            ok = kind != "fluke" or (above <= 150e6 and r["cpu_percent"] <= 5.0)
            rows.append(
                [
                    TRIGGER_LABELS[kind],
                    str(r["count"]),
                    mb(r["baseline_rss"]),
                    mb(above),
                    f"{above / r['count'] / 1e6:.2f} MB",
                    f"{r['cpu_percent']:.2f} %",
                    num(per_min),
                    f"{per_min / r['count']:.2f}",
                    f"{r['alive']} / {r['count']}",
                    ("≤ 150 MB, ≤ 5 %: " + verdict(ok)) if kind == "fluke" else "(comparison)",
                ]
            )
        f = idle.get("fluke")
        if f:
            above = f["rss_peak"] - f["baseline_rss"]
            summary.append(
                [
                    f"{f['count']} idle `QueuePollTrigger`s in one loop",
                    "≤ 150 MB above baseline, ≤ 5 % of one core; report requests/min",
                    f"{mb(above)}, {f['cpu_percent']:.2f} % CPU, "
                    f"{num(sum(f['requests'].values()) * 60 / f['window'])} requests/min",
                    verdict(above <= 150e6 and f["cpu_percent"] <= 5.0),
                ]
            )
        idle_blocks = [
            Heading("Idle triggers"),
            Para(
                "Each trigger waits on an empty queue of its own, its `run()` generator consumed by a task in "
                "one event loop of a worker process, the connection read from `AIRFLOW_CONN_BENCH_SQS`, as the "
                "triggerer runs them. `QueuePollTrigger` is created as a deferred `QueuePollSensor` creates it "
                "(`single_event=True`, all else default: 20 s long polls); `SqsSensorTrigger` with its defaults "
                "(`max_messages=5`, `wait_time_seconds=1`, `waiter_delay=60`). The triggers start one after "
                "another over one polling cycle (20 s; 61 s), as deferred tasks arrive at different times; "
                "once every trigger has sent its first receive, and 5 s more, a window of "
                f"{num(next(iter(idle.values()))['window'])} s measures the worker's "
                "RSS (peak, above the baseline: the loop running with every library imported, before the first "
                "trigger), its CPU time over wall time, and the requests at the proxy. Opening requests "
                "(`GetQueueUrl`, `GetQueueAttributes`) fall before the window."
            ),
            Table(
                [
                    "trigger",
                    "triggers",
                    "baseline RSS",
                    "RSS above baseline (peak)",
                    "per trigger",
                    "CPU (one core)",
                    "requests/min",
                    "requests/min/trigger",
                    "alive at the end",
                    "target",
                ],
                rows,
            ),
            Image("idle.png", "Idle triggers: memory, CPU and requests"),
            *_idle_notes(idle),
        ]
        kinds = list(idle)
        bar_chart(
            out / "idle.png",
            [
                (
                    "RSS above baseline (MB)",
                    [TRIGGER_LABELS[k].split(" ")[0] for k in kinds],
                    [(idle[k]["rss_peak"] - idle[k]["baseline_rss"]) / 1e6 for k in kinds],
                    None,
                ),
                (
                    "CPU, % of one core",
                    [TRIGGER_LABELS[k].split(" ")[0] for k in kinds],
                    [idle[k]["cpu_percent"] for k in kinds],
                    None,
                ),
                (
                    "requests/min/trigger",
                    [TRIGGER_LABELS[k].split(" ")[0] for k in kinds],
                    [sum(idle[k]["requests"].values()) * 60 / idle[k]["window"] / idle[k]["count"] for k in kinds],
                    None,
                ),
            ],
            "",
            f"{next(iter(idle.values()))['count']} idle triggers in one event loop",
        )

    # -- latency -----------------------------------------------------------------------------------------
    latency_blocks: list[Any] = []
    latency = results.get("latency", {})
    if latency:
        rows = []
        for kind, r in latency.items():
            samples = sorted(r["samples"])
            idle_rate = ""
            if kind in idle:
                i = idle[kind]
                idle_rate = f"{sum(i['requests'].values()) * 60 / i['window'] / i['count']:.2f}"
            p50, p90 = _pct(samples, 50), _pct(samples, 90)
            rows.append(
                [
                    TRIGGER_LABELS[kind],
                    str(len(samples)) + (f" ({r['missing']} missing)" if r["missing"] else ""),
                    f"{p50:.2f} s",
                    f"{p90:.2f} s",
                    f"{min(samples):.2f}-{max(samples):.2f} s" if samples else "n/a",
                    idle_rate,
                ]
            )
        f = latency.get("fluke")
        if f:
            p50 = _pct(sorted(f["samples"]), 50)
            fluke_rate = (
                sum(idle["fluke"]["requests"].values()) * 60 / idle["fluke"]["window"] / idle["fluke"]["count"]
                if "fluke" in idle
                else float("nan")
            )
            met = p50 <= 1.0 and fluke_rate <= 3.0
            summary.append(
                [
                    "Arrival latency (SQS)",
                    "p50 ≤ 1 s with ≤ 3 idle requests/min/trigger",
                    f"p50 {p50:.2f} s, {fluke_rate:.2f} requests/min/trigger"
                    + (
                        f" (SqsSensorTrigger: p50 {_pct(sorted(latency['amazon']['samples']), 50):.1f} s)"
                        if "amazon" in latency
                        else ""
                    ),
                    verdict(met),
                ]
            )
        latency_blocks = [
            Heading("Arrival latency"),
            Para(
                "Time from a push's return (one message, sent directly to moto) to the trigger's event, one "
                "trigger per queue, all started together; the pushes are spread evenly over one polling cycle "
                "of the trigger (20 s; 61 s) in random order, so they meet the triggers at every phase of their "
                "cycle. Idle requests per minute per trigger come from the idle-trigger run above."
            ),
            Table(["trigger", "samples", "p50", "p90", "min-max", "idle requests/min/trigger"], rows),
            Image("latency.png", "Arrival latency distribution"),
            *_latency_notes(latency),
        ]
        cdf_chart(
            out / "latency.png",
            {TRIGGER_LABELS[k]: r["samples"] for k, r in latency.items()},
            "seconds from push to trigger event (log scale above 1 s)",
            "Arrival latency on SQS (moto)",
        )

    # -- parse --------------------------------------------------------------------------------------------
    parse_blocks: list[Any] = []
    parse = results.get("parse")
    if parse:

        def med(name: str, key: str) -> float:
            return float(statistics.median(run[key] for run in parse[name]))

        cloud = {name: sorted({mod for run in parse[name] for mod in run["cloud_modules"]}) for name in parse}
        share = med("ours", "seconds") / med("amazon", "seconds")
        ok = not cloud["ours"] and share <= 1 / 3
        summary.append(
            [
                "DAG-parse cost",
                "no cloud SDK loaded; ≤ 1/3 of the amazon SQS sensor module",
                f"{med('ours', 'seconds') * 1000:.0f} ms vs {med('amazon', 'seconds') * 1000:.0f} ms "
                f"({share:.2f}); cloud SDK modules loaded: {len(cloud['ours'])}",
                verdict(ok),
            ]
        )
        labels = {
            "ours": "import fluke_airflow.operators, fluke_airflow.sensors",
            "amazon": "import airflow.providers.amazon.aws.sensors.sqs",
        }
        rows = [
            [
                f"`{labels[name]}`",
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
        parse_blocks = [
            Heading("DAG-parse cost"),
            Para(
                f"{len(parse['ours'])} fresh interpreters per contender, alternating; each imports `airflow.sdk` (as "
                "every DAG file does), then the contender's modules, and reports the second import's wall time, "
                "the modules it added, the RSS it added, and every `boto3`, `botocore`, `aiobotocore` or `azure` "
                "module loaded. The virtualenv holds no bytecode (uv installs none and the Makefile sets "
                "`PYTHONDONTWRITEBYTECODE`), while a production image does: the runs use a private "
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
                f"fluke-airflow's imports take {share:.2f} of the amazon sensor module's time, "
                f"{med('ours', 'modules') / med('amazon', 'modules'):.2f} of its modules and "
                f"{med('ours', 'rss') / max(1.0, med('amazon', 'rss')):.2f} of its memory. Target: no cloud SDK and at "
                f"most a third. Met: {verdict(ok)}."
                + (
                    ""
                    if not cloud["ours"]
                    else " Cloud SDK modules loaded by ours: " + ", ".join(f"`{c}`" for c in cloud["ours"][:10])
                )
            ),
            Image("parse.png", "DAG-parse cost"),
        ]
        bar_chart(
            out / "parse.png",
            [
                (
                    "import time (ms)",
                    ["fluke-airflow", "amazon sensor"],
                    [med("ours", "seconds") * 1000, med("amazon", "seconds") * 1000],
                    None,
                ),
                (
                    "modules added",
                    ["fluke-airflow", "amazon sensor"],
                    [med("ours", "modules"), med("amazon", "modules")],
                    None,
                ),
                (
                    "RSS added (MB)",
                    ["fluke-airflow", "amazon sensor"],
                    [med("ours", "rss") / 1e6, med("amazon", "rss") / 1e6],
                    None,
                ),
            ],
            "",
            "What a DAG file's import adds after airflow.sdk (median)",
        )

    # -- memory --------------------------------------------------------------------------------------------
    memory_blocks: list[Any] = []
    mem = results.get("memory")
    if mem:
        samples = mem["samples"]
        start, first, end = samples[0][1], samples[min(1, len(samples) - 1)][1], samples[-1][1]
        peak = max(rss for _, rss in samples)
        half = samples[len(samples) // 2 :]
        slope = _slope([n for n, _ in half], [rss for _, rss in half])
        growth = peak - first
        ok = growth <= 10e6 and abs(slope) < 20
        requests = sum(mem["requests"].values())
        summary.append(
            [
                f"Memory, polling {mem['messages']:,} messages",
                "constant (streamed, no accumulation)",
                f"RSS {mb(first)} after the first batches, peak {mb(peak)}, end {mb(end)}; "
                f"{slope:+.1f} bytes/message over the second half",
                verdict(ok),
            ]
        )
        memory_blocks = [
            Heading("Memory while polling"),
            Para(
                f"fluke-airflow's `AmazonSQSQueue.poll(batch_size=100)` consumes {mem['messages']:,} messages in a "
                f"worker that samples its own RSS every {max(100, mem['messages'] // 100):,} messages. moto's delete "
                "costs O(queue length), so rather than a queue filled up front, a feeder keeps 1,500-3,000 "
                "messages waiting until all were sent; the consumer just polls until it has seen them all."
                + (
                    f" This run used {mem['messages']:,} messages; `--full` uses 100,000."
                    if mem["messages"] < 100_000
                    else ""
                )
                + " Criterion for constant: at most 10 MB growth after the first batches, and a trend over the "
                "second half below 20 bytes per message (accumulating 200-byte bodies alone would be > 200)."
            ),
            Table(
                [
                    "messages",
                    "seconds",
                    "RSS at start",
                    "after first batches",
                    "peak",
                    "end",
                    "trend (2nd half)",
                    "requests/msg",
                ],
                [
                    [
                        f"{mem['messages']:,}",
                        num(mem["seconds"], 1),
                        mb(start),
                        mb(first),
                        mb(peak),
                        mb(end),
                        f"{slope:+.1f} B/msg",
                        f"{requests / mem['messages']:.3f}",
                    ]
                ],
            ),
            Image("memory.png", "RSS while polling"),
        ]
        line_chart(
            out / "memory.png",
            {
                "fluke-airflow AmazonSQSQueue.poll(batch_size=100)": (
                    [n for n, _ in samples],
                    [rss / 1e6 for _, rss in samples],
                )
            },
            "messages polled",
            "RSS (MB)",
            f"RSS while polling {mem['messages']:,} messages",
        )

    # -- assemble -------------------------------------------------------------------------------------------
    report.add(
        Para(
            f"Measured on {results['date']} with `{results['command']}` ({sizes['name']} sizes). Every contender "
            "talks to local emulators on loopback (moto's SQS server and Azurite's queue service) through a "
            "counting reverse proxy (`devtools/proxy.py`), which counts requests per operation at the server "
            "side. Requests do not depend on the machine; times do, and on this machine the emulators, the "
            "proxy and the contender share 2 cores, so the ratios, not the absolute rates, are what carries "
            "over to the cloud, where each request costs milliseconds of network instead."
        ),
        Heading("Summary"),
        Table(["measure", "target", "result", "met?"], summary),
    )
    loads = [m["load_average_start"][0], *m.get("load_average_end", [0.0])[:1]]
    if max(loads) > 0.75 * (m["cpus"] or 1):
        report.add(
            Para(
                f"The machine was not idle: its 1-minute load average was {loads[0]:.1f} at the start and "
                f"{loads[-1]:.1f} at the end on {m['cpus']} CPUs, other work running alongside. Times therefore "
                "vary from round to round (see the min-max columns) and the medians carry that noise; request "
                "counts do not."
            )
        )
    report.add(*_misses(results))
    report.add(*throughput_blocks, *network_blocks, *idle_blocks, *latency_blocks, *parse_blocks, *memory_blocks)
    report.add(
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
    )
    return report


def _notes(results: dict[str, Any]) -> list[Heading | Bullets]:
    if not results.get("notes"):
        return []
    return [Heading("Notes on this run", 3), Bullets([str(note) for note in results["notes"]])]


def _pct(ordered: list[float], q: float) -> float:
    if not ordered:
        return float("nan")
    if len(ordered) == 1:
        return ordered[0]
    return float(statistics.quantiles(ordered, n=100, method="inclusive")[int(q) - 1])


def _slope(xs: list[float], ys: list[float]) -> float:
    if len(xs) < 2:
        return 0.0
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0


# -- explanations ---------------------------------------------------------------------------------------------
def _throughput_notes(t: Throughput, service: str, op: str, met: bool, target: float) -> list[Any]:
    notes: list[Any] = []
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
                "of 10, 8 at a time) where fluke-api and `SqsPublishOperator` send one `SendMessage` each, one "
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
            "with concurrent `DeleteMessageBatch` requests (8 at a time, the default `max_concurrency`). "
            f"Of its {ours_s:.2f} s, {tail:.2f} s (median) come after the last batch: its final, empty receive "
            "long-polls for `wait_time_seconds=1` (the default) so that a queue with messages left on some SQS "
            "servers is not taken for empty, which fluke-api (no long polling) does not do; up to its last batch "
            f"fluke-airflow ran at {num(to_last)} msg/s ({to_last / api_rate:.2f}x)."
        )
        if not met:
            text += (
                f" Target {target:g}x: missed ({ours_rate / api_rate:.2f}x). Against moto every request costs the "
                "emulator's CPU on the same 2 cores as the client and the proxy, so overlapping requests only hides "
                "the client's and the proxy's share of each; the final 1 s wait is a deliberate cost of not ending "
                "a poll early on the real service. Against SQS, where a request is a network round trip of tens of "
                "milliseconds, ten overlapped receives and deletes take the time of about one."
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
                    else f" Target {target:g}x: missed ({ours_rate / api_rate:.2f}x): Azurite handles requests on "
                    "one thread, so concurrency hides only the client's and the proxy's share of each request."
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
                f" Target {target:g}x: missed ({ours_rate / api_rate:.2f}x). Azurite executes requests on one "
                "Node.js thread and each receive or delete costs O(messages stored), so the emulator's time per "
                "delete bounds every client alike; concurrent deletes only hide the client's and the proxy's "
                "share. Against the real service, where a delete is a network round trip, 16 concurrent deletes "
                "would overlap those round trips."
            )
        notes.append(Para(text))
    return notes


def _idle_notes(idle: dict[str, Any]) -> list[Any]:
    notes: list[Any] = []
    f = idle.get("fluke")
    if f:
        above = f["rss_peak"] - f["baseline_rss"]
        requests = sum(f["requests"].values())
        per_trigger = above / f["count"]
        text = (
            f"{f['count']} `QueuePollTrigger` instances hold {mb(above)} above the baseline, "
            f"{per_trigger / 1e6:.2f} MB each, and "
            f"use {f['cpu_percent']:.2f} % of one core for {requests * 60 / f['window']:,.0f} requests per minute "
            f"({requests * 60 / f['window'] / f['count']:.2f} per trigger: one 20 s long poll after another)."
        )
        text += (
            " All triggers of one connection share one aiobotocore client (up to 200 triggers per client, "
            "256 pooled connections each, so every trigger's long poll has a connection) and one set of "
            "credentials: a client of its own per trigger, with its copy of botocore's event-handler tables, "
            "endpoint-rule objects, retry handlers and aiohttp connector, cost about 1.5 MB per trigger before "
            "(757 MB for 500 in the previous report). What remains per trigger is the trigger, its queue "
            "object, its task and its request in flight; the process-wide botocore data (service model, "
            "endpoints) is loaded once, after the baseline."
        )
        if above > 150e6:
            text += " Target ≤ 150 MB: missed."
        if f["cpu_percent"] > 5.0:
            text += (
                f" Target ≤ 5 % CPU: missed. {requests:,} requests in {f['window']:.0f} s cost "
                f"{f['cpu_percent'] / 100 * f['window'] / max(1, requests) * 1000:.1f} ms of CPU each, nearly "
                "all of it inside aiobotocore/botocore and aiohttp (a profile of idle triggers: the event hooks "
                "emitted per request, building the User-Agent header, signing, serialising and parsing); the rate "
                "is fixed by the 20 s long polls (SQS's longest), and sharing clients does not change the work "
                "per request (the previous report, with a client per trigger, measured 5.05 %). What would "
                "close it: a receive path that skips botocore's per-request machinery, "
                "as Kombu's SQS transport does (its own HTTP client, botocore only to sign), at the price of "
                "maintaining SQS's protocol by hand."
            )
        notes.append(Para(text))
    a = idle.get("amazon")
    if a:
        above = a["rss_peak"] - a["baseline_rss"]
        requests = sum(a["requests"].values())
        ops = ", ".join(f"{k} {v:,}" for k, v in sorted(a["requests"].items()))
        notes.append(
            Para(
                "`SqsSensorTrigger` with its defaults polls once a minute "
                f"({requests * 60 / a['window'] / a['count']:.2f} "
                f"requests/min/trigger; {ops} in the window) and builds a new hook, boto3 session and aiobotocore "
                f"client for every poll, then closes it: {mb(above)} above the baseline (the freed memory of those "
                f"short-lived clients stays with the process) and {a['cpu_percent']:.1f} % of one core. Building "
                f"{a['count']} clients a minute keeps the event loop busy and stretches each cycle beyond the 61 s "
                "its settings imply. It makes fewer requests than `QueuePollTrigger`, at the price of the latency "
                "below."
            )
        )
    return notes


def _latency_notes(latency: dict[str, Any]) -> list[Any]:
    notes: list[Any] = []
    f = latency.get("fluke")
    if f and f["samples"]:
        p50 = _pct(sorted(f["samples"]), 50)
        text = f"`QueuePollTrigger`: p50 {p50:.2f} s."
        text += (
            " The trigger's 20 s long poll returns the message within milliseconds of the push (moto wakes the "
            "waiting receive at once). A receive that came back with fewer messages than it asked for found the "
            "queue drained, so the delivery is filled only with what has arrived meanwhile (0 s receives) and "
            "goes out at once; only after a full receive do fill-up receives wait (up to 1 s, because a 0 s "
            "receive samples only some SQS servers and may come back short). The previous report measured p50 "
            "1.01 s, when every delivery waited up to a second for a fill-up receive."
        )
        if p50 > 1.0:
            text += " Target p50 ≤ 1 s: missed."
        notes.append(Para(text))
    a = latency.get("amazon")
    if a and a["samples"]:
        notes.append(
            Para(
                f"`SqsSensorTrigger` with its defaults: p50 {_pct(sorted(a['samples']), 50):.1f} s, p90 "
                f"{_pct(sorted(a['samples']), 90):.1f} s: it receives with a 1 s wait once every `waiter_delay=60` s "
                "(the sensor's `poke_interval`), so a message waits on average half a minute."
            )
        )
    return notes


def _misses(results: dict[str, Any]) -> list[Any]:
    return [
        Para(
            "Targets that are missed are marked **no** in the summary; each section below says why, with the "
            "numbers, and what would close the gap. Nothing in the benchmark was tuned to a target: every "
            "contender runs with its defaults except where stated (batch sizes, and the provider's hook reused)."
        )
    ]


def write_report(results: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    report = build(results, out)
    (out / "README.md").write_text(to_markdown(report))
    rst = to_rst(report)
    rst = rst.replace(
        "fluke-airflow benchmarks\n========================\n",
        "fluke-airflow benchmarks\n========================\n\n"
        "The same report as ``docs/benchmarks/README.md``, written by ``make bench`` "
        "(``bench/build_report.py``).\n",
        1,
    )
    (out / "index.rst").write_text(rst)
