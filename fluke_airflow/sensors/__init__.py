"""Sensors: :class:`QueuePollSensor` (poke, reschedule or deferrable)."""

from fluke_airflow.sensors.poll import QueuePollSensor

__all__ = ["QueuePollSensor"]
