"""What the queues log: what happened (counts, queue names, message ids), never a message body
above DEBUG; ``suppress_output`` keeps routine output at DEBUG."""

from __future__ import annotations

import logging
import re
import uuid

import pytest
from pushed import accepted

from fluke_airflow.queues import Message

pytestmark = pytest.mark.asyncio(loop_scope="session")


_QUEUE_NAMES = re.compile(r"'((?:sqs|azure|az)-[0-9a-f]{12})'")


def _about_another(text: str, queue_name: str) -> bool:
    return any(name != queue_name for name in _QUEUE_NAMES.findall(text))


def texts(records, minimum=logging.INFO, prefix=""):
    """Everything a log handler could write for these records: message, exception, stack."""
    out = []
    for r in records:
        if r.levelno >= minimum and r.name.startswith(prefix):
            out.append(r.getMessage())
            if r.exc_info:
                out.append(logging.Formatter().formatException(r.exc_info))
            if r.stack_info:
                out.append(r.stack_info)
    return out


@pytest.fixture
def marker():
    return f"secret-body-{uuid.uuid4().hex}"


async def test_bodies_never_logged_above_debug(backend, q, queue_name, marker, caplog):
    caplog.set_level(logging.DEBUG)
    bodies = [f"{marker}-{i}" for i in range(15)]

    assert await q.push(bodies[0]) is True
    assert accepted(await q.push_many(bodies[1:])) == [True] * 14
    assert len(await q.peek()) == 10
    with pytest.raises(RuntimeError):
        async for _ in q.poll(batch_size=5, visibility_timeout=1):
            raise RuntimeError("consumer failed")
    backend.collect(queue_name, 15, timeout=30, interval=0.25)
    backend.send(queue_name, bodies[:7])
    assert sum(map(len, await q.poll(batch_size=3).collect())) == 7
    backend.send(queue_name, bodies[:4])
    assert sum(map(len, await q.poll(pre_delivery_delete=True).collect())) == 4

    ours = texts(caplog.records, prefix="fluke_airflow")
    assert any(queue_name in t for t in ours), "the queue should report what it did at INFO"
    assert not [t for t in texts(caplog.records) if marker in t]


async def test_failed_push_logs_the_reason_not_the_body(backend, q, queue_name, marker, caplog):
    caplog.set_level(logging.DEBUG)
    backend.delete_queue(queue_name)

    assert accepted(await q.push_many([marker, marker + "-2"])) == [False, False]

    warnings = texts(caplog.records, logging.WARNING, "fluke_airflow")
    assert any(queue_name in t for t in warnings)
    assert not [t for t in texts(caplog.records) if marker in t]


async def test_delete_results_per_message_and_failures_logged_by_id(backend, q, queue_name, marker, caplog):
    """A delete can fail for one message of a request: the result says which, the warning names
    the message id, the body stays out of the log, and the other deletes go through."""
    caplog.set_level(logging.DEBUG)
    backend.send(queue_name, [f"{marker}-{i}" for i in range(3)])
    batches = q.poll_messages(batch_size=3, visibility_timeout=60)  # receipts valid however slow the machine
    batch = await batches.__anext__()
    assert len(batch) == 3
    bad = Message(id=batch[1].id, body=batch[1].body, receipt="not-a-valid-receipt")

    results = await q.delete_messages([batch[0], bad, batch[2]])

    assert results == [True, False, True]
    await batches.aclose()
    assert sorted(backend.collect(queue_name, 1, timeout=30, interval=0.25)) == [batch[1].body]
    warnings = texts(caplog.records, logging.WARNING, "fluke_airflow")
    assert any(batch[1].id in t for t in warnings)
    assert not [t for t in texts(caplog.records) if marker in t]


async def test_suppress_output_keeps_routine_logs_at_debug(backend, q, queue_name, caplog):
    caplog.set_level(logging.DEBUG)
    backend.seed(queue_name, 3)

    assert await q.push("quiet", suppress_output=True) is True
    assert accepted(await q.push_many(["quiet", "quiet"], suppress_output=True)) == [True, True]
    assert len(await q.peek(suppress_output=True)) == 6
    assert sum(map(len, await q.poll(suppress_output=True).collect())) == 6

    # Lines about another test's queue are left out: a poll another test abandoned is released by
    # its finaliser whenever the garbage collector gets to it, possibly during this test.
    others = [t for t in texts(caplog.records, logging.INFO, "fluke_airflow") if not _about_another(t, queue_name)]
    assert others == []
    assert texts(caplog.records, logging.DEBUG, "fluke_airflow")  # still there for debugging
