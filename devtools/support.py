"""What the test suites, the chaos scenarios, the benchmarks and the demo share: fresh queue names and
bounded waits. Here, not in ``tests/``, because ``bench`` and ``devtools`` must not import the tests.

A bounded wait is a bound on waiting, never an assertion on time: :func:`wait_until` returns as soon
as its probe says yes, whatever the machine's load, and fails only once ``timeout`` has passed, with
what it waited for and the last value the probe returned (so the failure says how far it got).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def fresh_name(prefix: str = "q") -> str:
    """A queue name no test has used, valid on both services (Azure: lowercase letters, digits and
    single hyphens, 3 to 63 characters; SQS: letters, digits, hyphens and underscores up to 80)."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


class WaitTimeout(AssertionError):
    """A bounded wait ran out: what it waited for did not happen within its ``timeout``."""


_NOTHING = object()


class _Deadline:
    """The bookkeeping both waits share: the deadline, the last value and error, the failure."""

    def __init__(self, what: str, timeout: float) -> None:
        self.what, self.timeout = what, timeout
        self.deadline = time.monotonic() + timeout
        self.last: Any = _NOTHING
        self.error: BaseException | None = None

    def passed(self) -> bool:
        return time.monotonic() > self.deadline

    def message(self) -> str:
        seen = "the probe never returned" if self.last is _NOTHING else f"the last value seen: {self.last!r}"
        error = f"; the last error: {self.error!r}" if self.error is not None else ""
        return f"gave up after {self.timeout:g}s waiting for {self.what}; {seen}{error}"


def wait_until(
    probe: Callable[[], T | None],
    *,
    what: str,
    timeout: float = 60.0,
    interval: float = 0.2,
    retry_on: tuple[type[BaseException], ...] = (),
    failure: Callable[[str], BaseException] = WaitTimeout,
) -> T:
    """Call ``probe`` every ``interval`` seconds until it returns something truthy, and return that.

    ``what``: what is waited for, as the failure message completes "waiting for ...". ``retry_on``:
    errors of the probe that mean "not yet" (a server that is restarting); any other error ends
    the wait at once. After ``timeout`` seconds, ``failure(message)`` is raised (:class:`WaitTimeout`
    unless the caller's failures have a type of their own).
    """
    deadline = _Deadline(what, timeout)
    while True:
        try:
            value = probe()
        except retry_on as error:
            deadline.error = error
        else:
            if value:
                return value
            deadline.last = value
        if deadline.passed():
            raise failure(deadline.message())
        time.sleep(interval)


async def wait_until_async(
    probe: Callable[[], T | None],
    *,
    what: str,
    timeout: float = 60.0,
    interval: float = 0.2,
    blocking: bool = True,
) -> T:
    """:func:`wait_until` for a test on the event loop, which keeps running while it waits.

    ``blocking``: the probe does I/O (asks an emulator, reads a log) and runs on a worker thread
    (``asyncio.to_thread``); ``False``: it only reads state the loop owns, and runs on the loop.
    """
    deadline = _Deadline(what, timeout)
    while True:
        value = await asyncio.to_thread(probe) if blocking else probe()
        if value:
            return value
        deadline.last = value
        if deadline.passed():
            raise WaitTimeout(deadline.message())
        await asyncio.sleep(interval)
