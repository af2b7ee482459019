"""How long the SDKs may retry a request, and what they did: the per-call record behind an error
that says "after 3 retries over 84 s", and the limit that keeps a sensor within its timeout.

Both SDKs retry on their own (botocore: up to 5 attempts; the Azure storage SDK: 3 retries 18 s,
24 s and 42 s apart, give or take 3 s). Their exceptions do not say how often they tried, and they know nothing of
a task's timeout. So every request a transport makes runs inside :func:`tracked`, which puts an
:class:`Attempts` record into a context variable, and hooks that the auth installs on every
client read and fill it:

* botocore: handlers on ``before-call`` and ``before-send`` count calls and attempts, and a
  ``needs-retry`` handler that runs before botocore's own refuses a retry that could start after
  the deadline (``False`` from the first handler stops botocore's retrying);
* Azure: a subclass of the storage SDK's ``ExponentialRetry`` (blocking and asyncio) that counts
  the retries it allows and refuses one whose backoff would end after the deadline.

A context variable, because one client serves many queues at once (the triggerer shares one per
connection) and the blocking drivers send from worker threads: the record belongs to the call
being made, in the thread or task making it. Outside :func:`tracked` the hooks do nothing.

The deadline is the earlier of ``budget`` seconds from the start of the call (the connection
extra ``retry_budget_seconds``) and what the task has left (a sensor's ``timeout``, a task's
``execution_timeout``). No retry starts after it; the first attempt always goes out. So a call
ends within the deadline plus one request, and that request's connection attempt is also
bounded by what is left (:meth:`RetryLimit.connect_timeout`).
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

BUDGET_EXTRA = "retry_budget_seconds"
"""The connection extra that bounds the SDK's retries of one request, in seconds."""
_BOTOCORE_MAX_BACKOFF = 20.0
"""botocore's longest pause between two attempts (standard and legacy modes)."""


@dataclass(frozen=True)
class Deadline:
    """A point on ``time.monotonic()``'s clock by which a task must be done, and why."""

    at: float
    reason: str
    """What sets it, for the error: ``"the sensor's timeout of 30 s"``."""

    @classmethod
    def within(cls, seconds: float, reason: str) -> Deadline:
        return cls(time.monotonic() + seconds, reason)

    def left(self) -> float:
        return self.at - time.monotonic()


@dataclass(frozen=True)
class RetryLimit:
    """What bounds the SDK's retries of one request: ``budget`` seconds from its start, and a
    task's ``deadline``; ``None`` leaves the SDK's own limits alone."""

    budget: float | None = None
    deadline: Deadline | None = None

    def for_call(self) -> Deadline | None:
        """The deadline of a call that starts now."""
        budget = (
            Deadline.within(self.budget, f"the connection's {BUDGET_EXTRA}={self.budget:g}")
            if self.budget is not None
            else None
        )
        if budget is None or (self.deadline is not None and self.deadline.at < budget.at):
            return self.deadline
        return budget

    def budget_only(self) -> RetryLimit:
        """The limit without the task's deadline: for requests that change what was already
        received (deletes, visibility changes), which a sensor's timeout must not cut short."""
        return RetryLimit(self.budget) if self.deadline is not None else self

    def connect_timeout(self, default: float) -> float:
        """The SDK's connect timeout, no longer than what is left (at least one second)."""
        deadline = self.for_call()
        if deadline is None:
            return default
        return max(1.0, min(default, deadline.left()))


NO_LIMIT = RetryLimit()


def check_budget(value: Any, conn_id: str | None) -> float | None:
    """The ``retry_budget_seconds`` extra as a number of seconds, or a clear error."""
    if value in (None, ""):
        return None
    where = f"The connection {conn_id!r}" if conn_id else "The connection"
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = float("nan")
    if not seconds > 0 or seconds == float("inf") or isinstance(value, bool):
        raise ValueError(
            f"{where} has {BUDGET_EXTRA}={value!r} in its extra: give a number of seconds greater than 0 "
            "(how long the SDK may retry one request), or leave it out for the SDK's own retry limits"
        )
    return seconds


RetryNote = Callable[["Attempts", Any, "float | None"], None]
"""Called when the SDK is about to retry: the record, the error or answer it retries, the pause."""


@dataclass
class Attempts:
    """What the SDK did for one tracked request (or the requests of one step, e.g. opening)."""

    deadline: Deadline | None = None
    on_retry: RetryNote | None = None
    started: float = field(default_factory=time.monotonic)
    retries: int = 0
    """Attempts beyond the first of each SDK call."""
    stopped: bool = False
    """A retry was refused because it could start after :attr:`deadline`."""
    call_attempts: int = 0
    """Attempts of the current SDK call (botocore's counting)."""

    def seconds(self) -> float:
        return time.monotonic() - self.started

    def may_retry(self, pause: float) -> bool:
        """Whether a retry after ``pause`` seconds starts before the deadline; records a refusal."""
        if self.deadline is None or time.monotonic() + pause < self.deadline.at:
            return True
        self.stopped = True
        return False

    def note_retry(self, answer: Any, pause: float | None) -> None:
        self.retries += 1
        if self.on_retry is not None:
            self.on_retry(self, answer, pause)

    def summary(self) -> str:
        """``" after 2 retries over 3.1 s"``, what stopped them, or ``""`` when nothing was retried."""
        text = ""
        if self.retries:
            plural = "retry" if self.retries == 1 else "retries"
            text = f" after {self.retries} {plural} over {self.seconds():.1f} s"
        if self.stopped and self.deadline is not None:
            more = "no more retries" if self.retries else "not retried"
            text += f" ({more}: {self.deadline.reason} leaves no time for another attempt)"
        return text


