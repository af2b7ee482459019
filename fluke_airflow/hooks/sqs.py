"""Amazon SQS through the amazon provider's ``aws`` connection.

Every auth method of ``AwsBaseHook`` works unchanged (keys, profiles, role assumption,
web identity, environment and instance credentials, ``endpoint_url`` and ``region_name``
extras): the hook hands its boto3 session to :class:`~fluke_airflow.auth.AWSAuth`, whose
credentials botocore refreshes before they expire, for the async client too.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

try:
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
    from airflow.providers.amazon.aws.utils.connection_wrapper import AwsConnectionWrapper
except ImportError:  # the base install: say which extra brings it
    from fluke_airflow._extras import require

    require("amazon", "fluke_airflow.hooks.sqs (the aws connection)")
    raise

from fluke_airflow import _airflow
from fluke_airflow.auth.aws import AWSAuth
from fluke_airflow.auth.retrying import BUDGET_EXTRA, Deadline, RetryLimit, check_budget
from fluke_airflow.auth.source import Source
from fluke_airflow.hooks.base import ManagesQueues, SharedAuths, connection_fingerprint, refuse_settings, with_deadline
from fluke_airflow.queues.management import QueueCreated
from fluke_airflow.queues.sqs import AmazonSQSQueue, AsyncAmazonSQSQueue, SQSQueueLifecycle


class _InfoAsDebug:
    """A logger whose ``info`` lines go out at DEBUG; every other level is passed on unchanged."""

    def __init__(self, log: Any) -> None:
        self._log = log

    def info(self, *args: Any, **kwargs: Any) -> None:
        self._log.debug(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._log, name)


class _QuietConnectionWrapper(AwsConnectionWrapper):
    """The amazon provider's view of an ``aws`` connection, whose INFO lines ("... credentials
    retrieved from login and password.", "... session token retrieved from extra ...") go out at
    DEBUG. A poking sensor reads its connection on every poke, and that line in every poke's log
    says nothing new. The wrapper's INFO lines are only those; its problems are exceptions and
    ``warnings``, which stay as they are. Other hooks' wrappers keep logging at INFO."""

    @property
    def log(self) -> Any:
        return _InfoAsDebug(super().log)


