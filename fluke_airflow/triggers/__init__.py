"""Triggers: :class:`QueuePollTrigger` (deferrable sensor and AssetWatcher on queue arrivals)."""

from fluke_airflow.triggers.poll import QueuePollTrigger

__all__ = ["QueuePollTrigger"]