_current: contextvars.ContextVar[Attempts | None] = contextvars.ContextVar("fluke_airflow_attempts", default=None)


def current() -> Attempts | None:
    """The record of the request being made in this thread or task, if it is tracked."""
    return _current.get()


@contextlib.contextmanager
def tracked(limit: RetryLimit | None = None, on_retry: RetryNote | None = None) -> Iterator[Attempts]:
    """Track the SDK calls made inside, bounded by ``limit``."""
    record = Attempts(deadline=(limit or NO_LIMIT).for_call(), on_retry=on_retry)
    token = _current.set(record)
    try:
        yield record
    finally:
        _current.reset(token)


# -- botocore -------------------------------------------------------------------------------------------
class _BotocoreHooks:
    """Event handlers for one botocore or aiobotocore client (see the module docstring)."""

    def __init__(self, max_attempts: int) -> None:
        from botocore.retries.standard import RetryEventAdapter, StandardRetryConditions

        self._max_attempts = max_attempts
        self._adapter = RetryEventAdapter()
        self._retryable = StandardRetryConditions(max_attempts=max_attempts)

    @staticmethod
    def before_call(**_: Any) -> None:
        record = _current.get()
        if record is not None:
            record.call_attempts = 0

    @staticmethod
    def before_send(**_: Any) -> None:
        record = _current.get()
        if record is not None:
            record.call_attempts += 1

    def needs_retry(self, attempts: int = 1, **kwargs: Any) -> bool | None:
        """``False`` (no retry) where a retry could start after the deadline; else ``None``,
        and botocore's own handler decides."""
        record = _current.get()
        if record is None or attempts >= self._max_attempts:
            return None
        response = kwargs.get("response")
        if kwargs.get("caught_exception") is None and response is not None and response[0].status_code < 300:
            return None  # an answer: nothing to retry (every request passes here)
        context = self._adapter.create_retry_context(attempts=attempts, **kwargs)
        if not self._retryable.is_retryable(context):
            return None
        # botocore pauses at most min(2 ** (attempts - 1), 20) s (plus up to 5 s more where the
        # service asks for it, which SQS does not): a retry is allowed only if it surely starts in time.
        if not record.may_retry(min(2.0 ** (attempts - 1), _BOTOCORE_MAX_BACKOFF)):
            return False
        record.note_retry(kwargs.get("caught_exception") or (response[1] if response else None), None)
        return None


def install_botocore(emitter: Any, service_event_name: str, max_attempts: int) -> None:
    """Register the handlers on a client's or session's event emitter (a session passes them on
    to the clients it creates). Idempotent."""
    hooks = _BotocoreHooks(max_attempts)
    emitter.register(f"before-call.{service_event_name}", hooks.before_call, unique_id="fluke-before-call")
    emitter.register(f"before-send.{service_event_name}", hooks.before_send, unique_id="fluke-before-send")
    emitter.register_first(f"needs-retry.{service_event_name}", hooks.needs_retry, unique_id="fluke-needs-retry")


def botocore_max_attempts(config: Any) -> int:
    """The attempts a botocore ``Config`` allows (5, this package's default, where it says nothing)."""
    retries = getattr(config, "retries", None) or {}
    if retries.get("total_max_attempts"):
        return int(retries["total_max_attempts"])
    if retries.get("max_attempts") is not None:
        return int(retries["max_attempts"]) + 1
    return 5


# -- Azure ------------------------------------------------------------------------------------------------
AZURE_RETRY_OPTIONS = (
    "retry_total",
    "retry_connect",
    "retry_read",
    "retry_status",
    "retry_to_secondary",
    "initial_backoff",
    "increment_base",
    "random_jitter_range",
)
"""Client options that configure the storage SDK's ``ExponentialRetry``."""
_AZURE_POLICIES: dict[bool, type] = {}


def _azure_policy_class(asynchronous: bool) -> type:
    if asynchronous not in _AZURE_POLICIES:
        if asynchronous:
            # The asyncio clients' default policy; the SDK exports it from this module only.
            from azure.storage.queue._shared.policies_async import ExponentialRetry as base
        else:
            from azure.storage.queue import ExponentialRetry as base  # type: ignore[assignment]

        class TrackedRetry(base):  # type: ignore[valid-type,misc]
            """``ExponentialRetry`` that counts its retries and refuses one that would start after
            the deadline (see :mod:`fluke_airflow.auth.retrying`)."""

            def increment(
                self, settings: dict[str, Any], request: Any, response: Any = None, error: Any = None
            ) -> bool:
                if not super().increment(settings, request, response=response, error=error):
                    return False
                record = _current.get()
                if record is None:
                    return True
                pause = super().get_backoff_time(settings)  # jittered: drawn once, used by sleep()
                settings["fluke_backoff"] = pause
                if not record.may_retry(pause):
                    return False
                record.note_retry(error if error is not None else response, pause)
                return True

            def get_backoff_time(self, settings: dict[str, Any]) -> float:
                drawn = settings.pop("fluke_backoff", None)
                return float(drawn) if drawn is not None else float(super().get_backoff_time(settings))

        _AZURE_POLICIES[asynchronous] = TrackedRetry
    return _AZURE_POLICIES[asynchronous]


def azure_retry_policy(asynchronous: bool, options: dict[str, Any]) -> Any:
    """The retry policy for an Azure queue client made with these client ``options``."""
    settings = {name: options[name] for name in AZURE_RETRY_OPTIONS if name in options}
    return _azure_policy_class(asynchronous)(**settings)
