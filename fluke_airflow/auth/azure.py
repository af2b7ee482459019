"""Azure Queue Storage credentials: connection string, account key, SAS token, service
principal, managed identity and ``DefaultAzureCredential``.

The object keeps *how* to authenticate, not a live credential, because the blocking and
the asyncio queue clients each need a credential of their own flavour
(``azure.identity`` versus ``azure.identity.aio``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Literal
from urllib.parse import urlsplit

from fluke_airflow.auth import retrying
from fluke_airflow.auth.retrying import NO_LIMIT, RetryLimit
from fluke_airflow.auth.sharing import ClientShare
from fluke_airflow.auth.source import IN_CODE, Source

Method = Literal["connection_string", "account_key", "sas_token", "service_principal", "managed_identity", "default"]

_SECRET_PARTS = ("accountkey", "sharedaccesssignature")
CONNECTION_TIMEOUT = 20.0
READ_TIMEOUT = 60.0
"""The storage SDK's connect and read timeouts, which a client built on a transport of our own
(a connection pool sized for its concurrency) must be given explicitly: azure-core's default is 300 s."""
DEVELOPMENT_STORAGE = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
    "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
    "QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;"
)


def account_url_for(storage_account: str) -> str:
    return f"https://{storage_account}.queue.core.windows.net"


