"""QueuePushOperator in real DAG runs (dag.test()) against moto and Azurite.

Templates (Jinja in queue and message, an XComArg, native rendering), SQS FIFO options and
delays, bad input at parse time and at render time, and a partly refused push, whose task
fails naming the refused positions after the rest were sent.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from airflow_support import DagRunResult, run_dag_captured, set_connection, sqs_connection

from devtools.admin import AzureService, Service, SQSService
from devtools.emulators import AzuriteQueue, MotoSQS
from devtools.support import fresh_name
from fluke_airflow.operators import QueuePeekOperator, QueuePushOperator
from fluke_airflow.sensors import QueuePollSensor

pytestmark = pytest.mark.usefixtures("airflow_env")


def run(dag_id: str, **conf: Any) -> tuple[DagRunResult, str]:
    return run_dag_captured(dag_id, conf)


# -- templates ----------------------------------------------------------------------------------------------
@pytest.mark.compat
def test_templated_push_and_peek(service: Service, queue: str) -> None:
    result, _ = run("fluke_test_push_templates", conn_id=service.conn_id, queue=queue, tag="t7", count=3)

    assert result.task_states() == {
        "make_messages": "success",
        "push_xcom": "success",
        "push_one": "success",
        "push_list": "success",
        "peek": "success",
    }
    xcom_bodies = ["xcom-t7-0", "xcom-t7-1", "xcom-t7-2"]
    assert len(result.xcom("push_xcom")) == 3  # an XComArg from an upstream @task as message
    assert result.rendered("push_xcom")["message"] == xcom_bodies
    assert len(result.xcom("push_one")) == 1  # the message ids
    rendered = result.rendered("push_one")
    assert rendered["message"] == "one-t7-fluke_test_push_templates"
    assert rendered["queue_name"] == queue and rendered["conn_id"] == service.conn_id
    assert len(result.xcom("push_list")) == 2  # the message ids
    assert result.rendered("push_list")["message"] == ["list-t7-a", "list-t7-b"]
    # max_messages="{{ params.peek }}" renders as the text "5": taken as 5.
    everything = [*xcom_bodies, "one-t7-fluke_test_push_templates", "list-t7-a", "list-t7-b"]
    peeked = result.xcom("peek")
    assert len(peeked) == 5 and set(peeked) <= set(everything)
    assert sorted(service.drain(queue)) == sorted(everything)  # and peeking consumed nothing


@pytest.mark.compat
def test_native_rendering_gives_a_list(service: Service, queue: str) -> None:
    result, _ = run("fluke_test_push_native", conn_id=service.conn_id, queue=queue, batch=["a", "b", "c"])
    assert result.task_states() == {"push": "success"}
    assert result.rendered("push")["message"] == ["a", "b", "c"]
    assert len(result.xcom("push")) == 3  # the message ids
    assert sorted(service.drain(queue)) == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("batch", "expected"),
    [
        (["ok", 5], "message[1] is int"),
        (["ok", {"order": 1}], "message[1] is dict"),
        ([], "message rendered to an empty list"),
        (7, "message must be a str or a list of str, got int"),
    ],
)
def test_a_template_rendering_to_a_bad_value_fails_the_task_naming_message(
    service: Service, queue: str, batch: Any, expected: str
) -> None:
    result, output = run("fluke_test_push_native", conn_id=service.conn_id, queue=queue, batch=batch)
    assert result.task_states() == {"push": "failed"}
    assert expected in output
    assert service.total(queue) == 0  # nothing was sent


def test_a_template_rendering_to_a_bad_int_fails_the_task_naming_it(service: Service, queue: str) -> None:
    result, output = run("fluke_test_push_native", conn_id=service.conn_id, queue=queue, delay=-5)
    assert result.task_states() == {"push": "failed"}
    assert "delay_seconds must be an integer >= 0" in output
    assert service.total(queue) == 0


def test_delay_seconds_from_a_text_template(service: Service, queue: str) -> None:
    """Jinja renders ``{{ params.delay }}`` as text; the operator takes "600" as 600 seconds."""
    result, _ = run("fluke_test_push_delayed", conn_id=service.conn_id, queue=queue, delay=600)
    assert result.task_states() == {"push": "success"}
    assert result.rendered("push")["delay_seconds"] == "600"
    assert service.total(queue) == 12
    assert service.drain(queue) == []  # all hidden for the next ten minutes
    if isinstance(service, SQSService):
        assert service.counts(queue)["delayed"] == 12


# -- SQS FIFO --------------------------------------------------------------------------------------------------
@pytest.mark.compat
def test_fifo_group_and_deduplication_ids(sqs: SQSService) -> None:
    name = fresh_name() + ".fifo"
    sqs.create(name)
    for _ in range(2):  # the second run is deduplicated by the ids
        result, _ = run("fluke_test_push_fifo", conn_id=sqs.conn_id, queue=name, group="g-7")
        assert result.task_states() == {"push": "success"}
    response = sqs.client.receive_message(
        QueueUrl=sqs.url(name), MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"]
    )
    messages = response["Messages"]
    assert [m["Body"] for m in messages] == ["fifo-0", "fifo-1"]
    assert {m["Attributes"]["MessageGroupId"] for m in messages} == {"g-7"}
    assert [m["Attributes"]["MessageDeduplicationId"] for m in messages] == ["d-0", "d-1"]


def test_fifo_without_group_is_refused_before_sending(sqs: SQSService) -> None:
    name = fresh_name() + ".fifo"
    sqs.create(name, ContentBasedDeduplication="true")
    result, output = run("fluke_test_push_native", conn_id=sqs.conn_id, queue=name, batch=["x"])
    assert result.task_states() == {"push": "failed"}
    assert f"message_group_id is required for the FIFO queue {name!r}" in output
    assert sqs.total(name) == 0


def test_one_deduplication_id_for_several_messages(sqs: SQSService) -> None:
    name = fresh_name() + ".fifo"
    sqs.create(name)
    result, output = run("fluke_test_push_fifo", conn_id=sqs.conn_id, queue=name, dedup="just-one")
    assert result.task_states() == {"push": "failed"}
    assert "message_deduplication_id must be a list with one id per message (2)" in output
    assert sqs.total(name) == 0


def test_a_push_the_service_refuses_fails_naming_every_position(sqs: SQSService) -> None:
    """A real service-side refusal: SQS FIFO queues take no per-message delay (InvalidParameterValue)."""
    name = fresh_name() + ".fifo"
    sqs.create(name, ContentBasedDeduplication="true")
    result, output = run("fluke_test_push_fifo", conn_id=sqs.conn_id, queue=name, delay=5)
    assert result.task_states() == {"push": "failed"}
    assert f"2 of 2 message(s) were not accepted by Amazon SQS queue {name!r}: position(s) [0, 1]" in output
    assert sqs.total(name) == 0


# -- a push the service partly refuses (fault-injecting proxy in front of the emulator) -------------------------
REFUSED = re.compile(r"(\d+) of (\d+) message\(s\) were not accepted by .* queue '[^']+': position\(s\) \[([\d, ]*)\]")


def refused_positions(output: str) -> tuple[int, int, list[int]]:
    match = REFUSED.search(output)
    assert match, output[-3000:]
    return int(match[1]), int(match[2]), [int(p) for p in match[3].split(",")]


def test_partly_refused_push_on_sqs(moto: MotoSQS, sqs: SQSService, monkeypatch: pytest.MonkeyPatch) -> None:
    from devtools.proxy import ErrorStatus, Proxy

    name = fresh_name()
    sqs.create(name)
    bodies = [f"part-{i}" for i in range(25)]  # three SendMessageBatch requests: 10, 10 and 5
    with Proxy(moto.endpoint_url) as proxy:
        conn = sqs_connection(moto)
        conn["extra"]["endpoint_url"] = proxy.url
        conn_id = set_connection(monkeypatch, "fluke_sqs_proxied", conn)
        # The first batch request that arrives gets through; every later one is refused (no retry for a 400).
        proxy.inject(ErrorStatus(operation="SendMessageBatch", status=400, skip=1))
        result, output = run("fluke_test_push_native", conn_id=conn_id, queue=name, batch=bodies)
        assert proxy.counts["SendMessageBatch"] >= 3
    assert result.task_states() == {"push": "failed"}
    failed, total, positions = refused_positions(output)
    sent = sqs.drain(name)
    assert total == 25 and failed == len(positions) == 25 - len(sent) and len(sent) in (5, 10)
    assert sorted(sent + [bodies[p] for p in positions]) == sorted(bodies)  # the rest were sent


def test_partly_refused_push_on_azure(
    azurite: AzuriteQueue, azure: AzureService, monkeypatch: pytest.MonkeyPatch
) -> None:
    from devtools.proxy import ErrorStatus, Proxy

    name = azure.create(fresh_name())
    bodies = [f"part-{i}" for i in range(8)]  # Azure: one request per message
    with Proxy(azurite.account_url) as proxy:
        conn = {
            "conn_type": "azure_storage_queue",
            "password": azurite.key,
            "extra": {"queue_endpoint": proxy.endpoint},
        }
        conn_id = set_connection(monkeypatch, "fluke_azure_proxied", conn)
        proxy.inject(ErrorStatus(operation="POST messages", status=400, skip=3))
        result, output = run("fluke_test_push_native", conn_id=conn_id, queue=name, batch=bodies)
    assert result.task_states() == {"push": "failed"}
    failed, total, positions = refused_positions(output)
    sent = azure.drain(name)
    assert (failed, total, len(sent)) == (5, 8, 3)
    assert sorted(sent + [bodies[p] for p in positions]) == sorted(bodies)


# -- parse time ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "error", "expected"),
    [
        ({"message": 5}, TypeError, "message must be a str or a list of str, got int"),
        ({"message": b"bytes"}, TypeError, "got bytes"),
        ({"message": []}, ValueError, "empty list"),
        ({"message": ["a", 5]}, TypeError, r"message\[1\] is int"),
        ({"message": {"a": 1}}, TypeError, "got dict"),
        ({"message": "m", "delay_seconds": -1}, ValueError, "delay_seconds must be an integer >= 0"),
        ({"message": "m", "delay_seconds": 1.5}, TypeError, "delay_seconds"),
    ],
)
def test_push_bad_arguments_fail_at_parse_time(kwargs: dict[str, Any], error: type, expected: str) -> None:
    with pytest.raises(error, match=expected):
        QueuePushOperator(task_id="push", conn_id="c", queue_name="q", **kwargs)


def test_templates_are_checked_after_rendering_not_at_parse_time() -> None:
    QueuePushOperator(
        task_id="a", conn_id="c", queue_name="q", message="{{ params.m }}", delay_seconds="{{ params.d }}"
    )
    QueuePushOperator(task_id="b", conn_id="c", queue_name="q", message=["{{ params.m }}", "plain"])


@pytest.mark.compat
def test_a_bad_dag_file_is_an_import_error_naming_the_argument(tmp_path: Path) -> None:
    from airflow_support import dagbag_class

    DagBag = dagbag_class()
    (tmp_path / "bad_push.py").write_text(
        "from datetime import datetime\n"
        "from airflow.sdk import DAG\n"
        "from fluke_airflow.operators import QueuePushOperator\n"
        "with DAG('bad_push', schedule=None, start_date=datetime(2026, 1, 1)):\n"
        "    QueuePushOperator(task_id='push', conn_id='fluke_sqs', queue_name='q', message=5)\n"
    )
    bag = DagBag(str(tmp_path))
    assert "bad_push" not in bag.dags
    (error,) = bag.import_errors.values()
    assert "message must be a str or a list of str, got int" in error


def test_executor_queue_is_separate_from_the_message_queue() -> None:
    op = QueuePushOperator(task_id="p", conn_id="c", queue_name="orders", message="m", queue="gpu")
    assert (op.queue_name, op.queue) == ("orders", "gpu")


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda: QueuePushOperator(task_id="p", conn_id="c", queue_name="q", message="m", delay_second=3),
         "QueuePushOperator does not take delay_second (did you mean delay_seconds?)"),
        (lambda: QueuePollSensor(task_id="s", conn_id="c", queue_name="q", num_message=5, visiblity_timeout=9),
         "QueuePollSensor does not take num_message (did you mean num_messages?), visiblity_timeout (did you "
         "mean visibility_timeout?)"),
        (lambda: QueuePeekOperator(task_id="k", conn_id="c", queue_name="q", max_message=5),
         "QueuePeekOperator does not take max_message (did you mean max_messages?)"),
        (lambda: QueuePushOperator(task_id="p", conn_id="c", queue_name="q", message="m", retires=2),
         "QueuePushOperator does not take retires (did you mean retries?)"),
    ],
)  # fmt: skip
def test_a_misspelt_argument_names_the_one_meant(make: Any, expected: str) -> None:
    with pytest.raises(TypeError) as raised:
        make()
    assert str(raised.value) == expected


def test_an_unknown_argument_without_a_likely_meaning_is_airflows_error() -> None:
    with pytest.raises(TypeError, match="Invalid arguments were passed to QueuePushOperator"):
        QueuePushOperator(task_id="p", conn_id="c", queue_name="q", message="m", colour="blue")


def test_the_executor_queue_given_as_the_message_queue_says_which_is_which() -> None:
    """A user who writes ``queue=`` (every operator's executor queue) for the message queue is told."""
    with pytest.raises(TypeError, match=r"queue='orders' is Airflow's executor queue .* queue_name="):
        QueuePushOperator(task_id="p", conn_id="c", message="m", queue="orders")
    without = r"^queue_name is required \(or sqs_queue, the amazon provider's name for it\)$"
    with pytest.raises(TypeError, match=without):
        QueuePushOperator(task_id="p", conn_id="c", message="m")


def test_connection_errors_name_the_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    set_connection(monkeypatch, "fluke_http", {"conn_type": "http", "host": "example.com"})
    for conn_id, expected in (("fluke_nope", "'fluke_nope' is not defined"), ("fluke_http", "has type 'http'")):
        result, output = run("fluke_test_push_native", conn_id=conn_id, queue="q", batch=["m"])
        assert result.task_states() == {"push": "failed"}
        assert expected in output and "'azure_storage_queue'" in output


# -- attributes, ids and FIFO deduplication (issue 9) ---------------------------------------------------------
@pytest.mark.compat
def test_pushed_message_ids_and_templated_attributes(sqs: SQSService) -> None:
    queue = fresh_name("attrs")
    sqs.create(queue)
    result, _ = run("fluke_test_push_attributes", conn_id=sqs.conn_id, queue=queue, team="platform")
    assert result.task_states() == {"push": "success"}
    ids = result.xcom("push")
    assert len(ids) == 3 and all(isinstance(i, str) and i for i in ids)
    assert result.rendered("push")["message_attributes"]["team"]["StringValue"] == "platform"
    received = {}
    for _ in range(5):
        answer = sqs.client.receive_message(
            QueueUrl=sqs.url(queue), MaxNumberOfMessages=10, MessageAttributeNames=["All"]
        )
        for m in answer.get("Messages", []):
            received[m["MessageId"]] = (m["Body"], m["MessageAttributes"]["team"]["StringValue"])
    assert [received[i] for i in ids] == [("a", "platform"), ("b", "platform"), ("c", "platform")]


def test_attributes_on_azure_fail_the_task_before_sending(azure: AzureService) -> None:
    queue = fresh_name("attrs")
    azure.create(queue)
    result, output = run("fluke_test_push_attributes", conn_id=azure.conn_id, queue=queue)
    assert result.task_states() == {"push": "failed"}
    assert "message_attributes are an Amazon SQS feature" in output and azure.total(queue) == 0


def test_a_retried_push_to_a_fifo_queue_sends_each_message_once(
    sqs: SQSService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without content-based deduplication, ids derived from the task's identity: a retry (same
    DAG, run, task, map index) is dropped by SQS as a duplicate."""
    from types import SimpleNamespace

    queue = fresh_name("dedup") + ".fifo"
    sqs.create(queue, FifoQueue="true")
    op = QueuePushOperator(
        task_id="push", conn_id=sqs.conn_id, queue_name=queue, message=["x", "y"], message_group_id="g"
    )
    ti = SimpleNamespace(dag_id="d", run_id="r1", task_id="push", map_index=-1)
    op.execute({"ti": ti})  # type: ignore[arg-type]
    op.execute({"ti": ti})  # type: ignore[arg-type]  # the retry: accepted, and dropped as a duplicate
    assert sorted(sqs.drain(queue)) == ["x", "y"]
    another_run = SimpleNamespace(dag_id="d", run_id="r2", task_id="push", map_index=-1)
    op.execute({"ti": another_run})  # type: ignore[arg-type]
    assert sorted(sqs.drain(queue)) == ["x", "y"]  # another run's push is new


def test_bad_attributes_fail_at_parse_time() -> None:
    with pytest.raises(ValueError, match=r"must not start with 'AWS\.' or 'Amazon\.'"):
        QueuePushOperator(
            task_id="p", conn_id="c", queue_name="q", message="m",
            message_attributes={"AWS.x": {"DataType": "String", "StringValue": "v"}},
        )  # fmt: skip
