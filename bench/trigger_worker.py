"""Trigger worker (``python -m bench.trigger_worker``): many triggers in one event loop.

Runs each trigger's ``run()`` async generator as a task, the way the triggerer does, with
the connection ``bench_sqs`` from ``AIRFLOW_CONN_BENCH_SQS``:

* ``fluke``: :class:`~fluke_airflow.triggers.poll.QueuePollTrigger` as a deferred
  ``QueuePollSensor`` creates it (``single_event=True``; otherwise its defaults:
  ``wait_time_seconds=20``, ``batch_size=10``, ``visibility_timeout=300``);
* ``fluke-botocore``: the same, with every receive sent through botocore's client
  (``FLUKE_AIRFLOW_SQS_DIRECT=0``): what the direct requests save;
* ``amazon``: the amazon provider's ``SqsSensorTrigger`` with its defaults
  (``max_messages=5``, ``wait_time_seconds=1``, ``waiter_delay=60``).

Protocol (see :mod:`bench.protocol`): spec on stdin -> imports done, loop running ->
``baseline``; ``go`` -> the triggers start, one every ``ramp / count`` seconds -> ``started``;
every event a trigger fires -> ``fired`` (with ``time.monotonic()``, which is system-wide
on Linux, so the benchmark can subtract its push times); ``stop`` -> ``stopped`` with how
many trigger tasks failed. The benchmark measures RSS and CPU of this process from outside.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from typing import Any

from bench.protocol import emit, read_message


def _preload(kind: str) -> None:
    """Import everything a trigger will use, so the baseline includes the libraries."""
    import aiobotocore.session  # noqa: F401
    import botocore.session  # noqa: F401

    if kind.startswith("fluke"):
        import fluke_airflow.hooks.sqs
        import fluke_airflow.queues.sqs
        import fluke_airflow.triggers.poll  # noqa: F401
    else:
        import airflow.providers.amazon.aws.hooks.sqs
        import airflow.providers.amazon.aws.triggers.sqs  # noqa: F401


def _make_trigger(kind: str, queue: str, url: str) -> Any:
    if kind.startswith("fluke"):
        from fluke_airflow.triggers.poll import QueuePollTrigger

        return QueuePollTrigger(conn_id="bench_sqs", queue=queue, single_event=True)
    from airflow.providers.amazon.aws.triggers.sqs import SqsSensorTrigger

    return SqsSensorTrigger(sqs_queue=url, aws_conn_id="bench_sqs")


class Runner:
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.tasks: list[asyncio.Task[None]] = []
        self.failures: list[str] = []
        self.fired = 0

    async def consume(self, queue: str, trigger: Any) -> None:
        try:
            async for event in trigger.run():
                self.fired += 1
                payload = event.payload
                status = payload.get("status") if isinstance(payload, dict) else None
                emit("fired", queue=queue, t=time.monotonic(), status=status)
                if status == "error":
                    self.failures.append(f"{queue}: {payload.get('message')}")
        except asyncio.CancelledError:
            raise
        except Exception as error:
            self.failures.append(f"{queue}: {type(error).__name__}: {error}")
            emit("trigger_failed", queue=queue, message=f"{type(error).__name__}: {error}")

    async def start(self, queues: list[dict[str, str]], ramp: float) -> None:
        gap = ramp / max(1, len(queues))
        begin = time.monotonic()
        for index, q in enumerate(queues):
            trigger = _make_trigger(self.kind, q["name"], q["url"])
            self.tasks.append(asyncio.create_task(self.consume(q["name"], trigger)))
            delay = begin + (index + 1) * gap - time.monotonic()
            await asyncio.sleep(max(0.0, delay))

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def amain(spec: dict[str, Any]) -> None:
    kind = spec["kind"]
    _preload(kind)
    runner = Runner(kind)
    await asyncio.sleep(0.5)  # let the loop settle before the baseline is read
    emit("baseline")
    await asyncio.to_thread(read_message)
    await runner.start(spec["queues"], spec.get("ramp", 0.0))
    emit("started", count=len(runner.tasks))
    while True:
        message = await asyncio.to_thread(read_message)
        if message.get("event") == "stop":
            break
        if message.get("event") == "status":
            alive = sum(1 for t in runner.tasks if not t.done())
            emit("status", alive=alive, fired=runner.fired, failures=runner.failures[:5])
    alive = sum(1 for t in runner.tasks if not t.done())
    await runner.stop()
    emit("stopped", alive=alive, fired=runner.fired, failures=runner.failures[:5], failed=len(runner.failures))


def main() -> None:
    spec = read_message()
    if spec["kind"] == "fluke-botocore":
        from fluke_airflow.queues import sqs_direct

        os.environ[sqs_direct.SWITCH] = "0"
    # Triggers log at INFO on every poll (the amazon trigger: twice a minute each); the triggerer
    # would ship that to its log. Here it goes to the worker log, at WARNING and above only.
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    for name in ("airflow", "fluke_airflow", "botocore", "aiobotocore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        asyncio.run(amain(spec))
    except Exception as error:
        emit("error", message=f"{type(error).__name__}: {error}")
        raise


if __name__ == "__main__":
    main()