def _account_from_url(url: str) -> str:
    """``https://acct.queue.core.windows.net`` -> acct; emulator style ``http://127.0.0.1:10001/acct`` -> acct."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if host == "localhost" or host.replace(".", "").isdigit() or ":" in host:
        name = parts.path.strip("/").split("/")[0]
    else:
        name = host.split(".")[0]
    if not name:
        raise ValueError(f"cannot tell the storage account from account_url {url!r}; give storage_account")
    return name


def _parse_conn_string(conn_string: str) -> dict[str, str]:
    parts: dict[str, str] = {}
    for segment in conn_string.split(";"):
        if segment.strip():
            key, sep, value = segment.partition("=")
            if not sep:
                raise ValueError("conn_string is malformed: every segment must look like Key=Value")
            parts[key.strip().lower()] = value.strip()
    return parts


class AzureAuth:
    """How to reach and authenticate to a storage account's queue service.

    Build it with one of the ``from_*`` class methods. ``repr`` and ``str`` show the account
    and the method, never a key, SAS token or client secret.
    """

    def __init__(self, *, method: Method, account_url: str | None, secret: str | None = None, **options: Any) -> None:
        from fluke_airflow._extras import require

        require("azure", "AzureAuth")
        self.method = method
        self.account_url = account_url.rstrip("/") if account_url else None
        self._secret = secret
        self._options = options
        self.client_options: dict[str, Any] = {}
        self.source: Source = IN_CODE
        """Where these settings came from (a hook sets it), for errors that say what to change."""
        self.retry_limit: RetryLimit = NO_LIMIT
        """What bounds the SDK's retries of one request (:mod:`fluke_airflow.auth.retrying`)."""
        self._share: ClientShare | None = None

    # -- constructors ---------------------------------------------------------------------------
    @classmethod
    def from_conn_string(cls, conn_string: str) -> AzureAuth:
        """A storage connection string (``DefaultEndpointsProtocol=...;AccountName=...;AccountKey=...``)."""
        if not isinstance(conn_string, str) or not conn_string.strip():
            raise ValueError("conn_string must be a non-empty Azure Storage connection string")
        parts = _parse_conn_string(conn_string)
        if parts.get("usedevelopmentstorage", "").lower() == "true":
            # The emulator's well-known account (Azurite on its default port).
            conn_string = DEVELOPMENT_STORAGE
            parts = _parse_conn_string(conn_string)
        if "queueendpoint" in parts:
            url: str | None = parts["queueendpoint"]
        elif "accountname" in parts:
            protocol = parts.get("defaultendpointsprotocol", "https")
            suffix = parts.get("endpointsuffix", "core.windows.net")
            url = f"{protocol}://{parts['accountname']}.queue.{suffix}"
        else:
            raise ValueError("conn_string must name AccountName or QueueEndpoint")
        if not any(k in parts for k in _SECRET_PARTS):
            raise ValueError("conn_string must carry AccountKey or SharedAccessSignature")
        # Whether it signs with a SAS rather than the account key (errors then name the SAS).
        sas = "accountkey" not in parts
        return cls(method="connection_string", account_url=url, secret=conn_string, shared_access_signature=sas)

    @classmethod
    def from_account_key(
        cls, account_key: str, *, storage_account: str | None = None, account_url: str | None = None
    ) -> AzureAuth:
        """Shared key authentication."""
        url = cls._url(storage_account, account_url)
        name = storage_account or _account_from_url(url)
        if not account_key:
            raise ValueError("account_key must be a non-empty string")
        return cls(method="account_key", account_url=url, secret=account_key, account_name=name)

    @classmethod
    def from_sas_token(
        cls, sas_token: str, *, storage_account: str | None = None, account_url: str | None = None
    ) -> AzureAuth:
        """A shared access signature (with or without its leading ``?``)."""
        if not sas_token:
            raise ValueError("sas_token must be a non-empty string")
        return cls(method="sas_token", account_url=cls._url(storage_account, account_url), secret=sas_token.lstrip("?"))

    @classmethod
    def from_service_principal(
        cls,
        storage_account: str | None = None,
        tenant_id: str = "",
        client_id: str = "",
        client_secret: str = "",
        *,
        account_url: str | None = None,
        authority: str | None = None,
    ) -> AzureAuth:
        """An Entra ID application (client secret); it needs a *Storage Queue Data* role."""
        for name, value in (("tenant_id", tenant_id), ("client_id", client_id), ("client_secret", client_secret)):
            if not value:
                raise ValueError(f"{name} must be a non-empty string for service principal authentication")
        return cls(
            method="service_principal",
            account_url=cls._url(storage_account, account_url),
            secret=client_secret,
            tenant_id=tenant_id,
            client_id=client_id,
            authority=authority,
        )

    @classmethod
    def from_managed_identity(
        cls, storage_account: str | None = None, *, client_id: str | None = None, account_url: str | None = None
    ) -> AzureAuth:
        """The managed identity of the VM, container or AKS pod (user-assigned with ``client_id``)."""
        return cls(method="managed_identity", account_url=cls._url(storage_account, account_url), client_id=client_id)

    @classmethod
    def from_default_credential(
        cls,
        storage_account: str | None = None,
        *,
        account_url: str | None = None,
        managed_identity_client_id: str | None = None,
    ) -> AzureAuth:
        """``DefaultAzureCredential``: environment, workload identity, managed identity, Azure CLI..."""
        return cls(
            method="default",
            account_url=cls._url(storage_account, account_url),
            managed_identity_client_id=managed_identity_client_id,
        )

    @staticmethod
    def _url(storage_account: str | None, account_url: str | None) -> str:
        if account_url:
            if not account_url.startswith(("http://", "https://")):
                raise ValueError(f"account_url must start with http:// or https://, got {account_url!r}")
            return account_url
        if storage_account:
            return account_url_for(storage_account)
        raise ValueError("give storage_account (the account name) or account_url")

    def with_client_options(self, **client_options: Any) -> AzureAuth:
        """A copy whose queue clients get these SDK options, e.g. the retry policy:
        ``retry_total``, ``retry_backoff_factor``, ``retry_backoff_max``, ``connection_timeout``."""
        copy = AzureAuth(method=self.method, account_url=self.account_url, secret=self._secret, **self._options)
        copy.client_options = {**self.client_options, **client_options}
        copy.source, copy.retry_limit = self.source, self.retry_limit
        return copy

    def timeouts(self) -> dict[str, float]:
        """``connection_timeout`` and ``read_timeout`` for a transport of our own: the client options',
        else the storage SDK's defaults, the connect timeout no longer than :attr:`retry_limit` leaves."""
        connect = float(self.client_options.get("connection_timeout", CONNECTION_TIMEOUT))
        return {
            "connection_timeout": self.retry_limit.connect_timeout(connect),
            "read_timeout": float(self.client_options.get("read_timeout", READ_TIMEOUT)),
        }

    @property
    def uses_sas(self) -> bool:
        """Whether requests are signed with a shared access signature (not the account key or a token)."""
        return self.method == "sas_token" or bool(self._options.get("shared_access_signature"))

    # -- what the queues use ------------------------------------------------------------------------
    def credential(self, *, asynchronous: bool = False) -> Any:
        """A credential for ``QueueClient(account_url, credential=...)``; ``None`` for connection strings."""
        o = self._options
        if self.method == "connection_string":
            return None
        if self.method == "account_key":
            return {"account_name": o["account_name"], "account_key": self._secret}
        if self.method == "sas_token":
            from azure.core.credentials import AzureSasCredential

            return AzureSasCredential(self._secret or "")
        if asynchronous:
            from azure.identity import aio as identity
        else:
            import azure.identity as identity  # type: ignore[no-redef]
        if self.method == "service_principal":
            kwargs = {"authority": o["authority"]} if o.get("authority") else {}
            return identity.ClientSecretCredential(o["tenant_id"], o["client_id"], self._secret or "", **kwargs)
        if self.method == "managed_identity":
            return identity.ManagedIdentityCredential(client_id=o.get("client_id"))
        return identity.DefaultAzureCredential(managed_identity_client_id=o.get("managed_identity_client_id"))

    def create_queue_client(self, queue: str, *, asynchronous: bool = False, **kwargs: Any) -> tuple[Any, Any]:
        """``(queue_client, credential_to_close_or_None)`` for the blocking or the asyncio SDK."""
        return self._create("QueueClient", (queue,), asynchronous, kwargs)

    def create_service_client(self, *, asynchronous: bool = False, **kwargs: Any) -> tuple[Any, Any]:
        """``(queue_service_client, credential_to_close_or_None)``, e.g. to list queues."""
        return self._create("QueueServiceClient", (), asynchronous, kwargs)

    def _create(self, name: str, args: tuple[Any, ...], asynchronous: bool, kwargs: dict[str, Any]) -> tuple[Any, Any]:
        if asynchronous:
            from azure.storage.queue import aio as sdk
        else:
            import azure.storage.queue as sdk  # type: ignore[no-redef]
        cls = getattr(sdk, name)
        kwargs = {**self.client_options, **kwargs}
        if "retry_policy" not in kwargs:
            # The SDK's ExponentialRetry, counted and bounded by retry_limit (see auth/retrying.py).
            kwargs["retry_policy"] = retrying.azure_retry_policy(asynchronous, kwargs)
        if self.method == "connection_string":
            return cls.from_connection_string(self._secret or "", *args, **kwargs), None
        credential = self.credential(asynchronous=asynchronous)
        closable = credential if hasattr(credential, "close") else None
        return cls(self.account_url or "", *args, credential=credential, **kwargs), closable

    async def acquire_shared_service_client(self) -> Any:
        """The asyncio ``QueueServiceClient`` that this auth shares among the async queues opened
        with ``share_client=True`` on the running event loop (their queue clients come from it
        and use its connection pool); give it back with :meth:`release_shared_service_client`."""
        if self._share is None:
            self._share = ClientShare(self._open_shared_service_client)
        return await self._share.acquire()

    async def release_shared_service_client(self, client: Any, *, retire: bool = False) -> None:
        """Give back a client of :meth:`acquire_shared_service_client`; the last user closes it
        (``retire``: no new user gets it)."""
        if self._share is not None:
            await self._share.release(client, retire=retire)

    async def _open_shared_service_client(self, pool_connections: int) -> AbstractAsyncContextManager[Any]:
        import aiohttp
        from azure.core.pipeline.transport import AioHttpTransport

        # The SDK's aiohttp session allows 100 connections; a shared client serves up to MAX_USERS queues.
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=pool_connections))
        transport = AioHttpTransport(session=session, session_owner=True, **self.timeouts())
        client, credential = self.create_service_client(asynchronous=True, transport=transport)

        @asynccontextmanager
        async def opened() -> AsyncIterator[Any]:
            try:
                yield client
            finally:
                await client.close()
                if credential is not None:
                    await credential.close()

        return opened()

    def __repr__(self) -> str:
        return f"AzureAuth(method={self.method!r}, account_url={self.account_url!r})"

    __str__ = __repr__
