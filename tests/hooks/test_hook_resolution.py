"""get_queue_hook / aget_queue_hook: the service comes from the connection's type.

A wrong or missing connection gets an error naming the connection id and the accepted types.
"""

from __future__ import annotations

import pytest
from airflow_support import set_connection

from fluke_airflow.hooks import AmazonSQSQueueHook, AzureStorageQueueHook, aget_queue_hook, get_queue_hook

pytestmark = [pytest.mark.usefixtures("airflow_env"), pytest.mark.compat]

ACCEPTED = ("'aws' (Amazon SQS)", "'azure_storage_queue'", "'wasb'")


@pytest.mark.parametrize(
    ("conn", "hook_class", "service"),
    [
        ({"conn_type": "aws", "extra": {"region_name": "eu-west-1"}}, AmazonSQSQueueHook, "Amazon SQS"),
        ({"conn_type": "azure_storage_queue", "host": "acct"}, AzureStorageQueueHook, "Azure Queue Storage"),
        ({"conn_type": "wasb", "login": "acct", "password": "a2V5"}, AzureStorageQueueHook, "Azure Queue Storage"),
    ],
)
async def test_hook_by_connection_type(
    monkeypatch: pytest.MonkeyPatch, conn: dict[str, object], hook_class: type, service: str
) -> None:
    conn_id = set_connection(monkeypatch, f"by_type_{conn['conn_type']}", conn)
    for hook in (get_queue_hook(conn_id), await aget_queue_hook(conn_id)):
        assert isinstance(hook, hook_class)
        assert hook.service == service


@pytest.mark.parametrize("conn_type", ["http", "generic", "azure_service_bus", "azure"])
async def test_wrong_connection_type(monkeypatch: pytest.MonkeyPatch, conn_type: str) -> None:
    conn_id = set_connection(monkeypatch, "fluke_wrong_type", {"conn_type": conn_type, "host": "h"})
    with pytest.raises(ValueError) as raised:
        get_queue_hook(conn_id)
    with pytest.raises(ValueError) as araised:
        await aget_queue_hook(conn_id)
    for error in (raised.value, araised.value):
        message = str(error)
        assert f"'fluke_wrong_type' has type '{conn_type}'" in message
        assert all(accepted in message for accepted in ACCEPTED)


async def test_missing_connection() -> None:
    from fluke_airflow._airflow import not_found_error

    AirflowNotFoundException = not_found_error()

    with pytest.raises(AirflowNotFoundException) as raised:
        get_queue_hook("fluke_not_defined")
    with pytest.raises(AirflowNotFoundException) as araised:
        await aget_queue_hook("fluke_not_defined")
    for error in (raised.value, araised.value):
        message = str(error)
        assert "'fluke_not_defined' is not defined" in message
        assert "AIRFLOW_CONN_FLUKE_NOT_DEFINED" in message
        assert all(accepted in message for accepted in ACCEPTED)


@pytest.mark.parametrize("conn_id", [None, "", 5])
def test_conn_id_must_be_a_name(conn_id: object) -> None:
    with pytest.raises(ValueError, match="conn_id must be the id of an Airflow connection"):
        get_queue_hook(conn_id)  # type: ignore[arg-type]
