"""Every example DAG, run with dag.test() against moto's SQS server and Azurite.

Each test recreates the example's fixed queue, runs the DAG exactly as shipped (default
params), and checks task states, XCom values and, with an independent client, what is left
in the queue. The event-driven example cannot run under dag.test() (nothing fires its
AssetWatcher there): its watcher's trigger runs for real instead, and its task consumes the
asset event the way Airflow stores it.
"""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

import pytest
from airflow_support import dagbag, load_dag, run_count_checks, run_dag, supervised

from devtools.admin import AzureService, SQSService
from fluke_airflow.triggers import QueuePollTrigger

pytestmark = pytest.mark.usefixtures("airflow_env")

EXAMPLE_DAG_IDS = {
    "example_queue_sqs",
    "example_queue_azure",
    "example_queue_deferrable_mapping",
    "example_queue_task_poll",
    "example_queue_event_driven",
    "example_queue_event_driven_success",
    "example_queue_delete_on_success",
    "example_queue_filtering",
    "example_queue_orders_eu",
    "example_queue_orders_us",
    "example_queue_fifo",
    "example_queue_create",
    "example_queue_bill_orders",
    "example_queue_ship_orders",
    "example_queue_ported_sqs_sensor",
    "example_queue_lifecycle",
}


def test_example_dags_import_cleanly_and_are_all_tested_here() -> None:
    bag = dagbag()
    assert bag.import_errors == {}
    assert set(bag.dags) >= EXAMPLE_DAG_IDS, "an example DAG is missing"
    untested = set(bag.dags) - EXAMPLE_DAG_IDS
    assert not untested, f"example DAG(s) without a test in this file: {sorted(untested)}"


def test_example_queue_sqs(sqs: SQSService) -> None:
    sqs.create("fluke-orders")

    result = run_dag("example_queue_sqs")

    assert result.state == "success", result.task_states()
    assert result.task_states() == {
        "push": "success",
        "peek": "success",
        "wait_for_orders": "success",
        "total": "success",
    }
    assert len(result.xcom("push")) == 25  # the message ids
    pushed = {json.dumps({"order": i, "run": result.run_id}) for i in range(25)}
    peeked = result.xcom("peek")
    assert len(peeked) == 5 and set(peeked) <= pushed
    # 25 waiting, batch_size=10, num_messages=20: exactly 20 delivered, 5 left.
    delivered = result.xcom("wait_for_orders")
    assert len(delivered) == 20 and len(set(delivered)) == 20 and set(delivered) <= pushed
    assert result.xcom("total") == 20
    left = sqs.drain("fluke-orders")
    assert sorted(left + delivered) == sorted(pushed)
    assert sqs.total("fluke-orders") == 0


def test_example_queue_azure(azure: AzureService) -> None:
    azure.create("fluke-invoices")

    result = run_dag("example_queue_azure")

    assert result.state == "success", result.task_states()
    assert set(result.task_states().values()) == {"success"}
    ds_nodash = result.run_after.strftime("%Y%m%d")  # the example renders dag_run.run_after
    pushed = {f"invoice-{ds_nodash}-{i}" for i in range(40)}
    assert len(result.xcom("push")) == 40  # the message ids
    peeked = result.xcom("peek")
    assert len(peeked) == 10 and set(peeked) <= pushed
    taken = result.xcom("take_invoices")
    assert sorted(taken) == sorted(pushed)  # peeking consumed nothing; pre-delivery took all 40
    assert result.xcom("count") == 40
    assert azure.total("fluke-invoices") == 0


def test_example_queue_deferrable_mapping(sqs: SQSService) -> None:
    sqs.create("fluke-jobs")

    result = run_dag("example_queue_deferrable_mapping")

    assert result.state == "success", result.task_states()
    assert result.task_states() == {
        "seed": "success",
        "wait_for_jobs": "success",
        "process[0]": "success",
        "process[1]": "success",
        "process[2]": "success",
    }
    jobs = result.xcom("wait_for_jobs")
    assert sorted(jobs) == ["resize:a.png", "resize:b.png", "resize:c.png"]
    done = sorted(result.xcom("process", map_index=i) for i in range(3))
    assert done == ["resize done for a.png", "resize done for b.png", "resize done for c.png"]
    assert sqs.total("fluke-jobs") == 0  # post-delivery: deleted once stored as XCom


def test_example_queue_task_poll(azure: AzureService) -> None:
    azure.create("fluke-events")
    bodies = [f"event-{i}" for i in range(70)]  # three batches of up to 32
    azure.send("fluke-events", bodies)

    result = run_dag("example_queue_task_poll")

    assert result.task_states() == {"drain": "success"}
    assert result.xcom("drain") == 70
    assert azure.total("fluke-events") == 0


