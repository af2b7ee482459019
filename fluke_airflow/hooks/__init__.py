"""Hooks that turn Airflow connections into fluke queue objects.

Amazon SQS uses the amazon provider's ``aws`` connection type; Azure Queue Storage uses
this provider's ``azure_storage_queue`` type (``wasb`` connections work too).
:func:`get_queue_hook` picks the hook from the connection's type.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fluke_airflow.hooks.resolve import CONNECTION_TYPES, aget_queue_hook, get_queue_hook

if TYPE_CHECKING:
    from fluke_airflow.hooks.azure import AzureStorageQueueHook
    from fluke_airflow.hooks.sqs import AmazonSQSQueueHook

__all__ = ["CONNECTION_TYPES", "AmazonSQSQueueHook", "AzureStorageQueueHook", "aget_queue_hook", "get_queue_hook"]


def __getattr__(name: str) -> Any:
    # The hooks import their cloud SDK's Airflow provider; load them only when asked for.
    if name == "AmazonSQSQueueHook":
        from fluke_airflow.hooks.sqs import AmazonSQSQueueHook

        return AmazonSQSQueueHook
    if name == "AzureStorageQueueHook":
        from fluke_airflow.hooks.azure import AzureStorageQueueHook

        return AzureStorageQueueHook
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
