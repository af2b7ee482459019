"""QueuePollSensor: wait for messages and hand them to the task's XCom.

The delivery guarantee is the guide's, in Airflow terms:

* ``pre_delivery_delete=True``: deleted before they reach XCom (in the triggerer when
  deferred). At most once: if anything fails afterwards, the messages are gone.
* ``pre_delivery_delete=False`` (default): deleted only after they are stored as the task's
  XCom. If the worker, the triggerer or the task dies anywhere before, they reappear after
  ``visibility_timeout`` and a retry receives them again. At least once.

What becomes of the messages is decided by :mod:`fluke_airflow.queues.lifecycle`; this module
reports what happened (stored, failed) and does the Airflow part.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator

from fluke_airflow._airflow import conf
from fluke_airflow.queues import arguments
from fluke_airflow.queues.arguments import SENSOR

if TYPE_CHECKING:
    from airflow.sdk import Context

    from fluke_airflow.queues.arguments import DeliverySettings
    from fluke_airflow.queues.message import Message

_ATTRIBUTE = {"queue": "queue_name"}
"""Arguments kept under another attribute: ``BaseOperator.queue`` is the executor queue."""


class QueuePollSensor(BaseSensorOperator):
    """Wait until messages are available in ``queue``, then deliver up to ``num_messages``.

    The XCom return value is the list of bodies (str). With 25 messages waiting,
    ``batch_size=10, num_messages=20`` delivers exactly 20.

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

    .. generated arguments: sensor

    :param conn_id: The Airflow connection: ``aws`` (Amazon SQS), ``azure_storage_queue`` or ``wasb`` (Azure
        Queue Storage). Required. Templated.
    :param queue: The queue's name (SQS: a name or a queue URL). Required. Templated.
    :param batch_size: Messages per batch (more than one request's worth is received with several requests). The
        sensor and the trigger deliver this many when ``num_messages`` is not set; a watcher defaults to 100, so
        that a burst becomes few runs. Default ``10``. Templated.
    :param num_messages: ``poll``: how many messages in all (default: until the queue is empty). Sensor and
        trigger: messages per delivery (fewer if fewer are visible). Default ``None``. Templated.
    :param pre_delivery_delete: Delete before delivering (at most once). Default: after the hand-over (at least
        once): when the loop asks for the next batch, once the XCom or the asset event is stored. Default
        ``False``.
    :param visibility_timeout: Seconds received messages stay hidden from other consumers until they are deleted
        or released. The sensor's must cover the hand-off from the triggerer to a worker; a watcher's, Airflow
        storing the event (it is renewed while held). Default ``300``. Templated.
    :param wait_time_seconds: SQS long-poll wait per receive, 0 to 20 s (accepted and ignored on Azure): an idle
        trigger costs one request per wait. Default ``20``.
    :param message_encoding: Azure only: ``'text'`` or ``'base64'`` (default: the connection's). Default
        ``None``.
    :param max_delivery_bytes: Sensor (and a deferred sensor's trigger): refuse, before deleting anything, a
        delivery whose bodies add up to more (its messages are released). Watcher: the most bytes of bodies in
        one asset event (default 1 MiB); the rest waits for the next event. Default ``1048576``.
    :param max_batching_window: After the first message of a delivery, keep gathering for up to this many
        seconds (0 to 300) while it is not full (Lambda's batching window). Must be shorter than
        ``visibility_timeout``. Default ``0.0``.
    :param max_receive_count: Move messages received more often than this (a poison message that keeps failing
        the pipeline) to ``dead_letter_queue`` (on Azure, without one, to ``<queue>-poison``, created if
        missing), logged by id, instead of delivering them. Default ``None``.
    :param dead_letter_queue: The queue (same connection) that takes poison messages, and with
        ``unmatched='dead_letter'`` the messages no filter takes. Default ``None``.
    :param message_filtering: Take only the messages that match, as the amazon provider's ``SqsSensor``:
        ``'literal'``, ``'jsonpath'`` or ``'jsonpath-ext'``. Default ``None``.
    :param message_filtering_match_values: The values to match: the bodies (literal), or values the JSONPath
        expression must find. Default ``None``.
    :param message_filtering_config: The JSONPath expression of the jsonpath filters. Default ``None``.
        Templated.
    :param message_filtering_attributes: SQS message attributes that must hold one of the given values,
        ``{'name': 'value'}`` or ``{'name': ['value', ...]}``. Default ``None``.
    :param unmatched: What becomes of a message no filter takes: ``'leave'`` it in the queue (visible again to
        other consumers after ``visibility_timeout``), ``'delete'`` it, or move it to the dead-letter queue
        (``'dead_letter'``). Watchers sharing one poll loop must agree on it. Default ``"leave"``.
    :param delete_on_dag_success: Keep the messages (hidden) until the DAG run ends, then delete them if it
        succeeded and release them for redelivery (after ``retry_delay``) if not. Sensor: adds a teardown task
        ``<task_id>_settle`` that renews their visibility meanwhile (SQS; on Azure set ``visibility_timeout`` to
        cover the run), and the run decides once every other task is done. Watcher: each event's messages stay
        hidden until the runs of every DAG of ``dag_ids`` that took the event have ended; ``message_task_id``
        lets a mapped task decide per message (Airflow 3.3+, with this provider's plugin loaded in the
        scheduler). Default ``False``.
    :param deferrable: Wait in the triggerer and free the worker slot (default: ``[operators]
        default_deferrable``). Default ``conf.getboolean("operators", "default_deferrable", fallback=False)``.
    :param include_metadata: The XCom is a list of message dicts (id, body, receive count, the service's
        metadata and SQS message attributes; never the receipt) instead of the bodies. Default ``False``.
    :param executor_queue: The executor queue: ``BaseOperator``'s ``queue``, which ``queue`` names the message
        queue here instead. Default ``None``.

    .. end

    :param sqs_queue: the amazon provider's name for ``queue``.
    :param aws_conn_id: the amazon provider's name for ``conn_id``.
    :param max_messages: the amazon provider's messages per batch (with ``num_batches``).
    :param num_batches: the amazon provider's batches per poke.
    :param delete_message_on_reception: the amazon provider's: ``True`` is ``pre_delivery_delete=True``,
        ``False`` leaves the messages in the queue.
    """

    template_fields: Sequence[str] = tuple(_ATTRIBUTE.get(n, n) for n in arguments.templated(SENSOR))
    ui_color = "#fff2cc"
    # -- generated attributes: sensor --
    conn_id: str
    queue_name: str
    batch_size: int
    num_messages: int | None
    pre_delivery_delete: bool
    visibility_timeout: int
    wait_time_seconds: int
    message_encoding: str | None
    max_delivery_bytes: int | None
    max_batching_window: float
    max_receive_count: int | None
    dead_letter_queue: str | None
    message_filtering: str | None
    message_filtering_match_values: Any
    message_filtering_config: Any
    message_filtering_attributes: dict[str, Any] | None
    unmatched: str
    delete_on_dag_success: bool
    deferrable: bool
    include_metadata: bool
    executor_queue: str | None
    # -- end --

    def __init__(
        self,
        *,
        conn_id: str | None = None,
        queue: str | None = None,
        # -- generated arguments: sensor --
        batch_size: int = 10,
        num_messages: int | None = None,
        pre_delivery_delete: bool = False,
        visibility_timeout: int = 300,
        wait_time_seconds: int = 20,
        message_encoding: str | None = None,
        max_delivery_bytes: int | None = 1048576,
        max_batching_window: float = 0.0,
        max_receive_count: int | None = None,
        dead_letter_queue: str | None = None,
        message_filtering: str | None = None,
        message_filtering_match_values: Any = None,
        message_filtering_config: Any = None,
        message_filtering_attributes: dict[str, Any] | None = None,
        unmatched: str = "leave",
        delete_on_dag_success: bool = False,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        include_metadata: bool = False,
        executor_queue: str | None = None,
        # -- end --
        sqs_queue: str | None = None,
        aws_conn_id: str | None = None,
        max_messages: int | None = None,
        num_batches: int | None = None,
        delete_message_on_reception: bool | None = None,
        **kwargs: Any,
    ) -> None:
        passed = locals()
        given = {name: passed[name] for name in arguments.defaults(SENSOR)}
        ported = _ported_arguments(given, sqs_queue, aws_conn_id, max_messages, num_batches,
                                   delete_message_on_reception)  # fmt: skip
        if given["executor_queue"] is not None:
            kwargs["queue"] = given["executor_queue"]
        own_task_id = kwargs.get("task_id", "")
        super().__init__(**kwargs)
        for name, value in arguments.check(SENSOR, given, templates_allowed=True).items():
            setattr(self, _ATTRIBUTE.get(name, name), value)
        self.keep_messages = ported.keep_messages
        self.amazon_xcom = ported.amazon_style
        self._delivered: list[Message] = []
        if self.delete_on_dag_success:
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
        from fluke_airflow.queues.arguments import DeliverySettings

        values = {n: getattr(self, _ATTRIBUTE.get(n, n)) for n in arguments.names(DeliverySettings, SENSOR)}
        values.update(poke_interval=self.poke_interval, **self._retry_settings())
        return DeliverySettings.checked(arguments.TRIGGER, values, rendered=True)

    def _retry_settings(self) -> dict[str, Any]:
        """The task's retry settings, which also say when a released message comes back."""
        return {
            "retry_delay": self.retry_delay,
            "retry_exponential_backoff": self.retry_exponential_backoff,
            "max_retry_delay": self.max_retry_delay,
        }

    def _open(self) -> Any:
        from fluke_airflow.delivery.open import open_queue

        return open_queue(self.conn_id, self.queue_name, self.message_encoding)

    # -- poke / reschedule ------------------------------------------------------------------------------
    def poke(self, context: Context) -> bool:
        return self._receive(self.wait_time_seconds)

    def _receive(self, wait_seconds: int) -> bool:
        """One delivery into ``self._delivered``; False if no message came within ``wait_seconds``."""
        from fluke_airflow.delivery.deliveries import sensor_flow
        from fluke_airflow.delivery.open import ready_for_delivery

        settings = self._settings()
        with self._open() as queue:
            options = ready_for_delivery(queue, settings)
            self._delivered = queue.run_flow(sensor_flow(options, wait_seconds=wait_seconds))
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
            self._settle_after_failure(messages)
            raise

    def _settle_after_failure(self, messages: list[Message]) -> None:
        from fluke_airflow.delivery.deliveries import delivery_options
        from fluke_airflow.queues.lifecycle import Outcome, settle

        try:
            with self._open() as queue:
                options = delivery_options(queue, self._settings())
                released = queue.run_flow(settle(messages, Outcome.FAILED, options))
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
            deleted = self._acknowledged(queue, messages)
        self.log.info(
            "Stored %d message(s) as XCom and deleted %d from queue %r", len(messages), deleted, self.queue_name
        )
        return value

    def _acknowledged(self, queue: Any, messages: list[Message]) -> int:
        from fluke_airflow.delivery.deliveries import delivery_options
        from fluke_airflow.queues.lifecycle import Outcome, settle

        return len(queue.run_flow(settle(messages, Outcome.ACKNOWLEDGED, delivery_options(queue, self._settings()))))


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
    keep_messages: bool
    amazon_style: bool


def _ported_arguments(
    given: dict[str, Any],
    sqs_queue: str | None,
    aws_conn_id: str | None,
    max_messages: int | None,
    num_batches: int | None,
    delete_message_on_reception: bool | None,
) -> _Ported:
    """The sensor's own arguments (in ``given``, updated in place) from those of the amazon
    provider's ``SqsSensor``, if given."""
    from fluke_airflow import _args
    from fluke_airflow.queues import validation as check

    for ours, theirs, name in (("conn_id", aws_conn_id, "aws_conn_id"), ("queue", sqs_queue, "sqs_queue")):
        if theirs is not None and given[ours] is not None:
            raise TypeError(f"give {ours} or {name} (the amazon provider's name for it), not both")
    amazon_style = sqs_queue is not None or aws_conn_id is not None
    if given["queue"] is None:
        if sqs_queue is None:
            raise TypeError("QueuePollSensor needs queue (the queue's name; SQS: a name or URL)")
        given["queue"] = sqs_queue
    if given["conn_id"] is None:
        if not amazon_style:
            raise TypeError(
                "QueuePollSensor needs conn_id: an Airflow connection of type 'aws' (Amazon SQS), "
                "'azure_storage_queue' or 'wasb' (Azure Queue Storage)"
            )
        given["conn_id"] = aws_conn_id or "aws_default"  # the amazon provider's default
    if max_messages is not None or num_batches is not None:
        if given["num_messages"] is not None:
            raise TypeError("give num_messages or max_messages/num_batches (the amazon provider's), not both")
        _args.optional_int("max_messages", max_messages, minimum=1)
        _args.optional_int("num_batches", num_batches, minimum=1)
        given["num_messages"] = int(max_messages if max_messages is not None else 5) * int(
            num_batches if num_batches is not None else 1
        )
    keep = False
    if delete_message_on_reception is not None:
        check.boolean("delete_message_on_reception", delete_message_on_reception)
        if given["pre_delivery_delete"]:
            raise TypeError("give pre_delivery_delete or delete_message_on_reception (the amazon provider's), not both")
        given["pre_delivery_delete"] = delete_message_on_reception
        keep = not delete_message_on_reception
    return _Ported(keep, amazon_style)
