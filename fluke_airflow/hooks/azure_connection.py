"""Read an ``azure_storage_queue`` (or ``wasb``) connection into an :class:`AzureAuth`.

Pure functions of the connection's fields, so every auth method is testable without Azure.
The order in which fields are tried is documented in docs/connections/azure_storage_queue.rst.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from fluke_airflow.auth.azure import AzureAuth, account_url_for
from fluke_airflow.auth.retrying import BUDGET_EXTRA, RetryLimit, check_budget
from fluke_airflow.auth.source import Source

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


def _endpoint_field(host: str | None, endpoint_key: str | None, from_login: bool) -> str:
    """Where the address of the queue service is set, in words (for errors)."""
    if endpoint_key == "queue_endpoint":
        return "the connection's queue_endpoint extra (Queue endpoint)"
    if endpoint_key:
        return f"the connection's {endpoint_key} extra"
    field = "Login" if from_login else "Host"
    if host and host.strip().startswith(("http://", "https://")):
        return f"the URL in the connection's {field} field"
    return f"the account name in the connection's {field} field (the address is https://<name>.queue.core.windows.net)"


def azure_auth_from_connection(
    conn_id: str,
    conn_type: str,
    host: str | None,
    login: str | None,
    password: str | None,
    extras: dict[str, Any],
) -> AzureAuth:
    """Try, in order: connection string, SAS token, service principal, account key, managed
    identity, and finally ``DefaultAzureCredential``. The auth records the connection id and the
    fields it used (:class:`~fluke_airflow.auth.source.Source`) and the connection's
    ``retry_budget_seconds``."""
    x = lambda name: extra_value(extras, conn_type, name)  # noqa: E731
    budget = check_budget(x(BUDGET_EXTRA), conn_id)
    auth, credential, endpoint = _auth_and_fields(conn_id, conn_type, host, login, password, x)
    auth.source = Source(conn_id=conn_id, credential=credential, endpoint=endpoint)
    auth.retry_limit = RetryLimit(budget=budget)
    return auth


def _auth_and_fields(
    conn_id: str, conn_type: str, host: str | None, login: str | None, password: str | None, x: Any
) -> tuple[AzureAuth, str, str]:
    """The auth, and where its credential and its address are set."""
    conn_string = x("connection_string")
    if conn_string:
        auth = AzureAuth.from_conn_string(conn_string)
        part = "SharedAccessSignature" if auth.uses_sas else "AccountKey"
        return (
            auth,
            f"the {part} in the connection's connection_string extra",
            "the QueueEndpoint (or AccountName and EndpointSuffix) in the connection's connection_string extra",
        )
    endpoint_key = "queue_endpoint" if x("queue_endpoint") else "account_url" if x("account_url") else None
    endpoint = x("queue_endpoint") or x("account_url")
    tenant_id = x("tenant_id")
    if conn_type == "wasb":
        # wasb: login is the account name (key auth) or the client id (with tenant_id).
        account_host = host or (login if not tenant_id else x("storage_account_name"))
        key_field = "shared_access_key extra" if x("shared_access_key") else "Password field"
        key = x("shared_access_key") or (password if not tenant_id else None)
    else:
        account_host = host
        key_field = "account_key extra" if x("account_key") else "Password field (Account key or client secret)"
        key = x("account_key") or (password if not tenant_id else None)
    where = _endpoint_field(account_host, endpoint_key, from_login=conn_type == "wasb" and not host)
    sas_token = x("sas_token")
    sas_field = "the connection's sas_token extra (SAS token)"
    if sas_token:
        if str(sas_token).startswith(("http://", "https://")):
            url, _, token = str(sas_token).partition("?")
            auth = AzureAuth.from_sas_token(token, account_url=_queue_url_from(url))
            return auth, sas_field, "the address of the SAS URL in the connection's sas_token extra"
        auth = AzureAuth.from_sas_token(sas_token, account_url=_account_url(account_host, endpoint, conn_id, conn_type))
        return auth, sas_field, where
    account_url = _account_url(account_host, endpoint, conn_id, conn_type)
    if tenant_id:
        if not (login and password):
            raise ValueError(
                f"The connection {conn_id!r} has tenant_id, so it uses a service principal: set Login to the "
                "client id and Password to the client secret"
            )
        auth = AzureAuth.from_service_principal(
            tenant_id=tenant_id, client_id=login, client_secret=password, account_url=account_url
        )
        return (
            auth,
            "the service principal: the connection's Login (client id), Password (client secret) and tenant_id",
            where,
        )
    if key:
        return AzureAuth.from_account_key(key, account_url=account_url), f"the connection's {key_field}", where
    client_id = x("managed_identity_client_id")
    if x("use_managed_identity") in (True, "true", "True", "1"):
        auth = AzureAuth.from_managed_identity(client_id=client_id, account_url=account_url)
        return auth, "this machine's managed identity (the connection's managed_identity_client_id)", where
    auth = AzureAuth.from_default_credential(account_url=account_url, managed_identity_client_id=client_id)
    return auth, "the credential DefaultAzureCredential finds on this machine (the connection sets no key)", where


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
