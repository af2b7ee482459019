"""The rules of issue 2's "Semantics" section, on both services, blocking and asyncio."""

from __future__ import annotations

import logging
import math
import uuid

import pytest
from pushed import accepted

from fluke_airflow.exceptions import QueueClosedError

pytestmark = pytest.mark.asyncio(loop_scope="session")


def sqs_calls(q, operation):
    return [params for op, params in q.requests if op == operation]


def azure_receives(q):
    """numofmessages of every Azure Get Messages request that was not a peek."""
    return [
        int(query.get("numofmessages", ["1"])[0])
        for method, path, query in q.requests
        if method == "GET" and path.endswith("/messages") and "peekonly" not in query
    ]


# -- push -------------------------------------------------------------------------------------------
async def test_push_many_returns_each_messages_id_in_order(backend, q, queue_name):
    bodies = [f"body-{i:02d}" for i in range(25)]

    results = await q.push_many(bodies)

    assert accepted(results) == [True] * 25  # a message id each, in order
    assert sorted(backend.drain(queue_name)) == bodies
    if backend.kind == "sqs":
        sizes = [len(p["Entries"]) for p in sqs_calls(q, "SendMessageBatch")]
        assert sorted(sizes, reverse=True) == [10, 10, 5]
        assert sqs_calls(q, "SendMessage") == []
    else:
        assert sum(1 for method, *_ in q.requests if method == "POST") == 25


@pytest.fixture
def fifo_queue(sqs_backend):
    return sqs_backend.new_queue(
        f"fifo-{uuid.uuid4().hex[:12]}.fifo", FifoQueue="true", ContentBasedDeduplication="true"
    )


async def test_push_many_keeps_order_on_a_fifo_queue(sqs_backend, opener, fifo_queue):
    """Chunks of one message group must reach a FIFO queue one after the other, not concurrently."""
    q = await opener(sqs_backend, fifo_queue)
    bodies = [f"ordered-{i:02d}" for i in range(35)]

    assert accepted(await q.push_many(bodies, message_group_id="g")) == [True] * 35

    received = [m for batch in await q.poll().collect() for m in batch]
    assert received == bodies


async def test_fifo_poll_with_batches_larger_than_a_receive(sqs_backend, opener, fifo_queue):
    """A FIFO message group stays locked while we hold some of its messages, so a receive can come
    back empty although messages wait: the poll must go on until the queue is really empty."""
    q = await opener(sqs_backend, fifo_queue)
    bodies = [f"ordered-{i:02d}" for i in range(23)]
    for body in bodies:
        sqs_backend.client.send_message(QueueUrl=sqs_backend.url(fifo_queue), MessageBody=body, MessageGroupId="g")

    batches = await q.poll(batch_size=23).collect()

    assert [m for batch in batches for m in batch] == bodies
    assert sqs_backend.total(fifo_queue) == 0


async def test_fifo_push_needs_a_message_group(sqs_backend, opener, fifo_queue):
    q = await opener(sqs_backend, fifo_queue)
    with pytest.raises(ValueError, match=r"message_group_id is required for the FIFO queue"):
        await q.push("x")
    with pytest.raises(ValueError, match=r"message_group_id"):
        await q.push_many(["x", "y"])
    assert sqs_backend.total(fifo_queue) == 0
    assert q.requests == []


async def test_push_returns_false_when_the_service_refuses(backend, q, queue_name, caplog):
    """The queue was deleted behind our back: push reports False and logs why (never the body)."""
    caplog.set_level(logging.DEBUG)
    backend.delete_queue(queue_name)

    assert await q.push("refused-body-7f3a") is False
    assert accepted(await q.push_many(["refused-body-7f3a", "refused-body-7f3b"])) == [False, False]

    warnings = [r for r in caplog.records if r.name.startswith("fluke_airflow") and r.levelname == "WARNING"]
    assert warnings
    assert not any("refused-body" in r.getMessage() for r in caplog.records if r.levelno > 10)