def test_example_queue_delete_on_success_deletes_when_the_run_succeeds(sqs: SQSService) -> None:
    sqs.create("fluke-payments")
    sqs.send("fluke-payments", [f"payment-{i}" for i in range(4)])

    result = run_dag("example_queue_delete_on_success")

    assert result.task_states() == {"payments": "success", "book": "success", "payments_settle": "success"}
    assert sorted(result.xcom("payments")) == [f"payment-{i}" for i in range(4)]
    assert result.xcom("book") == 4
    assert result.xcom("payments_settle") == {"outcome": "success", "deleted": 4}
    assert sqs.total("fluke-payments") == 0


def test_example_queue_delete_on_success_releases_when_the_run_fails(sqs: SQSService) -> None:
    sqs.create("fluke-payments")
    sqs.send("fluke-payments", [f"payment-{i}" for i in range(4)])

    result = run_dag("example_queue_delete_on_success", conf={"fail": True})

    assert result.state == "failed"
    assert result.task_states() == {"payments": "success", "book": "failed", "payments_settle": "success"}
    assert result.xcom("payments_settle") == {"outcome": "failed", "released": 4}
    # Released to come back after the sensor's retry_delay (2 minutes), like a retry of the task:
    # still in the queue, hidden from every consumer meanwhile.
    assert sqs.drain("fluke-payments") == [] and sqs.in_flight("fluke-payments") == 4


# -- the event-driven example ---------------------------------------------------------------------------------
def _watcher_trigger() -> QueuePollTrigger:
    dag = load_dag("example_queue_event_driven")
    (asset,) = dag.timetable.asset_condition.objects  # schedule=[orders_arrived]
    assert asset.name == "fluke_orders_queue"
    (watcher,) = asset.watchers
    assert watcher.name == "orders_watcher"
    trigger = watcher.trigger
    assert isinstance(trigger, QueuePollTrigger)
    return trigger


def test_example_queue_event_driven_watcher_is_a_queue_poll_trigger() -> None:
    trigger = _watcher_trigger()
    classpath, kwargs = trigger.serialize()
    assert classpath == "fluke_airflow.triggers.poll.QueuePollTrigger"
    assert kwargs["conn_id"] == "fluke_sqs" and kwargs["queue"] == "fluke-arrivals"
    assert kwargs["batch_size"] == 100 and kwargs["pre_delivery_delete"] is False
    assert kwargs["dag_ids"] == ["example_queue_event_driven"] and kwargs["max_batching_window"] == 5
    # What the triggerer does with the serialised DAG: rebuild the trigger from its kwargs.
    from airflow.serialization.serialized_objects import BaseSerialization

    rebuilt = QueuePollTrigger(**BaseSerialization.deserialize(BaseSerialization.serialize(kwargs)))
    assert rebuilt.serialize() == (classpath, kwargs)
    # A watcher is not a deferred task: it runs in watch mode and shares one stream per queue.
    assert trigger.shared_stream_key() is not None


async def _first_event(trigger: QueuePollTrigger) -> tuple[Any, Any]:
    events = trigger.run()
    event = await asyncio.wait_for(events.__anext__(), timeout=60)
    return events, event


def test_example_queue_event_driven_run_gets_the_arrived_messages(sqs: SQSService) -> None:
    sqs.create("fluke-arrivals")
    bodies = [f"arrival-{i}" for i in range(4)]
    sqs.send("fluke-arrivals", bodies)
    trigger = _watcher_trigger()

    async def scenario() -> Any:
        with supervised(asyncio.get_running_loop()) as supervisor:
            events, event = await _first_event(trigger)
            assert sqs.in_flight("fluke-arrivals") == 4  # post-delivery: not deleted before the hand-over
            pending = asyncio.ensure_future(events.__anext__())
            try:
                await run_count_checks(supervisor, "example_queue_event_driven")  # it holds, asking for a run
                assert sqs.in_flight("fluke-arrivals") == 4  # no run of the consumer DAG yet: nothing deleted
                supervisor.start_run("example_queue_event_driven")  # the scheduler took the event
                await asyncio.to_thread(_wait_empty, sqs, "fluke-arrivals")
            finally:
                pending.cancel()
                await asyncio.gather(pending, return_exceptions=True)
                await events.aclose()
            return event

    event = asyncio.run(scenario())
    # Airflow stores the payload in the asset event's extra (Trigger.submit_event) as JSON.
    extra = json.loads(json.dumps({"from_trigger": True, "payload": event.payload}))
    asset_event = SimpleNamespace(extra=extra)
    handle = load_dag("example_queue_event_driven").task_dict["handle"]
    count = handle.python_callable(triggering_asset_events={"fluke_orders_queue": [asset_event]})
    assert count == 4
    assert sorted(m["body"] for m in extra["payload"]["messages"]) == bodies
    assert sqs.total("fluke-arrivals") == 0


