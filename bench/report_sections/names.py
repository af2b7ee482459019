"""What the report calls the contenders and triggers, shared by the sections that name them."""

from __future__ import annotations

TRIGGER_LABELS = {
    "fluke": "QueuePollTrigger (fluke-airflow)",
    "fluke-botocore": "QueuePollTrigger, receives through botocore",
    "amazon": "SqsSensorTrigger (amazon provider)",
}
"""Idle and latency results are keyed by trigger kind."""

SHORT = {
    "ours": "fluke-airflow",
    "ours-async": "fluke-airflow async",
    "fluke-api": "fluke-api 0.5.0",
    "airflow": "SqsHook",
    "limit": "limit",
}
"""Contender names short enough for a chart's x axis (tables use ``bench.throughput.LABELS``)."""


def panel_title(service: str, op: str) -> str:
    """A chart panel's title for one service and operation, as the throughput and requests charts share it."""
    return f"{'SQS' if service == 'sqs' else 'Azure'} {op}{'+delete' if op == 'poll' else ''}"


def sqs_concurrency() -> int:
    """fluke-airflow's default ``max_concurrency`` for SQS, read from the code the report describes."""
    from fluke_airflow.queues.base import DEFAULT_MAX_CONCURRENCY

    return DEFAULT_MAX_CONCURRENCY


def concurrency(service: str) -> int:
    """fluke-airflow's default ``max_concurrency`` for a service, read from the code."""
    if service == "sqs":
        return sqs_concurrency()
    import inspect

    from fluke_airflow.queues.azure import AzureStorageQueue

    return int(inspect.signature(AzureStorageQueue.__init__).parameters["max_concurrency"].default)