# -- peek -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("available", [0, 1, 9, 10, 15])
async def test_peek_returns_min_10_available_and_deletes_nothing(backend, q, queue_name, available):
    sent = backend.seed(queue_name, available)

    peeked = await q.peek()

    assert len(peeked) == min(10, available)
    assert len(set(peeked)) == len(peeked) and set(peeked) <= set(sent)
    assert backend.total(queue_name) == available
    assert backend.visible(queue_name) == min(available, 32)  # visible again at once


async def test_poll_right_after_peek_gets_every_message(backend, q, queue_name):
    sent = backend.seed(queue_name, 15)

    assert len(await q.peek()) == 10
    received = [m for batch in await q.poll(batch_size=15).collect() for m in batch]

    assert sorted(received) == sent
    if backend.kind == "sqs":
        changes = sqs_calls(q, "ChangeMessageVisibilityBatch")
        assert changes and all(e["VisibilityTimeout"] == 0 for p in changes for e in p["Entries"])


async def test_peek_keeps_no_message_hidden(backend, q, queue_name):
    backend.seed(queue_name, 12)
    for _ in range(3):
        assert len(await q.peek()) == 10
    assert backend.visible(queue_name) == 12


# -- poll: batch sizes beyond one request ------------------------------------------------------------
@pytest.mark.parametrize("batch_size", [25, 40, 100])
async def test_batch_size_larger_than_one_receive(backend, q, queue_name, batch_size):
    sent = backend.seed(queue_name, batch_size + 7)

    batches = await q.poll(batch_size=batch_size, visibility_timeout=60).collect()

    assert [len(b) for b in batches] == [batch_size, 7]
    assert sorted(m for b in batches for m in b) == sent
    assert backend.total(queue_name) == 0
    if backend.kind == "sqs":
        receives = [p["MaxNumberOfMessages"] for p in sqs_calls(q, "ReceiveMessage")]
        assert len(receives) >= math.ceil(batch_size / 10) + 1
        deletes = [len(p["Entries"]) for p in sqs_calls(q, "DeleteMessageBatch")]
        assert sum(deletes) == batch_size + 7
        assert len(deletes) >= math.ceil(batch_size / 10) + 1
    else:
        receives = azure_receives(q)
        assert len(receives) >= math.ceil(batch_size / 32) + 1
        assert sum(1 for method, *_ in q.requests if method == "DELETE") == batch_size + 7
    assert max(receives) <= backend.receive_limit


async def test_the_request_check_catches_what_moto_lets_through(sqs_backend):
    """moto accepts a DeleteMessageBatch of 11 entries, real SQS does not: the recorder that
    checks every request of our SQS queues (see conftest) flags it."""
    name = sqs_backend.new_queue()
    sqs_backend.seed(name, 11)
    url = sqs_backend.url(name)
    client = sqs_backend.client
    log: list = []
    sqs_backend.record_client(client, log)
    handles = []
    while len(handles) < 11:
        handles += [
            m["ReceiptHandle"] for m in client.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
        ]

    response = client.delete_message_batch(
        QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(handles)]
    )

    assert len(response["Successful"]) == 11  # moto took it
    with pytest.raises(AssertionError, match="DeleteMessageBatch with 11 entries"):
        sqs_backend.check_limits(log)


async def test_num_messages_stops_exactly(backend, q, queue_name):
    sent = backend.seed(queue_name, 25)

    batches = await q.poll(num_messages=20).collect()

    assert [len(b) for b in batches] == [10, 10]
    got = [m for b in batches for m in b]
    left = sorted(backend.drain(queue_name))
    assert len(left) == 5
    assert sorted(got + left) == sent


async def test_num_messages_smaller_than_batch_size(backend, q, queue_name):
    backend.seed(queue_name, 30)

    batches = await q.poll(num_messages=7, batch_size=25).collect()

    assert [len(b) for b in batches] == [7]
    assert len(backend.drain(queue_name)) == 23


