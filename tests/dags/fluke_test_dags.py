"""DAGs the Airflow-level tests run with dag.test() (bundle ``fluke-test-dags``, see tests/conftest.py).

Everything service-specific comes in through params (``conn_id``, ``queue``...), so one DAG
serves SQS and Azure alike. A few sensor subclasses stand in for the world around a task:

* ``SeedOnEmptyPoke`` pushes ``params.seed_on_empty`` once a poke has found the queue empty,
  so the sensor provably waits (the first poke cannot see messages) and then delivers.
* ``CrashBeforeXCom`` fails its first try between receiving the messages and storing them as
  XCom (its ``ti.xcom_push`` raises), the way a killed worker would.
* ``CrashAfterReceive`` fails after ``execute`` returned, before Airflow stores the return value.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, task

from fluke_airflow.operators import (
    QueueCreateOperator,
    QueueDeleteOperator,
    QueuePeekOperator,
    QueuePurgeOperator,
    QueuePushOperator,
    QueueRedriveOperator,
)
from fluke_airflow.sensors import QueuePollSensor

START = datetime(2026, 1, 1)
QUEUE_PARAMS: dict[str, Any] = {"conn_id": "fluke_sqs", "queue": "fluke-test"}
_seeded: set[tuple[str, str]] = set()


class SeedOnEmptyPoke(QueuePollSensor):
    def poke(self, context: Any) -> bool:
        found = super().poke(context)
        seed = context["params"].get("seed_on_empty") or []
        key = (context["run_id"], self.task_id)
        if not found and seed and key not in _seeded:
            from fluke_airflow.hooks import get_queue_hook

            _seeded.add(key)
            with get_queue_hook(self.conn_id).get_queue(self.queue_name) as queue:
                assert all(queue.push_many(list(seed)))
        return found


class _TaskInstanceWithoutXCom:
    """The task instance, except that storing an XCom fails."""

    def __init__(self, ti: Any) -> None:
        self._ti = ti

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ti, name)

    def xcom_push(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("simulated crash between receiving the messages and storing them as XCom")


class CrashBeforeXCom(QueuePollSensor):
    def _context(self, context: Any) -> Any:
        if context["ti"].try_number > 1:
            return context
        return {**context, "ti": _TaskInstanceWithoutXCom(context["ti"])}

    def execute(self, context: Any) -> Any:
        return super().execute(self._context(context))

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        return super().execute_complete(self._context(context), event, **kwargs)


class CrashAfterReceive(QueuePollSensor):
    def execute(self, context: Any) -> Any:
        super().execute(context)
        raise RuntimeError("simulated crash before the sensor's return value is stored")

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        super().execute_complete(context, event, **kwargs)
        raise RuntimeError("simulated crash before the sensor's return value is stored")


@task
def received(bodies: list[str]) -> int:
    return len(bodies)


# -- push and peek with templates ---------------------------------------------------------------------
with DAG(
    "fluke_test_push_templates",
    schedule=None,
    start_date=START,
    params={**QUEUE_PARAMS, "tag": "t", "peek": 5, "count": 3},
    tags=["fluke-test"],
):

    @task
    def make_messages(params: dict[str, Any] | None = None) -> list[str]:
        assert params is not None
        return [f"xcom-{params['tag']}-{i}" for i in range(int(params["count"]))]

    push_xcom = QueuePushOperator(
        task_id="push_xcom", conn_id="{{ params.conn_id }}", queue_name="{{ params.queue }}", message=make_messages()
    )
    push_one = QueuePushOperator(
        task_id="push_one",
        conn_id="{{ params.conn_id }}",
        queue_name="{{ params.queue }}",
        message="one-{{ params.tag }}-{{ dag.dag_id }}",
    )
    push_list = QueuePushOperator(
        task_id="push_list",
        conn_id="{{ params.conn_id }}",
        queue_name="{{ params.queue }}",
        message=["list-{{ params.tag }}-a", "list-{{ params.tag }}-b"],
    )
    peek = QueuePeekOperator(
        task_id="peek",
        conn_id="{{ params.conn_id }}",
        queue_name="{{ params.queue }}",
        max_messages="{{ params.peek }}",
    )
    push_xcom >> push_one >> push_list >> peek

# Native rendering: a template may render to a list (or to an int for delay_seconds).
with DAG(
    "fluke_test_push_native",
    schedule=None,
    start_date=START,
    params={**QUEUE_PARAMS, "batch": ["n-0", "n-1"], "delay": 0},
    render_template_as_native_obj=True,
    tags=["fluke-test"],
):
    QueuePushOperator(
        task_id="push",
        conn_id="{{ params.conn_id }}",
        queue_name="{{ params.queue }}",
        message="{{ params.batch }}",
        delay_seconds="{{ params.delay }}",
    )

with DAG(
    "fluke_test_push_fifo",
    schedule=None,
    start_date=START,
    params={**QUEUE_PARAMS, "group": "g", "dedup": ["d-0", "d-1"], "delay": None},
    render_template_as_native_obj=True,
    tags=["fluke-test"],
):
    QueuePushOperator(
        task_id="push",
        conn_id="{{ params.conn_id }}",
        queue_name="{{ params.queue }}",
        message=["fifo-0", "fifo-1"],
        message_group_id="{{ params.group }}",
        message_deduplication_id="{{ params.dedup }}",
        delay_seconds="{{ params.delay }}",
    )

with DAG(
    "fluke_test_push_delayed",
    schedule=None,
    start_date=START,
    params={**QUEUE_PARAMS, "delay": 5, "count": 12},
    tags=["fluke-test"],
):
    QueuePushOperator(
        task_id="push",
        conn_id="{{ params.conn_id }}",
        queue_name="{{ params.queue }}",
        message=[f"delayed-{i}" for i in range(12)],
        delay_seconds="{{ params.delay }}",
    )

# -- QueuePollSensor in each mode ---------------------------------------------------------------------------
POLL_PARAMS: dict[str, Any] = {
    **QUEUE_PARAMS,
    "batch_size": 10,
    "num_messages": 10,
    "visibility_timeout": 60,
    "seed_on_empty": [],
}
for mode in ("poke", "reschedule", "deferrable"):
    for pre in (False, True):
        with DAG(
            f"fluke_test_poll_{mode}" + ("_pre" if pre else ""),
            schedule=None,
            start_date=START,
            params=POLL_PARAMS,
            tags=["fluke-test"],
        ):
            sensor = SeedOnEmptyPoke(
                task_id="wait",
                conn_id="{{ params.conn_id }}",
                queue_name="{{ params.queue }}",
                batch_size="{{ params.batch_size }}",
                num_messages="{{ params.num_messages }}",
                visibility_timeout="{{ params.visibility_timeout }}",
                pre_delivery_delete=pre,
                mode="reschedule" if mode == "reschedule" else "poke",
                deferrable=mode == "deferrable",
                poke_interval=1,
                wait_time_seconds=1,
                timeout=120,
            )
            received(sensor.output)

# -- a batching window: messages that arrive one by one go out as one delivery ---------------------------------
for mode in ("poke", "deferrable"):
    with DAG(f"fluke_test_window_{mode}", schedule=None, start_date=START, params=QUEUE_PARAMS, tags=["fluke-test"]):
        received(
            QueuePollSensor(
                task_id="wait",
                conn_id="{{ params.conn_id }}",
                queue_name="{{ params.queue }}",
                num_messages=4,
                max_batching_window=240,  # ends early: the delivery is full after the fourth message
                visibility_timeout=300,
                deferrable=mode == "deferrable",
                poke_interval=1,
                timeout=300,
            ).output
        )

# -- the at-least-once / at-most-once hand-off when a try dies --------------------------------------------
for mode in ("poke", "deferrable"):
    with DAG(f"fluke_test_crash_{mode}", schedule=None, start_date=START, params=POLL_PARAMS, tags=["fluke-test"]):
        CrashBeforeXCom(
            task_id="wait",
            conn_id="{{ params.conn_id }}",
            queue_name="{{ params.queue }}",
            num_messages="{{ params.num_messages }}",
            visibility_timeout="{{ params.visibility_timeout }}",
            deferrable=mode == "deferrable",
            poke_interval=1,
            wait_time_seconds=1,
            timeout=120,
            retries=1,
            retry_delay=timedelta(0),
        )

    with DAG(f"fluke_test_crash_{mode}_pre", schedule=None, start_date=START, params=POLL_PARAMS, tags=["fluke-test"]):
        CrashAfterReceive(
            task_id="wait",
            conn_id="{{ params.conn_id }}",
            queue_name="{{ params.queue }}",
            num_messages="{{ params.num_messages }}",
            pre_delivery_delete=True,
            deferrable=mode == "deferrable",
            poke_interval=1,
            wait_time_seconds=1,
            timeout=120,
        )

# -- every task of the provider, for the secret scan -------------------------------------------------------
# The first body is polled in poke mode; the others are pushed with a delay, and the test keeps them
# out of sight until the deferrable sensor deferred and its trigger looked once, so that they come
# through the trigger (tests/airflow/test_secret_hygiene.py: it acts on log lines, not on a clock).
with DAG(
    "fluke_test_all_tasks",
    schedule=None,
    start_date=START,
    params={**QUEUE_PARAMS, "bodies": ["b-0", "b-1"], "delay": 3},
    render_template_as_native_obj=True,
    tags=["fluke-test"],
):
    push_now = QueuePushOperator(
        task_id="push_now",
        conn_id="{{ params.conn_id }}",
        queue_name="{{ params.queue }}",
        message="{{ params.bodies[:1] }}",
    )
    peek = QueuePeekOperator(task_id="peek", conn_id="{{ params.conn_id }}", queue_name="{{ params.queue }}")
    poke = QueuePollSensor(
        task_id="poll_poke",
        conn_id="{{ params.conn_id }}",
        queue_name="{{ params.queue }}",
        num_messages=1,
        poke_interval=1,
        wait_time_seconds=1,
        timeout=60,
    )
    push_later = QueuePushOperator(
        task_id="push_later",
        conn_id="{{ params.conn_id }}",
        queue_name="{{ params.queue }}",
        message="{{ params.bodies[1:] }}",
        delay_seconds="{{ params.delay }}",
    )
    deferred = QueuePollSensor(
        task_id="poll_deferred",
        conn_id="{{ params.conn_id }}",
        queue_name="{{ params.queue }}",
        num_messages=100,
        deferrable=True,
        poke_interval=1,
        wait_time_seconds=1,
        timeout=60,
    )
    push_now >> peek >> poke >> push_later >> deferred
    received(deferred.output)

# Each task on its own, so that each one meets a bad connection itself.
with DAG("fluke_test_each_task", schedule=None, start_date=START, params=QUEUE_PARAMS, tags=["fluke-test"]):
    QueuePushOperator(task_id="push", conn_id="{{ params.conn_id }}", queue_name="{{ params.queue }}", message="m")
    QueuePeekOperator(task_id="peek", conn_id="{{ params.conn_id }}", queue_name="{{ params.queue }}")
    QueuePollSensor(
        task_id="poll_poke",
        conn_id="{{ params.conn_id }}",
        queue_name="{{ params.queue }}",
        poke_interval=1,
        timeout=30,
    )
    QueuePollSensor(
        task_id="poll_deferred",
        conn_id="{{ params.conn_id }}",
        queue_name="{{ params.queue }}",
        deferrable=True,
        poke_interval=1,
        timeout=30,
    )

# -- filters, metadata and the amazon provider's SqsSensor names (issue 9) ---------------------------------
for mode in ("poke", "deferrable"):
    with DAG(f"fluke_test_filter_{mode}", schedule=None, start_date=START, params=POLL_PARAMS, tags=["fluke-test"]):
        QueuePollSensor(
            task_id="wait",
            conn_id="{{ params.conn_id }}",
            queue_name="{{ params.queue }}",
            num_messages=10,
            visibility_timeout=60,
            message_filtering="jsonpath",
            message_filtering_config="{{ 'order.status' }}",  # templated, as in the amazon sensor
            message_filtering_match_values=["paid"],
            include_metadata=True,
            deferrable=mode == "deferrable",
            poke_interval=1,
            wait_time_seconds=1,
            timeout=60,
        )

# The amazon provider's example (example_sqs.py, "howto_sensor_sqs"), with its filter arguments, and
# only the class name changed: the connection is aws_default, the queue is given as sqs_queue.
with DAG("fluke_test_sqs_sensor_port", schedule=None, start_date=START, params=QUEUE_PARAMS, tags=["fluke-test"]):
    read_from_queue_in_batch = QueuePollSensor(
        task_id="read_from_queue_in_batch",
        sqs_queue="{{ params.queue }}",
        # Get maximum 10 messages each poll
        max_messages=10,
        # Combine 3 polls before returning results
        num_batches=3,
        message_filtering="literal",
        message_filtering_match_values=["hello", "world"],
        delete_message_on_reception=True,
        poke_interval=1,
        wait_time_seconds=1,
        timeout=60,
    )

with DAG(
    "fluke_test_push_attributes",
    schedule=None,
    start_date=START,
    params={**QUEUE_PARAMS, "team": "data"},
    tags=["fluke-test"],
):
    QueuePushOperator(
        task_id="push",
        conn_id="{{ params.conn_id }}",
        queue_name="{{ params.queue }}",
        message=["a", "b", "c"],
        message_attributes={"team": {"DataType": "String", "StringValue": "{{ params.team }}"}},
    )

# -- metrics (issue 10): a push and a poll inside a task, counted through Airflow's stats client ---------
with DAG(
    "fluke_test_metrics_task",
    schedule=None,
    start_date=START,
    params={**QUEUE_PARAMS, "bodies": ["m"]},
    render_template_as_native_obj=True,
    tags=["fluke-test"],
):

    @task
    def drain(params: dict[str, Any] | None = None) -> int:
        from fluke_airflow.hooks import get_queue_hook

        assert params is not None
        with get_queue_hook(params["conn_id"]).get_queue(params["queue"]) as queue:
            return sum(len(batch) for batch in queue.poll(batch_size=10))

    push = QueuePushOperator(
        task_id="push", conn_id="{{ params.conn_id }}", queue_name="{{ params.queue }}", message="{{ params.bodies }}"
    )
    push >> drain()

# A redrive (issue 10): dead letters back to their queue, from its default dead-letter queue.
with DAG(
    "fluke_test_redrive",
    schedule=None,
    start_date=START,
    params={**QUEUE_PARAMS, "limit": None},
    render_template_as_native_obj=True,
    tags=["fluke-test"],
):
    QueueRedriveOperator(
        task_id="redrive",
        conn_id="{{ params.conn_id }}",
        queue_name="{{ params.queue }}",
        max_messages="{{ params.limit }}",
    )

# A sensor whose timeout ends before the SDK would retry a failed request (issue 20): it fails
# within its timeout plus one request.
with DAG("fluke_test_poll_short_timeout", schedule=None, start_date=START, params=QUEUE_PARAMS, tags=["fluke-test"]):
    QueuePollSensor(
        task_id="wait",
        conn_id="{{ params.conn_id }}",
        queue_name="{{ params.queue }}",
        poke_interval=1,
        wait_time_seconds=1,
        timeout=1,
    )

# -- the queue lifecycle (issue 23): create, delete, purge, and a push that creates its queue -------------------
LIFECYCLE_PARAMS: dict[str, Any] = {**QUEUE_PARAMS, "attributes": None, "tags": None, "metadata": None}

with DAG(
    "fluke_test_queue_create",
    schedule=None,
    start_date=START,
    params=LIFECYCLE_PARAMS,
    render_template_as_native_obj=True,
    tags=["fluke-test"],
):
    QueueCreateOperator(
        task_id="create",
        conn_id="{{ params.conn_id }}",
        queue_name="{{ params.queue }}",
        attributes="{{ params.attributes }}",
        tags="{{ params.tags }}",
        metadata="{{ params.metadata }}",
    )

with DAG("fluke_test_queue_delete", schedule=None, start_date=START, params=QUEUE_PARAMS, tags=["fluke-test"]):
    # The second delete finds no queue: the first one deleted it, or there never was one.
    delete = QueueDeleteOperator(task_id="delete", conn_id="{{ params.conn_id }}", queue_name="{{ params.queue }}")
    delete >> QueueDeleteOperator(
        task_id="delete_strict",
        conn_id="{{ params.conn_id }}",
        queue_name="{{ params.queue }}",
        ignore_if_missing=False,
    )

with DAG("fluke_test_queue_purge", schedule=None, start_date=START, params=QUEUE_PARAMS, tags=["fluke-test"]):
    QueuePurgeOperator(task_id="purge", conn_id="{{ params.conn_id }}", queue_name="{{ params.queue }}")

with DAG(
    "fluke_test_push_create_if_missing",
    schedule=None,
    start_date=START,
    params=QUEUE_PARAMS,
    tags=["fluke-test"],
):
    QueuePushOperator(
        task_id="push",
        conn_id="{{ params.conn_id }}",
        queue_name="{{ params.queue }}",
        message=["first", "second"],
        create_if_missing=True,
    )
    QueuePushOperator(task_id="push_strict", conn_id="{{ params.conn_id }}", queue_name="{{ params.queue }}-strict",
                      message="never sent")  # fmt: skip
