"""Queue lifecycle operators: :class:`QueueCreateOperator`, :class:`QueueDeleteOperator` and
:class:`QueuePurgeOperator`, on Amazon SQS and Azure Queue Storage alike.

The requests are the hooks' (``create_queue``, ``delete_queue``, ``purge_queue``); these classes
add Airflow's side: templates, parse-time checks, XCom, and what a missing queue means to a task.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from fluke_airflow import _args
from fluke_airflow.queues import management
from fluke_airflow.queues import validation as check

if TYPE_CHECKING:
    from airflow.sdk import Context

_SETTINGS = ("attributes", "tags", "metadata")


def _check_create(queue: Any, attributes: Any, tags: Any, metadata: Any) -> None:
    """What can be checked while the DAG file is parsed (the rest once the templates are rendered)."""

    def given(value: Any) -> bool:  # a template may render to None: the service's hook checks that case
        return value is not None and not _args.is_template(value)

    sqs = given(attributes) or given(tags)
    if sqs and given(metadata):
        raise ValueError(
            "attributes and tags are Amazon SQS queue settings, metadata is Azure Queue Storage's: give those of "
            "the service of conn_id"
        )
    for name, value in zip(_SETTINGS, (attributes, tags, metadata), strict=True):
        if value is not None and not _args.is_template(value) and not isinstance(value, dict):
            raise TypeError(f"{name} must be a dict (or a template that renders to one), got {type(value).__name__}")
    if isinstance(attributes, dict):
        management.check_sqs_attribute_names({k: v for k, v in attributes.items() if not _args.is_template(k)})
    if _args.is_template(queue):
        return
    check.non_empty_str("queue_name", queue)
    if sqs:
        if management.is_queue_url(queue):
            raise ValueError(f"queue must be the name of the queue to create, got the URL {queue!r} (the URL is "
                             "what the task returns)")  # fmt: skip
        if not _args.contains_template(attributes):
            management.sqs_attributes(queue, attributes)
        if not _args.contains_template(tags):
            management.sqs_tags(tags)
    elif given(metadata):
        management.azure_queue_name(queue)
        if not _args.contains_template(metadata):
            management.azure_metadata(metadata)
    else:
        _check_either_name(queue)


def _check_queue(queue: Any) -> None:
    """Parse time: a name or URL, unless it is a template (a URL names one queue of either service)."""
    if not _args.is_template(queue) and not management.is_queue_url(check.non_empty_str("queue_name", queue)):
        _check_either_name(queue)


def _check_either_name(queue: str) -> None:
    """A name that neither service takes fails now; which service applies is known once the task runs."""
    errors = []
    for rule in (management.sqs_queue_name, management.azure_queue_name):
        try:
            rule(queue)
            return
        except ValueError as error:
            errors.append(str(error))
    raise ValueError(" Also: ".join(errors))


class QueueCreateOperator(BaseOperator):
    """Create ``queue_name`` if it does not exist. A queue that exists with the settings asked for is
    success too (logged); one with other settings fails the task with an error that names each
    setting and both values (a create never changes an existing queue).

    :param conn_id: Airflow connection id (``aws``, ``azure_storage_queue`` or ``wasb``). Templated.
    :param queue_name: the name of the queue (SQS FIFO queues: ending in ``.fifo``). Templated. (``queue``
        is Airflow's executor queue.)
    :param attributes: Amazon SQS queue attributes, e.g. ``{"VisibilityTimeout": 120,
        "RedrivePolicy": {"deadLetterTargetArn": "arn:...", "maxReceiveCount": 5}}``; checked before
        anything is sent. Only those given are compared with an existing queue's, as SQS compares
        them. A ``.fifo`` name gets ``FifoQueue`` by itself. Templated.
    :param tags: Amazon SQS cost allocation tags (an existing queue must have these, others may be there). Templated.
    :param metadata: Azure Queue Storage metadata; compared with an existing queue's as a whole,
        as Azure does (``None``: an existing queue's metadata is not checked). Templated.
    :return: what the other operators take as ``queue_name`` (XCom): SQS the queue's URL, Azure its name.
    """

    template_fields: Sequence[str] = ("conn_id", "queue_name", "attributes", "tags", "metadata")
    template_fields_renderers = {"attributes": "json", "tags": "json", "metadata": "json"}
    ui_color = "#fff2cc"

    def __init__(
        self,
        *,
        conn_id: str,
        queue_name: str,
        attributes: dict[str, Any] | None = None,
        tags: dict[str, str] | None = None,
        metadata: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        _args.reject_misspelt(type(self), kwargs)
        super().__init__(**kwargs)
        _check_create(queue_name, attributes, tags, metadata)
        self.conn_id = conn_id
        self.queue_name = queue_name
        self.attributes = attributes
        self.tags = tags
        self.metadata = metadata

    def execute(self, context: Context) -> str:
        from fluke_airflow.hooks import get_queue_hook

        hook = get_queue_hook(self.conn_id)
        created = hook.create_queue(self.queue_name, attributes=self.attributes, tags=self.tags, metadata=self.metadata)
        return created.queue


class QueueDeleteOperator(BaseOperator):
    """Delete ``queue_name`` with every message in it.

    A queue that does not exist is success by default (``ignore_if_missing=True``), logged at
    WARNING: the queue is gone either way, and a retried task whose first try deleted it (or a
    teardown task that runs after a failed setup) must not fail. ``ignore_if_missing=False``
    fails the task instead, for DAGs where a missing queue means a wrong name.

    :param conn_id: Airflow connection id (``aws``, ``azure_storage_queue`` or ``wasb``). Templated.
    :param queue_name: queue name (SQS: a name or queue URL). Templated. (``queue`` is Airflow's
        executor queue.)
    :param ignore_if_missing: succeed (with a warning) when there is no such queue.
    :return: True if a queue was deleted, False if there was none (XCom).
    """

    template_fields: Sequence[str] = ("conn_id", "queue_name")
    ui_color = "#f4cccc"

    def __init__(
        self,
        *,
        conn_id: str,
        queue_name: str,
        ignore_if_missing: bool = True,
        **kwargs: Any,
    ) -> None:
        _args.reject_misspelt(type(self), kwargs)
        super().__init__(**kwargs)
        _check_queue(queue_name)
        self.conn_id = conn_id
        self.queue_name = queue_name
        self.ignore_if_missing = check.boolean("ignore_if_missing", ignore_if_missing)

    def execute(self, context: Context) -> bool:
        from fluke_airflow.hooks import get_queue_hook

        hook = get_queue_hook(self.conn_id)
        if hook.delete_queue(self.queue_name):
            return True
        if not self.ignore_if_missing:
            from fluke_airflow.exceptions import QueueNotFoundError

            raise QueueNotFoundError(hook.service, self.queue_name, "nothing was deleted (ignore_if_missing=False)")
        self.log.warning(
            "%s queue %r does not exist: nothing to delete (ignore_if_missing=True). If it should have existed, "
            "check the queue name and the connection's account and region",
            hook.service,
            self.queue_name,
        )
        return False


class QueuePurgeOperator(BaseOperator):
    """Delete every message in ``queue_name``, keeping the queue.

    Azure clears the queue (Clear Messages). SQS purges it (PurgeQueue, in-flight messages
    included) and deletes the messages within 60 seconds, so messages sent meanwhile may be
    deleted too. SQS allows one purge per queue every 60 seconds; within that time the task
    receives and deletes the visible messages instead (messages in flight stay). A queue that
    does not exist fails the task.

    :param conn_id: Airflow connection id (``aws``, ``azure_storage_queue`` or ``wasb``). Templated.
    :param queue_name: queue name (SQS: a name or queue URL). Templated. (``queue`` is Airflow's
        executor queue.)
    :return: how many messages the queue held before the purge (in flight and delayed ones
        included), approximately (XCom).
    """

    template_fields: Sequence[str] = ("conn_id", "queue_name")
    ui_color = "#ead1dc"

    def __init__(self, *, conn_id: str, queue_name: str, **kwargs: Any) -> None:
        _args.reject_misspelt(type(self), kwargs)
        super().__init__(**kwargs)
        _check_queue(queue_name)
        self.conn_id = conn_id
        self.queue_name = queue_name

    def execute(self, context: Context) -> int:
        from fluke_airflow.hooks import get_queue_hook

        return get_queue_hook(self.conn_id).purge_queue(self.queue_name)
