"""QueuePollSensor in real DAG runs (dag.test()) on SQS (moto) and Azure (Azurite).

Poke, reschedule and deferrable mode; exactly ``num_messages`` delivered; pre-delivery delete;
and the hand-off when a try dies between receiving and storing the XCom: post-delivery
messages come back and the retry delivers them (nothing lost), pre-delivery ones are gone.
Every effect is checked in the queue with an independent client.
"""

from __future__ import annotations

from typing import Any

import pytest
from airflow_support import Deferred, DripFeed, SendWhenDeferred, run_dag_captured, set_connection

from devtools.admin import Service, SQSService
from fluke_airflow import _airflow
from fluke_airflow.sensors import QueuePollSensor

pytestmark = pytest.mark.usefixtures("airflow_env")

MODES = ["poke", "reschedule", "deferrable"]


def poll(service: Service, queue: str, dag_id: str, **params: Any) -> tuple[Any, str]:
    return run_dag_captured(dag_id, {"conn_id": service.conn_id, "queue": queue, **params})


def deferred(output: str) -> bool:
    return "[DAG TEST] running trigger in line" in output


@pytest.mark.compat
@pytest.mark.parametrize("mode", ["poke", "reschedule"])
def test_waits_for_messages_then_delivers_them(service: Service, queue: str, mode: str) -> None:
    bodies = ["w-0", "w-1", "w-2"]
    # The sensor's first poke finds the queue empty (nothing was sent); it then pushes these.
    result, _ = poll(service, queue, f"fluke_test_poll_{mode}", seed_on_empty=bodies)
    assert result.task_states() == {"wait": "success", "received": "success"}
    assert sorted(result.xcom("wait")) == bodies
    assert result.xcom("received") == 3
    if mode == "reschedule":
        assert result.reschedules("wait") >= 1  # the empty poke gave the worker slot back
    assert service.total(queue) == 0  # post-delivery: deleted once the XCom was stored


@pytest.mark.compat
def test_deferrable_waits_in_the_trigger(service: Service, queue: str) -> None:
    sender = SendWhenDeferred(service, queue, ["d-0"], "fluke_test_poll_deferrable", "wait")
    result, output = poll(service, queue, "fluke_test_poll_deferrable")
    sender.check()
    assert deferred(output)
    assert result.task_states() == {"wait": "success", "received": "success"}
    assert result.xcom("wait") == ["d-0"]
    assert service.total(queue) == 0  # deleted by the worker once stored as XCom


@pytest.mark.compat
def test_deferrable_takes_waiting_messages_without_deferring(service: Service, queue: str) -> None:
    service.send(queue, ["now-0", "now-1"])
    result, output = poll(service, queue, "fluke_test_poll_deferrable")
    assert not deferred(output)
    assert sorted(result.xcom("wait")) == ["now-0", "now-1"]
    assert service.total(queue) == 0


@pytest.mark.parametrize("mode", ["poke", "deferrable"])
def test_a_batching_window_gathers_messages_sent_one_by_one_into_one_delivery(
    service: Service, queue: str, mode: str
) -> None:
    """Issue 23: without a window the sensor returned with the first of four messages sent one by one;
    with ``max_batching_window`` it delivers all four at once. Each is sent only once the one before
    was received, so they cannot arrive together."""
    dag_id = f"fluke_test_window_{mode}"
    ready = Deferred(dag_id, "wait") if mode == "deferrable" else None
    feed = DripFeed(service, queue, [f"w-{i}" for i in range(4)], after=ready)
    result, output = poll(service, queue, dag_id)
    feed.check()
    assert result.task_states() == {"wait": "success", "received": "success"}
    assert sorted(result.xcom("wait")) == ["w-0", "w-1", "w-2", "w-3"]
    assert deferred(output) == (mode == "deferrable")
    assert service.total(queue) == 0


@pytest.mark.parametrize("mode", MODES)
def test_delivers_exactly_num_messages(service: Service, queue: str, mode: str) -> None:
    bodies = [f"n-{i:02}" for i in range(25)]
    service.send(queue, bodies)
    result, _ = poll(service, queue, f"fluke_test_poll_{mode}", batch_size=10, num_messages=20)
    assert result.task_states() == {"wait": "success", "received": "success"}
    delivered = result.xcom("wait")
    assert len(delivered) == 20 and len(set(delivered)) == 20
    left = service.drain(queue)
    assert len(left) == 5
    assert sorted(delivered + left) == bodies


@pytest.mark.compat
@pytest.mark.parametrize("mode", MODES)
def test_pre_delivery_delete_leaves_nothing(service: Service, queue: str, mode: str) -> None:
    bodies = ["p-0", "p-1", "p-2"]
    if mode == "deferrable":  # through the trigger, which deletes before its event
        bodies = bodies[:1]
        sender = SendWhenDeferred(service, queue, bodies, f"fluke_test_poll_{mode}_pre", "wait")
    else:
        service.send(queue, bodies)
    result, output = poll(service, queue, f"fluke_test_poll_{mode}_pre")
    assert result.task_states() == {"wait": "success", "received": "success"}
    assert sorted(result.xcom("wait")) == bodies
    assert service.total(queue) == 0
    if mode == "deferrable":
        sender.check()
        assert deferred(output)


