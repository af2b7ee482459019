"""QueuePollSensor: wait for messages and hand them to the task's XCom.

The delivery guarantee is the guide's, in Airflow terms:

* ``pre_delivery_delete=True``: deleted before they reach XCom (in the triggerer when
  deferred). At most once: if anything fails afterwards, the messages are gone.
* ``pre_delivery_delete=False`` (default): deleted only after they are stored as the task's
  XCom. If the worker, the triggerer or the task dies anywhere before, they reappear after
  ``visibility_timeout`` and a retry receives them again. At least once.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator

from fluke_airflow._airflow import conf
from fluke_airflow.polling.settings import DEFAULT_MAX_DELIVERY_BYTES

if TYPE_CHECKING:
    from airflow.sdk import Context

    from fluke_airflow.polling.settings import DeliverySettings
    from fluke_airflow.queues.message import Message


class QueuePollSensor(BaseSensorOperator):
    """Wait until messages are available in ``queue``, then deliver up to ``num_messages``.

    The XCom return value is the list of bodies (str). With 25 messages waiting,
    ``batch_size=10, num_messages=20`` delivers exactly 20.

    :param conn_id: ``aws`` (SQS), ``azure_storage_queue`` or ``wasb`` (Azure) connection id.
    :param queue: queue name (SQS: a name or queue URL). Templated.
    :param batch_size: how many messages to deliver when ``num_messages`` is not set
        (received with as many requests as the service needs). Templated.
    :param num_messages: messages to deliver (fewer if fewer are visible). Templated.
    :param pre_delivery_delete: delete before delivery (at most once) instead of after the XCom
        is stored (at least once, the default).
    :param visibility_timeout: seconds received messages stay hidden from other consumers until
        they are deleted; must cover the hand-off from the triggerer to a worker (default 300).
        The worker renews it as soon as it picks the messages up.
    :param wait_time_seconds: SQS long-poll wait for the first receive (0-20): messages that arrive while
        waiting are seen within about a second. Azure has no long polling: the trigger polls
        every ``poke_interval`` seconds instead.
    :param message_encoding: Azure only: ``"text"`` or ``"base64"`` (default: the connection's).
    :param deferrable: wait in the triggerer and free the worker slot (default:
        ``[operators] default_deferrable``).
    :param delete_on_dag_success: keep the messages (hidden) until the DAG run ends, then delete
        them if every other task succeeded and release them for redelivery if not. Adds a
        teardown task ``<task_id>_settle`` (a :class:`~fluke_airflow.sensors.settle.QueueSettleSensor`,
        reschedule mode) that renews the messages' visibility meanwhile (SQS; on Azure set
        ``visibility_timeout`` to cover the run).
    :param max_delivery_bytes: refuse (before deleting anything) a delivery whose bodies add up to
        more than this; lower ``num_messages`` or poll inside a task instead. Default 1 MiB.
        (``max_xcom_bytes``, its former name, still works and is deprecated.)
    :param max_receive_count: with ``dead_letter_queue``: messages received more often than this
        (a poison message that keeps failing the pipeline) are moved to ``dead_letter_queue`` and
        logged by id instead of delivered. Off by default.
    :param dead_letter_queue: the queue (same connection) that takes poison messages (and, with
        ``unmatched="dead_letter"``, the messages no filter takes).
    :param message_filtering: take only the messages that match, with the amazon provider's
        ``SqsSensor`` parameters: ``"literal"``, ``"jsonpath"`` or ``"jsonpath-ext"``, with
        ``message_filtering_match_values`` and ``message_filtering_config`` (templated).
    :param message_filtering_attributes: SQS message attributes that must hold one of the given
        values, ``{"name": "value"}`` or ``{"name": ["value", ...]}``.
    :param unmatched: what becomes of a message no filter takes: ``"leave"`` it in the queue (the
        default: visible again to other consumers after ``visibility_timeout``), ``"delete"`` it, or
        move it to the ``dead_letter_queue`` (``"dead_letter"``).
    :param include_metadata: the XCom is a list of message dicts (id, body, receive count, the
        service's metadata and SQS message attributes; never the receipt) instead of the bodies.
    :param executor_queue: the executor queue (``BaseOperator``'s ``queue``, which ``queue``
        names the message queue here instead).

    Messages this task received but could not hand over (the XCom could not be stored, the delivery
    was too large, or with ``delete_on_dag_success`` the run failed) are released to come back after
    the task's own ``retry_delay`` (``retry_exponential_backoff`` and ``max_retry_delay`` apply, with
    the message's receive count as the try number): they return when a retry of this task would.

    Ported from the amazon provider's ``SqsSensor``, a sensor keeps working with only the class
    name changed: ``sqs_queue`` and ``aws_conn_id`` (default ``"aws_default"``) name the queue and
    connection, ``max_messages`` (default 5) times ``num_batches`` (default 1) is ``num_messages``,
    ``delete_message_on_reception=True`` is ``pre_delivery_delete=True`` (``False`` leaves the
    messages in the queue), and the messages also go to the XCom key ``messages`` as the amazon
    sensor stores them (``MessageId``, ``Body``, ``Attributes``, ``MessageAttributes``; no
    ``ReceiptHandle``). Left out, ``delete_message_on_reception`` means our default: deleted once
    the XCom is stored (at least once) rather than on reception.
    """

    template_fields: Sequence[str] = (
        "conn_id",
        "queue_name",
        "batch_size",
        "num_messages",
        "visibility_timeout",
        "message_filtering_config",
    )
    ui_color = "#fff2cc"

    def __init__(
        self,
        *,
        conn_id: str | None = None,
        queue: str | None = None,
        batch_size: int = 10,
        num_messages: int | None = None,
        pre_delivery_delete: bool = False,
        visibility_timeout: int = 300,
        wait_time_seconds: int = 20,
        message_encoding: str | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        delete_on_dag_success: bool = False,
        max_delivery_bytes: int = DEFAULT_MAX_DELIVERY_BYTES,
        max_receive_count: int | None = None,
        dead_letter_queue: str | None = None,
        message_filtering: str | None = None,
        message_filtering_match_values: Any = None,
        message_filtering_config: Any = None,
        message_filtering_attributes: dict[str, Any] | None = None,
        unmatched: str = "leave",
        include_metadata: bool = False,
        executor_queue: str | None = None,
        max_xcom_bytes: int | None = None,
        sqs_queue: str | None = None,
        aws_conn_id: str | None = None,
        max_messages: int | None = None,
        num_batches: int | None = None,
        delete_message_on_reception: bool | None = None,
        **kwargs: Any,
    ) -> None:
        if executor_queue is not None:
            kwargs["queue"] = executor_queue
        if max_xcom_bytes is not None:
            warnings.warn(
                "QueuePollSensor(max_xcom_bytes=...) is deprecated; use max_delivery_bytes (the trigger's name too)",
                DeprecationWarning,
                stacklevel=2,
            )
            max_delivery_bytes = max_xcom_bytes
        ported = _ported_arguments(
            conn_id, queue, num_messages, pre_delivery_delete, sqs_queue, aws_conn_id, max_messages, num_batches,
            delete_message_on_reception,
        )  # fmt: skip
        conn_id, queue, num_messages, pre_delivery_delete = (
            ported.conn_id,
            ported.queue,
            ported.num_messages,
            (ported.pre_delivery_delete),
        )
        own_task_id = kwargs.get("task_id", "")
        super().__init__(**kwargs)
        from fluke_airflow.polling.settings import check_arguments
        from fluke_airflow.queues import validation as check

        check_arguments(
            {
                "batch_size": batch_size,
                "num_messages": num_messages,
                "visibility_timeout": visibility_timeout,
                "wait_time_seconds": wait_time_seconds,
                "pre_delivery_delete": pre_delivery_delete,
                "message_encoding": message_encoding,
                "max_delivery_bytes": max_delivery_bytes,
                "max_receive_count": max_receive_count,
                "dead_letter_queue": dead_letter_queue,
                "message_filtering": message_filtering,
                "message_filtering_match_values": message_filtering_match_values,
                "message_filtering_config": message_filtering_config,
                "message_filtering_attributes": message_filtering_attributes,
                "unmatched": unmatched,
            },
            templates_allowed=True,
        )
        check.boolean("deferrable", deferrable)
        check.boolean("include_metadata", include_metadata)
        check.boolean("delete_on_dag_success", delete_on_dag_success)
        if delete_on_dag_success and pre_delivery_delete:
            raise ValueError(
                "delete_on_dag_success=True keeps messages until the DAG run ends; it cannot be combined with "
                "pre_delivery_delete=True, which deletes them before delivery"
            )
        self.conn_id = conn_id
        self.queue_name = queue
        self.batch_size = batch_size
        self.num_messages = num_messages
        self.pre_delivery_delete = pre_delivery_delete
        self.visibility_timeout = visibility_timeout
        self.wait_time_seconds = wait_time_seconds
        self.message_encoding = message_encoding
        self.deferrable = deferrable
        self.delete_on_dag_success = delete_on_dag_success
        self.max_delivery_bytes = max_delivery_bytes
        self.max_receive_count = max_receive_count
        self.dead_letter_queue = dead_letter_queue
        self.message_filtering = message_filtering
        self.message_filtering_match_values = (
            list(message_filtering_match_values) if message_filtering_match_values is not None else None
        )
        self.message_filtering_config = message_filtering_config
        self.message_filtering_attributes = message_filtering_attributes
        self.unmatched = unmatched
        self.include_metadata = include_metadata
        self.keep_messages = ported.keep_messages
        self.amazon_xcom = ported.amazon_style
        self._delivered: list[Message] = []
        if delete_on_dag_success:
            self._add_settle_task(f"{own_task_id}_settle")

    def _dag_kwargs(self) -> dict[str, Any]:
        return {"dag": self.dag} if self.has_dag() else {}

    def _add_settle_task(self, task_id: str) -> None:
        from fluke_airflow._airflow import TriggerRule
        from fluke_airflow.sensors.settle import QueueSettleSensor

        settle = QueueSettleSensor(
            task_id=task_id,
            conn_id=self.conn_id,
            queue=self.queue_name,
            sensor_task_id=self.task_id,
            visibility_timeout=self.visibility_timeout,
            message_encoding=self.message_encoding,
            message_retry=self._retry_settings(),
            trigger_rule=TriggerRule.ALL_DONE_SETUP_SUCCESS,
            **self._dag_kwargs(),
        )
        settle.as_teardown(setups=self)
        self.settle_task = settle

    # -- shared helpers -------------------------------------------------------------------------------
    def _settings(self) -> DeliverySettings:
        """The rendered arguments, checked (the trigger gets exactly these)."""
        from fluke_airflow.polling.settings import DeliverySettings

        return DeliverySettings.checked(
            rendered=True,
            conn_id=self.conn_id,
            queue=self.queue_name,
            batch_size=self.batch_size,
            num_messages=self.num_messages,
            pre_delivery_delete=self.pre_delivery_delete,
            visibility_timeout=self.visibility_timeout,
            poke_interval=self.poke_interval,
            wait_time_seconds=self.wait_time_seconds,
            message_encoding=self.message_encoding,
            max_delivery_bytes=self.max_delivery_bytes,
            max_receive_count=self.max_receive_count,
            dead_letter_queue=self.dead_letter_queue,
            message_filtering=self.message_filtering,
            message_filtering_match_values=self.message_filtering_match_values,
            message_filtering_config=self.message_filtering_config,
            message_filtering_attributes=self.message_filtering_attributes,
            unmatched=self.unmatched,
            **self._retry_settings(),
        )

    def _retry_settings(self) -> dict[str, Any]:
        """The task's retry settings, which also say when a released message comes back."""
        return {
            "retry_delay": self.retry_delay,
            "retry_exponential_backoff": self.retry_exponential_backoff,
            "max_retry_delay": self.max_retry_delay,
        }

    def _open(self) -> Any:
        from fluke_airflow.hooks.deadline import task_deadline
        from fluke_airflow.polling.open import open_queue

        # The SDK's retries end with the sensor's timeout: Airflow checks it only between pokes.
        return open_queue(self.conn_id, self.queue_name, self.message_encoding, deadline=task_deadline(self))

    # -- poke / reschedule ------------------------------------------------------------------------------
    def poke(self, context: Context) -> bool:
        return self._receive(self.wait_time_seconds)

    def _receive(self, wait_seconds: int) -> bool:
        """One delivery into ``self._delivered``; False if no message came within ``wait_seconds``."""
        from fluke_airflow.polling.deliveries import delivery_flow
        from fluke_airflow.polling.open import ready_for_delivery

        settings = self._settings()
        with self._open() as queue:
            ready_for_delivery(queue, settings)
            self._delivered = queue.run_flow(delivery_flow(queue, settings, wait_seconds=wait_seconds))
        if self._delivered:
            self.log.info("Received %d message(s) from queue %r", len(self._delivered), self.queue_name)
        return bool(self._delivered)

    def execute(self, context: Context) -> Any:
        if self.deferrable:
            from fluke_airflow.triggers.poll import QueuePollTrigger

            # Messages already waiting are taken at once: deferring would only add a round trip
            # through the triggerer.
            if self._receive(wait_seconds=0):
                return self._hand_over(context, self._delivered, renew=False)
            self.defer(
                trigger=QueuePollTrigger(**self._settings().as_kwargs(), single_event=True),
                method_name="execute_complete",
                timeout=timedelta(seconds=self.timeout) if self.timeout else None,
                **self._resume_kwargs(context),
            )
        super().execute(context)
        return self._hand_over(context, self._delivered, renew=False)

    @staticmethod
    def _resume_kwargs(context: Context) -> dict[str, Any]:
        """Where a retry can resume into the previous try's deferral (Airflow 3.0), the try that
        deferred goes along, so that :meth:`execute_complete` can tell a stale event."""
        from fluke_airflow import _airflow

        if not _airflow.retries_keep_deferral():
            return {}
        return {"kwargs": {"deferred_in_try": context["ti"].try_number}}

    def execute_complete(
        self, context: Context, event: dict[str, Any] | None = None, deferred_in_try: int | None = None
    ) -> Any:
        from fluke_airflow.queues.message import Message

        if deferred_in_try is not None and deferred_in_try != context["ti"].try_number:
            # Airflow 3.0 keeps next_method/next_kwargs when a try fails, so a retry resumes with the
            # previous try's event; its messages were released (or came back) and their receipts
            # are stale. Receive again instead, as a fresh try does on Airflow 3.1+.
            self.log.info(
                "Try %s resumed the deferral of try %s (Airflow 3.0): waiting for messages again",
                context["ti"].try_number,
                deferred_in_try,
            )
            return self.execute(context)
        if not event or event.get("status") != "success":
            from fluke_airflow._airflow import AirflowException

            reason = (event or {}).get("message", "the trigger sent no event")
            raise AirflowException(f"Waiting for messages on queue {self.queue_name!r} failed: {reason}")
        messages = [Message.from_dict(m) for m in event["messages"]]
        self.log.info("The trigger received %d message(s) from queue %r", len(messages), self.queue_name)
        return self._hand_over(context, messages, renew=True)

    def _renewed(self, queue: Any, messages: list[Message]) -> list[Message]:
        from fluke_airflow.queues.message import latest_receipts

        # Time has passed since the receive (a triggerer hand-off, or a long DAG run ahead): renew.
        kept = queue.change_visibility(messages, int(self.visibility_timeout))
        if len(kept) < len(messages):
            self.log.warning(
                "%d message(s) were already visible again (the hand-off outlasted visibility_timeout=%s); "
                "another consumer may receive them too",
                len(messages) - len(kept),
                self.visibility_timeout,
            )
        return latest_receipts(messages, kept)

    # -- delivery --------------------------------------------------------------------------------------
    def _xcom(self, context: Context, messages: list[Message]) -> list[Any]:
        """The return value (bodies, or message dicts with ``include_metadata``); ported from the
        amazon sensor, also its ``messages`` XCom."""
        if self.amazon_xcom:
            context["ti"].xcom_push(key="messages", value=[_amazon_shape(m) for m in messages])
        return [m.public() for m in messages] if self.include_metadata else [m.body for m in messages]

    def _hand_over(self, context: Context, messages: list[Message], *, renew: bool) -> list[Any]:
        """Store the messages as XCom, then (post-delivery) delete them; if that fails, release them
        (they come back after the task's retry delay) and fail."""
        if self.pre_delivery_delete or self.keep_messages:
            return self._store(context, messages, renew=renew)
        try:
            return self._store(context, messages, renew=renew)
        except Exception:
            self._release(messages)
            raise

    def _release(self, messages: list[Message]) -> None:
        from fluke_airflow.queues.flows import release_flow

        try:
            with self._open() as queue:
                retry = queue.retry_policy(*self._settings().retry_args())
                released = queue.run_flow(release_flow(messages, queue=self.queue_name, retry=retry))
        except Exception as error:  # the task fails anyway; the messages return after their visibility timeout
            self.log.warning("Could not release the %d message(s) (%s); they come back after visibility_timeout",
                             len(messages), error)  # fmt: skip
            return
        self.log.warning("The hand-over failed: released %d message(s) for redelivery", len(released))

    def _store(self, context: Context, messages: list[Message], *, renew: bool) -> list[Any]:
        value = self._xcom(context, messages)
        if self.pre_delivery_delete:
            return value
        if self.keep_messages:
            self.log.info(
                "Stored %d message(s) as XCom and left them in queue %r (delete_message_on_reception=False): "
                "they are visible again after visibility_timeout=%s",
                len(messages),
                self.queue_name,
                self.visibility_timeout,
            )
            return value
        with self._open() as queue:
            if renew or self.delete_on_dag_success:
                # In place: if storing fails, _hand_over releases them with the renewed receipts
                # (Azure gives a message a new pop receipt with every visibility change).
                messages[:] = self._renewed(queue, messages)
            if self.delete_on_dag_success:
                from fluke_airflow.sensors.settle import MESSAGES_XCOM_KEY

                context["ti"].xcom_push(key=MESSAGES_XCOM_KEY, value=[m.to_dict() for m in messages])
                self.log.info(
                    "Delivered %d message(s); they stay hidden until the DAG run ends (task %r settles them)",
                    len(messages),
                    self.settle_task.task_id,
                )
                return value
            context["ti"].xcom_push(key="return_value", value=value)
            deleted = sum(queue.delete_messages(messages))
        self.log.info(
            "Stored %d message(s) as XCom and deleted %d from queue %r", len(messages), deleted, self.queue_name
        )
        return value


def _amazon_shape(message: Message) -> dict[str, Any]:
    """A message as the amazon provider's ``SqsSensor`` stores it in XCom, without the receipt handle."""
    public = message.public()
    return {
        "MessageId": message.id,
        "Body": message.body,
        "Attributes": public.get("metadata", {}),
        "MessageAttributes": public.get("message_attributes", {}),
    }


@dataclass(frozen=True)
class _Ported:
    conn_id: str
    queue: str
    num_messages: int | None
    pre_delivery_delete: bool
    keep_messages: bool
    amazon_style: bool


def _ported_arguments(
    conn_id: str | None,
    queue: str | None,
    num_messages: int | None,
    pre_delivery_delete: bool,
    sqs_queue: str | None,
    aws_conn_id: str | None,
    max_messages: int | None,
    num_batches: int | None,
    delete_message_on_reception: bool | None,
) -> _Ported:
    """The sensor's own arguments from those of the amazon provider's ``SqsSensor``, if given."""
    from fluke_airflow import _args
    from fluke_airflow.queues import validation as check

    for ours, theirs, name in (("conn_id", aws_conn_id, "aws_conn_id"), ("queue", sqs_queue, "sqs_queue")):
        if theirs is not None and (conn_id if ours == "conn_id" else queue) is not None:
            raise TypeError(f"give {ours} or {name} (the amazon provider's name for it), not both")
    amazon_style = sqs_queue is not None or aws_conn_id is not None
    queue = queue if queue is not None else sqs_queue
    if queue is None:
        raise TypeError("QueuePollSensor needs queue (the queue's name; SQS: a name or URL)")
    if conn_id is None:
        if aws_conn_id is None and sqs_queue is None:
            raise TypeError(
                "QueuePollSensor needs conn_id: an Airflow connection of type 'aws' (Amazon SQS), "
                "'azure_storage_queue' or 'wasb' (Azure Queue Storage)"
            )
        conn_id = aws_conn_id or "aws_default"  # the amazon provider's default
    if max_messages is not None or num_batches is not None:
        if num_messages is not None:
            raise TypeError("give num_messages or max_messages/num_batches (the amazon provider's), not both")
        _args.optional_int("max_messages", max_messages, minimum=1)
        _args.optional_int("num_batches", num_batches, minimum=1)
        per_batch = max_messages if max_messages is not None else 5
        batches = num_batches if num_batches is not None else 1
        num_messages = int(per_batch) * int(batches)
    keep = False
    if delete_message_on_reception is not None:
        check.boolean("delete_message_on_reception", delete_message_on_reception)
        if pre_delivery_delete:
            raise TypeError("give pre_delivery_delete or delete_message_on_reception (the amazon provider's), not both")
        pre_delivery_delete = delete_message_on_reception
        keep = not delete_message_on_reception
    return _Ported(conn_id, queue, num_messages, pre_delivery_delete, keep, amazon_style)
