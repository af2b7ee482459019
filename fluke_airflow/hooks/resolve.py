"""Pick the queue hook from a connection's type, with an error that says what would work."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fluke_airflow import _airflow

if TYPE_CHECKING:
    from airflow.sdk import Connection

    from fluke_airflow.hooks.base import QueueHook

CONNECTION_TYPES: dict[str, str] = {
    "aws": "Amazon SQS",
    "azure_storage_queue": "Azure Queue Storage",
    "wasb": "Azure Queue Storage",
}
_ACCEPTED = "'aws' (Amazon SQS), 'azure_storage_queue' or 'wasb' (Azure Queue Storage)"


def _not_found(conn_id: str, error: Exception) -> Exception:
    return type(error)(
        f"The connection {conn_id!r} is not defined. Create it (UI, CLI or AIRFLOW_CONN_{conn_id.upper()}) "
        f"with one of the types {_ACCEPTED}"
    )


AWS_OVERRIDES = {"region_name": "region_name", "verify": "verify", "config": "botocore_config"}
"""The amazon provider's hook arguments a task may give beside an ``aws`` connection (hook argument:
the task's argument)."""


def hook_for_connection(conn: Connection, **overrides: Any) -> QueueHook:
    """The queue hook of ``conn``; ``overrides``: :data:`AWS_OVERRIDES` (aws connections only)."""
    from fluke_airflow._extras import require

    conn_type = conn.conn_type or ""
    if conn_type in CONNECTION_TYPES:
        require("amazon" if conn_type == "aws" else "azure", f"The connection {conn.conn_id!r} (type {conn_type!r})")
    if conn_type != "aws" and overrides:
        given = ", ".join(sorted(AWS_OVERRIDES[name] for name in overrides))
        raise ValueError(
            f"{given} apply to Amazon SQS (aws connections) only; the connection {conn.conn_id!r} has type "
            f"{conn_type!r}: leave {given} out, or use an aws connection"
        )
    if conn_type == "aws":
        from fluke_airflow.hooks.sqs import AmazonSQSQueueHook

        if "config" in overrides:
            from botocore.config import Config

            overrides["config"] = Config(**overrides["config"])
        return AmazonSQSQueueHook(aws_conn_id=conn.conn_id, **overrides)
    if conn_type in ("azure_storage_queue", "wasb"):
        from fluke_airflow.hooks.azure import AzureStorageQueueHook

        return AzureStorageQueueHook(conn.conn_id, connection=conn)
    raise ValueError(
        f"The connection {conn.conn_id!r} has type {conn_type!r}, which fluke_airflow cannot use for a queue. "
        f"Use a connection of type {_ACCEPTED}"
    )


def _check_conn_id(conn_id: Any) -> str:
    if not isinstance(conn_id, str) or not conn_id:
        raise ValueError(f"conn_id must be the id of an Airflow connection of type {_ACCEPTED}, got {conn_id!r}")
    return conn_id


def get_queue_hook(conn_id: str, **overrides: Any) -> QueueHook:
    """The hook for ``conn_id``: SQS for ``aws``, Azure for ``azure_storage_queue`` and ``wasb``;
    ``overrides``: the amazon provider's hook arguments (:data:`AWS_OVERRIDES`), aws connections only."""
    from fluke_airflow._airflow import BaseHook

    try:
        conn = BaseHook.get_connection(_check_conn_id(conn_id))
    except _airflow.not_found_error() as error:
        raise _not_found(conn_id, error) from None
    return hook_for_connection(conn, **overrides)


async def aget_queue_hook(conn_id: str, **overrides: Any) -> QueueHook:
    """:func:`get_queue_hook` for the triggerer's event loop."""
    from fluke_airflow._airflow import aget_connection

    try:
        conn = await aget_connection(_check_conn_id(conn_id))
    except _airflow.not_found_error() as error:
        raise _not_found(conn_id, error) from None
    return hook_for_connection(conn, **overrides)
