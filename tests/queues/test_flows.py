"""The queue rules of ``queues/flows.py`` on their own: each flow driven step by step with
scripted results (no emulator, no clock but the test's), then the main scenarios (fan-out,
redelivery within a batch, FIFO group blocking, release on stop, oversize delivery) through a
``SyncDriver`` over a scripted transport. These run in the unit tier (``make test-unit``)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from flow_support import drive

from fluke_airflow.exceptions import DeliveryTooLarge
from fluke_airflow.queues import lifecycle
from fluke_airflow.queues.filters import MessageFilter
from fluke_airflow.queues.flows import (
    beside_first_step,
    collect_flow,
    gather_flow,
    poll_flow,
    receive_flow,
    redrive_flow,
)
from fluke_airflow.queues.message import Message
from fluke_airflow.queues.options import DeliveryOptions, RetryPolicy
from fluke_airflow.queues.steps import (
    ConsumerStopped,
    DeadLetter,
    Delete,
    Deliver,
    Flow,
    Now,
    Overlap,
    Receive,
    Redrive,
    SetVisibility,
    Sleep,
    Tally,
)

pytestmark = pytest.mark.unit


def msg(i: int, body: str | None = None, receipt: str = "r1", count: int = 1) -> Message:
    return Message(id=f"m{i}", body=body if body is not None else f"body-{i}", receipt=receipt, receive_count=count)


def skip_tallies(flow: Flow, step: Any) -> Any:
    """The next step that is not a Tally, answering those with None."""
    while isinstance(step, Tally):
        step = flow.send(None)
    return step


class Script:
    """A queue's answers in order: each receive takes the next list; deletes and visibility
    changes succeed; sleeps and long polls move the test's clock."""

    def __init__(self, *receives: list[Message]) -> None:
        self.receives = list(receives)
        self.now = 0.0
        self.released: list[Message] = []

    def clock(self) -> float:
        return self.now

    def __call__(self, step: Any) -> Any:
        if isinstance(step, Overlap):
            return [self(s) for s in step.steps]
        if isinstance(step, Receive):
            got = self.receives.pop(0) if self.receives else []
            if not got:
                self.now += step.wait_seconds  # a long poll that found nothing waited its full time
            return got
        if isinstance(step, Delete):
            return [True] * len(step.messages)
        if isinstance(step, SetVisibility):
            if step.timeout == 0:
                self.released += step.messages
            return list(step.messages)
        if isinstance(step, Sleep):
            self.now += step.seconds
            return None
        if isinstance(step, Now):
            return self.now
        if isinstance(step, DeadLetter):
            return [True] * len(step.messages)
        raise AssertionError(f"unexpected step {step!r}")


def options(**kwargs: Any) -> DeliveryOptions:
    return DeliveryOptions(**{"queue": "q", "batch_size": 2, "visibility_timeout": 30, "wait_seconds": 0, **kwargs})


# -- receive_flow -------------------------------------------------------------------------------------------
def test_a_full_receive_is_followed_by_concurrent_receives_for_the_rest() -> None:
    script = Script([msg(i) for i in range(10)], [msg(i) for i in range(10, 25)])
    batch, steps = drive(receive_flow(25, options(wait_seconds=1, per_request=10)), script)
    assert [m.id for m in batch] == [f"m{i}" for i in range(25)]
    assert [(s.max_messages, s.fan_out) for s in steps] == [(25, False), (15, True)]


def test_a_message_handed_out_again_stays_once_with_its_newest_receipt() -> None:
    script = Script([msg(1), msg(2)], [msg(2, receipt="r2"), msg(3)], [])
    batch, _ = drive(receive_flow(10, options(wait_seconds=0)), script)
    assert [(m.id, m.receipt) for m in batch] == [("m1", "r1"), ("m2", "r2"), ("m3", "r1")]


def test_a_receive_that_brings_only_known_messages_ends_the_batch() -> None:
    script = Script([msg(1)], [msg(1, receipt="r2")], [msg(9)])
    batch, steps = drive(receive_flow(10, options(wait_seconds=0)), script)
    assert [(m.id, m.receipt) for m in batch] == [("m1", "r2")] and len(steps) == 2


