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


SERVICE_NAMES = {"sqs": "SQS", "azure": "Azure"}
"""A service as the report's tables and charts name it."""


def panel_title(service: str, op: str) -> str:
    """One service and operation as a chart panel's title or a table's row: ``SQS poll+delete``."""
    return f"{SERVICE_NAMES[service]} {op}{'+delete' if op == 'poll' else ''}"


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