def test_example_queue_event_driven_success_maps_a_task_that_decides_per_message() -> None:
    """The watcher keeps each batch until its run ends and lets the mapped ``process`` decide per
    message; the task side: ``messages`` lists the run's messages, ``process`` fails for a bad one."""
    from datetime import datetime, timezone

    from airflow.serialization.serialized_objects import BaseSerialization

    dag = load_dag("example_queue_event_driven_success")
    (asset,) = dag.timetable.asset_condition.objects
    trigger = asset.watchers[0].trigger
    classpath, kwargs = trigger.serialize()
    assert kwargs["delete_on_dag_success"] is True and kwargs["message_task_id"] == "process"
    assert kwargs["dag_ids"] == ["example_queue_event_driven_success"] and kwargs["max_receive_count"] == 3
    rebuilt = QueuePollTrigger(**BaseSerialization.deserialize(BaseSerialization.serialize(kwargs)))
    assert rebuilt.serialize() == (classpath, kwargs)
    assert dag.task_dict["process"].task_id == kwargs["message_task_id"]

    bodies = [json.dumps({"id": "inv-1", "amount": 10}), json.dumps({"id": "inv-2", "amount": -5})]
    payload = {"queue": "fluke-invoice-jobs", "service": "Amazon SQS", "delivery_token": "t1",
               "messages": [{"id": f"m{i}", "body": b, "receive_count": 1} for i, b in enumerate(bodies)]}  # fmt: skip
    event = SimpleNamespace(asset=asset, timestamp=datetime(2026, 1, 1, tzinfo=timezone.utc),
                            extra={"from_trigger": True, "payload": payload})  # fmt: skip
    listed = dag.task_dict["messages"].python_callable(triggering_asset_events={asset: [event]})
    assert [m["id"] for m in listed] == ["m0", "m1"]
    process = dag.task_dict["process"].python_callable
    assert process(listed[0]) == "inv-1"
    with pytest.raises(ValueError, match="inv-2"):
        process(listed[1])


def _wait_empty(service: Any, name: str) -> None:
    from devtools.support import wait_until

    wait_until(lambda: service.total(name) == 0, timeout=60, what=f"{name} to be empty")


def test_example_queue_filtering(sqs: SQSService) -> None:
    sqs.create("fluke-order-events")

    result = run_dag("example_queue_filtering")

    assert result.task_states() == {"push": "success", "wait_for_paid": "success", "report": "success"}
    assert len(result.xcom("push")) == 10
    assert result.xcom("report") == [1, 3, 5, 7, 9]  # the paid ones
    assert all(m["message_attributes"]["status"]["StringValue"] == "paid" for m in result.xcom("wait_for_paid"))
    assert sqs.total("fluke-order-events") == 5  # the new ones stay for other consumers


def test_example_queue_routing_watchers_filter_by_region() -> None:
    from fluke_airflow.queues.filters import MessageFilter
    from fluke_airflow.queues.message import Message

    bag = dagbag()
    for region in ("eu", "us"):
        (asset,) = bag.dags[f"example_queue_orders_{region}"].timetable.asset_condition.objects
        trigger = asset.watchers[0].trigger
        wanted = MessageFilter.build(*trigger.settings.filters().values())
        bodies = [json.dumps({"region": r}) for r in ("eu", "us")]
        assert [wanted.matches(Message(id=b, body=b, receipt="")) for b in bodies] == [region == "eu", region == "us"]
        assert trigger.shared_stream_key() == QueuePollTrigger(**trigger.serialize()[1]).shared_stream_key()


def test_example_queue_fifo_reads_back_in_order(sqs: SQSService) -> None:
    sqs.create("fluke-payments.fifo")

    result = run_dag("example_queue_fifo")

    assert result.task_states() == {"push_payments": "success", "read_payments": "success"}
    assert len(result.xcom("push_payments")) == 3
    assert result.xcom("read_payments") == ["pay-1", "pay-2", "pay-3"]  # the group's order
    assert sqs.total("fluke-payments.fifo") == 0


def test_example_queue_fan_out_gives_both_assets_one_trigger() -> None:
    """Both assets' watchers hold the same trigger object, so Airflow stores one trigger row for
    both and every event reaches both DAGs (docs/howto/trigger.rst, "Several pipelines")."""
    bag = dagbag()
    triggers = {}
    for dag_id in ("example_queue_bill_orders", "example_queue_ship_orders"):
        (asset,) = bag.dags[dag_id].timetable.asset_condition.objects
        (watcher,) = asset.watchers
        triggers[dag_id] = watcher.trigger
    assert triggers["example_queue_bill_orders"] is triggers["example_queue_ship_orders"]
    classpath, kwargs = triggers["example_queue_bill_orders"].serialize()
    assert classpath == "fluke_airflow.triggers.poll.QueuePollTrigger"
    assert kwargs["dag_ids"] == ["example_queue_bill_orders", "example_queue_ship_orders"]