@pytest.mark.timeout(60)
async def test_empty_queue_ends_a_non_continuous_poll(q):
    assert await q.poll().collect() == []
    assert await q.poll(batch_size=100, pre_delivery_delete=True).collect() == []


@pytest.mark.timeout(60)
async def test_pre_delivery_delete_with_large_batches(backend, q, queue_name):
    sent = backend.seed(queue_name, 45)

    batches = await q.poll(batch_size=20, pre_delivery_delete=True).collect()

    assert [len(b) for b in batches] == [20, 20, 5]
    assert sorted(m for b in batches for m in b) == sent
    assert backend.total(queue_name) == 0  # all deleted (hidden ones count too: nothing to wait for)


# -- poll: what is deleted when ---------------------------------------------------------------------
async def test_batch_is_deleted_when_the_next_is_requested(backend, q, queue_name):
    """A long visibility timeout: a batch must not come back while it is held, however slow the
    machine; closing the iterator releases the held batch at once."""
    backend.seed(queue_name, 4)
    batches = q.poll(batch_size=2, visibility_timeout=60)

    first = await batches.__anext__()
    assert backend.total(queue_name) == 4
    second = await batches.__anext__()
    assert backend.total(queue_name) == 2  # the first batch is gone, the second still held
    await batches.aclose()

    assert set(first).isdisjoint(second)
    assert sorted(backend.drain(queue_name)) == sorted(second)


@pytest.mark.parametrize("how", ["break", "aclose"])
async def test_closing_the_iterator_leaves_the_batch(backend, q, queue_name, how):
    sent = backend.seed(queue_name, 6)
    batches = q.poll(batch_size=3, visibility_timeout=60)

    if how == "break":
        async for batch in batches:
            assert len(batch) == 3
            break
    else:
        assert len(await batches.__anext__()) == 3
    await batches.aclose()

    assert backend.total(queue_name) == 6  # nothing deleted...
    assert sorted(backend.drain(queue_name)) == sent  # ...and the held batch released


@pytest.mark.parametrize("how", ["break", "aclose"])
async def test_closing_the_iterator_releases_the_batch_at_once(backend, q, queue_name, how):
    """Stopping early hands the batch back right away (it does not wait out its visibility
    timeout, nor keep being renewed by the heartbeat)."""
    sent = backend.seed(queue_name, 6)
    batches = q.poll(batch_size=3, visibility_timeout=60)

    if how == "break":
        async for batch in batches:
            assert len(batch) == 3
            break
    else:
        assert len(await batches.__anext__()) == 3
    await batches.aclose()

    assert backend.visible(queue_name) == 6
    assert sorted(backend.drain(queue_name)) == sent


async def test_consumer_can_stop_after_the_last_batch(backend, q, queue_name):
    """Closing the iterator after all messages were delivered leaves the last batch: only asking
    for more (or the loop ending by itself) deletes it."""
    sent = backend.seed(queue_name, 3)
    batches = q.poll(batch_size=10, visibility_timeout=60)
    assert sorted(await batches.__anext__()) == sent
    await batches.aclose()
    assert sorted(backend.drain(queue_name)) == sent


async def test_pre_delivery_delete_and_close_loses_the_batch(backend, q, queue_name):
    sent = backend.seed(queue_name, 6)
    batches = q.poll(batch_size=3, pre_delivery_delete=True, visibility_timeout=60)
    first = await batches.__anext__()
    assert len(first) == 3
    await batches.aclose()
    assert backend.total(queue_name) == 3  # the first batch is gone for good (hidden ones count too)
    assert sorted(first + backend.drain(queue_name)) == sent