# -- poll_flow ----------------------------------------------------------------------------------------------
def test_post_delivery_deletes_a_batch_when_the_next_is_asked_for() -> None:
    script = Script([msg(1), msg(2)], [msg(3)], [])
    _, steps = drive(
        poll_flow(options()), lambda s: list(s.messages) if isinstance(s, Deliver) else script(s)
    )
    kinds = [type(s).__name__ for s in steps]
    # The first batch is deleted together with the second batch's first receive; the second batch
    # is short: one more receive (that brings nothing) ends it, and the poll, which deletes it.
    assert kinds == ["Receive", "Deliver", "Overlap", "Receive", "Deliver", "Delete"]
    receive, delete = steps[2].steps
    assert isinstance(receive, Receive) and [m.id for m in delete.messages] == ["m1", "m2"]
    assert [m.id for m in steps[-1].messages] == ["m3"]


def test_a_batch_is_deleted_before_the_next_receive_on_a_fifo_queue() -> None:
    """A FIFO queue's next receive needs the delete to have unlocked the message group: no overlap."""
    script = Script([msg(1), msg(2)], [msg(3)], [])
    _, steps = drive(
        poll_flow(options(held_messages_block=True)),
        lambda s: list(s.messages) if isinstance(s, Deliver) else script(s),
    )
    kinds = [type(s).__name__ for s in steps]
    # (a short batch does not end a FIFO poll: one more receive, empty, does)
    assert kinds == ["Receive", "Deliver", "Delete", "Receive", "Receive", "Deliver", "Delete", "Receive"]


def test_a_failed_delete_beside_a_receive_is_reported_and_the_poll_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    script = Script([msg(1), msg(2)], [msg(3)], [])

    def answer(step: Any) -> Any:
        if isinstance(step, Deliver):
            return list(step.messages)
        if isinstance(step, Overlap):
            return [script(step.steps[0]), [True, False]]
        return script(step)

    _, steps = drive(poll_flow(options()), answer)
    assert [[m.id for m in s.messages] for s in steps if isinstance(s, Deliver)] == [["m1", "m2"], ["m3"]]
    assert "1 of 2 message(s) could not be deleted" in caplog.text


def test_beside_first_step_overlaps_only_the_first_request() -> None:
    flow = beside_first_step(
        receive_flow(25, options(wait_seconds=1, per_request=10)), Delete((msg(99),))
    )
    first = flow.send(None)
    assert isinstance(first, Overlap) and [type(s).__name__ for s in first.steps] == ["Receive", "Delete"]
    second = flow.send([[msg(i) for i in range(10)], [True]])
    assert isinstance(second, Receive) and second.fan_out
    with pytest.raises(StopIteration) as stop:
        flow.send([msg(i) for i in range(10, 25)])
    batch, deleted = stop.value.value
    assert len(batch) == 25 and deleted == [True]


def test_pre_delivery_delivers_only_what_was_deleted() -> None:
    def answer(step: Any) -> Any:
        if isinstance(step, Delete):
            return [True, False]  # the second delete failed: it must not be delivered
        if isinstance(step, Deliver):
            return list(step.messages)
        return [msg(1), msg(2)] if isinstance(step, Receive) and not delivered else []

    delivered: list[Any] = []
    flow = poll_flow(options(pre_delivery_delete=True, num_messages=2))
    drive(flow, lambda s: (delivered.append(s) if isinstance(s, Deliver) else None) or answer(s))
    assert [[m.id for m in d.messages] for d in delivered] == [["m1"]]


def test_a_consumer_that_stops_has_its_batch_released_not_deleted() -> None:
    flow = poll_flow(options())
    assert isinstance(flow.send(None), Receive)
    deliver = skip_tallies(flow, flow.send([msg(1), msg(2)]))
    assert isinstance(deliver, Deliver)
    release = flow.throw(ConsumerStopped(deliver.messages))
    assert isinstance(release, SetVisibility) and release.timeout == 0
    assert flow.send(list(release.messages)) == Tally("messages.released", 2)
    with pytest.raises(StopIteration):
        flow.send(None)


def test_held_fifo_messages_do_not_end_the_poll_early() -> None:
    """On a FIFO queue a short receive can mean 'the rest of the group is locked by what I hold':
    the poll delivers what it has and asks again, and ends only on a receive that gets nothing."""
    script = Script([msg(1)], [], [msg(2)], [], [])  # m2 (same group) only once m1 is gone
    opts = options(batch_size=5, held_messages_block=True)
    _, steps = drive(poll_flow(opts), lambda s: list(s.messages) if isinstance(s, Deliver) else script(s))
    assert [[m.id for m in s.messages] for s in steps if isinstance(s, Deliver)] == [["m1"], ["m2"]]


