"""QueueCreateOperator, QueueDeleteOperator, QueuePurgeOperator and the push's ``create_if_missing``
in dag.test() runs against moto and Azurite (issue 23).

Where the emulators are more lenient than the services, the fault-injecting proxy answers as the
service does, with the service's own error, and the test cites the API reference that says so.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from airflow_support import DagRunResult, run_dag_captured, set_connection, sqs_connection

from devtools.admin import AzureService, Service, SQSService
from devtools.emulators import AzuriteQueue, MotoSQS
from devtools.proxy import Proxy, ServiceError
from devtools.support import fresh_name
from fluke_airflow.operators import QueueCreateOperator, QueueDeleteOperator, QueuePurgeOperator, QueuePushOperator

pytestmark = pytest.mark.usefixtures("airflow_env")

SERVICE = {"sqs": "Amazon SQS", "azure": "Azure Queue Storage"}


def run(dag_id: str, **conf: Any) -> tuple[DagRunResult, str]:
    return run_dag_captured(dag_id, conf)


def logged(output: str, text: str) -> str:
    """The output line that carries ``text`` (to check its level)."""
    lines = [line for line in output.splitlines() if text in line]
    assert lines, f"{text!r} not in the output:\n{output[-3000:]}"
    return lines[0]


def exists(service: Service, name: str) -> bool:
    return service.exists(name)


def settings_of(service: Service, name: str) -> dict[str, str]:
    """The queue's SQS attributes or Azure metadata, through the independent client."""
    if isinstance(service, SQSService):
        response = service.client.get_queue_attributes(QueueUrl=service.url(name), AttributeNames=["All"])
        return dict(response["Attributes"])
    assert isinstance(service, AzureService)
    return dict(service.client.get_queue_client(name).get_queue_properties().metadata)


# -- create ------------------------------------------------------------------------------------------------
CREATE_CASES = {
    # (settings, the same settings as the service gives them back, conflicting settings, the conflict as named)
    "sqs": (
        {"attributes": {"VisibilityTimeout": 120, "MessageRetentionPeriod": "3600"}},
        {"VisibilityTimeout": "120", "MessageRetentionPeriod": "3600"},
        {"attributes": {"VisibilityTimeout": 60, "MessageRetentionPeriod": 3600}},
        "(VisibilityTimeout: '120' on the queue, '60' asked for)",
    ),
    "azure": (
        {"metadata": {"team": "data", "owner": "ops"}},
        {"team": "data", "owner": "ops"},
        {"metadata": {"team": "data"}},
        "(metadata 'owner': 'ops' on the queue, none asked for)",
    ),
}


@pytest.mark.compat
def test_create_then_create_again_then_create_with_other_settings_fails(service: Service) -> None:
    """SQS CreateQueue: "If you specify the name of an existing queue and provide the exact same names
    and values for all its attributes, the CreateQueue action will return the URL of the existing queue";
    other values are QueueNameExists. Azure Create Queue: the same metadata answers 204 No Content,
    other metadata 409 QueueAlreadyExists (metadata compared as a whole)."""
    name = fresh_name("create")
    settings, stored, other, _ = CREATE_CASES[service.kind]
    try:
        first, output = run("fluke_test_queue_create", conn_id=service.conn_id, queue=name, **settings)
        assert first.task_states() == {"create": "success"}
        queue = first.xcom("create")
        assert queue == (service.url(name) if isinstance(service, SQSService) else name)
        assert f"Created {SERVICE[service.kind]} queue {name!r}" in output
        assert stored.items() <= settings_of(service, name).items()

        again, output = run("fluke_test_queue_create", conn_id=service.conn_id, queue=name, **settings)
        assert again.task_states() == {"create": "success"} and again.xcom("create") == queue
        assert f"{SERVICE[service.kind]} queue {name!r} exists already, with the" in output

        clash, _ = run("fluke_test_queue_create", conn_id=service.conn_id, queue=name, **other)
        assert clash.task_states() == {"create": "failed"}
        assert stored.items() <= settings_of(service, name).items()  # unchanged
    finally:
        service.delete_queue(name)


