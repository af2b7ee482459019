"""Throughput worker for the published fluke-api 0.5.0, run by the python of its own virtualenv.

Standalone on purpose: fluke-api's pins (boto3 1.28, azure-storage-queue 12.6, ...) cannot
live beside Airflow, so this script imports nothing of the benchmark or of fluke-airflow.
It speaks the protocol of :mod:`bench.protocol`: the spec as one JSON line on stdin, events
as ``@@bench@@ {json}`` lines on stdout.

How fluke-api is pointed at the emulator:

* SQS: ``AWSAuth(key, secret)`` **without** a region, because with a region fluke-api forces
  ``endpoint_url=https://sqs.<region>.amazonaws.com``; the region comes from
  ``AWS_DEFAULT_REGION`` and the endpoint from ``AWS_ENDPOINT_URL_SQS`` (set by the benchmark).
* Azure: ``AzureAuth.from_conn_string`` with the emulator's connection string.

``done`` carries the wall time of the operation and the CPU time (user and system, all threads)
this process spent in it, as bench.runner's ``Timer`` reports them for the other contenders.

fluke-api has no ``push_many``: pushes go one ``push`` at a time, as its users write them.
Its ``poll`` receives at most 10 messages per request and deletes a batch in one
``delete_messages`` call, which SQS limits to 10 entries, so ``batch_size=10`` is the most it
can use on SQS (on Azure it caps ``messages_per_page`` at 10 itself).
"""

from __future__ import annotations

import json
import resource
import sys
import time
from typing import Any

MARK = "@@bench@@ "


def emit(event: str, **fields: Any) -> None:
    sys.stdout.write(MARK + json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


def read_message() -> dict[str, Any]:
    line = sys.stdin.readline()
    if not line:
        raise SystemExit("the benchmark closed stdin")
    return json.loads(line)  # type: ignore[no-any-return]


def bodies(count: int, tag: str = "m", size: int = 200) -> list[str]:
    """The same bodies as bench.data.bodies."""
    return [f"{tag}{i:07d}|".ljust(size, "x") for i in range(count)]


def cpu_times() -> tuple[float, float]:
    """User and system CPU seconds of this process so far, all its threads (as bench.runner.cpu_times)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def versions() -> dict[str, str]:
    from importlib.metadata import version

    names = ("fluke-api", "boto3", "botocore", "azure-storage-queue", "azure-core", "requests", "urllib3")
    return {name: version(name) for name in names}


def open_queue(spec: dict[str, Any]) -> Any:
    from fluke.auth import AWSAuth, AzureAuth
    from fluke.queues import AmazonSQSQueue, AzureStorageQueue

    if spec["service"] == "sqs":
        s = spec["sqs"]
        return AmazonSQSQueue(AWSAuth(s["access_key_id"], s["secret_access_key"]), spec["queue"])
    return AzureStorageQueue(AzureAuth.from_conn_string(spec["azure_conn_string"]), spec["queue"])


def main() -> None:
    spec = read_message()
    try:
        if spec.get("op") == "versions":
            emit("versions", versions=versions())
            return
        queue = open_queue(spec)
        try:
            emit("ready")
            read_message()
            messages = bodies(spec["messages"], tag=spec.get("tag", "m")) if spec["op"] == "push" else []
            cpu_start = cpu_times()
            start = time.perf_counter()
            last = start
            seen = 0
            failed = 0
            if spec["op"] == "push":
                for body in messages:
                    if queue.push(body, suppress_output=True):
                        seen += 1
                    else:
                        failed += 1
                last = time.perf_counter()
            elif spec["op"] == "poll":
                for batch in queue.poll(batch_size=spec["batch_size"], suppress_output=True):
                    seen += len(batch)
                    last = time.perf_counter()
            else:
                raise ValueError(f"unknown op {spec['op']!r}")
            end = time.perf_counter()
            user, system = cpu_times()
            emit(
                "done",
                seconds=end - start,
                until_last_message=last - start,
                cpu_user=user - cpu_start[0],
                cpu_system=system - cpu_start[1],
                count=seen,
                failed=failed,
            )
        finally:
            queue.close()
    except Exception as error:
        emit("error", message=f"{type(error).__name__}: {error}")
        raise


if __name__ == "__main__":
    main()
