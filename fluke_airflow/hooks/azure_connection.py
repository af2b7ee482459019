"""Read an ``azure_storage_queue`` (or ``wasb``) connection into an :class:`AzureAuth`.

Pure functions of the connection's fields, so every auth method is testable without Azure.
The order in which fields are tried is documented in docs/connections/azure_storage_queue.rst.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from fluke_airflow.auth.azure import AzureAuth, account_url_for

SECRET_EXTRAS = ("connection_string", "sas_token", "shared_access_key", "account_key", "client_secret")


def extra_value(extras: dict[str, Any], conn_type: str, name: str) -> Any:
    """An extra by plain name, or by the old ``extra__<type>__<name>`` form of Airflow 2 forms."""
    value = extras.get(name)
    if value in (None, ""):
        value = extras.get(f"extra__{conn_type}__{name}")
    return None if value == "" else value


def _queue_url_from(url: str) -> str:
    """A wasb connection's blob URL -> the same account's queue URL."""
    parts = urlsplit(url)
    host = parts.netloc.replace(".blob.", ".queue.", 1)
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


def _account_url(host: str | None, endpoint: str | None, conn_id: str, conn_type: str) -> str:
    if endpoint:
        return str(endpoint)
    if host:
        host = host.strip()
        if host.startswith(("http://", "https://")):
            return _queue_url_from(host)
        return account_url_for(host)
    raise ValueError(
        f"The connection {conn_id!r} ({conn_type}) does not say which storage account to use: set Host to "
        "the account name or its queue URL, or 'queue_endpoint' or 'connection_string' in the extra"
    )


def azure_auth_from_connection(
    conn_id: str,
    conn_type: str,
    host: str | None,
    login: str | None,
    password: str | None,
    extras: dict[str, Any],
) -> AzureAuth:
    """Try, in order: connection string, SAS token, service principal, account key, managed
    identity, and finally ``DefaultAzureCredential``."""
    x = lambda name: extra_value(extras, conn_type, name)  # noqa: E731
    conn_string = x("connection_string")
    if conn_string:
        return AzureAuth.from_conn_string(conn_string)
    endpoint = x("queue_endpoint") or x("account_url")
    tenant_id = x("tenant_id")
    if conn_type == "wasb":
        # wasb: login is the account name (key auth) or the client id (with tenant_id).
        account_host = host or (login if not tenant_id else x("storage_account_name"))
        key = x("shared_access_key") or (password if not tenant_id else None)
    else:
        account_host = host
        key = x("account_key") or (password if not tenant_id else None)
    sas_token = x("sas_token")
    if sas_token:
        if str(sas_token).startswith(("http://", "https://")):
            url, _, token = str(sas_token).partition("?")
            return AzureAuth.from_sas_token(token, account_url=_queue_url_from(url))
        return AzureAuth.from_sas_token(sas_token, account_url=_account_url(account_host, endpoint, conn_id, conn_type))
    account_url = _account_url(account_host, endpoint, conn_id, conn_type)
    if tenant_id:
        if not (login and password):
            raise ValueError(
                f"The connection {conn_id!r} has tenant_id, so it uses a service principal: set Login to the "
                "client id and Password to the client secret"
            )
        return AzureAuth.from_service_principal(
            tenant_id=tenant_id, client_id=login, client_secret=password, account_url=account_url
        )
    if key:
        return AzureAuth.from_account_key(key, account_url=account_url)
    client_id = x("managed_identity_client_id")
    if x("use_managed_identity") in (True, "true", "True", "1"):
        return AzureAuth.from_managed_identity(client_id=client_id, account_url=account_url)
    return AzureAuth.from_default_credential(account_url=account_url, managed_identity_client_id=client_id)


def secrets_of(password: str | None, extras: dict[str, Any], conn_type: str) -> list[str]:
    """Every secret value of the connection, including the key inside a connection string."""
    values = [password] + [extra_value(extras, conn_type, name) for name in SECRET_EXTRAS]
    found = [str(v) for v in values if v]
    for value in list(found):
        for part in value.split(";"):
            key, _, secret = part.partition("=")
            if key.strip().lower() in ("accountkey", "sharedaccesssignature") and secret:
                found.append(secret.strip())
    return found
