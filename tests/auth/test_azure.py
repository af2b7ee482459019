"""AzureAuth against Azurite: connection string, account key and SAS token, with the blocking and the
asyncio queue; secrets stay out of reprs, errors and logs; malformed input is refused clearly."""

from __future__ import annotations

import logging
import traceback
from datetime import datetime, timedelta, timezone

import pytest
from auth_support import open_queue, records_text, roundtrip
from azure.storage.queue import AccountSasPermissions, ResourceTypes, generate_account_sas

from devtools.support import fresh_name
from fluke_airflow.auth import AzureAuth
from fluke_airflow.exceptions import QueueError, QueueNotFoundError

pytestmark = pytest.mark.asyncio(loop_scope="session")

EXPECTED = [["auth round trip 1", "auth round trip 2"]]


def account_sas(azurite, **permissions):
    return generate_account_sas(
        azurite.account,
        azurite.key,
        resource_types=ResourceTypes(service=True, container=True, object=True),
        permission=AccountSasPermissions(**permissions),
        expiry=datetime.now(timezone.utc) + timedelta(hours=1),
    )


FULL = {"read": True, "write": True, "add": True, "update": True, "process": True, "list": True}


def auth_for(method, azurite):
    """(auth, the secret it carries)"""
    if method == "conn_string":
        return AzureAuth.from_conn_string(azurite.connection_string), azurite.key
    if method == "account_key":
        return AzureAuth.from_account_key(account_key=azurite.key, account_url=azurite.account_url), azurite.key
    sas = account_sas(azurite, **FULL)
    if method == "sas_token":
        return AzureAuth.from_sas_token(sas, account_url=azurite.account_url), sas
    if method == "sas_token_with_question_mark":
        return AzureAuth.from_sas_token("?" + sas, account_url=azurite.account_url), sas
    raise AssertionError(method)


METHODS = ["conn_string", "account_key", "sas_token", "sas_token_with_question_mark"]


@pytest.mark.parametrize("method", METHODS)
async def test_round_trip(azurite, azure_queue, flavour, method):
    auth, _ = auth_for(method, azurite)
    batches = await roundtrip("azure", flavour, auth, azure_queue)
    assert [sorted(b) for b in batches] == EXPECTED


@pytest.mark.parametrize("method", METHODS)
async def test_no_secret_in_repr_or_str(azurite, azure_queue, method):
    auth, secret = auth_for(method, azurite)
    queue = await open_queue("azure", "sync", auth, azure_queue)
    try:
        for text in (repr(auth), str(auth), repr(queue), str(queue)):
            assert secret not in text
            assert azurite.key not in text
            assert "sig=" not in text
        assert azurite.account in repr(auth)  # what it is, without how it signs in
    finally:
        queue.close()


async def test_account_key_infers_the_account_from_an_emulator_url(azurite):
    auth = AzureAuth.from_account_key(account_key=azurite.key, account_url=azurite.account_url)
    assert auth.credential()["account_name"] == azurite.account
    named = AzureAuth.from_account_key(azurite.key, storage_account="myaccount")
    assert named.account_url == "https://myaccount.queue.core.windows.net"


async def test_wrong_account_key(azurite, azure_queue, flavour, caplog):
    """An authentication failure is a QueueError (not 'queue not found') and shows no key."""
    caplog.set_level(logging.DEBUG)
    wrong = "V3Jvbmcga2V5IGZvciB0ZXN0aW5nIG9ubHkgLSBub3QgYSByZWFsIHNlY3JldCEhIQ=="
    auth = AzureAuth.from_account_key(account_key=wrong, account_url=azurite.account_url)

    with pytest.raises(QueueError) as failed:
        await open_queue("azure", flavour, auth, azure_queue)

    assert not isinstance(failed.value, QueueNotFoundError)
    assert azure_queue in str(failed.value)
    text = "".join(traceback.format_exception(failed.value)) + repr(failed.value)
    assert wrong not in text and azurite.key not in text
    assert wrong not in records_text(caplog.records)
    assert azurite.key not in records_text(caplog.records)


@pytest.mark.parametrize("method", METHODS)
async def test_no_secret_when_the_queue_does_not_exist(azurite, flavour, method, caplog):
    caplog.set_level(logging.DEBUG)
    auth, secret = auth_for(method, azurite)
    name = fresh_name("missing")

    with pytest.raises(QueueNotFoundError) as missing:
        await open_queue("azure", flavour, auth, name)

    assert missing.value.queue == name and name in str(missing.value)
    assert secret not in "".join(traceback.format_exception(missing.value))
    assert secret not in records_text(caplog.records, logging.INFO)
    assert secret not in records_text(caplog.records, prefix="fluke_airflow")
    assert azurite.key not in records_text(caplog.records)  # the key signs requests, it is never sent


