"""Refreshable AWS credentials keep working past their expiry, in the async client too.

A trigger runs for hours; assumed-role credentials last one. The async SQS client borrows
botocore's credentials object (see ``fluke_airflow.auth.aws._bridge_credentials``), so an
expired credential is renewed (here: a new AssumeRole call to moto's STS) on the next request.
"""

from __future__ import annotations

import datetime
from typing import Any

from auth_support import sqs_client
from dateutil.tz import tzutc

from devtools.support import fresh_name
from fluke_airflow.auth import AWSAuth
from fluke_airflow.queues import AsyncAmazonSQSQueue

ROLE = "arn:aws:iam::123456789012:role/fluke-trigger"


def _expire(auth: AWSAuth) -> str:
    """Let the hour pass: the credentials and botocore's cached STS answer both expire.

    Returns the access key in use before.
    """
    credentials: Any = auth.botocore_session().get_credentials()
    key = credentials.get_frozen_credentials().access_key
    credentials._expiry_time = datetime.datetime.now(tzutc()) - datetime.timedelta(minutes=5)
    credentials._refresh_using.__self__._cache.clear()  # the AssumeRole fetcher's response cache
    return str(key)


async def test_async_queue_renews_expired_role_credentials(moto: Any) -> None:
    name = fresh_name("refresh")
    sqs_client(moto).create_queue(QueueName=name)
    source = AWSAuth(moto.access_key_id, moto.secret_access_key, region="us-east-1", endpoint_url=moto.endpoint_url)
    auth = AWSAuth.assume_role(ROLE, source=source, sts_endpoint_url=moto.endpoint_url)

    async with AsyncAmazonSQSQueue(auth, name) as queue:
        assert await queue.push("before expiry")
        old_key = _expire(auth)
        # The hour is over: the next requests must renew the credentials, not fail with ExpiredToken.
        assert await queue.push("after expiry")
        bodies = [body async for batch in queue.poll(pre_delivery_delete=True) for body in batch]

    new_key = auth.botocore_session().get_credentials().get_frozen_credentials().access_key
    assert new_key != old_key, "expired credentials were not renewed"
    assert sorted(bodies) == ["after expiry", "before expiry"]