def test_example_queue_ported_sqs_sensor_does_what_the_sqs_sensor_did(sqs: SQSService) -> None:
    """The DAG of docs/howto/sensor.rst's porting section: the amazon sensor's arguments, our class."""
    sqs.create("fluke-ported")
    sqs.send("fluke-ported", ["hello", "world", "other"])

    result = run_dag("example_queue_ported_sqs_sensor")

    assert result.task_states() == {"read_from_queue_in_batch": "success"}
    assert sorted(result.xcom("read_from_queue_in_batch")) == ["hello", "world"]  # the literal filter
    assert sqs.total("fluke-ported") == 1  # "other" is left in the queue (unmatched="leave")


def test_example_queue_create_creates_both_queues_then_changes_nothing(sqs: SQSService, azure: AzureService) -> None:
    sqs.delete_queue("fluke-created")
    azure.delete_queue("fluke-created")

    first = run_dag("example_queue_create")
    second = run_dag("example_queue_create")

    assert set(first.task_states().values()) == {"success"} == set(second.task_states().values())
    assert first.xcom("create_sqs_queue") == second.xcom("create_sqs_queue") == sqs.url("fluke-created")
    assert first.xcom("create_azure_queue") == second.xcom("create_azure_queue") == "fluke-created"
    sqs.send("fluke-created", ["x"])
    azure.send("fluke-created", ["y"])
    assert sqs.drain("fluke-created") == ["x"] and azure.drain("fluke-created") == ["y"]


def test_a_dag_written_for_the_amazon_classes_does_the_same_with_ours(
    moto: Any, sqs: SQSService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/porting.rst: the same arguments (every amazon one a ported DAG writes, with
    ``default_args={"queue": ...}`` for Celery), the amazon classes and ours, against moto."""
    from airflow_support import set_connection, sqs_connection

    # The connection says eu-west-1, where the queue does not exist: only region_name reaches it.
    set_connection(monkeypatch, "fluke_ported", sqs_connection(moto, region_name="eu-west-1"))
    outcomes = {}
    for name in ("amazon", "fluke"):
        queue = f"fluke-ported-{name}"
        sqs.create(queue)
        result = run_dag(f"fluke_test_ported_{name}", {"queue": queue, "body": "hello"})
        shaped = result.xcom("read_from_queue", key="messages")
        outcomes[name] = {
            "states": result.task_states(),
            "bodies": sorted(m["Body"] for m in shaped),
            "left": sqs.total(queue),
        }
        assert {t.queue for t in load_dag(f"fluke_test_ported_{name}").tasks} == {"celery_highmem"}
    assert outcomes["fluke"] == outcomes["amazon"] == {
        "states": {"publish": "success", "read_from_queue": "success"},
        "bodies": ["hello"],
        "left": 0,
    }


def test_example_queue_lifecycle(sqs: SQSService, azure: AzureService) -> None:
    sqs_queues = ("fluke-lifecycle-orders", "fluke-lifecycle-orders-dlq")
    azure_queues = ("fluke-lifecycle-invoices", "fluke-lifecycle-invoices-audit")
    for name in sqs_queues:
        sqs.delete_queue(name)
    for name in azure_queues:
        azure.delete_queue(name)

    result = run_dag("example_queue_lifecycle")

    assert result.state == "success", result.task_states()
    assert set(result.task_states().values()) == {"success"}, result.task_states()
    url = result.xcom("create_orders")
    assert url.startswith(sqs.moto.endpoint_url) and url.endswith("/fluke-lifecycle-orders")  # the queue URL
    assert len(result.xcom("push_orders")) == 3  # pushed to the URL the create returned
    assert result.xcom("purge_orders") == 3
    assert result.xcom("create_invoices") == "fluke-lifecycle-invoices"  # Azure: the name
    assert result.xcom("purge_invoices") == 2
    assert all(result.xcom(task) is True for task in ("delete_orders", "delete_dead_letter_queue",
                                                         "delete_invoices", "delete_audit"))  # fmt: skip
    for name in sqs_queues:  # every queue the run made is gone again
        with pytest.raises(sqs.client.exceptions.QueueDoesNotExist):
            sqs.url(name)
    for name in azure_queues:
        assert name not in {q.name for q in azure.client.list_queues(name_starts_with=name)}
