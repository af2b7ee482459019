"""The provider in a real Airflow, checked only through Airflow's REST API, the queues themselves
and the metrics the components send to a StatsD server (``[metrics] statsd_on``).

1. The deferrable sensor waits in the triggerer (task state ``deferred``, our trigger attached)
   while its queue has no visible message, and completes when messages are pushed; the mapped
   downstream tasks get one message each.
2. An AssetWatcher starts a DAG run when messages arrive; the run sees the bodies through its
   triggering asset events; the messages are deleted only after the asset event was stored
   (Airflow 3.3's shared-stream ack mode).
3. Post-delivery messages survive a killed triggerer: the trigger received them, the triggerer is
   SIGKILLed before the event reached the database, and after a restart the same run gets all
   of them once they are visible again.

Waits are bounded and fail with what they were waiting for; nothing asserts on durations.
"""

from __future__ import annotations

import json
import re
import signal
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from devtools.airflow_local import AirflowError, wait_for_airflow

if TYPE_CHECKING:
    from conftest import Stack

LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT[\d:.]+Z) \[\w+\s*\] (.*)$")


def _when(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _task_log_dir(stack: Stack, dag_id: str, run_id: str, task_id: str) -> Path:
    return stack.airflow.logs / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"


def _trigger_logs(stack: Stack, dag_id: str, run_id: str, task_id: str) -> str:
    """What the task's trigger(s) logged: the triggerer writes ``attempt=N.log.trigger.<job>.log``."""
    folder = _task_log_dir(stack, dag_id, run_id, task_id)
    if not folder.is_dir():
        return ""
    return "".join(p.read_text(errors="replace") for p in sorted(folder.iterdir()) if ".log.trigger." in p.name)


def _scheduler_saw_deferral_exit(stack: Stack, dag_id: str, run_id: str, task_id: str) -> bool:
    """Whether the scheduler has processed the executor event of the worker that deferred the task.

    Airflow 3.3.2 race (apache/airflow#67287, queued-state variant): if the trigger fires and the
    task is queued again before the scheduler sees that event, the scheduler takes the stale
    "success" for a task killed externally and fails it. The tests push only after this point.
    """
    needle = (
        "Received executor event with state success for task instance "
        f"TaskInstanceKey(dag_id='{dag_id}', task_id='{task_id}', run_id='{run_id}', try_number=1"
    )
    return needle in stack.airflow.log_path("scheduler").read_text(errors="replace")


def _queue_name(url: str) -> str:
    return url.rsplit("/", 1)[1]


def test_deferrable_sensor_waits_in_the_triggerer_and_feeds_mapped_tasks(stack: Stack) -> None:
    api, dag_id = stack.api, "example_queue_deferrable_mapping"
    # The DAG seeds its queue before the sensor starts. The queue delays every message by 15
    # minutes unless the sender says otherwise, so the seeded ones stay out of sight and the
    # sensor really waits; the messages this test pushes (delay 0) are what it gets.
    url = stack.new_sqs_queue("e2e-jobs", DelaySeconds="900")
    api.unpause(dag_id)
    run_id = api.trigger(dag_id, {"queue": _queue_name(url)})["dag_run_id"]

    ti = api.wait_for_task_state(dag_id, run_id, "wait_for_jobs", ["deferred"], timeout=180)
    assert ti["trigger"]["classpath"] == "fluke_airflow.triggers.poll.QueuePollTrigger", ti["trigger"]
    wait_for_airflow(
        lambda: "Waiting for messages on Amazon SQS queue" in _trigger_logs(stack, dag_id, run_id, "wait_for_jobs"),
        what="the trigger to start polling in the triggerer",
        timeout=60,
    )
    wait_for_airflow(
        lambda: _scheduler_saw_deferral_exit(stack, dag_id, run_id, "wait_for_jobs"),
        what="the scheduler to see the deferring worker exit",
        timeout=60,
    )
    assert stack.sqs_counts(url) == {"visible": 0, "in_flight": 0, "delayed": 3}
    ti = api.task_instance(dag_id, run_id, "wait_for_jobs")
    assert ti["state"] == "deferred", f"the sensor should still wait on an empty queue: {api.summary(dag_id, run_id)}"
    assert ti["triggerer_job"] is not None, "a deferred task's trigger runs in the triggerer"

    # In one request: a long poll that wakes on the first of two separate sends delivers it at once
    # (the sensor does not wait for more), so two sends could complete the sensor with one message.
    bodies = ["resize:x.png", "resize:y.png"]
    entries = [{"Id": str(i), "MessageBody": body, "DelaySeconds": 0} for i, body in enumerate(bodies)]
    stack.sqs.send_message_batch(QueueUrl=url, Entries=entries)

    run = api.wait_for_run(dag_id, run_id, timeout=180, airflow=stack.airflow)
    assert run["state"] == "success", api.summary(dag_id, run_id)
    assert sorted(api.xcom(dag_id, run_id, "wait_for_jobs")) == bodies
    mapped = [ti for ti in api.task_instances(dag_id, run_id) if ti["task_id"] == "process"]
    assert sorted(ti["map_index"] for ti in mapped) == [0, 1]
    assert all(ti["state"] == "success" for ti in mapped), api.summary(dag_id, run_id)
    results = {api.xcom(dag_id, run_id, "process", map_index=i) for i in range(2)}
    assert results == {"resize done for x.png", "resize done for y.png"}
    # Post-delivery: deleted once stored as XCom; the delayed seeds were never touched.
    assert stack.sqs_counts(url) == {"visible": 0, "in_flight": 0, "delayed": 3}
    assert "Received 2 message(s)" in _trigger_logs(stack, dag_id, run_id, "wait_for_jobs")
    # The trigger counted them in the triggerer, through Airflow's own stats client ([metrics]).
    counts = wait_for_airflow(
        lambda: _handled(stack, 2, service="sqs", queue=_queue_name(url), conn_id="fluke_sqs"),
        what="the triggerer's metrics for the queue",
        timeout=30,
    )
    assert counts["receive.errors"] == 0


def test_asset_watcher_runs_the_dag_on_arrival_and_deletes_after_the_event_is_stored(stack: Stack) -> None:
    api, dag_id = stack.api, "example_queue_event_driven"
    url = stack.sqs.get_queue_url(QueueName="fluke-arrivals")["QueueUrl"]
    earlier = {r["dag_run_id"] for r in api.runs(dag_id)}
    api.unpause(dag_id)
    bodies = [json.dumps({"order": i, "item": f"sku-{i}"}) for i in range(3)]
    stack.sqs.send_message_batch(
        QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": body} for i, body in enumerate(bodies)]
    )

    # Normally one delivery and one run; wait until finished runs account for every message.
    def runs_with_all_messages() -> list[dict] | None:
        runs = [r for r in api.runs(dag_id) if r["dag_run_id"] not in earlier]
        if not runs or any(r["state"] not in ("success", "failed") for r in runs):
            return None
        seen = sum(
            len(e["extra"]["payload"]["messages"])
            for r in runs
            for e in api.upstream_asset_events(dag_id, r["dag_run_id"])
        )
        return runs if seen >= len(bodies) else None

    runs = wait_for_airflow(
        runs_with_all_messages, what="asset-triggered runs that received the 3 messages", timeout=180
    )
    events = []
    for run in runs:
        assert run["run_type"] == "asset_triggered", run
        assert run["state"] == "success", api.summary(dag_id, run["dag_run_id"])
        run_events = api.upstream_asset_events(dag_id, run["dag_run_id"])
        # The task counts the messages it found in its triggering asset events.
        in_run = sum(len(e["extra"]["payload"]["messages"]) for e in run_events)
        assert api.xcom(dag_id, run["dag_run_id"], "handle") == in_run
        events += run_events
    got = [m["body"] for e in events for m in e["extra"]["payload"]["messages"]]
    assert sorted(got) == sorted(bodies)
    assert all(e["name"] == "fluke_orders_queue" and e["extra"]["payload"]["queue"] == "fluke-arrivals" for e in events)

    # Deleted from the queue, and only after Airflow stored the asset events.
    wait_for_airflow(
        lambda: stack.sqs_counts(url) == {"visible": 0, "in_flight": 0, "delayed": 0},
        what="fluke-arrivals to be empty (post-delivery delete)",
        timeout=60,
    )
    stored = max(_when(e["timestamp"]) for e in events)
    deletes = []
    for line in stack.airflow.log_path("triggerer").read_text(errors="replace").splitlines():
        match = LOG_LINE.match(line)
        if match and "from queue 'fluke-arrivals' after their asset events were stored" in match.group(2):
            deletes.append((_when(match.group(1)), match.group(2)))
    assert deletes, "the triggerer never logged the shared-stream producer's delete (advance())"
    assert sum(int(re.search(r"Deleted (\d+) message", text).group(1)) for _, text in deletes) == len(bodies)
    assert all(when >= stored for when, _ in deletes), (deletes, stored)
    api.pause(dag_id)
    # The watcher's counts, from the triggerer through Airflow's stats client.
    wait_for_airflow(
        lambda: _handled(stack, 3, service="sqs", queue="fluke-arrivals", conn_id="fluke_sqs"),
        what="the watcher's metrics for fluke-arrivals",
        timeout=30,
    )


def _handled(stack: Stack, n: int, **tags: str) -> Counter[str] | None:
    """The counters of ``tags`` once at least ``n`` messages were received, delivered and deleted
    (other tests may use the same queue, hence at least)."""
    counts = stack.statsd.counts(**tags)
    handled = ("messages.received", "messages.delivered", "messages.deleted")
    return counts if all(counts[name] >= n for name in handled) else None


def test_post_delivery_messages_survive_a_killed_triggerer(stack: Stack) -> None:
    api, airflow, dag_id = stack.api, stack.airflow, "e2e_post_delivery_crash"
    url = stack.new_sqs_queue("e2e-crash")
    api.unpause(dag_id)
    run_id = api.trigger(dag_id, {"queue": _queue_name(url)})["dag_run_id"]
    api.wait_for_task_state(dag_id, run_id, "wait", ["deferred"], timeout=180)
    wait_for_airflow(
        lambda: "Waiting for messages on Amazon SQS queue" in _trigger_logs(stack, dag_id, run_id, "wait"),
        what="the trigger to start polling in the triggerer",
        timeout=60,
    )
    wait_for_airflow(
        lambda: _scheduler_saw_deferral_exit(stack, dag_id, run_id, "wait"),
        what="the scheduler to see the deferring worker exit",
        timeout=60,
    )
    bodies = [f"crash-{i}" for i in range(5)]
    try:
        # Freeze the triggerer's supervisor (the process that stores trigger events in the
        # database) while its trigger-runner child keeps polling. The window "received but not
        # yet stored" exists in every triggerer (the runner reports about once a second); the
        # freeze makes the kill land inside it every time instead of most of the time.
        airflow.signal_main_process("triggerer", signal.SIGSTOP)
        stack.sqs.send_message_batch(
            QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": body} for i, body in enumerate(bodies)]
        )
        wait_for_airflow(
            lambda: stack.sqs_counts(url)["in_flight"] == len(bodies),
            what="the trigger to receive the 5 messages (in flight in SQS)",
            timeout=60,
            interval=0.05,
        )
        airflow.kill_component("triggerer")  # SIGKILL, whole process group
    except BaseException:
        airflow.kill_component("triggerer")
        airflow.start_component("triggerer")
        raise

    # The trigger had the messages; the event never reached the database.
    assert stack.sqs_counts(url) == {"visible": 0, "in_flight": 5, "delayed": 0}
    ti = api.task_instance(dag_id, run_id, "wait")
    assert ti["state"] == "deferred", f"the trigger event must not have been stored: {ti['state']}"

    airflow.start_component("triggerer")
    # A new triggerer takes the trigger over once the dead one's heartbeat is stale; the
    # messages become visible again after the sensor's visibility_timeout (15 s).
    run = api.wait_for_run(dag_id, run_id, timeout=240, airflow=airflow)
    assert run["state"] == "success", api.summary(dag_id, run_id)
    assert api.xcom(dag_id, run_id, "collect") == sorted(bodies)
    assert api.task_instance(dag_id, run_id, "wait")["try_number"] == 1, "no task retry was needed"
    assert stack.sqs_counts(url) == {"visible": 0, "in_flight": 0, "delayed": 0}
    assert "Received 5 message(s)" in _trigger_logs(stack, dag_id, run_id, "wait")
    try:
        airflow.wait_healthy(timeout=120)
    except AirflowError as error:  # pragma: no cover - reported with the logs' location
        raise AssertionError(f"Airflow did not recover after the triggerer restart: {error}") from error