# -- bodies round-trip exactly ----------------------------------------------------------------------
BODIES = {
    "emoji": "party 🎉👍🏽 🇬🇷 family 👨‍👩‍👧",
    "cjk": "你好，世界 こんにちは 안녕하세요",  # noqa: RUF001
    "rtl": "مرحبا بالعالم שלום עולם",
    "xml": "<order id=\"1\">&amp; 'quoted' <![CDATA[x]]> & < > \" '</order>",
    "newlines": "line 1\nline 2\n\nline 4\n",
    "crlf": "line 1\r\nline 2\r\n",
    "cr": "a\rb",
    "tabs": "\tcol1\tcol2\t",
    "spaces": "  padded  ",
    "json": '{"k": "v", "n": [1, 2.5, null], "u": "\\u00e9"}',
    "astral": "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 \U0010fffd",  # noqa: RUF001
}


@pytest.mark.parametrize("body", list(BODIES.values()), ids=list(BODIES))
async def test_body_round_trip(backend, q, queue_name, body):
    # ours -> independent client
    assert await q.push(body) is True
    assert sorted(backend.drain(queue_name)) == [body]
    # independent client -> ours (peek and poll)
    backend.send(queue_name, [body])
    assert await q.peek() == [body]
    assert await q.poll().collect() == [[body]]


