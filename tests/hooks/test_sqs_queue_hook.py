"""AmazonSQSQueueHook: the amazon provider's ``aws`` connections, unchanged, against moto's server.

Keys with ``endpoint_url``/``region_name`` extras, a per-service endpoint, and role assumption:
AwsBaseHook assumes the role through STS at ``service_config.sts.endpoint_url`` (for assume-role
it never uses the connection-wide ``endpoint_url``), which moto's server also serves.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest
from airflow_support import set_connection, sqs_connection
from pushed import accepted

from devtools.admin import SQSService
from devtools.emulators import MotoSQS
from devtools.support import fresh_name
from fluke_airflow.hooks import AmazonSQSQueueHook, get_queue_hook
from fluke_airflow.queues import AmazonSQSQueue

pytestmark = [pytest.mark.usefixtures("airflow_env"), pytest.mark.compat]

ROLE_ARN = "arn:aws:iam::123456789012:role/fluke-test-role"


def assumed_roles(moto: MotoSQS) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{moto.endpoint_url}/moto-api/data.json") as response:
        data = json.loads(response.read())
    return list(data.get("sts", {}).get("AssumedRole", []))


def test_keys_with_endpoint_and_region_extras(moto: MotoSQS, sqs: SQSService, monkeypatch: pytest.MonkeyPatch) -> None:
    conn_id = set_connection(monkeypatch, "aws_keys", sqs_connection(moto))
    name = fresh_name()
    sqs.create(name)
    hook = get_queue_hook(conn_id)
    assert isinstance(hook, AmazonSQSQueueHook)
    auth = hook.get_auth()
    assert (auth.endpoint_url, auth.region) == (moto.endpoint_url, "us-east-1")
    with hook.get_queue(name) as queue:
        assert isinstance(queue, AmazonSQSQueue)
        assert accepted(queue.push_many(["k-1", "k-2"])) == [True, True]
        assert sorted(queue.peek()) == ["k-1", "k-2"]
    assert sorted(sqs.drain(name)) == ["k-1", "k-2"]
    assert moto.secret_access_key not in repr(auth)


def test_queue_url_instead_of_a_name(moto: MotoSQS, sqs: SQSService, monkeypatch: pytest.MonkeyPatch) -> None:
    conn_id = set_connection(monkeypatch, "aws_url", sqs_connection(moto))
    url = sqs.create(fresh_name())
    with get_queue_hook(conn_id).get_queue(url) as queue:
        assert queue.push("by-url")
    assert sqs.drain(url.rsplit("/", 1)[-1]) == ["by-url"]


def test_endpoint_for_sqs_only_in_service_config(
    moto: MotoSQS, sqs: SQSService, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = sqs_connection(moto)
    del conn["extra"]["endpoint_url"]
    conn["extra"]["service_config"] = {"sqs": {"endpoint_url": moto.endpoint_url}}
    conn_id = set_connection(monkeypatch, "aws_service_config", conn)
    name = sqs.create(fresh_name()).rsplit("/", 1)[-1]
    with get_queue_hook(conn_id).get_queue(name) as queue:
        assert queue.push("via-service-config")
    assert sqs.drain(name) == ["via-service-config"]


def role_connection(moto: MotoSQS) -> dict[str, Any]:
    return sqs_connection(moto, role_arn=ROLE_ARN, service_config={"sts": {"endpoint_url": moto.endpoint_url}})


def test_role_assumption(moto: MotoSQS, sqs: SQSService, monkeypatch: pytest.MonkeyPatch) -> None:
    conn_id = set_connection(monkeypatch, "aws_role", role_connection(moto))
    name = sqs.create(fresh_name()).rsplit("/", 1)[-1]
    hook = get_queue_hook(conn_id)
    auth = hook.get_auth()
    credentials = auth.botocore_session().get_credentials()
    assert credentials.method == "sts-assume-role"
    frozen = credentials.get_frozen_credentials()
    # Not the connection's keys: temporary ones, issued by STS for the role.
    assert frozen.access_key != moto.access_key_id and frozen.token
    issued = {r["access_key_id"]: r for r in assumed_roles(moto)}
    assert frozen.access_key in issued
    assert issued[frozen.access_key]["role_arn"] == ROLE_ARN
    with hook.get_queue(name) as queue:
        assert queue.push("as-the-role")
    assert sqs.drain(name) == ["as-the-role"]


async def test_role_assumption_for_the_async_queue(
    moto: MotoSQS, sqs: SQSService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the trigger uses: the assumed role's refreshable credentials, bridged to aiobotocore."""
    conn_id = set_connection(monkeypatch, "aws_role_async", role_connection(moto))
    name = sqs.create(fresh_name()).rsplit("/", 1)[-1]
    sqs.send(name, ["waiting"])
    hook = AmazonSQSQueueHook(aws_conn_id=conn_id)
    queue = await hook.aget_queue(name)
    async with queue:
        assert await queue.push("async-role")
        assert sorted(await queue.peek()) == ["async-role", "waiting"]
    assert any(r["role_arn"] == ROLE_ARN for r in assumed_roles(moto))
    assert sorted(sqs.drain(name)) == ["async-role", "waiting"]


