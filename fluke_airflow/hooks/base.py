"""What every queue hook offers the operators, the sensor and the trigger."""

from __future__ import annotations

from typing import Any, Protocol

from fluke_airflow.queues.base import AsyncQueue, Queue


class QueueHook(Protocol):
    service: str

    def get_auth(self) -> Any:
        """The connection as an ``AWSAuth`` / ``AzureAuth``."""

    def get_queue(self, queue: str, **kwargs: Any) -> Queue[Any]:
        """An open blocking queue (use it as a context manager)."""

    async def aget_queue(self, queue: str, **kwargs: Any) -> AsyncQueue[Any]:
        """An asyncio queue, not yet opened (``async with``); resolving credentials never blocks the loop."""
