"""Amazon SQS through the amazon provider's ``aws`` connection.

Every auth method of ``AwsBaseHook`` works unchanged (keys, profiles, role assumption,
web identity, environment and instance credentials, ``endpoint_url`` and ``region_name``
extras): the hook hands its boto3 session to :class:`~fluke_airflow.auth.AWSAuth`, whose
credentials botocore refreshes before they expire, for the async client too.
"""

from __future__ import annotations

from typing import Any

try:
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
except ImportError:  # the base install: say which extra brings it
    from fluke_airflow._extras import require

    require("amazon", "fluke_airflow.hooks.sqs (the aws connection)")
    raise

from fluke_airflow import _airflow
from fluke_airflow.auth.aws import AWSAuth
from fluke_airflow.hooks.base import SharedAuths, connection_fingerprint, purge, refuse_settings
from fluke_airflow.queues.management import QueueCreated
from fluke_airflow.queues.sqs import AmazonSQSQueue, AsyncAmazonSQSQueue, SQSQueueLifecycle


class AmazonSQSQueueHook(AwsBaseHook):
    """Queues of the ``aws`` connection ``aws_conn_id``."""

    service = "Amazon SQS"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["client_type"] = "sqs"
        super().__init__(*args, **kwargs)

    def get_auth(self) -> AWSAuth:
        session = self.get_session(region_name=self.region_name)
        endpoint_url = self.conn_config.get_service_endpoint_url("sqs")
        verify = self.verify if isinstance(self.verify, (bool, str)) else None
        return AWSAuth.from_boto3_session(
            session, endpoint_url=endpoint_url, verify=verify, botocore_config=self.config
        )

    def _tags(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        kwargs.setdefault("metric_tags", {"conn_id": self.aws_conn_id or ""})
        return kwargs

    def get_queue(self, queue: str, **kwargs: Any) -> AmazonSQSQueue:
        return AmazonSQSQueue(self.get_auth(), queue, **self._tags(kwargs))

    async def aget_queue(self, queue: str, *, share_client: bool = False, **kwargs: Any) -> AsyncAmazonSQSQueue:
        """An async queue; with ``share_client=True`` (triggers) it uses the client that every
        queue of this connection shares on the running event loop, and the connection's
        credentials are resolved once (one role assumption, not one per trigger)."""
        # Building a session may block (STS, files, the supervisor's blocking connection call
        # inside AwsBaseHook): it runs in a worker thread, never on the event loop.
        if share_client:
            conn = await _airflow.aget_connection(self.aws_conn_id) if self.aws_conn_id else None
            region = await _airflow.run_blocking(getattr, self, "region_name")  # reads the connection too
            key = (self.aws_conn_id, region, connection_fingerprint(conn) if conn else "")
            auth = await SHARED_AUTHS.aget(key, self.get_auth)
        else:
            auth = await _airflow.run_blocking(self.get_auth)
        return AsyncAmazonSQSQueue(auth, queue, share_client=share_client, **self._tags(kwargs))

    # -- queue lifecycle -------------------------------------------------------------------------------
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
        lifecycle = SQSQueueLifecycle(self.get_auth(), queue)
        try:
            return lifecycle.create(attributes, tags)
        finally:
            lifecycle.close()

    def delete_queue(self, queue: str) -> bool:
        """Delete the queue (a name or URL) and its messages; False if there was no such queue."""
        lifecycle = SQSQueueLifecycle(self.get_auth(), queue)
        try:
            return lifecycle.delete()
        finally:
            lifecycle.close()

    def purge_queue(self, queue: str) -> int:
        """Delete every message, in flight or not (PurgeQueue; while SQS refuses one, receive and
        delete what is visible); how many messages the queue held, approximately."""
        lifecycle = SQSQueueLifecycle(self.get_auth(), queue)
        try:
            held = purge(self, queue, lifecycle)
        finally:
            lifecycle.close()
        self.log.info(
            "%s deletes a purged queue's messages within 60 seconds: messages sent to %r meanwhile may be "
            "deleted too (PurgeQueue in the SQS API reference)",
            self.service,
            queue,
        )
        return held


SHARED_AUTHS: SharedAuths[AWSAuth] = SharedAuths()
