"""Push, peek and poll on Amazon SQS and Azure Queue Storage (the Fluke queue API).

The queue classes are loaded when first asked for: the sensor imports this package's argument
checks and limits while a DAG file is parsed, and must not pay for both backends then. The
classes load their cloud SDK when a queue opens.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fluke_airflow.queues.azure import AsyncAzureStorageQueue, AzureStorageQueue
    from fluke_airflow.queues.message import Message
    from fluke_airflow.queues.sqs import AmazonSQSQueue, AsyncAmazonSQSQueue

_WHERE = {
    "AmazonSQSQueue": "sqs",
    "AsyncAmazonSQSQueue": "sqs",
    "AzureStorageQueue": "azure",
    "AsyncAzureStorageQueue": "azure",
    "Message": "message",
}
__all__ = ["AmazonSQSQueue", "AsyncAmazonSQSQueue", "AsyncAzureStorageQueue", "AzureStorageQueue", "Message"]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"fluke_airflow.queues.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