class AmazonSQSQueueHook(ManagesQueues, AwsBaseHook):
    """Queues of the ``aws`` connection ``aws_conn_id``."""

    service = "Amazon SQS"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["client_type"] = "sqs"
        super().__init__(*args, **kwargs)

    @cached_property
    def conn_config(self) -> AwsConnectionWrapper:
        """``AwsBaseHook.conn_config`` (the same lookup, arguments and missing-connection warning),
        wrapped by :class:`_QuietConnectionWrapper`."""
        from airflow.exceptions import AirflowNotFoundException

        connection = None
        if self.aws_conn_id:
            try:
                connection = self.get_connection(self.aws_conn_id)
            except (AirflowNotFoundException, _airflow.not_found_error()):  # the same class from 3.1 on
                self.log.warning("Unable to find AWS Connection ID '%s', switching to empty.", self.aws_conn_id)
        return _QuietConnectionWrapper(
            conn=connection, region_name=self._region_name, botocore_config=self._config, verify=self._verify
        )

    def get_auth(self) -> AWSAuth:
        session = self.get_session(region_name=self.region_name)
        endpoint_url = self.conn_config.get_service_endpoint_url("sqs")
        verify = self.verify if isinstance(self.verify, (bool, str)) else None
        auth = AWSAuth.from_boto3_session(
            session, endpoint_url=endpoint_url, verify=verify, botocore_config=self.config
        )
        auth.source = self._source()
        auth.retry_limit = RetryLimit(
            budget=check_budget(self.conn_config.extra_config.get(BUDGET_EXTRA), self.aws_conn_id)
        )
        return auth

    def _source(self) -> Source:
        """The connection fields this hook's credentials and endpoint come from, in words (for errors)."""
        config = self.conn_config
        extra = config.extra_config or {}
        if config.login:
            credential = "the connection's AWS Access Key ID (Login) and AWS Secret Access Key (Password)"
        elif config.aws_access_key_id:
            credential = "the aws_access_key_id and aws_secret_access_key in the connection's extra"
        elif config.profile_name:
            credential = f"the profile {config.profile_name!r} (the connection's profile_name extra) on this machine"
        else:
            credential = (
                "the credentials botocore finds on this machine (environment, ~/.aws, container or instance role)"
            )
        if config.role_arn:
            credential = f"the role in the connection's role_arn extra, assumed with {credential}"
        if (config.service_config.get("sqs") or {}).get("endpoint_url"):
            endpoint = "the connection's service_config extra (sqs endpoint_url)"
        elif config.endpoint_url:
            endpoint = "the connection's endpoint_url extra"
        else:
            region = extra.get("region_name") or self.region_name or "the default"
            endpoint = f"the connection's region_name extra ({region}: the endpoint is sqs.<region>.amazonaws.com)"
        return Source(conn_id=self.aws_conn_id, credential=credential, endpoint=endpoint)

    def _tags(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        kwargs.setdefault("metric_tags", {"conn_id": self.aws_conn_id or ""})
        return kwargs

    def get_queue(self, queue: str, *, deadline: Deadline | None = None, **kwargs: Any) -> AmazonSQSQueue:
        """An open queue; ``deadline``: what the task has left, which bounds botocore's retries."""
        return AmazonSQSQueue(with_deadline(self.get_auth(), deadline), queue, **self._tags(kwargs))

    async def aget_queue(self, queue: str, *, share_client: bool = False, **kwargs: Any) -> AsyncAmazonSQSQueue:
        """An async queue; with ``share_client=True`` (triggers) it uses the client that every
        queue of this connection shares on the running event loop, and the connection's
        credentials are resolved once (one role assumption, not one per trigger)."""
        # Building a session may block (STS, files, the supervisor's blocking connection call
        # inside AwsBaseHook): it runs in a worker thread, never on the event loop.
        if share_client:
            conn = await _airflow.aget_connection(self.aws_conn_id) if self.aws_conn_id else None
            region = await _airflow.run_blocking(getattr, self, "region_name")  # reads the connection too
            overrides = repr((self._verify, self._config.__dict__ if self._config is not None else None))
            key = (self.aws_conn_id, region, connection_fingerprint(conn) if conn else "", overrides)
            auth = await SHARED_AUTHS.aget(key, self.get_auth)
        else:
            auth = await _airflow.run_blocking(self.get_auth)
        return AsyncAmazonSQSQueue(auth, queue, share_client=share_client, **self._tags(kwargs))

    # -- queue lifecycle -------------------------------------------------------------------------------
    def _management(self, queue: str) -> SQSQueueLifecycle:
        return SQSQueueLifecycle(self.get_auth(), queue)

    def create_queue(
        self,
        queue: str,
        *,
        attributes: dict[str, Any] | None = None,
        tags: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> QueueCreated:
        """Create the queue ``queue`` (a name) with ``attributes`` and ``tags``, or find it with
        them; ``.queue`` of the result is its URL. See :meth:`~fluke_airflow.queues.sqs.SQSQueueLifecycle.create`."""
        refuse_settings(self.service, {"metadata": metadata}, "attributes and tags")
        with self.managing(queue) as management:
            created: QueueCreated = management.create(attributes, tags)
            return created

    def purge_queue(self, queue: str) -> int:
        """As :meth:`ManagesQueues.purge_queue`; PurgeQueue takes up to 60 s, which the log says."""
        held = super().purge_queue(queue)
        self.log.info(
            "%s deletes a purged queue's messages within 60 seconds: messages sent to %r meanwhile may be "
            "deleted too (PurgeQueue in the SQS API reference)",
            self.service,
            queue,
        )
        return held


SHARED_AUTHS: SharedAuths[AWSAuth] = SharedAuths()
