"""Sensors: :class:`QueuePollSensor` (poke, reschedule or deferrable)."""

from fluke_airflow.sensors.poll import QueuePollSensor
from fluke_airflow.sensors.settle import QueueSettleSensor

__all__ = ["QueuePollSensor", "QueueSettleSensor"]
