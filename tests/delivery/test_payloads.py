"""Trigger and asset-event payloads: receipts only where the worker needs them, bodies never in a repr."""

from __future__ import annotations

import pytest

from fluke_airflow.delivery import payloads
from fluke_airflow.queues.message import Message

pytestmark = pytest.mark.unit

MESSAGES = [Message(id=f"id-{i}", body=f"secret-body-{i}", receipt=f"receipt-{i}", receive_count=1) for i in range(3)]


def test_watch_payloads_carry_no_receipts_and_one_per_message_on_request() -> None:
    raw = payloads.delivery("orders", "Amazon SQS", MESSAGES)
    (batch,) = payloads.watch_events(raw, MESSAGES, event_per_message=False)
    assert batch == {"queue": "orders", "service": "Amazon SQS", "messages": [m.public() for m in MESSAGES]}
    assert all(set(m) == {"id", "body", "receive_count"} for m in batch["messages"])
    single = payloads.watch_events(raw, MESSAGES, event_per_message=True)
    assert [p["message"]["id"] for p in single] == ["id-0", "id-1", "id-2"]


def test_task_payload_keeps_receipts_for_the_worker() -> None:
    payload = payloads.task_success("orders", "Azure Queue Storage", False, MESSAGES)
    assert [Message.from_dict(m) for m in payload["messages"]] == MESSAGES
    assert payload["status"] == "success" and payload["pre_delivery_delete"] is False


def test_no_body_or_receipt_in_any_repr() -> None:
    raw = payloads.delivery("orders", "Amazon SQS", MESSAGES)
    shown = [
        repr(payloads.task_success("orders", "Amazon SQS", True, MESSAGES)),
        *map(repr, payloads.watch_events(raw, MESSAGES, event_per_message=False)),
        *map(repr, payloads.watch_events(raw, MESSAGES, event_per_message=True)),
        repr(MESSAGES),
    ]
    assert not any("secret-body" in text or "receipt-" in text for text in shown), shown
    assert "<3 message(s)>" in shown[0] and "<message id-0>" in shown[2]
