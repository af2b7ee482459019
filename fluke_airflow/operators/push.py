"""QueuePushOperator: send one message or a list of messages to a queue."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from fluke_airflow import _args
from fluke_airflow.queues import validation as check

if TYPE_CHECKING:
    from airflow.sdk import Context


class QueuePushOperator(BaseOperator):
    """Push ``message`` (a str or a list of str) to ``queue`` of the connection ``conn_id``.

    The service comes from the connection's type: ``aws`` is Amazon SQS, ``azure_storage_queue``
    or ``wasb`` is Azure Queue Storage. Lists go out with the service's batch API (SQS, 10 per
    request) or concurrently (Azure). If any message is not accepted, the rest are still sent
    and the task fails naming how many and which (by position).

    :param conn_id: Airflow connection id.
    :param queue_name: the message queue's name (SQS: a name or queue URL). Templated. (``queue``
        is Airflow's: the executor queue, which ``default_args`` often set for Celery.)
    :param message: a str or a list of str. Templated; an ``XComArg`` works too.
    :param message_group_id: SQS FIFO message group. Templated.
    :param message_deduplication_id: SQS FIFO deduplication id: a str for one message, a list
        (one per message) for a list. Templated.
    :param delay_seconds: hide new messages for this long (SQS up to 900, Azure up to 7 days).
    :param message_attributes: SQS message attributes, the amazon provider's format
        ``{"name": {"DataType": "String", "StringValue": "..."}}``: one dict for every message, or a
        list with one dict per message. Templated (rendered as JSON in the UI). Azure has none.
    :param create_if_missing: create ``queue_name`` (with the service's default settings) if it does
        not exist, logged at WARNING: a misspelt name would otherwise silently get a queue of its own,
        which no consumer reads. Default False: a missing queue fails the task. For settings, create
        the queue with :class:`~fluke_airflow.operators.QueueCreateOperator`.
    :param region_name: SQS only: the AWS region, instead of the connection's.
    :param verify: SQS only: TLS verification (``False``, or a CA bundle's path), instead of the connection's.
    :param botocore_config: SQS only: botocore ``Config`` options as a dict.
    :param sqs_queue: the amazon provider's ``SqsPublishOperator`` name for ``queue_name``.
    :param message_content: the amazon provider's name for ``message``.
    :param aws_conn_id: the amazon provider's name for ``conn_id`` (with ``sqs_queue`` alone:
        ``'aws_default'``, as there).
    :param region: the amazon provider's deprecated name for ``region_name``.
    :return: the message ids the service gave the messages, in order (XCom).

    On an SQS FIFO queue without content-based deduplication, when no deduplication ids are given,
    each message gets one derived from the task's identity (DAG, run, task, map index, position), so
    that a retried task does not send the same messages twice within SQS's deduplication window
    (five minutes).
    """

    template_fields: Sequence[str] = (
        "conn_id",
        "queue_name",
        "message",
        "message_group_id",
        "message_deduplication_id",
        "delay_seconds",
        "message_attributes",
    )
    template_fields_renderers = {"message_attributes": "json"}
    ui_color = "#e2f0d9"

    def __init__(
        self,
        *,
        conn_id: str | None = None,
        queue_name: str | None = None,
        message: str | list[str] | Any = None,
        message_group_id: str | None = None,
        message_deduplication_id: str | list[str] | None = None,
        delay_seconds: int | None = None,
        message_attributes: dict[str, Any] | list[dict[str, Any]] | None = None,
        create_if_missing: bool = False,
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict[str, Any] | None = None,
        sqs_queue: str | None = None,
        message_content: str | None = None,
        aws_conn_id: str | None = None,
        region: str | None = None,
        **kwargs: Any,
    ) -> None:
        _args.reject_misspelt(type(self), kwargs)
        super().__init__(**kwargs)
        conn_id = _args.ported(
            "conn_id", conn_id, "aws_conn_id", aws_conn_id, default="aws_default" if sqs_queue else None
        )
        hint = _args.executor_queue_hint(kwargs)
        queue_name = _args.ported("queue_name", queue_name, "sqs_queue", sqs_queue, hint=hint)
        message = _args.ported("message", message, "message_content", message_content)
        if region is not None:
            region_name = _args.deprecated_alias("region", region, "region_name", region_name)
        self.connection = _args.connection_overrides(region_name, verify, botocore_config)
        _args.check_message_arg(message)
        _args.optional_int("delay_seconds", delay_seconds, minimum=0)
        self.conn_id = conn_id
        self.queue_name = queue_name
        self.message = message
        self.message_group_id = message_group_id
        self.message_deduplication_id = message_deduplication_id
        self.delay_seconds = delay_seconds
        self.message_attributes = message_attributes
        self.create_if_missing = check.boolean("create_if_missing", create_if_missing)
        if message_attributes is not None and not _args.is_template(message_attributes):
            from fluke_airflow.queues import attributes

            if isinstance(message_attributes, dict):
                attributes.check_attributes(message_attributes)
            else:
                attributes.per_message(message_attributes, len(message_attributes))

    def _options(self, count: int) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if self.delay_seconds is not None:
            options["delay_seconds"] = _args.as_int("delay_seconds", self.delay_seconds, minimum=0)
        if self.message_group_id is not None:
            options["message_group_id"] = self.message_group_id
        dedup = self.message_deduplication_id
        if dedup is not None:
            if isinstance(dedup, str):
                if count != 1:
                    raise ValueError(
                        f"message_deduplication_id must be a list with one id per message ({count}), got one str"
                    )
                dedup = [dedup]
            options["message_deduplication_ids"] = list(dedup)
        if self.message_attributes:
            options["message_attributes"] = self.message_attributes
        return options

    def execute(self, context: Context) -> list[str | None]:
        from fluke_airflow.hooks import get_queue_hook

        messages = _args.messages_from(self.message)
        options = self._options(len(messages))
        hook = get_queue_hook(self.conn_id, **self.connection)
        with self._open(hook) as queue:
            if queue.needs_deduplication_ids and "message_deduplication_ids" not in options:
                options["message_deduplication_ids"] = _deduplication_ids(context, len(messages))
            results = queue.push_many(messages, **options)
        failed = [i for i, ok in enumerate(results) if not ok]
        if failed:
            from fluke_airflow._airflow import AirflowException

            raise AirflowException(
                f"{len(failed)} of {len(messages)} message(s) were not accepted by {hook.service} queue "
                f"{self.queue_name!r}: position(s) {failed} (the others were sent; see the log for the reasons)"
            )
        self.log.info("Pushed %d message(s) to %s queue %r", len(messages), hook.service, self.queue_name)
        return results

    def _open(self, hook: Any) -> Any:
        """The open queue; with ``create_if_missing``, created first if it does not exist."""
        from fluke_airflow.exceptions import QueueNotFoundError

        try:
            return hook.get_queue(self.queue_name, suppress_output=True)
        except QueueNotFoundError as error:
            if not self.create_if_missing:
                hint = "create it first (QueueCreateOperator), or give create_if_missing=True"
                detail = f"{error.detail}; {hint}" if error.detail else hint
                raise QueueNotFoundError(hook.service, self.queue_name, detail, conn_id=self.conn_id) from None
        if hook.create_queue(self.queue_name).created:
            self.log.warning(
                "%s queue %r did not exist: created it with the service's default settings (create_if_missing=True). "
                "If you did not expect a new queue, check the name: a misspelt one gets a queue of its own, which no "
                "consumer reads",
                hook.service,
                self.queue_name,
            )
        return hook.get_queue(self.queue_name, suppress_output=True)


def _deduplication_ids(context: Context, count: int) -> list[str]:
    """One id per message from the task's identity: the same on a retry, so SQS drops the repeat."""
    import hashlib

    ti: Any = context["ti"]
    identity = f"{ti.dag_id}\0{ti.run_id}\0{ti.task_id}\0{getattr(ti, 'map_index', -1)}"
    return [hashlib.sha256(f"{identity}\0{i}".encode()).hexdigest() for i in range(count)]
