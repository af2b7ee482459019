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

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator

from fluke_airflow import _args
from fluke_airflow._airflow import conf
from fluke_airflow.queues import arguments
from fluke_airflow.queues.arguments import SENSOR

if TYPE_CHECKING:
    from airflow.sdk import Context

    from fluke_airflow.queues.arguments import DeliverySettings
    from fluke_airflow.queues.message import Message

_ATTRIBUTE = {"queue": "queue_name"}
"""Arguments the sensor takes under another name: ``BaseOperator.queue`` is the executor queue
(Celery's, which ``default_args`` often set), so the message queue is ``queue_name``."""


class QueuePollSensor(BaseSensorOperator):
    """Wait until messages are available in ``queue_name``, then deliver up to ``num_messages``.

    The XCom return value is the list of bodies (str). With 25 messages waiting,
    ``batch_size=10, num_messages=20`` delivers exactly 20.

    Messages this task received but could not hand over (the XCom could not be stored, the delivery
    was too large, or with ``delete_on_dag_success`` the run failed) are released to come back after
    the task's own ``retry_delay`` (``retry_exponential_backoff`` and ``max_retry_delay`` apply, with
    the message's receive count as the try number): they return when a retry of this task would.

    Ported from the amazon provider's ``SqsSensor``, a sensor keeps working with only the class
    name changed: its arguments are taken as they are written there (``sqs_queue``,
    ``aws_conn_id``, ``max_messages``, ``num_batches``, ``delete_message_on_reception``,
    ``region_name``, ``verify``, ``botocore_config``, ``waiter_delay``; see the porting page), and
    the messages also go to the XCom key ``messages`` as the amazon sensor stores them
    (``MessageId``, ``Body``, ``Attributes``, ``MessageAttributes``; no ``ReceiptHandle``). Left
    out, ``delete_message_on_reception`` means our default: deleted once the XCom is stored (at
    least once) rather than on reception.

    """

    __doc__ = f"{__doc__}{arguments.param_docs(SENSOR)}"  # every argument, from its declaration

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
    region_name: str | None
    verify: bool | str | None
    botocore_config: dict[str, Any] | None
    delete_on_dag_success: bool
    deferrable: bool
    include_metadata: bool
    sqs_queue: str | None
    aws_conn_id: str | None
    max_messages: int | None
    num_batches: int | None
    delete_message_on_reception: bool | None
    region: str | None
    waiter_delay: float | None
    # -- end --

    def __init__(
        self,
        *,
        conn_id: str | None = None,
        queue_name: str | None = None,
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
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict[str, Any] | None = None,
        delete_on_dag_success: bool = False,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        include_metadata: bool = False,
        sqs_queue: str | None = None,
        aws_conn_id: str | None = None,
        max_messages: int | None = None,
        num_batches: int | None = None,
        delete_message_on_reception: bool | None = None,
        region: str | None = None,
        waiter_delay: float | None = None,
        # -- end --
        **kwargs: Any,
    ) -> None:
        passed = locals()
        given = {name: passed[_ATTRIBUTE.get(name, name)] for name in arguments.defaults(SENSOR)}
        ported = _ported_arguments(given, kwargs)
        own_task_id = kwargs.get("task_id", "")
        _args.reject_misspelt(type(self), kwargs)
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
            queue_name=self.queue_name,
            sensor_task_id=self.task_id,
            visibility_timeout=self.visibility_timeout,
            message_encoding=self.message_encoding,
            message_retry=self._retry_settings(),
            connection={name: getattr(self, name) for name in ("region_name", "verify", "botocore_config")},
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
        from fluke_airflow.delivery.open import connection_overrides, open_queue
        from fluke_airflow.hooks.deadline import task_deadline

        settings = self._settings()
        # The SDK's retries end with the sensor's timeout: Airflow checks it only between pokes.
        return open_queue(settings.conn_id, settings.queue, settings.message_encoding, deadline=task_deadline(self),
                          **connection_overrides(settings))  # fmt: skip

    # -- poke / reschedule ------------------------------------------------------------------------------
    def poke(self, context: Context) -> bool:
        return self._receive(self.wait_time_seconds)

    def _receive(self, wait_seconds: int) -> bool:
        """One delivery into ``self._delivered``; False if no message came within ``wait_seconds``."""
        from fluke_airflow.delivery.deliveries import sensor_flow
        from fluke_airflow.delivery.open import ready_for_delivery
        from fluke_airflow.queues.lifecycle import Held, tracked

        settings = self._settings()
        with self._open() as queue:
            options = ready_for_delivery(queue, settings)
            flow = sensor_flow(options, wait_seconds=wait_seconds)
            self._delivered = queue.run_flow(tracked(flow, Held(), settings.queue))  # killed: released
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


