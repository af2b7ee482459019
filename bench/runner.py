"""Throughput worker for the contenders that live in this virtualenv (``python -m bench.runner``).

Contenders:

* ``ours``: fluke-airflow's blocking classes (``AmazonSQSQueue`` / ``AzureStorageQueue``);
* ``ours-async``: the asyncio classes the trigger uses (``AsyncAmazonSQSQueue`` / ``AsyncAzureStorageQueue``);
* ``limit``: the ceiling, the SDK used for throughput alone (``bench/limit.py``);
* ``airflow``: the amazon provider's ``SqsHook`` driven the way ``SqsPublishOperator`` sends
  (``send_message`` per message) and ``SqsSensor`` receives (``receive_message`` of up to 10,
  then ``delete_message_batch``), on an ``aws`` connection from ``AIRFLOW_CONN_BENCH_SQS``.

The spec (one JSON line on stdin) names the service, the operation and the queue. The worker
opens the queue, reports ``ready``, waits for ``go`` (the benchmark resets the proxy's counts
in between, so opening is not counted as per-message cost), runs the operation, reports
``done`` with its wall time and the CPU time its process spent meanwhile (:class:`Timer`), and closes.
"""

from __future__ import annotations

import asyncio
import resource
import time
from typing import Any

from bench.data import bodies
from bench.protocol import emit, read_message


def _failed(results: list[bool]) -> int:
    return results.count(False)