def test_poison_messages_go_to_the_dead_letter_queue_first() -> None:
    script = Script([msg(1, count=1), msg(2, count=5)], [])
    opts = options(max_receive_count=3, dead_letter_queue="dlq")
    _, steps = drive(poll_flow(opts), lambda s: list(s.messages) if isinstance(s, Deliver) else script(s))
    dead = [s for s in steps if isinstance(s, DeadLetter)]
    assert [m.id for m in dead[0].messages] == ["m2"] and dead[0].queue == "dlq"
    assert [[m.id for m in s.messages] for s in steps if isinstance(s, Deliver)] == [["m1"]]


# -- collect_flow (the sensor's delivery) -------------------------------------------------------------------
def test_an_oversize_delivery_is_released_and_refused_before_any_delete() -> None:
    script = Script([msg(1, "x" * 600), msg(2, "y" * 600)])
    flow = collect_flow(options(num_messages=2, pre_delivery_delete=True, max_bytes=1000))
    steps: list[Any] = []
    with pytest.raises(DeliveryTooLarge, match="add up to 1200 bytes, more than max_delivery_bytes=1000"):
        drive(flow, lambda s: steps.append(s) or script(s))
    assert not any(isinstance(s, Delete) for s in steps)
    assert [m.id for m in script.released] == ["m1", "m2"]


# -- gather_flow (a watcher's batch) ------------------------------------------------------------------------
def gather(script: Script, **kwargs: Any) -> tuple[list[Message], list[Any]]:
    args: dict[str, Any] = {"visibility_timeout": 600, "wait_seconds": 20, "max_bytes": 1_000_000, "per_request": 10}
    return drive(gather_flow(100, options(**{**args, **kwargs})), script)


def test_without_a_window_the_first_receives_are_the_batch() -> None:
    script = Script([msg(1), msg(2)], [msg(3)])
    batch, steps = gather(script)
    assert [m.id for m in batch] == ["m1", "m2", "m3"]
    # After a short receive, only what has arrived meanwhile (0 s receives), no waiting for more.
    assert [s.wait_seconds for s in steps if isinstance(s, Receive)] == [20, 0, 0]


def test_a_window_gathers_until_it_ends() -> None:
    script = Script([msg(1)], [], [msg(2)], [msg(3), msg(4)], [])
    batch, steps = gather(script, window=30.0)
    assert [m.id for m in batch] == ["m1", "m2", "m3", "m4"]
    assert script.now >= 30.0  # it went on until the window had passed
    waits = [s.wait_seconds for s in steps if isinstance(s, Receive)]
    assert max(waits[2:]) <= 20 and all(w >= 0 for w in waits)


def test_a_window_ends_early_when_the_batch_is_full() -> None:
    script = Script([msg(i) for i in range(10)], [msg(i) for i in range(10, 20)])
    opts = options(visibility_timeout=600, wait_seconds=20, window=300.0, max_bytes=10**6, per_request=10)
    batch, _ = drive(gather_flow(20, opts), script)
    assert len(batch) == 20 and script.now == 0.0


def test_without_long_polling_the_window_pauses_between_empty_receives() -> None:
    script = Script([msg(1)], [], [], [msg(2)])
    batch, steps = gather(script, window=5.0, long_polling=False, wait_seconds=0, idle_sleep=2.0)
    sleeps = [s.seconds for s in steps if isinstance(s, Sleep)]
    assert [m.id for m in batch] == ["m1", "m2"]
    assert sleeps and all(0 < s <= 2.0 for s in sleeps) and script.now >= 5.0


def test_the_byte_cap_releases_what_does_not_fit_for_the_next_batch() -> None:
    script = Script([msg(1, "a" * 400), msg(2, "b" * 400), msg(3, "c" * 400)])
    batch, _ = gather(script, max_bytes=1000)
    assert [m.id for m in batch] == ["m1", "m2"]
    assert [m.id for m in script.released] == ["m3"]


def test_one_message_larger_than_the_cap_goes_alone() -> None:
    script = Script([msg(1, "a" * 5000), msg(2, "b")])
    batch, _ = gather(script, max_bytes=1000)
    assert [m.id for m in batch] == ["m1"] and [m.id for m in script.released] == ["m2"]


