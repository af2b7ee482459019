"""AWS credentials for the SQS queues: static keys, profiles, boto3 sessions, assumed roles.

One botocore credential source serves both the blocking client (boto3) and the asyncio
client (aiobotocore): the async side borrows the same credentials object, so whatever
botocore knows how to refresh (assumed roles, SSO, instance and container credentials)
is refreshed for long-running triggers too, without a second configuration.
"""

from __future__ import annotations

import asyncio
import threading
from contextlib import AbstractAsyncContextManager
from enum import Enum
from typing import TYPE_CHECKING, Any

from fluke_airflow.auth import retrying
from fluke_airflow.auth.retrying import NO_LIMIT, RetryLimit
from fluke_airflow.auth.sharing import ClientShare
from fluke_airflow.auth.source import IN_CODE, Source

if TYPE_CHECKING:
    import boto3
    import botocore.credentials
    import botocore.session

DEFAULT_REGION = "us-east-1"


class _Region(str, Enum):
    """AWS regions, for code written against fluke's ``AWSAuth.Region``."""

    US_EAST_1 = "us-east-1"
    US_EAST_2 = "us-east-2"
    US_WEST_1 = "us-west-1"
    US_WEST_2 = "us-west-2"
    AF_SOUTH_1 = "af-south-1"
    AP_EAST_1 = "ap-east-1"
    AP_SOUTH_1 = "ap-south-1"
    AP_SOUTH_2 = "ap-south-2"
    AP_NORTHEAST_1 = "ap-northeast-1"
    AP_NORTHEAST_2 = "ap-northeast-2"
    AP_NORTHEAST_3 = "ap-northeast-3"
    AP_SOUTHEAST_1 = "ap-southeast-1"
    AP_SOUTHEAST_2 = "ap-southeast-2"
    AP_SOUTHEAST_3 = "ap-southeast-3"
    AP_SOUTHEAST_4 = "ap-southeast-4"
    CA_CENTRAL_1 = "ca-central-1"
    CA_WEST_1 = "ca-west-1"
    EU_CENTRAL_1 = "eu-central-1"
    EU_CENTRAL_2 = "eu-central-2"
    EU_NORTH_1 = "eu-north-1"
    EU_SOUTH_1 = "eu-south-1"
    EU_SOUTH_2 = "eu-south-2"
    EU_WEST_1 = "eu-west-1"
    EU_WEST_2 = "eu-west-2"
    EU_WEST_3 = "eu-west-3"
    IL_CENTRAL_1 = "il-central-1"
    ME_CENTRAL_1 = "me-central-1"
    ME_SOUTH_1 = "me-south-1"
    SA_EAST_1 = "sa-east-1"
    US_GOV_EAST_1 = "us-gov-east-1"
    US_GOV_WEST_1 = "us-gov-west-1"

    def __str__(self) -> str:
        return self.value


def _bridge_credentials(credentials: botocore.credentials.Credentials) -> Any:
    """Wrap botocore (blocking) credentials for aiobotocore's signer.

    The signer awaits ``get_frozen_credentials()``; a refresh (which may call STS or the
    instance metadata service) runs in a worker thread so the event loop never blocks.
    """
    from aiobotocore.credentials import AioCredentials

    class _BridgedCredentials(AioCredentials):  # type: ignore[misc]
        def __init__(self, source: botocore.credentials.Credentials) -> None:
            self._source = source
            self.method = getattr(source, "method", "fluke-bridge")

        async def get_frozen_credentials(self) -> Any:
            needs_io = getattr(self._source, "refresh_needed", None)
            if needs_io is not None and needs_io():
                return await asyncio.to_thread(self._source.get_frozen_credentials)
            return self._source.get_frozen_credentials()

        def __repr__(self) -> str:
            return f"<bridged AWS credentials method={self.method!r}>"

    return _BridgedCredentials(credentials)


_LOADER: Any = None
_LOADER_LOCK = threading.Lock()


def _warm_loader() -> Any:
    """Create the shared loader once, even when many threads ask at the same moment."""
    global _LOADER
    with _LOADER_LOCK:
        if _LOADER is None:
            from botocore.loaders import create_loader

            loader = create_loader()
            # The calls botocore's client creator makes, with the same arguments (the loader
            # caches by them): a client built on the event loop then reads only the cache.
            for type_name in ("service-2", "endpoint-rule-set-1"):
                loader.load_service_model("sqs", type_name, api_version=None)
            for name in ("endpoints", "partitions", "sdk-default-configuration"):
                loader.load_data(name)
            _LOADER = loader
    return _LOADER


