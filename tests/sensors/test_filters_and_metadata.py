"""QueuePollSensor's filters, metadata and the amazon provider's SqsSensor names, in dag.test()
runs against moto and Azurite (issue 9)."""

from __future__ import annotations

import json

import pytest
from airflow_support import run_dag_captured, set_connection, sqs_connection

from devtools.admin import Service, SQSService
from devtools.emulators import MotoSQS
from devtools.support import fresh_name

pytestmark = pytest.mark.usefixtures("airflow_env")


@pytest.mark.parametrize("mode", ["poke", "deferrable"])
def test_the_sensor_takes_only_matches_with_their_metadata(service: Service, queue: str, mode: str) -> None:
    paid = [json.dumps({"order": {"id": i, "status": "paid"}}) for i in range(3)]
    new = [json.dumps({"order": {"id": 10 + i, "status": "new"}}) for i in range(2)]
    service.send(queue, paid + new)
    result, _ = run_dag_captured(f"fluke_test_filter_{mode}", {"conn_id": service.conn_id, "queue": queue})
    assert result.task_states() == {"wait": "success"}
    got = result.xcom("wait")
    assert sorted(m["body"] for m in got) == sorted(paid)
    assert all("receipt" not in m and m["metadata"] and m["receive_count"] == 1 for m in got)
    assert result.rendered("wait")["message_filtering_config"] == "order.status"
    assert service.total(queue) == 2  # the others were left in the queue (hidden for a while), not deleted


def test_a_ported_sqs_sensor_runs_unchanged_but_for_the_class(
    moto: MotoSQS, sqs: SQSService, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_connection(monkeypatch, "aws_default", sqs_connection(moto))
    queue = fresh_name("ported")
    sqs.create(queue)
    sqs.send(queue, ["hello", "other", "world"])
    result, _ = run_dag_captured("fluke_test_sqs_sensor_port", {"queue": queue})
    assert result.task_states() == {"read_from_queue_in_batch": "success"}
    assert sorted(result.xcom("read_from_queue_in_batch")) == ["hello", "world"]
    shaped = result.xcom("read_from_queue_in_batch", key="messages")  # as the amazon sensor stores them
    assert sorted(m["Body"] for m in shaped) == ["hello", "world"]
    assert all(m["MessageId"] and "ReceiptHandle" not in m and m["Attributes"]["SentTimestamp"] for m in shaped)
    assert sqs.total(queue) == 1  # deleted on reception, the non-match left


def test_bad_filters_fail_at_parse_time_naming_the_parameter() -> None:
    from fluke_airflow.sensors import QueuePollSensor

    with pytest.raises(ValueError, match="message_filtering must be one of 'literal', 'jsonpath'"):
        QueuePollSensor(task_id="s", conn_id="c", queue_name="q", message_filtering="regex")
    with pytest.raises(ValueError, match="is not a valid jsonpath expression"):
        QueuePollSensor(
            task_id="s", conn_id="c", queue_name="q", message_filtering="jsonpath", message_filtering_config="a[?(@"
        )
    QueuePollSensor(  # a templated expression is checked once rendered
        task_id="t", conn_id="c", queue_name="q", message_filtering="jsonpath", message_filtering_config="{{ x }}"
    )
    with pytest.raises(TypeError, match="give queue_name or sqs_queue"):
        QueuePollSensor(task_id="s", conn_id="c", queue_name="q", sqs_queue="q")