def test_a_create_with_other_settings_fails_naming_each_with_both_values(service: Service) -> None:
    name = fresh_name("clash")
    settings, stored, other, conflict = CREATE_CASES[service.kind]
    try:
        first, _ = run("fluke_test_queue_create", conn_id=service.conn_id, queue=name, **settings)
        assert first.task_states() == {"create": "success"}
        clash, output = run("fluke_test_queue_create", conn_id=service.conn_id, queue=name, **other)
        assert clash.task_states() == {"create": "failed"}
        assert f"{SERVICE[service.kind]} queue {name!r} already exists with other settings {conflict}" in output
        assert stored.items() <= settings_of(service, name).items()  # unchanged
    finally:
        service.delete_queue(name)


def test_an_existing_queue_is_not_checked_for_settings_not_asked_for(service: Service) -> None:
    name = fresh_name("create")
    if isinstance(service, SQSService):
        service.create(name, VisibilityTimeout=77)
    else:
        service.create(name)
        service.client.get_queue_client(name).set_queue_metadata({"team": "data"})
    try:
        result, output = run("fluke_test_queue_create", conn_id=service.conn_id, queue=name)
        assert result.task_states() == {"create": "success"}
        assert f"{SERVICE[service.kind]} queue {name!r} exists already" in output
    finally:
        service.delete_queue(name)


def test_sqs_fifo_queue_with_a_redrive_policy_and_tags(sqs: SQSService) -> None:
    dlq, name = fresh_name("dlq") + ".fifo", fresh_name("orders") + ".fifo"
    arn = sqs.client.get_queue_attributes(QueueUrl=sqs.create(dlq), AttributeNames=["QueueArn"])["Attributes"]
    attributes = {
        "ContentBasedDeduplication": True,
        "DeduplicationScope": "messageGroup",
        "FifoThroughputLimit": "perMessageGroupId",
        "RedrivePolicy": {"deadLetterTargetArn": arn["QueueArn"], "maxReceiveCount": 4},
    }
    try:
        for _ in range(2):  # the second run finds it with these settings
            result, _ = run("fluke_test_queue_create", conn_id=sqs.conn_id, queue=name, attributes=attributes,
                            tags={"team": "data"})  # fmt: skip
            assert result.task_states() == {"create": "success"}
        stored = settings_of(sqs, name)
        assert stored["FifoQueue"] == "true" and stored["ContentBasedDeduplication"] == "true"
        assert stored["FifoThroughputLimit"] == "perMessageGroupId"
        assert json.loads(stored["RedrivePolicy"]) == {"deadLetterTargetArn": arn["QueueArn"], "maxReceiveCount": 4}
        assert sqs.client.list_queue_tags(QueueUrl=sqs.url(name))["Tags"] == {"team": "data"}

        result, output = run("fluke_test_queue_create", conn_id=sqs.conn_id, queue=name, tags={"team": "ops"})
        assert result.task_states() == {"create": "failed"}
        assert "(tag 'team': 'data' on the queue, 'ops' asked for)" in output
    finally:
        sqs.delete_queue(name)
        sqs.delete_queue(dlq)


