"""QueuePeekOperator against moto and Azurite: up to ``max_messages`` bodies, nothing consumed.

(The templated path, a ``max_messages`` rendered from a template, runs in
``test_push_operator.py::test_templated_push_and_peek``, beside the pushes that fill the queue.)
"""

from __future__ import annotations

from typing import Any

import pytest

from devtools.admin import Service
from fluke_airflow.operators import QueuePeekOperator

pytestmark = pytest.mark.usefixtures("airflow_env")


def peek(service: Service, queue: str, **kwargs: Any) -> list[str]:
    op = QueuePeekOperator(task_id="peek", conn_id=service.conn_id, queue_name=queue, **kwargs)
    return op.execute(context={})  # type: ignore[arg-type]


@pytest.mark.compat
def test_peek_returns_up_to_max_messages_and_consumes_nothing(service: Service, queue: str) -> None:
    bodies = [f"p-{i}" for i in range(7)]
    service.send(queue, bodies)
    got = peek(service, queue, max_messages=5)
    assert len(got) == 5 and set(got) <= set(bodies)
    assert sorted(service.drain(queue)) == bodies  # every message still there


def test_peek_on_an_empty_queue_is_an_empty_list(service: Service, queue: str) -> None:
    assert peek(service, queue) == []


@pytest.mark.parametrize(("max_messages", "error"), [(0, ValueError), (11, ValueError), ("ten", TypeError)])
def test_peek_bad_max_messages_fails_at_parse_time(max_messages: Any, error: type) -> None:
    with pytest.raises(error, match="max_messages"):
        QueuePeekOperator(task_id="peek", conn_id="c", queue_name="q", max_messages=max_messages)


def test_executor_queue_is_separate_from_the_message_queue() -> None:
    op = QueuePeekOperator(task_id="p", conn_id="c", queue_name="orders", queue="gpu")
    assert (op.queue_name, op.queue) == ("orders", "gpu")
