"""What a cancelled poll releases (issue 20), on its own: :func:`tracked` keeps account of a flow's
messages step by step (scripted results, no emulator). The releases themselves, against the
emulators: tests/triggers/test_release_on_cancel.py."""

from __future__ import annotations

from typing import Any

import pytest

from fluke_airflow.polling.deliveries import Held, tracked
from fluke_airflow.queues.flows import (
    DeadLetter,
    Delete,
    Overlap,
    Receive,
    SetVisibility,
    Tally,
    collect_flow,
    gather_flow,
)
from fluke_airflow.queues.message import Message

pytestmark = pytest.mark.unit


def msg(i: int) -> Message:
    return Message(id=f"m{i}", body=f"body-{i}", receipt=f"r{i}", receive_count=1)


def test_a_flow_holds_what_it_received_until_it_settles_it() -> None:
    held = Held()
    flow = tracked(iter_steps(), held)
    assert isinstance(next(flow), Receive)
    assert isinstance(flow.send([msg(1), msg(2), msg(3), msg(4)]), Delete) and len(held) == 4
    assert isinstance(flow.send([True, False]), SetVisibility)  # m1 deleted; m2's delete failed
    assert {m.id for m in held.messages} == {"m2", "m3", "m4"}
    assert isinstance(flow.send([msg(3)]), DeadLetter)  # m3 released
    assert isinstance(flow.send([True]), Overlap)  # m4 copied to the dead-letter queue
    assert {m.id for m in held.messages} == {"m2"}
    with pytest.raises(StopIteration) as done:
        flow.send([[msg(5)], [False]])  # Overlap: a receive brought m5; m2's delete failed again
    assert done.value.value == [msg(5)]
    assert [m.id for m in held.messages] == ["m5"]  # what it returned; m2 is the flow's decision now


def iter_steps() -> Any:
    got = yield Receive(10, 30, 1)
    yield Delete((got[0], got[1]))
    yield SetVisibility((got[2],), 0)
    yield DeadLetter((got[3],), "dlq")
    more = yield Overlap((Receive(10, 30, 0), Delete((got[1],))))
    return more[0]


def test_a_gathering_batch_is_held_and_its_long_poll_is_known() -> None:
    held = Held()
    clock = iter([0.0, 0.0]).__next__
    flow = tracked(gather_flow(10, queue="q", visibility_timeout=30, wait_seconds=20, window=5, clock=clock,
                               max_bytes=1 << 20, per_request=10), held)  # fmt: skip
    first = next(flow)
    assert isinstance(first, Receive) and first.wait_seconds == 20 and held.long_poll_ends is not None
    fill = flow.send([msg(1), msg(2)])
    assert isinstance(fill, Receive) and fill.wait_seconds == 0 and held.long_poll_ends is None
    assert len(held) == 2
    window = flow.send([])
    assert isinstance(window, Receive) and window.wait_seconds == 5  # the window's long poll
    assert held.long_poll_ends is not None and len(held) == 2  # cancelled here: two to release, after its wait


def test_pre_delivery_deletes_leave_nothing_to_release() -> None:
    held = Held()
    flow = tracked(collect_flow(10, queue="q", visibility_timeout=30, wait_seconds=0, pre_delivery_delete=True,
                                per_request=10), held)  # fmt: skip
    assert isinstance(next(flow), Receive)
    assert isinstance(flow.send([msg(1), msg(2)]), Receive)
    assert isinstance(flow.send([]), Delete)
    assert isinstance(flow.send([True, True]), Tally)  # deleted: not to be released
    with pytest.raises(StopIteration):
        flow.send(None)
    assert len(held) == 0


def test_held_reports_its_count_when_it_changes() -> None:
    seen: list[int] = []
    held = Held(seen.append)
    held.keep([msg(1), msg(2)])
    held.keep([msg(2)])  # handed out again: still one message
    held.settle([msg(1)])
    held.only([msg(2), msg(3)])  # m3 was never held
    held.handed_on()
    assert seen == [2, 1, 0]
