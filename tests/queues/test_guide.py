"""Every example of the user guide, on SQS and Azure, with the blocking and the asyncio classes."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_push(backend, q, queue_name):
    is_delivered = await q.push(message="Hello!")

    assert is_delivered is True
    assert sorted(backend.drain(queue_name)) == ["Hello!"]


async def test_push_in_context_manager(backend, flavour, queue_name):
    cls = backend.classes[flavour]
    if flavour == "sync":
        with cls(auth=backend.auth, queue=queue_name) as queue:
            assert queue.push(message="Hello!") is True
    else:
        async with cls(auth=backend.auth, queue=queue_name) as queue:
            assert await queue.push(message="Hello!") is True
    assert not queue.is_open()
    assert sorted(backend.drain(queue_name)) == ["Hello!"]


async def test_peek(backend, q, queue_name):
    sent = backend.seed(queue_name, 3)

    messages = await q.peek()

    assert sorted(messages) == sent
    assert sorted(backend.drain(queue_name)) == sent  # nothing was deleted (and all are visible again)


async def test_poll_fetches_everything_and_deletes_it(backend, q, queue_name):
    sent = backend.seed(queue_name, 25)

    received = []
    async for batch in q.poll(batch_size=10):
        received.append(batch)

    assert [len(b) for b in received] == [10, 10, 5]
    assert sorted(m for b in received for m in b) == sent
    assert backend.total(queue_name) == 0
    assert backend.drain(queue_name) == []


async def test_poll_num_messages(backend, q, queue_name):
    sent = backend.seed(queue_name, 120)

    received = await q.poll(num_messages=100, batch_size=10).collect()

    assert [len(b) for b in received] == [10] * 10
    got = [m for b in received for m in b]
    assert len(set(got)) == 100
    assert sorted(got + backend.drain(queue_name)) == sent  # the other 20 are still there


@pytest.mark.timeout(120)
async def test_continuous_polling(backend, q, queue_name):
    """With polling_frequency the iterator does not end when the queue runs dry: it sleeps
    and polls again, delivering messages that arrive later, until the consumer stops."""
    first = backend.seed(queue_name, 3, prefix="first")
    later = [f"later-{i}" for i in range(4)]

    received: list[str] = []
    # A long visibility timeout: a held batch must not come back (and be received twice) however
    # slow the machine; closing the iterator releases the one it stopped with.
    batches = q.poll(num_messages=100, batch_size=10, polling_frequency=0.2, visibility_timeout=60)
    async for batch in batches:
        received += batch
        if len(received) == len(first):
            backend.send(queue_name, later)  # arrives after the queue was emptied
        if len(received) >= len(first) + len(later):
            break
    await batches.aclose()

    assert sorted(received) == sorted(first + later)
    # Breaking out left the batch being processed (and only that one) in the queue.
    assert backend.total(queue_name) == len(batch)
    assert sorted(backend.drain(queue_name)) == sorted(batch)


async def test_exception_in_loop_loses_no_message(backend, q, queue_name):
    """Post-delivery delete (the default): the batch that was being processed when the
    exception was raised was not deleted and comes back after its visibility timeout."""
    sent = backend.seed(queue_name, 3)

    with pytest.raises(RuntimeError):
        async for _batch in q.poll(visibility_timeout=1):
            raise RuntimeError("processing failed")

    assert backend.total(queue_name) == 3  # hidden, not deleted
    assert sorted(backend.collect(queue_name, 3, timeout=30, interval=0.25)) == sent


async def test_exception_after_processing_part_of_a_batch(backend, q, queue_name):
    """The guide's num_messages=2, batch_size=2 example: the first message was processed, the
    second raised; both messages are still in the queue."""
    sent = backend.seed(queue_name, 2)
    processed = []

    with pytest.raises(RuntimeError):
        async for batch in q.poll(num_messages=2, batch_size=2, visibility_timeout=1):
            for i, msg in enumerate(batch):
                if i == 0:
                    processed.append(msg)
                else:
                    raise RuntimeError("processing the second message failed")

    assert len(processed) == 1 and processed[0] in sent
    assert sorted(backend.collect(queue_name, 2, timeout=30, interval=0.25)) == sent


async def test_pre_delivery_delete(backend, q, queue_name):
    """pre_delivery_delete=True: the batch is gone from the queue before it is handed over, so
    an exception while processing it loses it (at most once)."""
    sent = backend.seed(queue_name, 5)

    with pytest.raises(RuntimeError):
        async for batch in q.poll(pre_delivery_delete=True, batch_size=5, visibility_timeout=1):
            assert sorted(batch) == sent
            # At this point, all messages within the batch have already been removed from the queue.
            assert backend.total(queue_name) == 0
            raise RuntimeError("processing failed")

    assert backend.total(queue_name) == 0  # nothing to come back: hidden messages count too


async def test_post_delivery_delete_keeps_batch_until_next_is_requested(backend, q, queue_name):
    """Contrast to the test above: with the default, the batch being processed is still in the queue."""
    backend.seed(queue_name, 5)

    async for batch in q.poll(batch_size=5):
        assert len(batch) == 5
        assert backend.total(queue_name) == 5
    assert backend.total(queue_name) == 0
