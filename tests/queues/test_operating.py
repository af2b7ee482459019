"""Running a queue in production (issue 10), at the queue layer, on both services: the metrics a
real StatsD server receives, retry delays seen at the emulator, poison queues, the SQS
RedrivePolicy, and redrives back to the source queue."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from statsd_support import StatsdListener, statsd_in_this_process

from devtools.support import WaitTimeout, wait_until
from fluke_airflow.queues.attributes import DEAD_LETTER_ATTRIBUTES

pytestmark = pytest.mark.asyncio(loop_scope="session")


class Boom(Exception):
    pass


@pytest.fixture
def statsd(monkeypatch: pytest.MonkeyPatch) -> Iterator[StatsdListener]:
    with statsd_in_this_process(monkeypatch) as listener:
        yield listener


def settled_counts(listener: StatsdListener, expected: dict[str, int], **tags: str) -> dict[str, int]:
    """The non-zero counters once those in ``expected`` reached it (UDP arrives a little later), or
    as they are after 60 s, for the assertion to show."""

    def settled() -> dict[str, int] | None:
        counts = listener.counts(**tags)
        reached = {name: counts[name] for name in expected} == expected
        return {name: n for name, n in counts.items() if n} if reached else None

    try:
        return wait_until(settled, what=f"the counters to reach {expected}", timeout=60, interval=0.05)
    except WaitTimeout:
        return {name: n for name, n in listener.counts(**tags).items() if n}


def visibility_requests(backend: Any, q: Any) -> list[int]:
    """The visibility timeouts our queue asked the service for, in order (one per message on Azure,
    one per entry of a ChangeMessageVisibilityBatch on SQS)."""
    if backend.kind == "sqs":
        return [
            e["VisibilityTimeout"] for op, p in q.requests if op == "ChangeMessageVisibilityBatch" for e in p["Entries"]
        ]
    return [int(query["visibilitytimeout"][0]) for method, path, query in q.requests
            if method == "PUT" and "popreceipt" in query]  # fmt: skip


async def fail_first_batch(q: Any, **arguments: Any) -> list[str]:
    """Poll; the consumer raises on the first batch (it is released). The bodies it held."""
    held: list[str] = []
    batches = q.poll(**arguments)
    with pytest.raises(Boom):
        try:
            async for batch in batches:
                held += batch
                raise Boom
        finally:
            await batches.aclose()  # what `async with aclosing(...)` does: release now, not at GC
    return held


# -- metrics --------------------------------------------------------------------------------------------
async def test_a_poll_reports_every_message_to_statsd(backend, q, queue_name, statsd) -> None:
    bodies = [f"m-{i:02d}" for i in range(25)]
    await q.push_many(bodies)
    got = [body for batch in await q.poll(batch_size=10).collect() for body in batch]
    assert sorted(got) == bodies
    expected = {"messages.pushed": 25, "messages.received": 25, "messages.delivered": 25, "messages.deleted": 25}
    tags = {"queue": queue_name, "service": backend.kind}
    assert settled_counts(statsd, expected, **tags) == expected
    handoffs = statsd.of("handoff", **tags)
    assert handoffs and all(m.kind == "ms" and m.value >= 0 for m in handoffs)
    ages = statsd.of("messages.oldest_age", **tags)
    assert ages and all(m.kind == "g" and 0 <= m.value < 600 for m in ages)


async def test_a_failed_consumer_s_batch_is_counted_as_released(backend, q, queue_name, statsd) -> None:
    await q.push_many(["a", "b"])
    assert sorted(await fail_first_batch(q)) == ["a", "b"]
    expected = {"messages.pushed": 2, "messages.received": 2, "messages.delivered": 2, "messages.released": 2}
    assert settled_counts(statsd, expected, queue=queue_name) == expected


# -- retry delays ---------------------------------------------------------------------------------------------
async def test_a_released_batch_stays_hidden_for_the_retry_delay(backend, q, queue_name) -> None:
    await q.push_many(["x", "y", "z"])
    await fail_first_batch(q, batch_size=3, retry_delay=300)
    assert visibility_requests(backend, q) == [300, 300, 300]
    # Still in the queue, and not visible to any consumer: an independent receive gets nothing.
    assert backend.total(queue_name) == 3 and backend.visible(queue_name) == 0
    assert backend.drain(queue_name) == []


async def test_without_a_retry_delay_a_released_batch_is_back_at_once(backend, q, queue_name) -> None:
    await q.push_many(["x", "y", "z"])
    await fail_first_batch(q, batch_size=3)
    assert visibility_requests(backend, q) == [0, 0, 0]
    assert sorted(backend.drain(queue_name)) == ["x", "y", "z"]


async def test_the_delay_doubles_with_each_receive_under_exponential_backoff(backend, q, queue_name) -> None:
    await q.push_many(["again"])
    for _ in range(3):
        wait_until(lambda: backend.visible(queue_name) > 0, what="the message to be back", timeout=30, interval=0.2)
        await fail_first_batch(q, retry_delay=1, retry_exponential_backoff=True, max_retry_delay=3)
    # Received 1, 2, 3 times: 1 s, then 2 s, then 4 s capped at 3 s.
    assert visibility_requests(backend, q) == [1, 2, 3]


async def test_retry_arguments_are_checked_before_anything_is_received(backend, q, queue_name) -> None:
    await q.push_many(["kept"])
    with pytest.raises(ValueError, match=r"retry_exponential_backoff must be True .* got float 0.5"):
        await q.poll(retry_delay=5, retry_exponential_backoff=0.5).collect()
    with pytest.raises(ValueError, match="max_retry_delay must be a timedelta or a number of seconds >= 0 and at most"):
        await q.poll(retry_delay=5, max_retry_delay=10**9).collect()
    assert backend.visible(queue_name) == 1


# -- poison queues ------------------------------------------------------------------------------------------
async def test_azure_moves_poison_messages_to_the_poison_queue_it_creates(azure_backend, opener) -> None:
    name = azure_backend.new_queue()
    body = 'poison ✓ {"id": 1}  \n'
    azure_backend.send(name, [body])
    q = await opener(azure_backend, name)
    await fail_first_batch(q, max_receive_count=1)  # received once, and failed
    assert await q.poll(max_receive_count=1).collect() == []  # received a second time: poison
    assert azure_backend.total(name) == 0
    assert azure_backend.drain(f"{name}-poison") == [body]  # the body exactly as it was
    azure_backend.delete_queue(f"{name}-poison")


async def test_a_poison_queue_name_too_long_for_azure_is_refused(azure_backend, opener) -> None:
    name = azure_backend.new_queue(f"long-{uuid.uuid4().hex}-{'x' * 20}")
    q = await opener(azure_backend, name)
    with pytest.raises(ValueError, match=r"the poison queue of queue .*: queue .*-poison' is not a valid"):
        await q.poll(max_receive_count=1).collect()


async def test_an_sqs_dead_letter_says_why_where_from_and_after_how_many_receives(sqs_backend, opener) -> None:
    name, dlq = sqs_backend.new_queue(), sqs_backend.new_queue()
    q = await opener(sqs_backend, name)
    await q.push_many(["bad"], message_attributes={"team": {"DataType": "String", "StringValue": "data"}})
    await fail_first_batch(q, max_receive_count=1, dead_letter_queue=dlq)
    assert await q.poll(max_receive_count=1, dead_letter_queue=dlq).collect() == []
    moved = sqs_backend.client.receive_message(QueueUrl=sqs_backend.url(dlq), MessageAttributeNames=["All"])
    (message,) = moved["Messages"]
    attributes = {k: v["StringValue"] for k, v in message["MessageAttributes"].items()}
    assert message["Body"] == "bad"
    assert attributes == {
        "team": "data",
        DEAD_LETTER_ATTRIBUTES[0]: "max_receive_count=1",
        DEAD_LETTER_ATTRIBUTES[1]: name,
        DEAD_LETTER_ATTRIBUTES[2]: "2",
    }


async def test_sqs_max_receive_count_needs_a_dead_letter_queue(sqs_backend, opener) -> None:
    q = await opener(sqs_backend, sqs_backend.new_queue())
    with pytest.raises(ValueError, match="max_receive_count needs a dead_letter_queue on Amazon SQS"):
        await q.poll(max_receive_count=3).collect()


async def test_sqs_refuses_a_max_receive_count_its_redrive_policy_makes_unreachable(sqs_backend, opener, caplog):
    dlq = sqs_backend.new_queue()
    arn = sqs_backend.client.get_queue_attributes(QueueUrl=sqs_backend.url(dlq), AttributeNames=["QueueArn"])
    policy = json.dumps({"deadLetterTargetArn": arn["Attributes"]["QueueArn"], "maxReceiveCount": "3"})
    name = sqs_backend.new_queue(RedrivePolicy=policy)
    sqs_backend.send(name, ["m"])
    other = sqs_backend.new_queue()
    q = await opener(sqs_backend, name)
    assert await q.redrive_policy() == (dlq, 3)
    with pytest.raises(ValueError, match=rf"max_receive_count=3 can never take effect .* moves a message to '{dlq}'"):
        await q.poll(max_receive_count=3, dead_letter_queue=other).collect()
    assert sqs_backend.visible(name) == 1  # refused before anything was received
    caplog.set_level("INFO", logger="fluke_airflow.queues")
    assert await q.poll(max_receive_count=2, dead_letter_queue=other).collect() == [["m"]]
    assert f"moves messages received 3 times to '{dlq}' (its RedrivePolicy)" in caplog.text


# -- redrive ------------------------------------------------------------------------------------------------
async def test_a_redrive_moves_dead_letters_back_as_they_were(backend, opener, statsd) -> None:
    source, dead = backend.new_queue(), backend.new_queue()
    bodies = [f"dead-{i:02d}" for i in range(15)]
    backend.send(dead, bodies)
    q = backend.classes["sync"](backend.auth, dead)  # redrive is a task's job: the blocking class
    try:
        first = q.redrive(source, max_messages=10)
        assert len(first) == 10 and all(r.new_id and r.deleted for r in first)
        assert backend.total(dead) == 5
        rest = q.redrive(source)
    finally:
        q.close()
    assert sorted(r.message.body for r in first + rest) == bodies
    assert sorted(backend.drain(source)) == bodies and backend.total(dead) == 0
    assert settled_counts(statsd, {"messages.redriven": 15}, queue=dead).get("messages.redriven") == 15


async def test_an_sqs_redrive_drops_only_our_dead_letter_attributes(sqs_backend) -> None:
    source, dead = sqs_backend.new_queue(), sqs_backend.new_queue()
    attributes = {
        "team": {"DataType": "String", "StringValue": "data"},
        DEAD_LETTER_ATTRIBUTES[0]: {"DataType": "String", "StringValue": "max_receive_count=3"},
    }
    sqs_backend.client.send_message(QueueUrl=sqs_backend.url(dead), MessageBody="b", MessageAttributes=attributes)
    q = sqs_backend.classes["sync"](sqs_backend.auth, dead)
    try:
        (result,) = q.redrive(source)
    finally:
        q.close()
    back = sqs_backend.client.receive_message(QueueUrl=sqs_backend.url(source), MessageAttributeNames=["All"])
    (message,) = back["Messages"]
    assert message["MessageId"] == result.new_id and message["Body"] == "b"
    assert {k: v["StringValue"] for k, v in message["MessageAttributes"].items()} == {"team": "data"}


async def test_a_fifo_redrive_keeps_each_group_in_order(sqs_backend) -> None:
    fifo = {"FifoQueue": "true", "ContentBasedDeduplication": "true"}
    source = sqs_backend.new_queue(f"src-{uuid.uuid4().hex[:10]}.fifo", **fifo)
    dead = sqs_backend.new_queue(f"dlq-{uuid.uuid4().hex[:10]}.fifo", **fifo)
    url = sqs_backend.url(dead)
    for group in ("a", "b"):
        for i in range(12):
            sqs_backend.client.send_message(QueueUrl=url, MessageBody=f"{group}-{i:02d}", MessageGroupId=group)
    q = sqs_backend.classes["sync"](sqs_backend.auth, dead)
    try:
        results = q.redrive(source)
    finally:
        q.close()
    assert len(results) == 24 and all(r.new_id for r in results)
    got: dict[str, list[str]] = {"a": [], "b": []}
    while True:
        response = sqs_backend.client.receive_message(
            QueueUrl=sqs_backend.url(source), MaxNumberOfMessages=10, MessageSystemAttributeNames=["MessageGroupId"]
        )
        messages = response.get("Messages", [])
        if not messages:
            break
        for m in messages:
            got[m["Attributes"]["MessageGroupId"]].append(m["Body"])
        entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
        sqs_backend.client.delete_message_batch(QueueUrl=sqs_backend.url(source), Entries=entries)
    assert got == {g: [f"{g}-{i:02d}" for i in range(12)] for g in ("a", "b")}
