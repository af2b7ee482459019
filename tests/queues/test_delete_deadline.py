"""The delete-deadline rule (issue 20, "at most once means at most once"), on its own, with a test clock.

SQS answers success to a delete with an expired receipt handle and may not delete (SQS API Reference,
DeleteMessage: "If you use an old ReceiptHandle, the request will succeed, but the message might not be
deleted"). So a delete proves itself only by its time: its answer must arrive before the message's
visibility deadline, counted from before the receive was sent, less a margin
(``lifecycle.delete_deadline``). These drive the flows step by step and through a ``SyncDriver`` over a
scripted transport; no service, no wall clock.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from flow_support import drive

from fluke_airflow.queues import lifecycle
from fluke_airflow.queues.drivers import SyncDriver
from fluke_airflow.queues.flows import GATHER_RESERVE, collect_flow, gather_flow, poll_flow, receive_flow
from fluke_airflow.queues.lifecycle import CLOCK_RATE_ERROR, SERVICE_CLOCK_SLACK, answered_late, delete_deadline
from fluke_airflow.queues.message import Message
from fluke_airflow.queues.options import DeliveryOptions
from fluke_airflow.queues.steps import (
    Delete,
    DeleteAnswer,
    Deliver,
    Now,
    Overlap,
    Receive,
    Renewal,
    SetVisibility,
    Sleep,
)

pytestmark = pytest.mark.unit


def msg(i: int, delete_by: float = 0.0, receipt: str = "r1") -> Message:
    return Message(id=f"m{i}", body=f"body-{i}", receipt=receipt, receive_count=1, delete_by=delete_by)


def answered(at: float, ok: bool = True) -> Callable[[Delete], list[DeleteAnswer]]:
    """A delete answer arriving at ``at`` on the driver's clock, for every message of the step."""
    return lambda step: [DeleteAnswer(ok, at) for _ in step.messages]


# -- the rule -------------------------------------------------------------------------------------------------
def test_the_deadline_counts_from_the_send_less_the_margin() -> None:
    assert delete_deadline(100.0, 30) == pytest.approx(100.0 + 30 * (1 - CLOCK_RATE_ERROR) - SERVICE_CLOCK_SLACK)
    assert delete_deadline(0.0, 600) == pytest.approx(600 - 0.6 - 0.1)  # the margin grows with the timeout


def test_a_success_answered_after_the_deadline_is_late_and_nothing_else_is() -> None:
    m = msg(1, delete_by=50.0)
    assert answered_late(m, DeleteAnswer(True, 50.0)) is None  # answered by the deadline: in time
    assert answered_late(m, DeleteAnswer(True, 51.5)) == pytest.approx(1.5)
    assert answered_late(m, DeleteAnswer(False, 99.0)) is None  # a failure is a failure, not a late success
    assert answered_late(m, True) is None  # a service whose success proves the delete (Azure) answers a bool
    assert answered_late(msg(1), DeleteAnswer(True, 99.0)) is None  # no deadline known (another process)


# -- pre-delivery: late means not delivered ---------------------------------------------------------------------
def options(**kwargs: Any) -> DeliveryOptions:
    base: dict[str, Any] = {"queue": "q", "batch_size": 2, "pre_delivery_delete": True, "visibility_timeout": 30,
                            "wait_seconds": 0}  # fmt: skip
    return DeliveryOptions(**{**base, **kwargs})


def test_pre_delivery_poll_delivers_only_what_was_deleted_in_time(caplog: pytest.LogCaptureFixture) -> None:
    tallies: Counter[str] = Counter()
    receives = [[msg(1, delete_by=10.0), msg(2, delete_by=20.0)], []]
    delivered: list[str] = []

    def answer(step: Any) -> Any:
        if isinstance(step, Receive):
            return receives.pop(0)
        if isinstance(step, Delete):
            return answered(15.0)(step)  # after m1's deadline, before m2's
        assert isinstance(step, Deliver)
        delivered.extend(m.id for m in step.messages)
        return list(step.messages)

    with caplog.at_level(logging.WARNING, logger="fluke_airflow.queues"):
        drive(poll_flow(options()), answer, tallies)
    assert delivered == ["m2"]
    assert tallies == Counter({"messages.late_delete": 1, "messages.delivered": 1})
    [warning] = [r for r in caplog.records if "NOT delivered" in r.getMessage()]
    assert warning.levelno == logging.WARNING and "m1" in warning.getMessage() and "m2" not in warning.getMessage()
    assert "5.00 s after" in warning.getMessage() and "visibility_timeout" in warning.getMessage()


def test_a_sensor_delivery_leaves_out_what_was_deleted_late() -> None:
    tallies: Counter[str] = Counter()

    def answer(step: Any) -> Any:
        if isinstance(step, Receive):
            return [msg(1, delete_by=10.0)] if step.wait_seconds else []
        return answered(10.5)(step)

    flow = collect_flow(options(num_messages=5, wait_seconds=20))
    delivered, _ = drive(flow, answer, tallies)
    assert delivered == [] and tallies == Counter({"messages.late_delete": 1})


