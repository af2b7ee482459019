"""devtools/support.py: the one fresh name and the one bounded wait (blocking and asyncio) that the
tests, the chaos scenarios, the benchmarks and the demo share. No clock in these tests: a wait that
must fail has ``timeout=0`` (it fails after its first probe), one that must succeed has time to spare."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable

import pytest

from devtools import support
from devtools.support import WaitTimeout, fresh_name, wait_until, wait_until_async

pytestmark = pytest.mark.unit


def counting(values: list[object]) -> Callable[[], object]:
    """A probe that returns ``values`` one after the other (the last one from then on)."""
    calls = iter(values)
    last: list[object] = [None]

    def probe() -> object:
        last[0] = next(calls, last[0])
        return last[0]

    return probe


def test_a_fresh_name_is_valid_on_both_services_and_new_each_time() -> None:
    names = {fresh_name("orders") for _ in range(100)}
    assert len(names) == 100
    # Azure: 3-63 characters, lowercase letters, digits and single hyphens, starting with a letter or digit.
    assert all(re.fullmatch(r"[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]", n) for n in names), names
    assert fresh_name().startswith("q-")


def test_wait_until_returns_the_probes_first_truthy_value() -> None:
    assert wait_until(counting([None, 0, [], "found"]), what="a value", interval=0) == "found"


def test_wait_until_says_what_it_waited_for_and_the_last_value_seen() -> None:
    with pytest.raises(WaitTimeout) as caught:
        wait_until(counting([{}]), what="the queue to be empty", timeout=0)
    assert str(caught.value) == "gave up after 0s waiting for the queue to be empty; the last value seen: {}"
    assert isinstance(caught.value, AssertionError), "a test that waits in vain fails, as an assertion would"


def test_an_error_of_the_probe_ends_the_wait_unless_the_caller_retries_on_it() -> None:
    def refused() -> bool:
        raise ConnectionRefusedError("not up yet")

    with pytest.raises(ConnectionRefusedError):
        wait_until(refused, what="the server", timeout=60)

    calls = iter([ConnectionRefusedError("not up yet"), False, "up"])

    def starting() -> object:
        value = next(calls)
        if isinstance(value, Exception):
            raise value
        return value

    assert wait_until(starting, what="the server", interval=0, retry_on=(OSError,)) == "up"


def test_a_wait_that_retried_shows_the_last_value_and_the_last_error(monkeypatch: pytest.MonkeyPatch) -> None:
    ticks = iter(range(100))  # a clock that moves one second per reading, and sleeps that take no time
    monkeypatch.setattr(support.time, "monotonic", lambda: float(next(ticks)))
    monkeypatch.setattr(support.time, "sleep", lambda seconds: None)
    calls = iter([ConnectionRefusedError("not up yet"), False])

    def flaky() -> object:
        value = next(calls)
        if isinstance(value, Exception):
            raise value
        return value

    with pytest.raises(WaitTimeout) as caught:
        wait_until(flaky, what="the server", timeout=1.5, retry_on=(OSError,))
    assert str(caught.value) == (
        "gave up after 1.5s waiting for the server; the last value seen: False; "
        "the last error: ConnectionRefusedError('not up yet')"
    )


def test_a_probe_that_only_ever_failed_says_so() -> None:
    def refused() -> bool:
        raise ConnectionRefusedError("not up yet")

    with pytest.raises(WaitTimeout, match=r"the probe never returned; the last error: ConnectionRefusedError"):
        wait_until(refused, what="the server", timeout=0, retry_on=(OSError,))


def test_a_caller_can_fail_with_its_own_type() -> None:
    class StackError(RuntimeError):
        pass

    with pytest.raises(StackError, match="waiting for the DAGs"):
        wait_until(counting([None]), what="the DAGs", timeout=0, failure=StackError)


async def test_the_asyncio_wait_probes_off_the_loop_by_default_and_keeps_the_loop_running() -> None:
    loop_thread = threading.get_ident()
    threads: list[int] = []
    ticks = 0

    async def ticking() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    def probe() -> int:
        threads.append(threading.get_ident())
        return ticks if ticks >= 3 else 0  # true only once the loop ran meanwhile

    ticker = asyncio.ensure_future(ticking())
    try:
        assert await wait_until_async(probe, what="the loop to tick", interval=0) >= 3
    finally:
        ticker.cancel()
    assert loop_thread not in threads


async def test_the_asyncio_wait_can_probe_on_the_loop_and_fails_like_the_blocking_one() -> None:
    loop_thread = threading.get_ident()
    threads: list[int] = []

    def probe() -> list[str]:
        threads.append(threading.get_ident())
        return []

    with pytest.raises(WaitTimeout, match=r"^gave up after 0s waiting for an event; the last value seen: \[\]$"):
        await wait_until_async(probe, what="an event", timeout=0, blocking=False)
    assert threads == [loop_thread]
