"""Test-only DAGs of the PostgreSQL stack (tests/e2e/test_e2e_postgres.py), which the SQLite stacks
do not load. For each service (``sqs``, ``azure``), a DAG scheduled on an asset whose watcher polls
a queue of its own, returning the bodies its run received:

* ``e2e_pg_schedkill_<service>``: the defaults, and a task that takes 4 s, so that a scheduler
  SIGKILLed in the middle of a burst has a task run to leave behind;
* ``e2e_pg_handover_<service>``: through the test proxy (connection ``fluke_<service>_proxied``),
  a visibility timeout of 600 s and batches of twice what one receive returns, so that the test can
  hold a triggerer's second receive and SIGSTOP it while it has the first's messages.
"""

from __future__ import annotations

import time
from datetime import datetime

from airflow.sdk import DAG, Asset, AssetWatcher, task

SERVICES = {"sqs": "fluke_sqs", "azure": "fluke_azure"}
PER_RECEIVE = {"sqs": 10, "azure": 32}
"""The most messages one receive returns (SQS's limit, Azure's)."""


def _dag(kind: str, service: str, watch: dict[str, object], seconds: float) -> None:
    from fluke_airflow.triggers import QueuePollTrigger

    dag_id = f"e2e_pg_{kind}_{service}"
    asset = Asset(
        f"{dag_id}_queue",
        watchers=[
            AssetWatcher(
                name=f"watch_{kind}_{service}",
                trigger=QueuePollTrigger(
                    queue=f"e2e-pg-{kind}-{service}",
                    dag_ids=[dag_id],
                    **{"wait_time_seconds": 2, "poke_interval": 1, **watch},  # type: ignore[arg-type]
                ),
            )
        ],
    )
    with DAG(dag_id=dag_id, schedule=[asset], start_date=datetime(2026, 1, 1), catchup=False, tags=["fluke", "e2e"]):

        @task
        def received(*, triggering_asset_events=None) -> list[str]:
            bodies = [m["body"] for events in triggering_asset_events.values() for e in events
                      for m in e.extra["payload"]["messages"]]  # fmt: skip
            time.sleep(seconds)
            return bodies

        received()


for _service, _conn in SERVICES.items():
    _dag("schedkill", _service, {"conn_id": _conn}, 4)
    _dag(
        "handover",
        _service,
        {
            "conn_id": f"{_conn}_proxied",
            "batch_size": 2 * PER_RECEIVE[_service],
            "visibility_timeout": 600,
            "wait_time_seconds": 1,
        },
        0,
    )