def cpu_times() -> tuple[float, float]:
    """User and system CPU seconds of this process so far, all its threads together."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


class Timer:
    """Wall time of the operation, when its last message was handled, and the CPU time (user and
    system, every thread of this process) spent from its start to its result."""

    def __init__(self) -> None:
        self.restart()

    def mark(self) -> None:
        self.last = time.perf_counter()

    def restart(self) -> None:
        self.cpu = cpu_times()
        self.start = self.last = time.perf_counter()

    def result(self, count: int, **extra: Any) -> dict[str, Any]:
        end = time.perf_counter()
        user, system = cpu_times()
        return {
            "seconds": end - self.start,
            "until_last_message": self.last - self.start,
            "cpu_user": user - self.cpu[0],
            "cpu_system": system - self.cpu[1],
            "count": count,
            **extra,
        }


# -- fluke-airflow, blocking ---------------------------------------------------------------------------
def ours_sync(spec: dict[str, Any]) -> None:
    queue = _open_sync(spec)
    try:
        emit("ready")
        read_message()
        if spec["op"] == "push":
            messages = bodies(spec["messages"], tag=spec.get("tag", "m"))
            timer = Timer()
            failed = _failed(queue.push_many(messages))
            timer.mark()
            emit("done", **timer.result(len(messages) - failed, failed=failed))
        elif spec["op"] == "poll":
            timer = Timer()
            seen = 0
            for batch in queue.poll(batch_size=spec["batch_size"]):
                seen += len(batch)
                timer.mark()
            emit("done", **timer.result(seen))
        elif spec["op"] == "stream":
            emit("done", **_stream_sync(queue, spec))
        else:
            raise ValueError(f"unknown op {spec['op']!r}")
    finally:
        queue.close()


def _open_sync(spec: dict[str, Any]) -> Any:
    if spec["service"] == "sqs":
        from fluke_airflow.auth import AWSAuth
        from fluke_airflow.queues import AmazonSQSQueue

        s = spec["sqs"]
        auth = AWSAuth(s["access_key_id"], s["secret_access_key"], region=s["region"], endpoint_url=s["endpoint_url"])
        return AmazonSQSQueue(auth, spec["queue"], suppress_output=True)
    from fluke_airflow.auth import AzureAuth
    from fluke_airflow.queues import AzureStorageQueue

    return AzureStorageQueue(AzureAuth.from_conn_string(spec["azure_conn_string"]), spec["queue"], suppress_output=True)


def _rss() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


def _stream_sync(queue: Any, spec: dict[str, Any]) -> dict[str, Any]:
    """Poll ``messages`` messages while a feeder refills the queue; sample our own RSS as we go."""
    total = spec["messages"]
    every = spec.get("sample_every", 1000)
    samples = [(0, _rss())]
    seen = 0
    next_sample = every
    timer = Timer()
    deadline = time.monotonic() + spec.get("timeout", 1800)
    while seen < total and time.monotonic() < deadline:
        # A poll ends when a receive comes back short; start another until all messages went through.
        for batch in queue.poll(num_messages=total - seen, batch_size=spec["batch_size"]):
            seen += len(batch)
            timer.mark()
            if seen >= next_sample:
                samples.append((seen, _rss()))
                next_sample += every
    samples.append((seen, _rss()))
    return timer.result(seen, rss=samples)


# -- fluke-airflow, asyncio ----------------------------------------------------------------------------
async def ours_async(spec: dict[str, Any]) -> None:
    queue = _async_queue(spec)
    async with queue:
        emit("ready")
        await asyncio.to_thread(read_message)
        if spec["op"] == "push":
            messages = bodies(spec["messages"], tag=spec.get("tag", "m"))
            timer = Timer()
            failed = _failed(await queue.push_many(messages))
            timer.mark()
            emit("done", **timer.result(len(messages) - failed, failed=failed))
        elif spec["op"] == "poll":
            timer = Timer()
            seen = 0
            async for batch in queue.poll(batch_size=spec["batch_size"]):
                seen += len(batch)
                timer.mark()
            emit("done", **timer.result(seen))
        else:
            raise ValueError(f"unknown op {spec['op']!r}")


def _async_queue(spec: dict[str, Any]) -> Any:
    if spec["service"] == "sqs":
        from fluke_airflow.auth import AWSAuth
        from fluke_airflow.queues import AsyncAmazonSQSQueue

        s = spec["sqs"]
        auth = AWSAuth(s["access_key_id"], s["secret_access_key"], region=s["region"], endpoint_url=s["endpoint_url"])
        return AsyncAmazonSQSQueue(auth, spec["queue"], suppress_output=True)
    from fluke_airflow.auth import AzureAuth
    from fluke_airflow.queues import AsyncAzureStorageQueue

    azure = AzureAuth.from_conn_string(spec["azure_conn_string"])
    return AsyncAzureStorageQueue(azure, spec["queue"], suppress_output=True)


# -- Airflow's amazon provider -------------------------------------------------------------------------
def airflow_sqs(spec: dict[str, Any]) -> None:
    import logging

    from airflow.providers.amazon.aws.hooks.sqs import SqsHook

    if spec["service"] != "sqs":
        raise ValueError("the amazon provider only has SQS")
    logging.getLogger("airflow").setLevel(logging.WARNING)
    hook = SqsHook(aws_conn_id="bench_sqs")
    client: Any = hook.get_conn()  # the sensor's ``self.hook.conn``: one cached client
    url = client.get_queue_url(QueueName=spec["queue"])["QueueUrl"]
    emit("ready")
    read_message()
    if spec["op"] == "push":
        messages = bodies(spec["messages"], tag=spec.get("tag", "m"))
        timer = Timer()
        for body in messages:  # SqsPublishOperator.execute: one hook.send_message per message
            hook.send_message(queue_url=url, message_body=body)
        timer.mark()
        emit("done", **timer.result(len(messages)))
    elif spec["op"] == "poll":
        timer = Timer()
        seen = 0
        while True:  # SqsSensor.poke with delete_message_on_reception=True, max_messages=10
            response = client.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
            messages = response.get("Messages", [])
            if not messages:
                break
            entries = [{"Id": m["MessageId"], "ReceiptHandle": m["ReceiptHandle"]} for m in messages]
            result = client.delete_message_batch(QueueUrl=url, Entries=entries)
            if "Successful" not in result:
                raise RuntimeError(f"delete failed: {result}")
            seen += len(messages)
            timer.mark()
        emit("done", **timer.result(seen))
    else:
        raise ValueError(f"unknown op {spec['op']!r}")
    client.close()


def main() -> None:
    spec = read_message()
    try:
        if spec["contender"] == "ours":
            ours_sync(spec)
        elif spec["contender"] == "ours-async":
            asyncio.run(ours_async(spec))
        elif spec["contender"] == "airflow":
            airflow_sqs(spec)
        elif spec["contender"] == "limit":
            from bench import limit

            limit.run(spec, Timer())
        else:
            raise ValueError(f"unknown contender {spec['contender']!r}")
    except Exception as error:
        emit("error", message=f"{type(error).__name__}: {error}")
        raise


if __name__ == "__main__":
    main()
