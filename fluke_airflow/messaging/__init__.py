"""Lets the common-messaging provider's ``MessageQueueTrigger`` dispatch to fluke queues.

``MessageQueueTrigger(scheme="fluke", conn_id="my_sqs", queue_name="orders", ...)`` builds a
:class:`~fluke_airflow.triggers.QueuePollTrigger` (any of its keyword arguments may follow;
``queue_name`` stands for its ``queue``, which ``MessageQueueTrigger`` reserves).
"""

from __future__ import annotations

from typing import Any

try:  # the base class only exists where the common-messaging provider is installed
    from airflow.providers.common.messaging.providers.base_provider import BaseMessageQueueProvider
except ImportError:  # pragma: no cover - duck typing is all MessageQueueTrigger needs
    BaseMessageQueueProvider = object  # type: ignore[assignment,misc]


class FlukeMessageQueueProvider(BaseMessageQueueProvider):  # type: ignore[misc,valid-type]
    """The ``fluke`` scheme: SQS or Azure Queue Storage, chosen by the connection's type."""

    scheme = "fluke"

    def scheme_matches(self, scheme: str) -> bool:
        return scheme == self.scheme

    def queue_matches(self, queue: str) -> bool:
        return False

    def trigger_class(self) -> Any:
        from fluke_airflow.triggers.poll import QueuePollTrigger

        return QueuePollTrigger

    def trigger_kwargs(self, queue: str, **kwargs: Any) -> dict[str, Any]:
        return {}
