"""Message attributes on push, metadata on receive, and filters on poll (issue 9), on moto and
Azurite, blocking and asyncio. What we send is read back with the services' own SDKs."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest
from pushed import accepted

pytestmark = pytest.mark.asyncio(loop_scope="session")

ATTRIBUTES = {
    "event_type": {"DataType": "String", "StringValue": "order.created"},
    "priority": {"DataType": "Number", "StringValue": "3"},
    "signature": {"DataType": "Binary", "BinaryValue": b"\x00\xffsig"},
    "region": {"DataType": "String.iso", "StringValue": "eu-west-1"},
}


# -- attributes on push --------------------------------------------------------------------------------------
async def test_attributes_reach_sqs_as_boto3_sees_them(sqs_backend, opener):
    name = sqs_backend.new_queue()
    q = await opener(sqs_backend, name)
    per_message = [{"n": {"DataType": "Number", "StringValue": str(i)}} for i in range(12)]
    assert await q.push("one", message_attributes=ATTRIBUTES)
    assert accepted(await q.push_many([f"b-{i}" for i in range(12)], message_attributes=per_message)) == [True] * 12
    got = {}
    for _ in range(10):
        answer = sqs_backend.client.receive_message(
            QueueUrl=sqs_backend.url(name), MaxNumberOfMessages=10, MessageAttributeNames=["All"]
        )
        for m in answer.get("Messages", []):
            got[m["Body"]] = m.get("MessageAttributes", {})
        if len(got) == 13:
            break
    assert {k: {f: v for f, v in a.items() if f != "StringListValues" and f != "BinaryListValues"}
            for k, a in got["one"].items()} == ATTRIBUTES  # fmt: skip
    assert all(got[f"b-{i}"]["n"]["StringValue"] == str(i) for i in range(12))


async def test_attributes_count_towards_the_size_limit_before_anything_is_sent(sqs_backend, opener):
    name = sqs_backend.new_queue(MaximumMessageSize="1024")
    q = await opener(sqs_backend, name)
    big = {"pad": {"DataType": "String", "StringValue": "x" * 1010}}  # 15 + 3 + 6 + 1010 bytes
    with pytest.raises(ValueError, match=r"and its message_attributes are 1034 bytes as sent; .* at most 1024"):
        await q.push("body-1234567890", message_attributes=big)
    with pytest.raises(ValueError, match="has 11 attributes; SQS allows at most 10"):
        await q.push("b", message_attributes={f"a{i}": {"DataType": "String", "StringValue": "v"} for i in range(11)})
    assert q.requests == [] and sqs_backend.total(name) == 0


async def test_azure_refuses_attributes_and_says_why(azure_backend, opener):
    name = azure_backend.new_queue()
    q = await opener(azure_backend, name)
    with pytest.raises(ValueError, match="message_attributes are an Amazon SQS feature: Azure Queue Storage"):
        await q.push_many(["a"], message_attributes={"k": {"DataType": "String", "StringValue": "v"}})
    assert azure_backend.total(name) == 0


# -- metadata on receive -------------------------------------------------------------------------------------
async def test_sqs_metadata_is_what_sqs_reports(sqs_backend, opener):
    name = sqs_backend.new_queue(f"meta-{int(time.time() * 1000) % 10**9}.fifo", FifoQueue="true")
    before = int(time.time() * 1000) - 2000
    sqs_backend.client.send_message(
        QueueUrl=sqs_backend.url(name), MessageBody="fifo-body", MessageGroupId="g-1", MessageDeduplicationId="d-1",
        MessageAttributes={"kind": {"DataType": "String", "StringValue": "test"}},
    )  # fmt: skip
    after = int(time.time() * 1000) + 2000
    q = await opener(sqs_backend, name)
    (batch,) = await q.poll_messages(batch_size=1).collect()
    (message,) = batch
    meta = message.metadata
    assert meta["MessageGroupId"] == "g-1" and meta["MessageDeduplicationId"] == "d-1"
    assert meta["ApproximateReceiveCount"] == "1" and meta["SequenceNumber"]
    assert before <= int(meta["SentTimestamp"]) <= after
    assert int(meta["ApproximateFirstReceiveTimestamp"]) >= int(meta["SentTimestamp"])
    assert message.sent_at == datetime.fromtimestamp(int(meta["SentTimestamp"]) / 1000, tz=timezone.utc)
    assert message.message_attributes == {"kind": {"DataType": "String", "StringValue": "test"}}
    assert "fifo-body" not in repr(message) and "g-1" not in repr(message)  # data stays out of logs
    public = message.public()
    assert "receipt" not in public and public["metadata"] == dict(meta)


async def test_azure_metadata_is_what_azure_reports(azure_backend, opener):
    name = azure_backend.new_queue()
    azure_backend.send(name, ["azure-body"])
    (peeked,) = azure_backend.queue_client(name).peek_messages(max_messages=1)
    q = await opener(azure_backend, name)
    (batch,) = await q.poll_messages(batch_size=1, visibility_timeout=60, heartbeat=False).collect()
    (message,) = batch
    meta = message.metadata
    assert meta["inserted_on"] == peeked.inserted_on.isoformat() and meta["expires_on"] == peeked.expires_on.isoformat()
    assert meta["dequeue_count"] == 1 and datetime.fromisoformat(meta["next_visible_on"]) > peeked.inserted_on
    assert message.sent_at == peeked.inserted_on and message.message_attributes == {}


# -- filters on poll -----------------------------------------------------------------------------------------
async def test_a_filter_delivers_matches_and_leaves_the_rest_hidden_without_spinning(backend, q, queue_name):
    wanted = [f'{{"kind": "order", "n": {i}}}' for i in range(5)]
    other = [f'{{"kind": "refund", "n": {i}}}' for i in range(5)]
    backend.send(queue_name, wanted + other)
    batches = await q.poll(
        batch_size=10, visibility_timeout=60, message_filtering="jsonpath", message_filtering_config="kind",
        message_filtering_match_values=["order"],
    ).collect()  # fmt: skip
    assert sorted(b for batch in batches for b in batch) == sorted(wanted)
    assert backend.total(queue_name) == 5 and backend.visible(queue_name) == 0  # left, hidden, not deleted
    receives = [r for r in q.requests if (r[0] == "ReceiveMessage" if backend.kind == "sqs" else r[0] == "GET")]
    assert len(receives) <= 4, f"the poll must not spin on messages it leaves: {len(receives)} receives"


async def test_unmatched_delete_and_dead_letter(backend, open_queue, queue_name):
    backend.send(queue_name, ["keep-1", "drop-1", "drop-2"])
    q = await open_queue(queue_name)
    got = await q.poll(
        message_filtering="literal", message_filtering_match_values=["keep-1"], unmatched="delete"
    ).collect()
    assert got == [["keep-1"]] and backend.total(queue_name) == 0
    dead = backend.new_queue()
    backend.send(queue_name, ["keep-2", "odd-1"])
    got = await q.poll(
        message_filtering="literal", message_filtering_match_values=["keep-2"], unmatched="dead_letter",
        dead_letter_queue=dead,
    ).collect()  # fmt: skip
    assert got == [["keep-2"]] and backend.total(queue_name) == 0 and sorted(backend.drain(dead)) == ["odd-1"]


async def test_attribute_filters_on_sqs(sqs_backend, opener):
    name = sqs_backend.new_queue()
    q = await opener(sqs_backend, name)
    for i, kind in enumerate(["created", "deleted", "created"]):
        await q.push(f"e-{i}", message_attributes={"type": {"DataType": "String", "StringValue": kind}})
    got = await q.poll(message_filtering_attributes={"type": "created"}, unmatched="delete").collect()
    assert sorted(b for batch in got for b in batch) == ["e-0", "e-2"] and sqs_backend.total(name) == 0


async def test_attribute_filters_on_azure_say_there_are_none(azure_backend, opener):
    q = await opener(azure_backend, azure_backend.new_queue())
    with pytest.raises(ValueError, match="message_filtering_attributes filter on SQS message attributes"):
        q.poll(message_filtering_attributes={"type": "x"})
