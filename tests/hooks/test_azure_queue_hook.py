"""AzureStorageQueueHook against Azurite, with connections defined the way users define them.

Every auth method Azurite can serve: connection string, account key with a custom queue
endpoint, a ``wasb`` connection, and SAS tokens generated from Azurite's key (bare and as a
full URL). What the hook sends is checked with an independent azure-storage-queue client.
"""

from __future__ import annotations

import base64
import secrets
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from airflow_support import set_connection
from azure.storage.queue import (
    AccountSasPermissions,
    QueueClient,
    ResourceTypes,
    TextBase64DecodePolicy,
    generate_account_sas,
)
from pushed import accepted

from devtools.admin import AzureService
from devtools.emulators import AzuriteQueue
from devtools.support import fresh_name
from fluke_airflow.hooks import AzureStorageQueueHook, get_queue_hook
from fluke_airflow.queues import AzureStorageQueue

pytestmark = [pytest.mark.usefixtures("airflow_env"), pytest.mark.compat]


def account_sas(azurite: AzuriteQueue, **permissions: bool) -> str:
    allowed = permissions or {"read": True, "write": True, "delete": True, "list": True, "add": True, "process": True}
    return generate_account_sas(
        azurite.account,
        azurite.key,
        resource_types=ResourceTypes(service=True, container=True, object=True),
        permission=AccountSasPermissions(**allowed),
        expiry=datetime.now(timezone.utc) + timedelta(hours=1),
    )


def connections(azurite: AzuriteQueue) -> dict[str, dict[str, Any]]:
    sas = account_sas(azurite)
    return {
        "connection_string": {
            "conn_type": "azure_storage_queue",
            "extra": {"connection_string": azurite.connection_string},
        },
        "key_and_endpoint": {
            "conn_type": "azure_storage_queue",
            "password": azurite.key,
            "extra": {"queue_endpoint": azurite.account_url},
        },
        "key_and_host_url": {"conn_type": "azure_storage_queue", "host": azurite.account_url, "password": azurite.key},
        "wasb_key": {
            "conn_type": "wasb",
            "host": azurite.account_url,
            "login": azurite.account,
            "password": azurite.key,
        },
        "sas_and_endpoint": {
            "conn_type": "azure_storage_queue",
            "extra": {"sas_token": sas, "queue_endpoint": azurite.account_url},
        },
        "sas_url": {"conn_type": "azure_storage_queue", "extra": {"sas_token": f"{azurite.account_url}?{sas}"}},
        "wasb_sas": {"conn_type": "wasb", "host": azurite.account_url, "extra": {"sas_token": sas}},
    }


METHODS = {
    "connection_string": "connection_string",
    "key_and_endpoint": "account_key",
    "key_and_host_url": "account_key",
    "wasb_key": "account_key",
    "sas_and_endpoint": "sas_token",
    "sas_url": "sas_token",
    "wasb_sas": "sas_token",
}