def test_a_watcher_batch_leaves_out_what_was_deleted_late() -> None:
    tallies: Counter[str] = Counter()

    def answer(step: Any) -> Any:
        if isinstance(step, Receive):
            return [msg(1, delete_by=10.0), msg(2, delete_by=30.0)] if step.wait_seconds else []
        return answered(20.0)(step)

    flow = gather_flow(10, options(wait_seconds=20, max_bytes=10**6))
    delivered, _ = drive(flow, lambda step: 0.0 if isinstance(step, Now) else answer(step), tallies)
    assert [m.id for m in delivered] == ["m2"]
    assert tallies == Counter({"messages.late_delete": 1, "messages.delivered": 1})


def test_answers_without_a_time_are_trusted() -> None:
    """A service whose success proves the delete (Azure: a stale pop receipt is refused) answers bools."""
    tallies: Counter[str] = Counter()
    flow = lifecycle.delete([msg(1, delete_by=10.0)], "q", before_delivery=True)
    gone, _ = drive(flow, lambda step: [True], tallies)
    assert [m.id for m in gone] == ["m1"] and not tallies


# -- post-delivery: late means "may not have deleted" ------------------------------------------------------------
def test_a_late_delete_after_delivery_is_counted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    tallies: Counter[str] = Counter()
    with caplog.at_level(logging.WARNING, logger="fluke_airflow.queues"):
        gone, _ = drive(lifecycle.delete([msg(1, delete_by=10.0), msg(2, delete_by=99.0)], "q"),
                        answered(12.0), tallies)  # fmt: skip
    assert [m.id for m in gone] == ["m1", "m2"]  # the service answered success for both
    assert tallies == Counter({"messages.late_delete": 1})
    [warning] = [r for r in caplog.records if "may not have deleted" in r.getMessage()]
    assert "m1" in warning.getMessage() and "may be delivered again" in warning.getMessage()


def test_a_post_delivery_poll_reports_a_late_delete_beside_the_next_receive() -> None:
    """The batch's delete overlaps the next receive; its answer time is its own, not the receive's."""
    tallies: Counter[str] = Counter()
    receives = [[msg(1, delete_by=10.0)], []]

    def answer(step: Any) -> Any:
        if isinstance(step, Receive):
            return receives.pop(0)
        if isinstance(step, Deliver):
            return list(step.messages)
        assert isinstance(step, Overlap)  # the delete beside the next receive
        receive, delete = step.steps
        return [answer(receive), answered(11.0)(delete)]

    drive(poll_flow(options(pre_delivery_delete=False, batch_size=1)), answer, tallies)
    assert tallies == Counter({"messages.delivered": 1, "messages.late_delete": 1})


# -- keeping deletes inside the deadline --------------------------------------------------------------------------
def test_gathering_ends_before_the_first_messages_deadline_whatever_the_window() -> None:
    now = [0.0]
    first = msg(1, delete_by=delete_deadline(0.0, 30))  # 29.87
    receives = [[first], [], [], []]

    def answer(step: Any) -> Any:
        if isinstance(step, Receive):
            got = receives.pop(0) if receives else []
            if not got:
                now[0] += step.wait_seconds  # a long poll that found nothing waited its full time
            return got
        if isinstance(step, Sleep):
            now[0] += step.seconds
            return None
        if isinstance(step, Now):
            return now[0]
        return answered(now[0])(step)

    flow = gather_flow(10, options(wait_seconds=20, window=29.0, max_bytes=10**6))
    delivered, steps = drive(flow, answer, Counter())
    limit = first.delete_by - GATHER_RESERVE
    assert now[0] <= limit + 1e-9  # the 29 s window was cut short, GATHER_RESERVE before the deadline
    assert [m.id for m in delivered] == ["m1"]  # ...so the delete came in time
    assert max(s.wait_seconds for s in steps[1:] if isinstance(s, Receive)) <= limit


def test_the_renewal_comes_half_a_timeout_before_the_earliest_deadline() -> None:
    plan = Renewal(visibility_timeout=30, max_hidden_seconds=43200)
    assert plan.wait([msg(1)], now=0.0) == plan.interval == 15.0  # no deadline known: every half timeout
    assert plan.wait([msg(1, delete_by=29.9)], now=0.0) == pytest.approx(14.9)
    # a batch that took 12 s to fill: its first message is due for renewal in 3 s, not 15
    assert plan.wait([msg(1, delete_by=18.0), msg(2, delete_by=29.0)], now=0.0) == pytest.approx(3.0)
    # past due, or a renewal that failed: soon, but not in a loop
    assert plan.wait([msg(1, delete_by=10.0)], now=0.0) == 1.0
    assert Renewal(visibility_timeout=2, max_hidden_seconds=43200).wait([msg(1, delete_by=0.5)], now=0.0) == 0.5