def test_created_meanwhile_with_other_settings_is_a_conflict(
    moto: MotoSQS, sqs: SQSService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another creator wins the race between our GetQueueUrl (no queue yet) and our CreateQueue, with
    other attributes: moto answers the CreateQueue with QueueNameExists, as SQS does ("A queue with this
    name already exists. Amazon SQS returns this error only if the request includes attributes whose
    values differ from those of the existing queue"), and the error names the attribute."""
    name = fresh_name("race")
    sqs.create(name, VisibilityTimeout=30)
    with Proxy(moto.endpoint_url) as proxy:
        conn_id = set_connection(monkeypatch, "fluke_sqs_race", sqs_connection(moto, endpoint_url=proxy.url))
        proxy.inject(ServiceError(operation="GetQueueUrl", code="QueueDoesNotExist",
                                  query_code="AWS.SimpleQueueService.NonExistentQueue", first=1))  # fmt: skip
        result, output = run("fluke_test_queue_create", conn_id=conn_id, queue=name,
                             attributes={"VisibilityTimeout": 60})  # fmt: skip
        assert proxy.counts["CreateQueue"] == 1
    assert result.task_states() == {"create": "failed"}
    assert "(VisibilityTimeout: '30' on the queue, '60' asked for)" in output
    assert settings_of(sqs, name)["VisibilityTimeout"] == "30"
    sqs.delete_queue(name)


def test_sqs_create_within_a_minute_of_a_delete_says_to_wait(
    moto: MotoSQS, sqs: SQSService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQS CreateQueue: "If you delete a queue, you must wait at least 60 seconds before creating a
    queue with the same name" (error QueueDeletedRecently). moto lets it through; the proxy answers
    as SQS does."""
    name = fresh_name("recent")
    with Proxy(moto.endpoint_url) as proxy:
        conn_id = set_connection(monkeypatch, "fluke_sqs_recent", sqs_connection(moto, endpoint_url=proxy.url))
        proxy.inject(ServiceError(operation="CreateQueue", code="QueueDeletedRecently",
                                  query_code="AWS.SimpleQueueService.QueueDeletedRecently"))  # fmt: skip
        result, output = run("fluke_test_queue_create", conn_id=conn_id, queue=name)
    assert result.task_states() == {"create": "failed"}
    assert f"Amazon SQS refused to create queue {name!r}: a queue of that name was deleted less than 60" in output
    assert "retry_delay=timedelta(seconds=60)" in output
    assert not exists(sqs, name)


def test_azure_create_while_the_old_queue_is_being_deleted_says_to_wait(
    azurite: AzuriteQueue, azure: AzureService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Azure Queue Storage error codes: QueueBeingDeleted, 409, "The specified queue is being deleted";
    a deleted queue is removed by garbage collection. Azurite removes it at once; the proxy answers
    as Azure does."""
    name = fresh_name("being")
    with Proxy(azurite.account_url) as proxy:
        conn = {
            "conn_type": "azure_storage_queue",
            "password": azurite.key,
            "extra": {"queue_endpoint": proxy.endpoint},
        }
        conn_id = set_connection(monkeypatch, "fluke_azure_being", conn)
        proxy.inject(ServiceError(operation="PUT queue", code="QueueBeingDeleted", status=409,
                                  message="The specified queue is being deleted."))  # fmt: skip
        result, output = run("fluke_test_queue_create", conn_id=conn_id, queue=name)
    assert result.task_states() == {"create": "failed"}
    assert f"Azure Queue Storage refused to create queue {name!r}: a queue of that name is being deleted" in output
    assert not exists(azure, name)


@pytest.mark.parametrize(
    ("conf", "expected"),
    [
        ({"attributes": {"VisibilityTimeout": "soon"}}, "attributes['VisibilityTimeout'] must be an integer from 0"),
        ({"attributes": {"Visibility": 5}}, "did you mean 'VisibilityTimeout'"),
        ({"metadata": {"bad-name": "x"}}, "metadata names are C# identifiers"),
        ({"attributes": "VisibilityTimeout=5"}, "attributes must be a dict of Amazon SQS queue attributes"),
    ],
)
def test_settings_rendering_to_bad_values_fail_before_anything_is_sent(
    sqs: SQSService, azure: AzureService, conf: dict[str, Any], expected: str
) -> None:
    service: Service = azure if "metadata" in conf else sqs
    name = fresh_name("bad")
    result, output = run("fluke_test_queue_create", conn_id=service.conn_id, queue=name, **conf)
    assert result.task_states() == {"create": "failed"}
    assert expected in output
    assert not exists(service, name)


def test_the_other_services_settings_fail_naming_what_this_one_takes(sqs: SQSService, azure: AzureService) -> None:
    name = fresh_name("other")
    result, output = run("fluke_test_queue_create", conn_id=azure.conn_id, queue=name, attributes={"DelaySeconds": 5})
    assert result.task_states() == {"create": "failed"}
    assert "attributes cannot be given for an Azure Queue Storage queue: it takes metadata" in output
    result, output = run("fluke_test_queue_create", conn_id=sqs.conn_id, queue=name, metadata={"team": "data"})
    assert result.task_states() == {"create": "failed"}
    assert "metadata cannot be given for an Amazon SQS queue: it takes attributes and tags" in output
    assert not exists(azure, name) and not exists(sqs, name)


# -- delete ------------------------------------------------------------------------------------------------
@pytest.mark.compat
def test_delete_a_queue_and_its_messages(service: Service) -> None:
    name = fresh_name("delete")
    service.create(name)
    service.send(name, ["a", "b", "c"])
    result, output = run("fluke_test_queue_delete", conn_id=service.conn_id, queue=name)
    # delete_strict runs after delete and finds no queue: ignore_if_missing=False fails it.
    assert result.task_states() == {"delete": "success", "delete_strict": "failed"}
    assert result.xcom("delete") is True
    assert f"Deleted {SERVICE[service.kind]} queue {name!r}, which held about 3 message(s)" in output
    assert not exists(service, name)


def test_delete_a_missing_queue_succeeds_with_a_warning(service: Service) -> None:
    name = fresh_name("missing")
    result, output = run("fluke_test_queue_delete", conn_id=service.conn_id, queue=name)
    assert result.task_states() == {"delete": "success", "delete_strict": "failed"}
    assert result.xcom("delete") is False
    line = logged(output, f"{SERVICE[service.kind]} queue {name!r} does not exist: nothing to delete")
    assert "warning" in line.lower()
    assert (
        f"{SERVICE[service.kind]} queue {name!r} does not exist or is not accessible with these credentials: "
        "nothing was deleted (ignore_if_missing=False)"
    ) in output  # delete_strict
    assert not exists(service, name)


# -- purge -------------------------------------------------------------------------------------------------
@pytest.mark.compat
def test_purge_deletes_every_message_in_flight_or_not(service: Service) -> None:
    """SQS PurgeQueue "Deletes available messages in a queue (including in-flight messages)"; Azure's
    Clear Messages deletes all messages."""
    name = fresh_name("purge")
    service.create(name)
    service.send(name, [f"m-{i}" for i in range(5)])
    in_flight = service.receive(name, visibility_timeout=600)
    assert in_flight
    try:
        result, output = run("fluke_test_queue_purge", conn_id=service.conn_id, queue=name)
        assert result.task_states() == {"purge": "success"}
        assert result.xcom("purge") == 5  # what the queue held: in flight or not
        assert f"Purged {SERVICE[service.kind]} queue {name!r}: it held about 5 message(s)" in output
        assert service.total(name) == 0 and exists(service, name)
    finally:
        service.delete_queue(name)


def test_sqs_refusing_a_purge_drains_the_visible_messages_instead(
    moto: MotoSQS, sqs: SQSService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQS PurgeQueue: one purge per queue every 60 seconds, else PurgeQueueInProgress ("Indicates
    that the specified queue previously received a PurgeQueue request within the last 60 seconds").
    moto enforces it too, by the clock; the proxy answers it for this one request, so the test does not
    depend on how long the machine takes between two purges."""
    name = fresh_name("busy")
    sqs.create(name)
    sqs.send(name, [f"m-{i}" for i in range(25)])
    held = sqs.receive(name, visibility_timeout=600)  # in flight: 1 to 10 of them
    with Proxy(moto.endpoint_url) as proxy:
        conn_id = set_connection(monkeypatch, "fluke_sqs_busy", sqs_connection(moto, endpoint_url=proxy.url))
        proxy.inject(ServiceError(operation="PurgeQueue", code="PurgeQueueInProgress",
                                  query_code="AWS.SimpleQueueService.PurgeQueueInProgress"))  # fmt: skip
        result, output = run("fluke_test_queue_purge", conn_id=conn_id, queue=name)
        assert proxy.counts["PurgeQueue"] == 1 and proxy.counts["DeleteMessageBatch"] >= 2
    try:
        assert result.task_states() == {"purge": "success"}
        assert f"Amazon SQS refused to purge queue {name!r}: a purge is in progress" in output
        assert "messages in flight stay" in output
        # Every visible message was deleted; those in flight stay (a purge would have taken them too).
        assert sqs.drain(name) == []
        assert sqs.total(name) == sqs.in_flight(name) == len(held) > 0
    finally:
        sqs.delete_queue(name)


def test_purge_of_a_missing_queue_fails(service: Service) -> None:
    name = fresh_name("nopurge")
    result, output = run("fluke_test_queue_purge", conn_id=service.conn_id, queue=name)
    assert result.task_states() == {"purge": "failed"}
    assert f"{SERVICE[service.kind]} queue {name!r} (connection {service.conn_id!r}) does not exist or is not" in output
    assert not exists(service, name)


# -- create_if_missing on a push ------------------------------------------------------------------------------
def test_push_creates_its_missing_queue_only_when_asked_and_warns(service: Service) -> None:
    name = fresh_name("auto")
    try:
        result, output = run("fluke_test_push_create_if_missing", conn_id=service.conn_id, queue=name)
        assert result.task_states() == {"push": "success", "push_strict": "failed"}
        line = logged(output, f"{SERVICE[service.kind]} queue {name!r} did not exist: created it")
        assert "warning" in line.lower() and "create_if_missing=True" in line
        assert sorted(service.drain(name)) == ["first", "second"]
        # Without create_if_missing, a missing queue fails the task, saying what to do.
        assert f"queue '{name}-strict' (connection {service.conn_id!r}) does not exist" in output
        assert "create it first (QueueCreateOperator), or give create_if_missing=True" in output
        assert not exists(service, f"{name}-strict")
    finally:
        service.delete_queue(name)


# -- parse time ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "error", "expected"),
    [
        ({"attributes": {"VisibilityTimeout": 5}, "metadata": {"a": "b"}}, ValueError, "give those of the service"),
        ({"attributes": ["VisibilityTimeout"]}, TypeError, "attributes must be a dict"),
        ({"metadata": "team=data"}, TypeError, "metadata must be a dict"),
        ({"attributes": {"visibilitytimeout": "{{ params.v }}"}}, ValueError, "did you mean 'VisibilityTimeout'"),
        ({"attributes": {"VisibilityTimeout": -1}}, ValueError, "from 0 to 43200"),
        ({"queue_name": "orders.fifo", "attributes": {"FifoQueue": False}}, ValueError, "ends in .fifo"),
        ({"queue_name": "https://sqs.eu-west-1.amazonaws.com/1/q", "attributes": {}}, ValueError, "got the URL"),
        ({"tags": {"aws:team": "x"}}, ValueError, "AWS reserves"),
        ({"queue_name": "Orders", "metadata": {"team": "x"}}, ValueError, "not a valid Azure Queue Storage queue name"),
        ({"metadata": {"bad-name": "x"}}, ValueError, "C# identifiers"),
        (
            {"queue_name": "no spaces"},
            ValueError,
            "not a valid Amazon SQS queue name .* Also: queue 'no spaces' is not",
        ),
        ({"queue_name": ""}, ValueError, "queue_name must be a non-empty string"),
    ],
)
def test_create_bad_arguments_fail_at_parse_time(kwargs: dict[str, Any], error: type, expected: str) -> None:
    kwargs = {"queue_name": "orders", **kwargs}
    with pytest.raises(error, match=expected):
        QueueCreateOperator(task_id="create", conn_id="c", **kwargs)


@pytest.mark.parametrize("cls", [QueueDeleteOperator, QueuePurgeOperator])
def test_delete_and_purge_check_the_queue_name_at_parse_time(cls: Any) -> None:
    with pytest.raises(ValueError, match=r"not a valid Amazon SQS queue name .* Also: queue 'my queue' is not"):
        cls(task_id="t", conn_id="c", queue_name="my queue")
    with pytest.raises(ValueError, match="queue_name must be a non-empty string"):
        cls(task_id="t", conn_id="c", queue_name="")
    cls(task_id="url", conn_id="c", queue_name="https://sqs.eu-west-1.amazonaws.com/123456789012/orders")
    cls(task_id="template", conn_id="c", queue_name="{{ params.queue }}")


def test_templates_in_create_settings_are_checked_after_rendering() -> None:
    QueueCreateOperator(task_id="a", conn_id="c", queue_name="{{ params.q }}", attributes={"VisibilityTimeout": 5})
    QueueCreateOperator(task_id="b", conn_id="c", queue_name="q", attributes={"VisibilityTimeout": "{{ params.v }}"})
    QueueCreateOperator(task_id="c", conn_id="c", queue_name="q", metadata="{{ params.metadata }}")
    QueueCreateOperator(
        task_id="d", conn_id="c", queue_name="Orders"
    )  # a valid SQS name (not Azure): known at run time


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (
            lambda: QueueDeleteOperator(task_id="d", conn_id="c", queue_name="q", ignore_if_missing="yes"),
            "ignore_if_missing",
        ),
        (
            lambda: QueuePushOperator(task_id="p", conn_id="c", queue_name="q", message="m", create_if_missing=1),
            "create_if_missing",
        ),
    ],
)
def test_flags_must_be_booleans(build: Any, expected: str) -> None:
    with pytest.raises(TypeError, match=f"{expected} must be True or False"):
        build()


def test_lifecycle_operators_render_their_queue_and_connection() -> None:
    for cls in (QueueCreateOperator, QueueDeleteOperator, QueuePurgeOperator):
        assert {"conn_id", "queue_name"} <= set(cls.template_fields), cls
    assert {"attributes", "tags", "metadata"} <= set(QueueCreateOperator.template_fields)