@pytest.mark.parametrize("kind", sorted(METHODS))
def test_push_peek_poll_with_each_auth_method(
    kind: str, azurite: AzuriteQueue, azure: AzureService, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn_id = set_connection(monkeypatch, f"az_{kind}", connections(azurite)[kind])
    name = azure.create(fresh_name())
    hook = get_queue_hook(conn_id)
    assert isinstance(hook, AzureStorageQueueHook)
    auth = hook.get_auth()
    assert auth.method == METHODS[kind]
    assert auth.account_url == azurite.account_url

    with hook.get_queue(name) as queue:
        assert isinstance(queue, AzureStorageQueue)
        assert accepted(queue.push_many([f"{kind}-1", f"{kind}-2", f"{kind}-3"])) == [True, True, True]
        assert sorted(queue.peek()) == [f"{kind}-1", f"{kind}-2", f"{kind}-3"]
        polled = [body for batch in queue.poll(num_messages=1) for body in batch]
    left = azure.drain(name)
    assert len(polled) == 1 and len(left) == 2  # the polled one was deleted
    assert sorted(polled + left) == [f"{kind}-1", f"{kind}-2", f"{kind}-3"]
    assert hook.test_connection() == (True, f"Connected to the queue service at {azurite.account_url}")


async def test_async_queue_with_sas(
    azurite: AzuriteQueue, azure: AzureService, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn_id = set_connection(monkeypatch, "az_async_sas", connections(azurite)["sas_url"])
    name = azure.create(fresh_name())
    azure.send(name, ["async-1"])
    hook = AzureStorageQueueHook(conn_id)
    queue = await hook.aget_queue(name)
    async with queue:
        assert await queue.peek() == ["async-1"]
        assert await queue.push("async-2")
    assert sorted(azure.drain(name)) == ["async-1", "async-2"]


def test_read_only_sas_cannot_push(azurite: AzuriteQueue, azure: AzureService, monkeypatch: pytest.MonkeyPatch) -> None:
    sas = account_sas(azurite, read=True, list=True)
    conn = {"conn_type": "azure_storage_queue", "extra": {"sas_token": sas, "queue_endpoint": azurite.account_url}}
    conn_id = set_connection(monkeypatch, "az_readonly", conn)
    name = azure.create(fresh_name())
    with AzureStorageQueueHook(conn_id).get_queue(name) as queue:
        assert accepted(queue.push_many(["nope"])) == [False]  # the service refused; reported, not raised
    assert azure.total(name) == 0


def test_message_encoding_extra(azurite: AzuriteQueue, azure: AzureService, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = {
        "conn_type": "azure_storage_queue",
        "extra": {"connection_string": azurite.connection_string, "message_encoding": "base64"},
    }
    conn_id = set_connection(monkeypatch, "az_base64", conn)
    name = azure.create(fresh_name())
    with AzureStorageQueueHook(conn_id).get_queue(name) as queue:
        assert queue.push("héllo\x00binary-safe")
    # On the wire it is base64, as Azure Functions write it.
    raw = QueueClient.from_connection_string(azurite.connection_string, name)
    (stored,) = list(raw.receive_messages(visibility_timeout=1))
    assert base64.b64decode(stored.content).decode() == "héllo\x00binary-safe"
    decoded = QueueClient.from_connection_string(
        azurite.connection_string, name, message_decode_policy=TextBase64DecodePolicy()
    )
    from devtools.support import wait_until

    wait_until(lambda: list(decoded.peek_messages()), what="the message to be visible again")
    assert decoded.peek_messages()[0].content == "héllo\x00binary-safe"


# -- test_connection, the UI's Test button -------------------------------------------------------------------
def test_test_connection_with_a_wrong_key(azurite: AzuriteQueue, monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = base64.b64encode(secrets.token_bytes(64)).decode()
    conn = {"conn_type": "azure_storage_queue", "password": wrong, "extra": {"queue_endpoint": azurite.account_url}}
    ok, message = AzureStorageQueueHook(set_connection(monkeypatch, "az_wrong_key", conn)).test_connection()
    assert ok is False
    assert message.startswith("the service answered HTTP 403 AuthenticationFailed: ")
    assert "Check the connection's Password field (Account key or client secret): the account key" in message
    assert f"storage account {azurite.account!r}" in message
    assert wrong not in message and azurite.key not in message


def test_test_connection_with_a_wrong_key_in_a_connection_string(
    azurite: AzuriteQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = base64.b64encode(secrets.token_bytes(64)).decode()
    conn_string = azurite.connection_string.replace(azurite.key, wrong)
    conn = {"conn_type": "azure_storage_queue", "extra": {"connection_string": conn_string}}
    ok, message = AzureStorageQueueHook(set_connection(monkeypatch, "az_wrong_cs", conn)).test_connection()
    assert ok is False
    assert message.startswith("the service answered HTTP 403 AuthenticationFailed: ")
    assert "Check the AccountKey in the connection's connection_string extra: the account key" in message
    assert wrong not in message and azurite.key not in message


def test_test_connection_with_a_broken_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    conn = {"conn_type": "azure_storage_queue", "password": "k"}
    ok, message = AzureStorageQueueHook(set_connection(monkeypatch, "az_no_account", conn)).test_connection()
    assert ok is False
    assert "'az_no_account'" in message and "storage account" in message


def test_test_connection_when_nothing_listens(monkeypatch: pytest.MonkeyPatch) -> None:
    from devtools.emulators import free_port

    key = base64.b64encode(b"k" * 64).decode()
    conn = {
        "conn_type": "azure_storage_queue",
        "password": key,
        "extra": {"queue_endpoint": f"http://127.0.0.1:{free_port()}/acct"},
    }
    ok, message = AzureStorageQueueHook(set_connection(monkeypatch, "az_down", conn)).test_connection()
    assert ok is False and key not in message
    assert "connection refused" in message and "Check the connection's queue_endpoint extra" in message