# -- the driver stamps the times --------------------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class SlowDeletes:
    """A transport whose deletes take ``delete_seconds`` of the test's clock; SQS's semantics unless told."""

    delete_chunk_size = 10
    visibility_chunk_size = 10
    receive_chunk_size = 10
    redrive = None

    def __init__(self, clock: Clock, delete_seconds: float, *, late_delete_uncertain: bool = True) -> None:
        self.clock = clock
        self.delete_seconds = delete_seconds
        self.late_delete_uncertain = late_delete_uncertain
        self.receives = [[msg(1), msg(2)]]

    def receive(self, max_messages: int, visibility_timeout: int, wait_seconds: int) -> list[Message]:
        self.clock.now += 0.5  # the answer comes half a second after the send
        return self.receives.pop(0) if self.receives else []

    def delete_batch(self, messages: Any) -> list[bool]:
        self.clock.now += self.delete_seconds
        return [True] * len(messages)

    def set_visibility_batch(self, messages: Any, timeout: int) -> list[Message | None]:
        self.clock.now += 0.5
        return list(messages)


@pytest.mark.parametrize(("delete_seconds", "delivered"), [(29.0, ["m1", "m2"]), (30.0, [])])
def test_the_driver_measures_from_the_receive_s_send_to_the_delete_s_answer(
    delete_seconds: float, delivered: list[str]
) -> None:
    clock = Clock()
    driver = SyncDriver(SlowDeletes(clock, delete_seconds), max_concurrency=1, clock=clock)  # type: ignore[arg-type]
    try:
        batches = list(driver.iterate(poll_flow(options())))
    finally:
        driver.close()
    # sent at 100.0, answered at 100.5; the delete answered 29 s or 30 s later: 129.5 is within
    # 30 s less the margin (0.13 s) of the send, 130.5 is not
    assert [m.id for b in batches for m in b] == delivered
    assert driver.metrics.totals()["messages.late_delete"] == 2 - len(delivered)


def test_a_driver_on_a_service_whose_success_proves_the_delete_does_not_time_it() -> None:
    clock = Clock()
    transport = SlowDeletes(clock, 300.0, late_delete_uncertain=False)
    driver = SyncDriver(transport, max_concurrency=1, clock=clock)  # type: ignore[arg-type]
    results = driver.execute(Delete((msg(1, delete_by=1.0),)))
    assert results == [True] and not isinstance(results[0], DeleteAnswer)


def test_a_visibility_change_moves_the_deadline_from_its_own_send() -> None:
    clock = Clock()
    driver = SyncDriver(SlowDeletes(clock, 0.0), max_concurrency=1, clock=clock)  # type: ignore[arg-type]
    [received, _] = driver.execute(Receive(2, 30, 0))
    assert received.delete_by == pytest.approx(delete_deadline(100.0, 30))
    clock.now = 120.0
    [renewed, _] = driver.execute(SetVisibility((received, replace(received, id="m2")), 60))
    assert renewed.delete_by == pytest.approx(delete_deadline(120.0, 60))


def test_no_receive_waits_longer_than_half_the_visibility_timeout() -> None:
    """The deadline counts from the send: a message arriving at the end of a 20 s wait with a 10 s
    timeout would be judged late on arrival (and, pre-delivery, lost though SQS deleted it in time)."""
    _, steps = drive(receive_flow(5, options(visibility_timeout=10, wait_seconds=20)), lambda step: [], Counter())
    assert [s.wait_seconds for s in steps] == [5]
    _, steps = drive(receive_flow(5, options(visibility_timeout=600, wait_seconds=20)), lambda step: [], Counter())
    assert [s.wait_seconds for s in steps] == [20]
    _, steps = drive(receive_flow(5, options(visibility_timeout=1, wait_seconds=20)), lambda step: [], Counter())
    assert [s.wait_seconds for s in steps] == [1]  # not 0: an idle trigger would spin on empty receives


def test_a_retried_receive_is_measured_from_the_attempt_that_answered() -> None:
    """The SDK may retry a receive (a reset, a throttle): the messages in the answer were handed out
    after the last attempt was sent, which the transport reports (RECEIVE_SENT); measured from before
    the first attempt, the backoff would eat the timeout."""
    from fluke_airflow.queues.transport import RECEIVE_SENT

    clock = Clock()

    class Retried(SlowDeletes):
        def receive(self, max_messages: int, visibility_timeout: int, wait_seconds: int) -> list[Message]:
            clock.now += 20  # the first attempt failed; botocore backed off and sent again
            RECEIVE_SENT.set(clock.now)
            return super().receive(max_messages, visibility_timeout, wait_seconds)

    driver = SyncDriver(Retried(clock, 1.0), max_concurrency=1, clock=clock)  # type: ignore[arg-type]
    before = RECEIVE_SENT.get()  # whatever an earlier receive outside a driver left on this thread
    [received, _] = driver.execute(Receive(2, 30, 0))
    assert received.delete_by == pytest.approx(delete_deadline(120.0, 30))
    assert RECEIVE_SENT.get() == before  # the driver put it back as it found it