def test_a_message_redelivered_within_the_window_is_kept_once_with_its_new_receipt() -> None:
    script = Script([msg(1)], [msg(1, receipt="r2"), msg(2)], [])
    batch, _ = gather(script, window=10.0)
    assert [(m.id, m.receipt) for m in batch] == [("m1", "r2"), ("m2", "r1")]


def test_pre_delivery_delete_returns_only_what_was_deleted() -> None:
    script = Script([msg(1), msg(2)])
    results = iter([[True, False]])

    def answer(step: Any) -> Any:
        return next(results) if isinstance(step, Delete) else script(step)

    batch, steps = drive(gather_flow(10, options(max_bytes=10**6, pre_delivery_delete=True)), answer)
    assert [m.id for m in batch] == ["m1"] and isinstance(steps[-1], Delete)


# -- what the flows count (Tally steps, turned into metrics by the drivers) ---------------------------------
def test_a_poll_counts_deliveries_and_a_stopped_consumer_counts_releases() -> None:
    tallies: Counter[str] = Counter()
    script = Script([msg(1), msg(2)], [msg(3)], [])
    drive(poll_flow(options()), lambda s: list(s.messages) if isinstance(s, Deliver) else script(s), tallies)
    assert tallies == Counter({"messages.delivered": 3})


def test_dead_letters_and_unmatched_messages_are_counted_by_their_fate() -> None:
    tallies: Counter[str] = Counter()
    script = Script([msg(1, "keep"), msg(2, "drop"), msg(3, "keep", count=9)], [])
    opts = options(batch_size=5, max_receive_count=3, dead_letter_queue="dlq",
                   filter=MessageFilter.build("literal", ["keep"]), unmatched="delete")  # fmt: skip
    drive(poll_flow(opts), lambda s: list(s.messages) if isinstance(s, Deliver) else script(s), tallies)
    assert tallies == Counter({"messages.dead_lettered": 1, "messages.filtered_out": 1, "messages.delivered": 1})


def test_a_refused_dead_letter_move_is_not_counted_as_moved() -> None:
    tallies: Counter[str] = Counter()

    def answer(step: Any) -> Any:
        return [False] if isinstance(step, DeadLetter) else Script()(step)

    drive(lifecycle.unmatched([msg(1)], options(unmatched="dead_letter", dead_letter_queue="dlq")), answer, tallies)
    assert tallies == Counter({"messages.filtered_out": 1})


def test_putting_back_what_did_not_fit_is_not_a_release() -> None:
    tallies: Counter[str] = Counter()
    script = Script([msg(1, "a" * 400), msg(2, "b" * 400), msg(3, "c" * 400)])
    drive(gather_flow(100, options(visibility_timeout=600, max_bytes=1000)), script, tallies)
    assert tallies == Counter({"messages.delivered": 2}) and [m.id for m in script.released] == ["m3"]


# -- retry delays -------------------------------------------------------------------------------------------
def test_the_retry_delay_grows_with_the_receive_count_up_to_its_cap() -> None:
    policy = RetryPolicy(delay=30, multiplier=2, max_delay=100)
    assert [policy.delay_for(n) for n in (0, 1, 2, 3, 4, 1000)] == [30, 30, 60, 100, 100, 100]
    assert RetryPolicy(delay=10).delay_for(7) == 10 and RetryPolicy().delay_for(3) == 0
    assert RetryPolicy(delay=1.5, multiplier=3, max_delay=None).delay_for(3) == 14  # ceil(13.5)


def test_a_release_hides_each_message_for_its_own_delay() -> None:
    steps: list[Any] = []
    tallies: Counter[str] = Counter()
    messages = [msg(1, count=1), msg(2, count=3), msg(3, count=1)]
    released, _ = drive(
        lifecycle.release(messages, "q", RetryPolicy(delay=10, multiplier=2, max_delay=3600)),
        lambda s: steps.append(s) or list(s.messages),
        tallies,
    )
    assert [(s.timeout, [m.id for m in s.messages]) for s in steps] == [(10, ["m1", "m3"]), (40, ["m2"])]
    assert len(released) == 3 and tallies == Counter({"messages.released": 3})


def test_a_stopped_consumer_s_batch_comes_back_after_the_retry_delay() -> None:
    flow = poll_flow(options(retry=RetryPolicy(delay=60)))
    flow.send(None)
    deliver = skip_tallies(flow, flow.send([msg(1), msg(2)]))
    release = flow.throw(ConsumerStopped(deliver.messages))
    assert isinstance(release, SetVisibility) and release.timeout == 60


