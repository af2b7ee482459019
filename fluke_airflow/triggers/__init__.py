"""Triggers: :class:`QueuePollTrigger` (deferrable sensor and AssetWatcher on queue arrivals), and
:func:`queue_messages`, a run's queue messages in the order of its mapped task's map indexes."""

from fluke_airflow.delivery.payloads import queue_messages
from fluke_airflow.triggers.poll import QueuePollTrigger

__all__ = ["QueuePollTrigger", "queue_messages"]
