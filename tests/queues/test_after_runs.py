"""What becomes of a ``delete_on_dag_success`` watcher's delivery once its consumer runs have ended
(:func:`fluke_airflow.queues.lifecycle.after_runs`), and the receive-count rule for messages whose
run is still going (:func:`~fluke_airflow.queues.lifecycle.triage` with ``spared``): free of I/O,
driven step by step like tests/queues/test_flows.py."""

from __future__ import annotations

from typing import Any

import pytest
from flow_support import drive

from fluke_airflow.queues import lifecycle
from fluke_airflow.queues.message import Message
from fluke_airflow.queues.options import DeliveryOptions, RetryPolicy
from fluke_airflow.queues.steps import DeadLetter, SetVisibility

pytestmark = pytest.mark.unit


def msg(i: int, *, group: str | None = None, count: int = 1) -> Message:
    metadata = {"MessageGroupId": group} if group else {}
    return Message(id=f"m{i}", body=f"body-{i}", receipt=f"r{i}", receive_count=count, metadata=metadata)


def ids(messages: list[Message]) -> list[str]:
    return [m.id for m in messages]


OPTIONS = DeliveryOptions("q", max_receive_count=3, dead_letter_queue="q-dlq", retry=RetryPolicy(5.0, 2.0, 60.0))


def test_messages_every_run_succeeded_with_are_deleted_and_failed_ones_released() -> None:
    batch = [msg(1), msg(2), msg(3), msg(4)]
    verdicts = lifecycle.after_runs(batch, {"m2", "m4"}, OPTIONS)
    assert ids(verdicts.acknowledged) == ["m1", "m3"]
    assert ids(verdicts.failed) == ["m2", "m4"]
    assert verdicts.held_back == [] and verdicts.poison == []


def test_a_message_that_failed_on_its_last_allowed_receive_goes_to_the_dead_letter_queue_now() -> None:
    """Received max_receive_count times and failed again: one more retry delay would only bring it
    back to be dead-lettered on receipt (Azure Functions moves it to -poison on that failure too)."""
    verdicts = lifecycle.after_runs([msg(1, count=3), msg(2, count=2)], {"m1", "m2"}, OPTIONS)
    assert ids(verdicts.poison) == ["m1"]
    assert ids(verdicts.failed) == ["m2"]


def test_without_a_dead_letter_queue_a_failed_message_is_released_whatever_its_receive_count() -> None:
    options = DeliveryOptions("q", max_receive_count=3, dead_letter_queue=None)
    verdicts = lifecycle.after_runs([msg(1, count=9)], {"m1"}, options)
    assert ids(verdicts.failed) == ["m1"] and verdicts.poison == []


def test_on_a_fifo_queue_what_follows_a_failed_message_of_its_group_is_held_back() -> None:
    """Lambda's advice for partial batch responses on FIFO: the failed message and every later one
    of its message group go back, so that none overtakes it; other groups are deleted."""
    batch = [msg(1, group="a"), msg(2, group="b"), msg(3, group="a"), msg(4, group="a"), msg(5, group="b")]
    verdicts = lifecycle.after_runs(batch, {"m3"}, OPTIONS)
    assert ids(verdicts.acknowledged) == ["m1", "m2", "m5"]
    assert ids(verdicts.failed) == ["m3"]
    assert ids(verdicts.held_back) == ["m4"]


def test_a_message_moved_to_the_dead_letter_queue_holds_back_nothing() -> None:
    """It will not run again: what follows it in its group and succeeded is done."""
    verdicts = lifecycle.after_runs([msg(1, group="a", count=3), msg(2, group="a")], {"m1"}, OPTIONS)
    assert ids(verdicts.poison) == ["m1"] and ids(verdicts.acknowledged) == ["m2"] and verdicts.held_back == []


def drive_triage(batch: list[Message], options: DeliveryOptions) -> tuple[list[Message], list[Any]]:
    def answer(step: Any) -> Any:
        return list(step.messages) if isinstance(step, SetVisibility) else [True] * len(step.messages)

    return drive(lifecycle.triage(batch, options), answer)


def test_a_message_whose_run_is_still_going_is_not_dead_lettered_for_its_receive_count() -> None:
    """After a triggerer restart a held message comes back with one receive more; its run may still
    succeed, so it is held again, not moved to the dead-letter queue."""
    batch = [msg(1, count=4), msg(2, count=4)]
    kept, steps = drive_triage(batch, OPTIONS.but(spared=frozenset({"m1"})))
    assert ids(kept) == ["m1"]
    (dead,) = [s for s in steps if isinstance(s, DeadLetter)]
    assert ids(list(dead.messages)) == ["m2"]