def _ported_arguments(given: dict[str, Any], kwargs: dict[str, Any]) -> _Ported:
    """The sensor's own arguments (in ``given``, updated in place) from those of the amazon
    provider's ``SqsSensor`` (also in ``given``); ``waiter_delay`` becomes the operator's
    ``poke_interval`` (in ``kwargs``)."""
    from fluke_airflow.queues import validation as check

    for ours, theirs, shown in (("conn_id", "aws_conn_id", "conn_id"), ("queue", "sqs_queue", "queue_name")):
        if given[theirs] is not None and given[ours] is not None:
            raise TypeError(f"give {shown} or {theirs} (the amazon provider's name for it), not both")
    amazon_style = given["sqs_queue"] is not None or given["aws_conn_id"] is not None
    if given["queue"] is None:
        if given["sqs_queue"] is None:
            raise TypeError(
                "QueuePollSensor needs queue_name: the message queue's name (SQS: a name or URL). (queue is "
                "Airflow's executor queue, which default_args often set for Celery)"
            )
        given["queue"] = given["sqs_queue"]
    if given["conn_id"] is None:
        if not amazon_style:
            raise TypeError(
                "QueuePollSensor needs conn_id: an Airflow connection of type 'aws' (Amazon SQS), "
                "'azure_storage_queue' or 'wasb' (Azure Queue Storage)"
            )
        given["conn_id"] = given["aws_conn_id"] or "aws_default"  # the amazon provider's default
    max_messages, num_batches = given["max_messages"], given["num_batches"]
    if max_messages is not None or num_batches is not None:
        if given["num_messages"] is not None:
            raise TypeError("give num_messages or max_messages/num_batches (the amazon provider's), not both")
        _args.optional_int("max_messages", max_messages, minimum=1)
        _args.optional_int("num_batches", num_batches, minimum=1)
        given["num_messages"] = int(max_messages if max_messages is not None else 5) * int(
            num_batches if num_batches is not None else 1
        )
    if given["waiter_delay"] is not None:
        if "poke_interval" in kwargs:
            raise TypeError("give poke_interval or waiter_delay (the amazon provider's name for it), not both")
        warnings.warn(
            "QueuePollSensor(waiter_delay=...) is the amazon SqsSensor's pause between polls; it is taken as "
            "poke_interval. SQS is long-polled here (wait_time_seconds), so no pause is needed there: use "
            "poke_interval",
            DeprecationWarning,
            stacklevel=4,
        )
        kwargs["poke_interval"] = given["waiter_delay"]
    if given["region"] is not None:
        given["region_name"] = _args.deprecated_alias("region", given["region"], "region_name", given["region_name"])
    keep = False
    reception = given["delete_message_on_reception"]
    if reception is not None:
        check.boolean("delete_message_on_reception", reception)
        if given["pre_delivery_delete"]:
            raise TypeError("give pre_delivery_delete or delete_message_on_reception (the amazon provider's), not both")
        given["pre_delivery_delete"] = reception
        keep = not reception
    return _Ported(keep, amazon_style)