# -- a try that dies between receiving and storing the XCom --------------------------------------------------
def test_post_delivery_messages_survive_a_crash_before_the_xcom(service: Service, queue: str) -> None:
    bodies = [f"c-{i}" for i in range(5)]
    service.send(queue, bodies)
    result, output = poll(service, queue, "fluke_test_crash_poke", num_messages=5, visibility_timeout=3)
    # Try 1 received the five and failed before storing them; they were not deleted, came back after
    # their visibility timeout, and try 2 received and delivered all of them.
    assert output.count("simulated crash between receiving the messages and storing them as XCom") >= 1
    assert result.task_states() == {"wait": "success"}
    assert result.tries[("wait", -1)] == 2
    assert sorted(result.xcom("wait")) == bodies
    assert service.total(queue) == 0


@pytest.mark.compat
def test_deferred_post_delivery_message_survives_a_crash_before_the_xcom(service: Service, queue: str) -> None:
    """The trigger received it; the worker resumed and died before the XCom: it comes back, try 2 gets it."""
    sender = SendWhenDeferred(service, queue, ["c-deferred"], "fluke_test_crash_deferrable", "wait")
    result, output = poll(service, queue, "fluke_test_crash_deferrable", num_messages=5, visibility_timeout=3)
    sender.check()
    assert deferred(output)
    assert "simulated crash between receiving the messages and storing them as XCom" in output
    assert result.task_states() == {"wait": "success"}
    assert result.tries[("wait", -1)] == 2
    assert result.xcom("wait") == ["c-deferred"]
    stale = _airflow.retries_keep_deferral() and "resumed the deferral of try" not in output
    if stale and not isinstance(service, SQSService):
        # Airflow 3.0's dag.test() resumes try 2 with try 1's event and drops the sensor's
        # next_kwargs (the try that deferred), so the sensor cannot tell: it stores the XCom, and
        # the stale pop receipt (Azure renews it with every visibility change; SQS keeps taking
        # older receipt handles) cannot delete the message. It is not lost: it comes back (a
        # duplicate). Airflow 3.1+ starts try 2 at execute(), and the message is deleted.
        assert service.total(queue) == 1
        return
    assert service.total(queue) == 0


def test_pre_delivery_messages_are_gone_after_a_crash(service: Service, queue: str) -> None:
    service.send(queue, ["lost-0", "lost-1"])
    result, output = poll(service, queue, "fluke_test_crash_poke_pre", num_messages=5)
    assert "simulated crash before the sensor's return value is stored" in output
    assert result.task_states() == {"wait": "failed"}
    assert service.total(queue) == 0  # at most once: deleted before delivery, so lost with the try


def test_deferred_pre_delivery_message_is_gone_after_a_crash(service: Service, queue: str) -> None:
    sender = SendWhenDeferred(service, queue, ["lost-deferred"], "fluke_test_crash_deferrable_pre", "wait")
    result, output = poll(service, queue, "fluke_test_crash_deferrable_pre", num_messages=5)
    sender.check()
    assert deferred(output)
    assert "simulated crash before the sensor's return value is stored" in output
    assert result.task_states() == {"wait": "failed"}
    assert service.total(queue) == 0  # deleted in the trigger, before the event


# -- bad input ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "error", "expected"),
    [
        ({"batch_size": 0}, ValueError, "batch_size must be an integer >= 1"),
        ({"batch_size": 2.5}, TypeError, "batch_size"),
        ({"num_messages": 0}, ValueError, "num_messages must be an integer >= 1"),
        ({"visibility_timeout": -1}, ValueError, "visibility_timeout must be an integer >= 0"),
        ({"wait_time_seconds": 21}, ValueError, "wait_time_seconds"),
        ({"pre_delivery_delete": "yes"}, TypeError, "pre_delivery_delete must be True or False"),
        ({"deferrable": 1}, TypeError, "deferrable must be True or False"),
        ({"message_encoding": "utf-8"}, ValueError, "message_encoding"),
    ],
)
def test_bad_arguments_fail_at_parse_time(kwargs: dict[str, Any], error: type, expected: str) -> None:
    with pytest.raises(error, match=expected):
        QueuePollSensor(task_id="wait", conn_id="c", queue_name="q", **kwargs)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"batch_size": "ten"}, "batch_size must be an integer >= 1"),
        ({"num_messages": 0}, "num_messages must be an integer >= 1"),
        ({"visibility_timeout": -3}, "visibility_timeout must be an integer >= 0"),
    ],
)
@pytest.mark.parametrize("mode", ["poke", "deferrable"])
def test_templates_rendering_to_bad_values_fail_the_task(
    sqs: SQSService, mode: str, params: dict[str, Any], expected: str
) -> None:
    name = sqs.create("fluke-sensor-bad-input").rsplit("/", 1)[-1]
    sqs.send(name, ["untouched"])
    result, output = poll(sqs, name, f"fluke_test_poll_{mode}", **params)
    assert result.task_states() == {"wait": "failed", "received": "upstream_failed"}
    assert expected in output
    assert sqs.drain(name) == ["untouched"]  # nothing was received or deleted


@pytest.mark.parametrize(
    ("conn_id", "expected"),
    [("fluke_not_there", "'fluke_not_there' is not defined"), ("fluke_http", "'fluke_http' has type 'http'")],
)
def test_wrong_or_missing_connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, expected: str) -> None:
    set_connection(monkeypatch, "fluke_http", {"conn_type": "http", "host": "example.com"})
    result, output = run_dag_captured("fluke_test_each_task", {"conn_id": conn_id, "queue": "q"})
    assert result.task_states() == {
        "push": "failed",
        "peek": "failed",
        "poll_poke": "failed",
        "poll_deferred": "failed",
    }
    lines = [line for line in output.splitlines() if expected in line]
    assert len(lines) >= 4, output  # one error per task
    assert all("'aws'" in line and "'azure_storage_queue'" in line and "'wasb'" in line for line in lines)