async def test_body_at_the_maximum_size(backend, q, queue_name):
    """The limit counts a body's UTF-8 bytes. SQS (SendMessage, MessageBody): "The minimum size is
    one character. The maximum size is 1 MiB or 1,048,576 bytes"; Azure (Put Message): "A message
    must be in a format that can be included in an XML request with UTF-8 encoding. The encoded
    message can be up to 64 KiB in size" (https://learn.microsoft.com/rest/api/storageservices/put-message).
    The multibyte body is where Azurite 3.37 failed: devtools/azurite_patch.py."""
    limit = backend.max_body_bytes(queue_name)
    ascii_body = "a" * limit
    multibyte = "é" * (limit // 2)  # 2 bytes each in UTF-8
    assert len(multibyte.encode()) == limit

    assert accepted(await q.push_many([ascii_body, multibyte])) == [True, True]
    assert sorted(backend.drain(queue_name)) == sorted([ascii_body, multibyte])

    backend.send(queue_name, [multibyte])
    assert await q.poll().collect() == [[multibyte]]


@pytest.mark.parametrize("name_length", range(3, 9))
async def test_azure_multibyte_body_at_the_limit_whatever_the_request_layout(azure_backend, opener, name_length):
    """Node hands Azurite a request body in 64 KiB reads; where a read ends depends on the header
    length (so the queue name's) and on timing. Unpatched, Azurite 3.37 refused the 64 KiB body
    below for some name lengths and stored bodies under the limit with U+FFFD where a read had
    split an "é" (Azure/Azurite#2670, devtools/azurite_patch.py); every length must round-trip."""
    name = azure_backend.new_queue(uuid.uuid4().hex[:name_length])
    q = await opener(azure_backend, name)
    at_limit, under_limit = "é" * 32_768, "é" * 32_700
    assert accepted(await q.push_many([at_limit, under_limit])) == [True, True]
    assert sorted(azure_backend.drain(name)) == sorted([at_limit, under_limit])
    azure_backend.delete_queue(name)


async def test_body_one_byte_over_the_maximum_is_refused_before_sending(backend, q, queue_name):
    limit = backend.max_body_bytes(queue_name)
    requests_before = len(q.requests)

    with pytest.raises(ValueError, match=rf"message is {limit + 1} bytes.*at most {limit} bytes"):
        await q.push("a" * (limit + 1))
    with pytest.raises(ValueError, match=rf"messages\[1\] is {limit + 1} bytes"):
        await q.push_many(["fine", "é" * (limit // 2) + "a"])

    assert len(q.requests) == requests_before
    assert backend.total(queue_name) == 0


async def test_sqs_honours_the_queue_maximum_message_size(sqs_backend, opener):
    name = sqs_backend.new_queue(MaximumMessageSize=1024)
    q = await opener(sqs_backend, name)

    assert await q.push("x" * 1024) is True
    with pytest.raises(ValueError, match=r"1025 bytes.*at most 1024"):
        await q.push("x" * 1025)
    assert sorted(sqs_backend.drain(name)) == ["x" * 1024]


async def test_azure_base64_encoding(azure_backend, opener):
    """message_encoding="base64": bodies other SDKs and Azure Functions read as base64, any
    character allowed, 64 KiB of base64 (48 KiB of UTF-8) at most."""
    name = azure_backend.new_queue()
    q = await opener(azure_backend, name, message_encoding="base64")
    bodies = ["plain", "zero \x00 byte", "ünïcødé 🎉", "x" * 49_152]

    assert accepted(await q.push_many(bodies)) == [True] * 4
    assert sorted(azure_backend.drain(name, base64=True)) == sorted(bodies)

    azure_backend.send(name, bodies, base64=True)
    received = [m for b in await q.poll(batch_size=10).collect() for m in b]
    assert sorted(received) == sorted(bodies)

    with pytest.raises(ValueError, match=r"65540 bytes as sent.*at most 65536"):
        await q.push("x" * 49_153)
    assert azure_backend.total(name) == 0


async def test_azure_text_is_plain_on_the_wire(azure_backend, opener):
    name = azure_backend.new_queue()
    q = await opener(azure_backend, name)
    assert await q.push("not base64 ünïcødé") is True
    assert azure_backend.drain(name) == ["not base64 ünïcødé"]


# -- count, clear, names, lifecycle ------------------------------------------------------------------
async def test_count_and_clear(backend, q, queue_name):
    backend.seed(queue_name, 7)
    assert await q.count() == 7

    await q.clear()

    assert await q.count() == 0
    assert backend.total(queue_name) == 0
    assert backend.drain(queue_name) == []


async def test_get_name(q, queue_name):
    assert q.get_name() == queue_name


async def test_sqs_queue_by_url(sqs_backend, opener):
    name = sqs_backend.new_queue()
    q = await opener(sqs_backend, sqs_backend.url(name))

    assert q.get_name() == name
    assert await q.push("by url") is True
    assert await q.poll().collect() == [["by url"]]
    assert sqs_calls(q, "GetQueueUrl") == []


async def test_open_close_is_open(backend, q, queue_name):
    assert q.is_open() is True
    await q.close()
    assert q.is_open() is False
    await q.close()  # closing twice is harmless

    for call in (q.push("x"), q.peek(), q.count(), q.clear()):
        with pytest.raises(QueueClosedError, match=queue_name):
            await call
    with pytest.raises(QueueClosedError):  # at the call (sync) or the first step (async)
        await q.poll().collect()

    await q.open()
    assert q.is_open() is True
    assert await q.push("after reopen") is True
    assert sorted(backend.drain(queue_name)) == ["after reopen"]


async def test_context_manager_opens_and_closes(backend, q, queue_name):
    await q.close()
    async with q:
        assert q.is_open() is True
        assert await q.push("inside") is True
    assert q.is_open() is False
    assert sorted(backend.drain(queue_name)) == ["inside"]


async def test_async_queue_opens_only_when_asked(backend, queue_name):
    queue = backend.classes["async"](backend.auth, queue_name)
    assert queue.is_open() is False
    with pytest.raises(QueueClosedError):
        await queue.push("x")
    async with queue:
        assert await queue.push("x") is True
    assert sorted(backend.drain(queue_name)) == ["x"]


async def test_the_ids_push_many_returns_are_the_ids_poll_receives(backend, q, queue_name):
    bodies = [f"id-{i:02d}" for i in range(12)]
    ids = await q.push_many(bodies)
    received = {m.body: m.id for batch in await q.poll_messages(batch_size=12).collect() for m in batch}
    assert [received[b] for b in bodies] == ids
