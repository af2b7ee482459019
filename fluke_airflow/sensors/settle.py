"""QueueSettleSensor: delete a sensor's messages if the DAG run succeeded, release them if not.

``QueuePollSensor(delete_on_dag_success=True)`` adds one as a teardown task. It runs in
reschedule mode (no worker slot between looks, and it works under ``dag.test()``): every
``poke_interval`` it looks at the other task instances of its DAG run and, while some are
still to run, renews the messages' visibility (on SQS; Azure's pop receipts change on every
renewal, so there the sensor hides them for ``visibility_timeout`` once, at delivery).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue

from fluke_airflow import _args

if TYPE_CHECKING:
    from airflow.sdk import Context

MESSAGES_XCOM_KEY = "fluke_messages"
FINISHED = {"success", "skipped", "failed", "upstream_failed", "removed"}
SUCCEEDED = {"success", "skipped"}


def run_outcome(states: dict[str, Any], exclude: str) -> str | None:
    """``"success"``/``"failed"`` once every other task instance finished, else None."""
    others = [None if state is None else str(state) for task, state in states.items() if task != exclude]
    if any(state not in FINISHED for state in others):
        return None
    return "success" if all(state in SUCCEEDED for state in others) else "failed"


class QueueSettleSensor(BaseSensorOperator):
    """Wait until the rest of the DAG run is done, keeping the messages delivered by
    ``sensor_task_id`` hidden; then delete them if every other task succeeded (or was skipped)
    and release them for redelivery otherwise."""

    template_fields: Sequence[str] = ("conn_id", "queue_name")
    ui_color = "#fbe5d6"

    def __init__(
        self,
        *,
        conn_id: str,
        queue_name: str,
        sensor_task_id: str,
        visibility_timeout: int = 300,
        message_encoding: str | None = None,
        message_retry: dict[str, Any] | None = None,
        connection: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """``message_retry``: ``retry_delay``, ``retry_exponential_backoff`` and ``max_retry_delay``
        for the messages of a failed run (the sensor's own; this task's retries are its own).
        ``connection``: the sensor's ``region_name``, ``verify`` and ``botocore_config``."""
        kwargs.setdefault("mode", "reschedule")
        kwargs.setdefault("poke_interval", max(1.0, min(30.0, visibility_timeout / 3)))
        kwargs.setdefault("timeout", 7 * 24 * 3600)
        # Airflow 3.3.2 can fail a rescheduled task when the scheduler handles the previous poke's
        # executor event only after queueing the next one ("finished with state success, but the
        # task instance's state attribute is queued"). Every poke is idempotent: retry it, or the
        # run's messages would stay unsettled (redelivered after visibility_timeout, success or not).
        kwargs.setdefault("retries", 3)
        kwargs.setdefault("retry_delay", timedelta(seconds=kwargs["poke_interval"]))
        _args.reject_misspelt(type(self), kwargs)
        super().__init__(**kwargs)
        self.conn_id = conn_id
        self.queue_name = queue_name
        self.sensor_task_id = sensor_task_id
        self.visibility_timeout = visibility_timeout
        self.message_encoding = message_encoding
        self.message_retry = dict(message_retry or {})
        self.connection = {k: v for k, v in (connection or {}).items() if v is not None}

    def _queue(self) -> Any:
        from fluke_airflow.delivery.open import open_queue

        overrides = {"config" if k == "botocore_config" else k: v for k, v in self.connection.items()}
        return open_queue(self.conn_id, self.queue_name, self.message_encoding, **overrides)

    def poke(self, context: Context) -> bool | PokeReturnValue:
        from fluke_airflow.queues.lifecycle import Outcome, settle
        from fluke_airflow.queues.message import Message
        from fluke_airflow.queues.options import DeliveryOptions

        ti: Any = context["ti"]
        stored = ti.xcom_pull(task_ids=self.sensor_task_id, key=MESSAGES_XCOM_KEY)
        if not stored:
            self.log.info("Task %r delivered no messages: nothing to settle", self.sensor_task_id)
            return True
        messages = [Message.from_dict(m) for m in stored]
        run_id = context["run_id"]
        states = type(ti).get_task_states(dag_id=self.dag_id, run_ids=[run_id]).get(run_id, {})
        outcome = run_outcome(states, exclude=self.task_id)
        with self._queue() as queue:
            if outcome is None:
                if queue.receipts_survive_visibility_change:  # SQS; Azure's would be voided by a renewal
                    queue.change_visibility(messages, int(self.visibility_timeout))
                return False
            retry = queue.retry_policy(
                self.message_retry.get("retry_delay", 0),
                self.message_retry.get("retry_exponential_backoff", False),
                self.message_retry.get("max_retry_delay"),
            )
            options = DeliveryOptions(queue.get_name(), retry=retry)
            if outcome == "success":
                done = len(queue.run_flow(settle(messages, Outcome.ACKNOWLEDGED, options)))
                self.log.info("The DAG run succeeded: deleted %d of %d message(s)", done, len(messages))
                return PokeReturnValue(is_done=True, xcom_value={"outcome": outcome, "deleted": done})
            released = len(queue.run_flow(settle(messages, Outcome.FAILED, options)))
        self.log.warning(
            "The DAG run did not succeed: released %d of %d message(s) for redelivery", released, len(messages)
        )
        return PokeReturnValue(is_done=True, xcom_value={"outcome": outcome, "released": released})