def test_an_oversize_delivery_comes_back_after_the_retry_delay() -> None:
    steps: list[Any] = []
    flow = collect_flow(options(num_messages=2, max_bytes=10, retry=RetryPolicy(delay=5)))
    with pytest.raises(DeliveryTooLarge):
        drive(flow, lambda s: steps.append(s) or Script([msg(1, "x" * 20)])(s))
    assert [s.timeout for s in steps if isinstance(s, SetVisibility)] == [5]


# -- redrive_flow -------------------------------------------------------------------------------------------
def test_a_redrive_deletes_only_what_the_source_queue_took_and_stops_when_nothing_new_comes() -> None:
    tallies: Counter[str] = Counter()
    receives = [[msg(1), msg(2), msg(3)], [msg(2, receipt="r2")], []]
    deleted: list[str] = []

    def answer(step: Any) -> Any:
        if isinstance(step, Receive):
            return receives.pop(0)
        if isinstance(step, Redrive):
            assert step.queue == "orders"
            return [f"new-{m.id}" if m.id != "m2" else None for m in step.messages]  # orders refuses m2
        if isinstance(step, Delete):
            deleted.extend(m.id for m in step.messages)
            return [True] * len(step.messages)
        raise AssertionError(step)

    results, _ = drive(
        redrive_flow(None, "orders", options(queue="orders-poison", batch_size=100, visibility_timeout=60)), answer,
        tallies,
    )  # fmt: skip
    assert [(r.message.id, r.new_id, r.deleted) for r in results] == [
        ("m1", "new-m1", True), ("m2", None, False), ("m3", "new-m3", True),
    ]  # fmt: skip
    assert deleted == ["m1", "m3"] and tallies == Counter({"messages.redriven": 2})


def test_a_redrive_moves_at_most_max_messages() -> None:
    got = [[msg(i) for i in range(5)]]

    def answer(step: Any) -> Any:
        if isinstance(step, Receive):
            assert step.max_messages <= 3
            return got.pop(0)[: step.max_messages] if got else []
        if isinstance(step, Redrive):
            return ["id"] * len(step.messages)
        return [True] * len(step.messages)

    results, _ = drive(redrive_flow(3, "q", options(queue="dlq", batch_size=100, visibility_timeout=60)), answer)
    assert len(results) == 3


# -- the scenarios again, through a driver over a scripted transport ----------------------------------------
class ScriptedTransport:
    """A transport that answers from lists and records every request (no service, no network)."""

    delete_chunk_size = 10
    visibility_chunk_size = 10
    receive_chunk_size = 10
    late_delete_uncertain = True  # as on SQS: the driver times each delete's answer
    redrive = None

    def __init__(self, *receives: list[Message]) -> None:
        self.receives = list(receives)
        self.requests: list[tuple[str, Any]] = []

    def receive(self, max_messages: int, visibility_timeout: int, wait_seconds: int) -> list[Message]:
        self.requests.append(("receive", max_messages))
        got = self.receives.pop(0) if self.receives else []
        return got[: min(max_messages, self.receive_chunk_size)]

    def delete_batch(self, messages: Any) -> list[bool]:
        self.requests.append(("delete", [(m.id, m.receipt) for m in messages]))
        return [True] * len(messages)

    def set_visibility_batch(self, messages: Any, timeout: int) -> list[Message | None]:
        self.requests.append(("visibility", ([m.id for m in messages], timeout)))
        return list(messages)

    def of(self, kind: str) -> list[Any]:
        return [what for name, what in self.requests if name == kind]


def test_a_driver_fans_a_full_receive_out_into_concurrent_requests_of_the_service_limit() -> None:
    from fluke_airflow.queues.drivers import SyncDriver

    transport = ScriptedTransport(
        [msg(i) for i in range(10)], [msg(i) for i in range(10, 20)], [msg(i) for i in range(20, 25)]
    )
    driver = SyncDriver(transport, max_concurrency=4)  # type: ignore[arg-type]
    try:
        opts = options(batch_size=25, num_messages=25, per_request=10)
        batches = list(driver.iterate(poll_flow(opts)))
    finally:
        driver.close()
    assert [[m.id for m in b] for b in batches] == [[f"m{i}" for i in range(25)]]
    # One receive for the whole batch (the service gives at most 10), then the other 15 in two
    # concurrent requests (10 + 5); answered in whatever order the pool ran them.
    receives = transport.of("receive")
    assert receives[0] == 25 and sorted(receives[1:]) == [5, 10]
    assert [len(d) for d in transport.of("delete")] == [10, 10, 5]


