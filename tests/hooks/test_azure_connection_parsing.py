"""Every way an ``azure_storage_queue`` or ``wasb`` connection can authenticate, read into an AzureAuth.

These need no service: they check which method and account URL the connection's fields give,
and which credential object the SDK would get. Token acquisition (service principal, managed
identity, DefaultAzureCredential) cannot run here, so those tests stop at the credential's type.
The methods that Azurite can serve are exercised for real in test_azure_queue_hook.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from airflow.sdk import Connection
from azure.core.credentials import AzureSasCredential
from azure.identity import ClientSecretCredential, DefaultAzureCredential, ManagedIdentityCredential
from azure.identity import aio as identity_aio

from fluke_airflow.hooks.azure import AzureStorageQueueHook
from fluke_airflow.hooks.azure_connection import azure_auth_from_connection, secrets_of

pytestmark = pytest.mark.unit

ACCOUNT_URL = "https://acct.queue.core.windows.net"
KEY = "a2V5LW9mLXRoZS1hY2NvdW50"
SAS = "sv=2024-08-04&ss=q&srt=sco&sp=rwdlacup&se=2030-01-01T00%3A00%3A00Z&sig=c2lnbmF0dXJl"


def parse(
    conn_type: str = "azure_storage_queue",
    host: str | None = None,
    login: str | None = None,
    password: str | None = None,
    **extras: Any,
) -> Any:
    return azure_auth_from_connection("my_conn", conn_type, host, login, password, extras)


def assert_no_secret(auth: Any, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in repr(auth) and secret not in str(auth)


# -- connection string -------------------------------------------------------------------------------------
def test_connection_string_alone() -> None:
    conn_string = f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={KEY};EndpointSuffix=core.windows.net"
    auth = parse(connection_string=conn_string)
    assert (auth.method, auth.account_url) == ("connection_string", ACCOUNT_URL)
    assert auth.credential() is None  # the SDK reads the key from the string
    assert_no_secret(auth, KEY, conn_string)


def test_connection_string_wins_over_every_other_field() -> None:
    conn_string = f"AccountName=acct;AccountKey={KEY};QueueEndpoint=http://127.0.0.1:10001/acct"
    auth = parse(host="other", password="other-key", connection_string=conn_string, sas_token=SAS, tenant_id="t")
    assert (auth.method, auth.account_url) == ("connection_string", "http://127.0.0.1:10001/acct")


def test_connection_string_of_a_wasb_connection() -> None:
    auth = parse("wasb", connection_string=f"AccountName=acct;AccountKey={KEY}")
    assert (auth.method, auth.account_url) == ("connection_string", ACCOUNT_URL)


# -- where the account is -------------------------------------------------------------------------------------
def test_host_is_the_account_name() -> None:
    auth = parse(host="acct", password=KEY)
    assert (auth.method, auth.account_url) == ("account_key", ACCOUNT_URL)


@pytest.mark.parametrize("host", [ACCOUNT_URL, ACCOUNT_URL + "/", "  " + ACCOUNT_URL + "  "])
def test_host_is_the_queue_url(host: str) -> None:
    auth = parse(host=host, password=KEY)
    assert auth.account_url == ACCOUNT_URL


def test_blob_url_of_a_wasb_connection_becomes_the_queue_url() -> None:
    auth = parse("wasb", host="https://acct.blob.core.windows.net/", login="acct", password=KEY)
    assert (auth.method, auth.account_url) == ("account_key", ACCOUNT_URL)


def test_queue_endpoint_extra_overrides_the_host() -> None:
    auth = parse(host="acct", password=KEY, queue_endpoint="http://127.0.0.1:10001/acct")
    assert auth.account_url == "http://127.0.0.1:10001/acct"
    assert auth.credential() == {"account_name": "acct", "account_key": KEY}  # account from the emulator path


def test_account_url_extra_works_like_queue_endpoint() -> None:
    assert parse(password=KEY, account_url=ACCOUNT_URL).account_url == ACCOUNT_URL


@pytest.mark.parametrize("conn_type", ["azure_storage_queue", "wasb"])
def test_no_account_anywhere_is_a_clear_error(conn_type: str) -> None:
    with pytest.raises(ValueError, match=r"'my_conn'.*which storage account") as raised:
        parse(conn_type, password=KEY)
    assert KEY not in str(raised.value)


# -- SAS token ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("token", [SAS, "?" + SAS])
def test_sas_token_bare(token: str) -> None:
    auth = parse(host="acct", sas_token=token)
    assert (auth.method, auth.account_url) == ("sas_token", ACCOUNT_URL)
    credential = auth.credential()
    assert isinstance(credential, AzureSasCredential) and credential.signature == SAS
    assert_no_secret(auth, SAS)


@pytest.mark.parametrize(
    "url", [f"{ACCOUNT_URL}?{SAS}", f"{ACCOUNT_URL}/?{SAS}", f"https://acct.blob.core.windows.net/?{SAS}"]
)
def test_sas_token_as_a_full_url(url: str) -> None:
    auth = parse(sas_token=url)  # no host needed: the URL names the account
    assert (auth.method, auth.account_url) == ("sas_token", ACCOUNT_URL)
    assert auth.credential().signature == SAS


def test_sas_token_with_queue_endpoint() -> None:
    auth = parse(sas_token=SAS, queue_endpoint="http://127.0.0.1:10001/acct")
    assert (auth.method, auth.account_url) == ("sas_token", "http://127.0.0.1:10001/acct")


def test_sas_token_wins_over_a_key() -> None:
    assert parse(host="acct", password=KEY, sas_token=SAS).method == "sas_token"


# -- service principal ------------------------------------------------------------------------------------------
def test_service_principal() -> None:
    auth = parse(host="acct", login="client-id", password="client-secret", tenant_id="tenant-id")
    assert (auth.method, auth.account_url) == ("service_principal", ACCOUNT_URL)
    credential = auth.credential()
    assert isinstance(credential, ClientSecretCredential)
    assert credential._tenant_id == "tenant-id" and credential._client_id == "client-id"
    credential.close()
    async_credential = auth.credential(asynchronous=True)
    assert isinstance(async_credential, identity_aio.ClientSecretCredential)
    assert_no_secret(auth, "client-secret")


def test_service_principal_of_a_wasb_connection() -> None:
    """wasb: Login is the client id when tenant_id is set; the account comes from the host or the extra."""
    auth = parse("wasb", login="client-id", password="client-secret", tenant_id="t", storage_account_name="acct")
    assert (auth.method, auth.account_url) == ("service_principal", ACCOUNT_URL)
    auth = parse("wasb", host="https://acct.blob.core.windows.net", login="client-id", password="s", tenant_id="t")
    assert (auth.method, auth.account_url) == ("service_principal", ACCOUNT_URL)


@pytest.mark.parametrize(("login", "password"), [(None, "secret"), ("client-id", None)])
def test_service_principal_needs_client_id_and_secret(login: str | None, password: str | None) -> None:
    with pytest.raises(ValueError, match=r"'my_conn' has tenant_id.*client id.*client secret") as raised:
        parse(host="acct", login=login, password=password, tenant_id="t")
    assert "secret" not in str(raised.value).replace("client secret", "")


# -- shared key ---------------------------------------------------------------------------------------------------
def test_shared_key_in_the_password() -> None:
    auth = parse(host="acct", password=KEY)
    assert auth.method == "account_key"
    assert auth.credential() == {"account_name": "acct", "account_key": KEY}
    assert_no_secret(auth, KEY)


def test_shared_key_in_the_extra() -> None:
    assert parse(host="acct", account_key=KEY).credential() == {"account_name": "acct", "account_key": KEY}


def test_shared_key_of_a_wasb_connection() -> None:
    """wasb: Login is the account name, the key is the password or the ``shared_access_key`` extra."""
    assert parse("wasb", login="acct", password=KEY).credential() == {"account_name": "acct", "account_key": KEY}
    auth = parse("wasb", login="acct", shared_access_key=KEY)
    assert (auth.method, auth.account_url) == ("account_key", ACCOUNT_URL)


# -- managed identity and DefaultAzureCredential ------------------------------------------------------------------
@pytest.mark.parametrize("flag", [True, "true", "True", "1"])
def test_managed_identity(flag: Any) -> None:
    auth = parse(host="acct", use_managed_identity=flag, managed_identity_client_id="mi-client")
    assert (auth.method, auth.account_url) == ("managed_identity", ACCOUNT_URL)
    credential = auth.credential()
    assert isinstance(credential, ManagedIdentityCredential)
    assert auth._options["client_id"] == "mi-client"
    credential.close()


def test_default_credential_when_nothing_else_is_given() -> None:
    auth = parse(host="acct", managed_identity_client_id="mi-client")
    assert (auth.method, auth.account_url) == ("default", ACCOUNT_URL)
    assert auth._options["managed_identity_client_id"] == "mi-client"
    credential = auth.credential()
    assert isinstance(credential, DefaultAzureCredential)
    credential.close()
    assert isinstance(auth.credential(asynchronous=True), identity_aio.DefaultAzureCredential)


def test_use_managed_identity_false_falls_back_to_default() -> None:
    assert parse(host="acct", use_managed_identity=False).method == "default"


# -- the Airflow 2 form's prefixed extras ---------------------------------------------------------------------------
def test_prefixed_extras_of_the_azure_storage_queue_form() -> None:
    auth = parse(**{"extra__azure_storage_queue__connection_string": f"AccountName=acct;AccountKey={KEY}"})
    assert auth.method == "connection_string"
    auth = parse(
        **{
            "extra__azure_storage_queue__sas_token": SAS,
            "extra__azure_storage_queue__queue_endpoint": "http://127.0.0.1:10001/acct",
        }
    )
    assert (auth.method, auth.account_url) == ("sas_token", "http://127.0.0.1:10001/acct")
    auth = parse(host="acct", login="c", password="s", **{"extra__azure_storage_queue__tenant_id": "t"})
    assert auth.method == "service_principal"


def test_prefixed_extras_of_the_wasb_form() -> None:
    auth = parse("wasb", login="acct", **{"extra__wasb__shared_access_key": KEY})
    assert auth.credential() == {"account_name": "acct", "account_key": KEY}
    auth = parse("wasb", host="acct", **{"extra__wasb__sas_token": SAS})
    assert auth.method == "sas_token"


def test_plain_extra_wins_over_prefixed_and_empty_values_do_not_count() -> None:
    auth = parse(host="acct", sas_token="", **{"extra__azure_storage_queue__sas_token": SAS})
    assert auth.method == "sas_token"
    assert parse(host="acct", password=KEY, connection_string="").method == "account_key"


# -- the hook on Airflow Connection objects ---------------------------------------------------------------------
def test_hook_reads_an_airflow_connection_and_lists_its_secrets() -> None:
    conn_string = f"AccountName=acct;AccountKey={KEY}"
    conn = Connection(
        conn_id="my_conn", conn_type="azure_storage_queue", extra=json.dumps({"connection_string": conn_string})
    )
    auth = AzureStorageQueueHook("my_conn", connection=conn).get_auth()
    assert auth.method == "connection_string"
    # What the hook hands to Airflow's secret masker: the whole string and the key inside it.
    assert set(secrets_of(conn.password, conn.extra_dejson, "azure_storage_queue")) == {conn_string, KEY}
    sas = secrets_of("pw", {"sas_token": SAS, "client_secret": "cs"}, "azure_storage_queue")
    assert set(sas) == {"pw", SAS, "cs"}


def test_hook_of_a_wasb_connection() -> None:
    conn = Connection(conn_id="my_wasb", conn_type="wasb", host="https://acct.blob.core.windows.net", password=KEY)
    auth = AzureStorageQueueHook("my_wasb", connection=conn).get_auth()
    assert (auth.method, auth.account_url) == ("account_key", ACCOUNT_URL)


def test_ui_field_behaviour_comes_from_provider_yaml() -> None:
    behaviour = AzureStorageQueueHook.get_ui_field_behaviour()
    assert behaviour["hidden_fields"] == ["schema", "port"]
    assert behaviour["relabeling"]["host"] == "Account name or account URL"
    assert "connection_string" in behaviour["placeholders"]