def test_role_assumption_through_the_trigger(moto: MotoSQS, sqs: SQSService, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from fluke_airflow.triggers import QueuePollTrigger

    conn_id = set_connection(monkeypatch, "aws_role_trigger", role_connection(moto))
    name = sqs.create(fresh_name()).rsplit("/", 1)[-1]
    sqs.send(name, ["for-the-trigger"])

    async def first_event() -> Any:
        events = QueuePollTrigger(
            conn_id=conn_id, queue=name, wait_time_seconds=1, pre_delivery_delete=True, single_event=True
        ).run()
        try:
            return await asyncio.wait_for(events.__anext__(), timeout=60)
        finally:
            await events.aclose()

    event = asyncio.run(first_event())
    assert [m["body"] for m in event.payload["messages"]] == ["for-the-trigger"]
    assert sqs.total(name) == 0


def test_missing_queue(moto: MotoSQS, monkeypatch: pytest.MonkeyPatch) -> None:
    from fluke_airflow.exceptions import QueueNotFoundError

    conn_id = set_connection(monkeypatch, "aws_missing_queue", sqs_connection(moto))
    name = fresh_name("missing")
    with pytest.raises(QueueNotFoundError, match=name):
        get_queue_hook(conn_id).get_queue(name)


def test_reading_the_connection_logs_where_the_credentials_came_from_at_debug(
    moto: MotoSQS, sqs: SQSService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The amazon provider logs "AWS Connection (...) credentials retrieved from login and
    password." at INFO each time a hook reads its connection: in a poking sensor, every poke
    (issue 23). Our hook logs it at DEBUG; the amazon provider's own hooks keep it at INFO, and
    a warning of the wrapper (a connection that does not exist) still comes out."""
    from airflow.providers.amazon.aws.hooks.sqs import SqsHook
    from structlog.testing import capture_logs

    conn_id = set_connection(monkeypatch, "aws_quiet", sqs_connection(moto))
    name = fresh_name()
    sqs.create(name)

    def credentials_lines(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
        return [
            (e["log_level"], e["event"] % e.get("positional_args", ()))
            for e in events
            if "retrieved from" in str(e["event"])
        ]

    with capture_logs() as ours:
        hook = AmazonSQSQueueHook(aws_conn_id=conn_id)
        with hook.get_queue(name) as queue:
            assert queue.push("x") is True
    with capture_logs() as theirs:
        SqsHook(aws_conn_id=conn_id).conn_config  # noqa: B018 - reading it is what logs
    with capture_logs() as missing:
        AmazonSQSQueueHook(aws_conn_id="no_such_aws_conn").conn_config  # noqa: B018

    assert [level for level, _ in credentials_lines(ours)] in ([], ["debug"]), ours
    assert credentials_lines(theirs) == [
        (
            "info",
            f"AWS Connection (conn_id={conn_id!r}, conn_type='aws') credentials retrieved from login and password.",
        )
    ], theirs
    assert any(
        e["log_level"] == "warning" and "Unable to find AWS Connection ID" in str(e["event"]) for e in missing
    ), missing