async def test_sas_without_add_permission_cannot_push(azurite, azure_queue, azure_service, flavour, caplog):
    """The service refuses the message: push reports False and logs a warning, the read still works."""
    sas = account_sas(azurite, read=True, process=True, list=True)
    auth = AzureAuth.from_sas_token(sas, account_url=azurite.account_url)
    azure_service.get_queue_client(azure_queue).send_message("already there")
    queue = await open_queue("azure", flavour, auth, azure_queue)

    async def call(result):
        return await result if flavour == "async" else result

    try:
        assert await call(queue.push("refused")) is False
        assert await call(queue.peek()) == ["already there"]
    finally:
        await call(queue.close())
    assert any(r.levelname == "WARNING" and r.name.startswith("fluke_airflow") for r in caplog.records)
    assert azure_service.get_queue_client(azure_queue).get_queue_properties().approximate_message_count == 1


@pytest.mark.unit
@pytest.mark.parametrize(
    ("conn_string", "says"),
    [
        ("", "conn_string must be a non-empty"),
        ("   ", "conn_string must be a non-empty"),
        ("garbage", "conn_string is malformed: every segment must look like Key=Value"),
        ("AccountName=acct;AccountKey=S3CRET-KEY-VALUE;oops", "conn_string is malformed"),
        ("AccountName=acct", "conn_string must carry AccountKey or SharedAccessSignature"),
        ("AccountKey=S3CRET-KEY-VALUE", "conn_string must name AccountName or QueueEndpoint"),
        ("DefaultEndpointsProtocol=https;EndpointSuffix=core.windows.net", "must name AccountName or QueueEndpoint"),
    ],
)
async def test_malformed_connection_string(conn_string, says):
    with pytest.raises(ValueError, match=says) as raised:
        AzureAuth.from_conn_string(conn_string)
    assert "S3CRET-KEY-VALUE" not in str(raised.value)


@pytest.mark.unit
async def test_connection_string_of_the_wrong_type():
    with pytest.raises(ValueError, match="conn_string must be a non-empty"):
        AzureAuth.from_conn_string(None)  # type: ignore[arg-type]


@pytest.mark.unit
@pytest.mark.parametrize(
    ("build", "says"),
    [
        (lambda: AzureAuth.from_account_key("", storage_account="acct"), "account_key must be a non-empty string"),
        (lambda: AzureAuth.from_account_key("a2V5"), "give storage_account .* or account_url"),
        (lambda: AzureAuth.from_sas_token("", storage_account="acct"), "sas_token must be a non-empty string"),
        (lambda: AzureAuth.from_sas_token("sv=1&sig=x", account_url="acct.queue"), "account_url must start with http"),
        (
            lambda: AzureAuth.from_service_principal("acct", tenant_id="t", client_id="c", client_secret=""),
            "client_secret must be a non-empty string",
        ),
    ],
)
async def test_bad_arguments(build, says):
    with pytest.raises(ValueError, match=says):
        build()


@pytest.mark.unit
async def test_service_principal_repr_has_no_client_secret():
    auth = AzureAuth.from_service_principal("acct", tenant_id="tenant", client_id="client", client_secret="SP-S3CRET")
    assert "SP-S3CRET" not in repr(auth) and "SP-S3CRET" not in str(auth)
    assert auth.account_url == "https://acct.queue.core.windows.net"


# -- one service client per auth for async queues that share (triggers) -----------------------------------
@pytest.mark.parametrize("encoding", ["text", "base64"])
async def test_async_queues_that_share_use_one_service_client(azurite, azure_service, encoding):
    import asyncio

    from fluke_airflow.queues import AsyncAzureStorageQueue

    auth = AzureAuth.from_conn_string(azurite.connection_string)
    names = [fresh_name("share") for _ in range(3)]
    for name in names:
        azure_service.create_queue(name)
    queues = [AsyncAzureStorageQueue(auth, name, share_client=True, message_encoding=encoding) for name in names]
    await asyncio.gather(*(q.open() for q in queues))
    assert auth._share.clients() == 1 and auth._share.users() == 3
    # Each queue reaches its own queue, with its own encoding, over the one connection pool.
    assert await asyncio.gather(*(q.push(f"to {q.get_name()} ✓") for q in queues)) == [True] * 3
    polled = await asyncio.gather(*(anext(aiter(q.poll(batch_size=10))) for q in queues))
    assert polled == [[f"to {name} ✓"] for name in names]
    for q in queues[:2]:
        await q.close()
    assert auth._share.clients() == 1 and auth._share.users() == 1
    await queues[2].close()
    assert auth._share.clients() == 0


@pytest.mark.unit
async def test_use_development_storage_is_azurites_well_known_account():
    """``UseDevelopmentStorage=true``, as the connection docs show for Azurite on its default port."""
    auth = AzureAuth.from_conn_string("UseDevelopmentStorage=true")
    assert (auth.method, auth.account_url) == ("connection_string", "http://127.0.0.1:10001/devstoreaccount1")
    assert "Eby8vdM02" not in repr(auth)