async def _shared_loader() -> Any:
    """botocore's data loader, created and warmed with the SQS model off the event loop.

    One per process: its parsed endpoint data alone is ~30 MB of Python objects, and a
    triggerer that restarts starts all its triggers at once (each used to build its own).
    """
    if _LOADER is not None:
        return _LOADER
    return await asyncio.to_thread(_warm_loader)


class AWSAuth:
    """Credentials and endpoint for Amazon SQS.

    With keys given, they are used as they are. Without, botocore's default chain applies
    (environment, shared config and credentials files, SSO, container and instance roles).
    ``repr`` and ``str`` never show a secret.
    """

    Region = _Region

    def __init__(
        self,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        aws_session_token: str | None = None,
        region: str | _Region | None = None,
        endpoint_url: str | None = None,
        *,
        profile_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: Any = None,
    ) -> None:
        from fluke_airflow._extras import AWS_SDK, require

        require("amazon", "AWSAuth", AWS_SDK)
        if (aws_access_key_id is None) != (aws_secret_access_key is None):
            raise ValueError("aws_access_key_id and aws_secret_access_key must be given together (or neither)")
        if aws_session_token is not None and aws_access_key_id is None:
            raise ValueError("aws_session_token needs aws_access_key_id and aws_secret_access_key")
        for name, value in (
            ("aws_access_key_id", aws_access_key_id),
            ("aws_secret_access_key", aws_secret_access_key),
            ("aws_session_token", aws_session_token),
            ("endpoint_url", endpoint_url),
            ("profile_name", profile_name),
        ):
            if value is not None and (not isinstance(value, str) or not value):
                raise TypeError(f"{name} must be a non-empty string or None")
        if profile_name is not None and aws_access_key_id is not None:
            raise ValueError("give either profile_name or access keys, not both")
        if endpoint_url is not None and not endpoint_url.startswith(("http://", "https://")):
            raise ValueError(f"endpoint_url must start with http:// or https://, got {endpoint_url!r}")
        self._key_id = aws_access_key_id
        self._secret = aws_secret_access_key
        self._token = aws_session_token
        self._region = str(region) if region is not None else None
        self.endpoint_url = endpoint_url
        self.profile_name = profile_name
        self.verify = verify
        self.botocore_config = botocore_config
        self.source: Source = IN_CODE
        """Where these settings came from (a hook sets it), for errors that say what to change."""
        self.retry_limit: RetryLimit = NO_LIMIT
        """What bounds botocore's retries of one request (:mod:`fluke_airflow.auth.retrying`)."""
        self._session: botocore.session.Session | None = None
        self._share: ClientShare | None = None

    # -- other ways in ---------------------------------------------------------------------
    @classmethod
    def from_boto3_session(
        cls,
        session: boto3.session.Session,
        *,
        endpoint_url: str | None = None,
        verify: bool | str | None = None,
        botocore_config: Any = None,
    ) -> AWSAuth:
        """Use a ready boto3 session (profiles, assumed roles, refreshable credentials)."""
        auth = cls(
            region=session.region_name, endpoint_url=endpoint_url, verify=verify, botocore_config=botocore_config
        )
        auth._session = session._session
        return auth

    @classmethod
    def from_profile(cls, profile_name: str, *, region: str | None = None, endpoint_url: str | None = None) -> AWSAuth:
        """A named profile of the shared AWS config (which may itself assume a role or use SSO)."""
        return cls(profile_name=profile_name, region=region, endpoint_url=endpoint_url)

    @classmethod
    def assume_role(
        cls,
        role_arn: str,
        *,
        source: AWSAuth | None = None,
        role_session_name: str = "fluke-airflow",
        external_id: str | None = None,
        duration_seconds: int = 3600,
        region: str | None = None,
        endpoint_url: str | None = None,
        sts_endpoint_url: str | None = None,
    ) -> AWSAuth:
        """Credentials of an assumed role, renewed by botocore before they expire."""
        import botocore.session
        from botocore.credentials import AssumeRoleCredentialFetcher, DeferredRefreshableCredentials

        base = source or cls(region=region)
        base_session = base.botocore_session()
        extra: dict[str, Any] = {"RoleSessionName": role_session_name, "DurationSeconds": duration_seconds}
        if external_id:
            extra["ExternalId"] = external_id

        def client_creator(service: str, **kwargs: Any) -> Any:
            if sts_endpoint_url:
                kwargs["endpoint_url"] = sts_endpoint_url
            # botocore asks for the STS client without a region; the source's region (which
            # may come from AWSAuth rather than the shared config) keeps it from failing.
            kwargs.setdefault("region_name", base.region)
            return base_session.create_client(service, **kwargs)

        fetcher = AssumeRoleCredentialFetcher(
            client_creator=client_creator,
            source_credentials=base_session.get_credentials(),
            role_arn=role_arn,
            extra_args=extra,
        )
        session = botocore.session.get_session()
        session._credentials = DeferredRefreshableCredentials(  # type: ignore[attr-defined]
            refresh_using=fetcher.fetch_credentials, method="assume-role"
        )
        auth = cls(region=region or base.region, endpoint_url=endpoint_url or base.endpoint_url)
        auth._session = session
        return auth

    # -- what the queues use -------------------------------------------------------------------
    @property
    def region(self) -> str:
        if self._region:
            return self._region
        configured = self.botocore_session().get_config_variable("region")
        return str(configured) if configured else DEFAULT_REGION

    def botocore_session(self) -> botocore.session.Session:
        """The one botocore session behind both the blocking and the asyncio clients."""
        if self._session is None:
            import botocore.session

            session = botocore.session.Session(profile=self.profile_name)
            if self._key_id is not None and self._secret is not None:
                session.set_credentials(self._key_id, self._secret, self._token)
            self._session = session
        return self._session

    def _client_kwargs(self, max_pool_connections: int) -> dict[str, Any]:
        from botocore.config import Config

        config = Config(
            retries={"mode": "standard", "total_max_attempts": 5},  # 5 attempts in all
            max_pool_connections=max_pool_connections,
            user_agent_extra="fluke-airflow",
        )
        if self.retry_limit.for_call() is not None:
            # A connection attempt may take no longer than the retry limit leaves (botocore: 60 s).
            config = config.merge(Config(connect_timeout=self.retry_limit.connect_timeout(60.0)))
        if self.botocore_config is not None:
            # The caller's settings (e.g. an aws connection's config_kwargs) win over our defaults.
            config = config.merge(self.botocore_config)
        kwargs: dict[str, Any] = {"region_name": self.region, "config": config}
        if self.endpoint_url:
            kwargs["endpoint_url"] = self.endpoint_url
        if self.verify is not None:
            kwargs["verify"] = self.verify
        return kwargs

    def create_client(self, service: str = "sqs", *, max_pool_connections: int = 10) -> Any:
        """A blocking botocore client, whose retries are counted and bounded by :attr:`retry_limit`."""
        kwargs = self._client_kwargs(max_pool_connections)
        client = self.botocore_session().create_client(service, **kwargs)
        retrying.install_botocore(
            client.meta.events,
            client.meta.service_model.service_id.hyphenize(),
            retrying.botocore_max_attempts(kwargs["config"]),
        )
        return client

    async def create_async_client(
        self, service: str = "sqs", *, max_pool_connections: int = 10
    ) -> AbstractAsyncContextManager[Any]:
        """An aiobotocore client context manager; credentials are resolved off the event loop."""
        from aiobotocore.session import AioSession

        def prepare() -> tuple[Any, dict[str, Any], AioSession]:
            # Tens of milliseconds each (a session registers ~250 handlers): on the event loop,
            # a restarted triggerer's triggers would add them up into a stall.
            credentials = self.botocore_session().get_credentials()
            return credentials, self._client_kwargs(max_pool_connections), AioSession()

        credentials, kwargs, aio = await asyncio.to_thread(prepare)
        # One loader for every client: its cache keeps the service model JSON, so building a
        # client on the event loop (500 triggers start at once) does not parse it again.
        aio.register_component("data_loader", await _shared_loader())
        if credentials is not None:
            aio._credentials = _bridge_credentials(credentials)
        # Registered on this client's own session, which hands them to the client it creates.
        max_attempts = retrying.botocore_max_attempts(kwargs["config"])
        retrying.install_botocore(aio.get_component("event_emitter"), service, max_attempts)
        return aio.create_client(service, **kwargs)  # type: ignore[no-any-return]

    async def acquire_shared_async_client(self) -> Any:
        """The aiobotocore SQS client that this auth shares among the async queues opened with
        ``share_client=True`` on the running event loop (triggers of one connection); give it
        back with :meth:`release_shared_async_client`."""
        if self._share is None:
            self._share = ClientShare(lambda pool: self.create_async_client("sqs", max_pool_connections=pool))
        return await self._share.acquire()

    async def release_shared_async_client(self, client: Any, *, retire: bool = False) -> None:
        """Give back a client of :meth:`acquire_shared_async_client`; the last user closes it
        (``retire``: no new user gets it, see :meth:`ClientShare.release`)."""
        if self._share is not None:
            await self._share.release(client, retire=retire)

    def __repr__(self) -> str:
        if self._key_id is not None:
            how = "access key"
        elif self.profile_name:
            how = f"profile {self.profile_name!r}"
        elif self._session is not None:
            how = "botocore session"
        else:
            how = "default chain"
        return f"AWSAuth(credentials=<{how}>, region={self._region!r}, endpoint_url={self.endpoint_url!r})"

    __str__ = __repr__
