"""Test-only DAGs for tests/e2e/test_e2e_event_driven.py: queue arrivals start pipelines.

For each service (``sqs``, ``azure``), a DAG scheduled on an asset whose watcher polls a queue of its
own, each returning the bodies its run received (the test reads them through the REST API):

* ``e2e_events_burst_<service>``: the defaults (batch_size 100), for bursts of hundreds;
* ``e2e_events_stream_<service>``: ``max_active_runs=1`` and a task that takes seconds, fed a
  steady stream (back-pressure);
* ``e2e_events_single_<service>``: ``event_per_message=True``, one run per message;
* ``e2e_events_kill_<service>``: a short visibility timeout, for the triggerer killed mid-burst;
* ``e2e_events_fifo_sqs``: ``event_per_message=True`` on an SQS FIFO queue (runs in the queue's order).
"""

from __future__ import annotations

import time
from datetime import datetime

from airflow.sdk import DAG, Asset, AssetWatcher, task

SERVICES = {"sqs": "fluke_sqs", "azure": "fluke_azure"}
SCENARIOS = {
    # name: (watcher arguments, DAG arguments, seconds the task takes)
    "burst": ({}, {}, 0),
    "stream": ({"max_batching_window": 2}, {"max_active_runs": 1}, 5),
    "single": ({"event_per_message": True}, {}, 0),
    "kill": ({"visibility_timeout": 20}, {}, 0),
}


def queue_name(scenario: str, service: str) -> str:
    return f"e2e-events-{scenario}-{service}" + (".fifo" if scenario == "fifo" else "")


def _dag(scenario: str, service: str) -> None:
    from fluke_airflow.triggers import QueuePollTrigger

    dag_id = f"e2e_events_{scenario}_{service}"
    watch, dag_args, seconds = SCENARIOS[scenario]
    asset = Asset(
        f"e2e_events_{scenario}_{service}_queue",
        watchers=[
            AssetWatcher(
                name=f"watch_{scenario}_{service}",
                trigger=QueuePollTrigger(
                    conn_id=SERVICES[service],
                    queue=queue_name(scenario, service),
                    dag_ids=[dag_id],
                    wait_time_seconds=2,
                    poke_interval=1,
                    **watch,
                ),
            )
        ],
    )
    with DAG(
        dag_id=dag_id,
        schedule=[asset],
        start_date=datetime(2026, 1, 1),
        catchup=False,
        tags=["fluke", "e2e"],
        **dag_args,
    ):

        @task
        def received(*, triggering_asset_events=None) -> list[str]:
            bodies = []
            for events in triggering_asset_events.values():
                for event in events:
                    payload = event.extra["payload"]
                    messages = [payload["message"]] if "message" in payload else payload["messages"]
                    bodies += [m["body"] for m in messages]
            time.sleep(seconds)  # a consumer that takes its time
            return bodies

        received()


for _scenario in SCENARIOS:
    for _service in SERVICES:
        _dag(_scenario, _service)
SCENARIOS["fifo"] = ({"event_per_message": True}, {}, 0)
_dag("fifo", "sqs")

# Routing: two assets on one queue, each watcher with a filter of its own (same other settings, so
# they share one poll loop in the triggerer). "global" orders match both; "apac" ones neither.
for _service, _conn in SERVICES.items():
    for _region in ("eu", "us"):
        from fluke_airflow.triggers import QueuePollTrigger as _Trigger

        _dag_id = f"e2e_events_route_{_region}_{_service}"
        _asset = Asset(
            f"e2e_events_route_{_region}_{_service}",
            watchers=[
                AssetWatcher(
                    name=f"route_{_region}",
                    trigger=_Trigger(
                        conn_id=_conn,
                        queue=f"e2e-events-route-{_service}",
                        dag_ids=[_dag_id],
                        message_filtering="jsonpath",
                        message_filtering_config="region",
                        message_filtering_match_values=[_region, "global"],
                        visibility_timeout=30,
                        wait_time_seconds=2,
                        poke_interval=1,
                    ),
                )
            ],
        )
        with DAG(dag_id=_dag_id, schedule=[_asset], start_date=datetime(2026, 1, 1), catchup=False, tags=["fluke"]):

            @task
            def received(*, triggering_asset_events=None) -> list[str]:
                return [
                    m["body"]
                    for events in triggering_asset_events.values()
                    for event in events
                    for m in event.extra["payload"]["messages"]
                ]

            received()
