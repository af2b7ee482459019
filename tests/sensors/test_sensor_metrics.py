"""What the sensor and a poll inside a task report through Airflow's stats client (issue 10), read
by a real StatsD server: one count per message handled, tagged with queue, service and connection."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

import pytest
from airflow_support import run_dag_captured
from statsd_support import StatsdListener, statsd_in_this_process

from devtools.admin import Service

pytestmark = pytest.mark.usefixtures("airflow_env")


@pytest.fixture
def statsd(monkeypatch: pytest.MonkeyPatch) -> Iterator[StatsdListener]:
    with statsd_in_this_process(monkeypatch) as listener:
        yield listener


def counts_when(listener: StatsdListener, expected: dict[str, int], **tags: str) -> dict[str, int]:
    from devtools.support import wait_until

    def reached() -> bool:
        counts = listener.counts(**tags)
        return all(counts[name] == n for name, n in expected.items())

    with contextlib.suppress(AssertionError):  # the comparison below shows what did arrive
        wait_until(reached, timeout=60, what="the metrics to arrive")
    return {name: n for name, n in listener.counts(**tags).items() if n}


@pytest.mark.parametrize("mode", ["poke", "deferrable"])
def test_the_sensor_counts_what_it_received_delivered_filtered_out_and_deleted(
    service: Service, queue: str, mode: str, statsd: StatsdListener
) -> None:
    paid = [json.dumps({"order": {"id": i, "status": "paid"}}) for i in range(3)]
    new = [json.dumps({"order": {"id": 10 + i, "status": "new"}}) for i in range(2)]
    service.send(queue, paid + new)
    result, _ = run_dag_captured(f"fluke_test_filter_{mode}", {"conn_id": service.conn_id, "queue": queue})
    assert result.task_states() == {"wait": "success"}
    expected = {"messages.received": 5, "messages.delivered": 3, "messages.filtered_out": 2, "messages.deleted": 3}
    tags = {"queue": queue, "service": service.kind, "conn_id": service.conn_id}
    assert counts_when(statsd, expected, **tags) == expected


def test_a_push_and_a_poll_inside_tasks_are_counted(service: Service, queue: str, statsd: StatsdListener) -> None:
    bodies = [f"task-{i:02d}" for i in range(25)]
    result, _ = run_dag_captured("fluke_test_metrics_task", {"conn_id": service.conn_id, "queue": queue,
                                                             "bodies": bodies})  # fmt: skip
    assert result.task_states() == {"push": "success", "drain": "success"} and result.xcom("drain") == 25
    expected = {"messages.pushed": 25, "messages.received": 25, "messages.delivered": 25, "messages.deleted": 25}
    assert counts_when(statsd, expected, queue=queue, conn_id=service.conn_id) == expected