def test_a_driver_whose_consumer_stops_releases_the_batch_and_deletes_nothing() -> None:
    from fluke_airflow.queues.drivers import SyncDriver

    transport = ScriptedTransport([msg(1), msg(2)], [msg(3)])
    driver = SyncDriver(transport, max_concurrency=1)  # type: ignore[arg-type]
    iteration = driver.iterate(poll_flow(options()))
    assert [m.id for m in next(iteration)] == ["m1", "m2"]
    iteration.close()  # the consumer stops mid-batch (a task killed, a loop broken out of)
    assert transport.of("visibility") == [(["m1", "m2"], 0)]
    assert transport.of("delete") == [] and transport.of("receive") == [2]


def test_a_redelivery_within_a_poll_batch_is_deleted_with_its_newest_receipt() -> None:
    from fluke_airflow.queues.drivers import SyncDriver

    # The visibility timeout ran out while the batch was being gathered: m2 came back with a new receipt.
    transport = ScriptedTransport([msg(1), msg(2)], [msg(2, receipt="r2"), msg(3)], [])
    driver = SyncDriver(transport, max_concurrency=1)  # type: ignore[arg-type]
    batches = list(driver.iterate(poll_flow(options(batch_size=5))))
    assert [[m.id for m in b] for b in batches] == [["m1", "m2", "m3"]]
    assert transport.of("delete") == [[("m1", "r1"), ("m2", "r2"), ("m3", "r1")]]


def test_without_fifo_blocking_a_short_receive_ends_the_poll() -> None:
    """The counterpart of test_held_fifo_messages_do_not_end_the_poll_early: on a standard queue
    (held_messages_block=False) the same answers end the poll after the first short batch."""
    script = Script([msg(1)], [], [msg(2)], [], [])
    _, steps = drive(
        poll_flow(options(batch_size=5)), lambda s: list(s.messages) if isinstance(s, Deliver) else script(s)
    )
    assert [[m.id for m in s.messages] for s in steps if isinstance(s, Deliver)] == [["m1"]]
    assert script.receives == [[msg(2)], [], []]  # m2 was never asked for


def test_a_fifo_group_blocked_by_a_held_batch_is_received_once_that_batch_is_deleted() -> None:
    """Through the driver: m2 (m1's group) comes only after m1's delete; the poll waits for it."""
    from fluke_airflow.queues.drivers import SyncDriver

    class Fifo(ScriptedTransport):
        """One message group, m1 then m2: m2 is locked while m1 is in flight (received, not deleted)."""

        def __init__(self) -> None:
            super().__init__()
            self.given: list[str] = []

        def receive(self, max_messages: int, visibility_timeout: int, wait_seconds: int) -> list[Message]:
            self.requests.append(("receive", max_messages))
            deleted = {i for d in self.of("delete") for i, _ in d}
            if not self.given:
                self.given.append("m1")
                return [msg(1)]
            if "m1" not in deleted or "m2" in self.given:
                return []  # the group is locked by m1, or has nothing more
            self.given.append("m2")
            return [msg(2)]

    transport = Fifo()
    driver = SyncDriver(transport, max_concurrency=1)  # type: ignore[arg-type]
    batches = list(driver.iterate(poll_flow(options(batch_size=5, held_messages_block=True))))
    assert [[m.id for m in b] for b in batches] == [["m1"], ["m2"]]
    assert [[i for i, _ in d] for d in transport.of("delete")] == [["m1"], ["m2"]]


def test_an_oversize_sensor_delivery_through_a_driver_releases_everything_and_deletes_nothing() -> None:
    from fluke_airflow.queues.drivers import SyncDriver

    transport = ScriptedTransport([msg(1, "x" * 600), msg(2, "y" * 600)])
    driver = SyncDriver(transport, max_concurrency=1)  # type: ignore[arg-type]
    flow = collect_flow(options(num_messages=2, pre_delivery_delete=True, max_bytes=1000))
    with pytest.raises(DeliveryTooLarge):
        driver.run(flow)
    assert transport.of("delete") == [] and transport.of("visibility") == [(["m1", "m2"], 0)]
