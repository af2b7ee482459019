"""A receive's time limit (the stall guard of :class:`~fluke_airflow.queues.drivers.AsyncDriver`)
never loses a cancellation: a trigger Airflow cancels during a receive must stop, not poll on
holding what it received (issue 20)."""

from __future__ import annotations

import asyncio

import pytest

from fluke_airflow.queues.drivers import within

pytestmark = pytest.mark.unit


def test_a_time_limited_receive_keeps_a_cancellation_that_comes_as_it_answers() -> None:
    """python/cpython#86296: before 3.12, wait_for returns the result instead."""

    async def scenario() -> str:
        answer = asyncio.get_running_loop().create_future()
        task = asyncio.ensure_future(within(answer, 10))
        await asyncio.sleep(0)
        answer.set_result("messages")
        task.cancel()  # in the same loop turn as the answer
        try:
            await task
        except asyncio.CancelledError:
            return "cancelled"
        return "answered"

    assert asyncio.run(scenario()) == "cancelled"

    async def slow() -> None:
        await asyncio.sleep(5)

    with pytest.raises(asyncio.TimeoutError):
        asyncio.run(within(slow(), 0.05))
