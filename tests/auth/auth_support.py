"""Helpers for the auth tests: independent SDK clients and a push/poll round trip through our queues."""

from __future__ import annotations

import logging
from typing import Any

import boto3
from pushed import accepted

from fluke_airflow.queues import AmazonSQSQueue, AsyncAmazonSQSQueue, AsyncAzureStorageQueue, AzureStorageQueue

CLASSES = {
    ("sqs", "sync"): AmazonSQSQueue,
    ("sqs", "async"): AsyncAmazonSQSQueue,
    ("azure", "sync"): AzureStorageQueue,
    ("azure", "async"): AsyncAzureStorageQueue,
}


def sqs_client(moto: Any, region: str = "us-east-1") -> Any:
    return boto3.client(
        "sqs",
        endpoint_url=moto.endpoint_url,
        aws_access_key_id=moto.access_key_id,
        aws_secret_access_key=moto.secret_access_key,
        region_name=region,
    )


async def open_queue(service: str, flavour: str, auth: Any, queue: str, **kwargs: Any) -> Any:
    """Our queue class for ``service`` and ``flavour``, opened."""
    q = CLASSES[service, flavour](auth, queue, **kwargs)
    if flavour == "async":
        await q.open()
    return q


async def roundtrip(service: str, flavour: str, auth: Any, queue: str, **kwargs: Any) -> list[list[str]]:
    """Open our queue with ``auth``, push two messages and poll them back; the batches."""
    cls = CLASSES[service, flavour]
    bodies = ["auth round trip 1", "auth round trip 2"]
    if flavour == "sync":
        with cls(auth, queue, **kwargs) as q:
            assert accepted(q.push_many(bodies)) == [True, True]
            return list(q.poll())
    async with cls(auth, queue, **kwargs) as aq:
        assert accepted(await aq.push_many(bodies)) == [True, True]
        return [batch async for batch in aq.poll()]


def records_text(records: list[Any], minimum: int = 0, prefix: str = "") -> str:
    """Everything these log records would write (messages and exceptions), joined."""
    out = []
    for r in records:
        if r.levelno >= minimum and r.name.startswith(prefix):
            out.append(r.getMessage())
            if r.exc_info:
                out.append(logging.Formatter().formatException(r.exc_info))
    return "\n".join(out)
