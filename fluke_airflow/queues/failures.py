"""Turn an SDK error into an error a person can act on: the service, queue and connection, the
cause as the SDK saw it (secrets removed), how often it was tried, and what to check.

A transport keeps one :class:`Reporter` and runs each request inside :meth:`Reporter.tracked`,
which counts the SDK's retries, bounds them by the auth's
:class:`~fluke_airflow.auth.retrying.RetryLimit` and logs each retry at INFO, so that a request
the SDK retries for a minute is not a silent minute.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

from fluke_airflow.auth import retrying
from fluke_airflow.auth.retrying import NO_LIMIT, Attempts
from fluke_airflow.auth.source import IN_CODE, Source
from fluke_airflow.exceptions import QueueError, QueueNotFoundError, queue_failure
from fluke_airflow.queues.causes import Cause, cause_of

log = logging.getLogger("fluke_airflow.queues")

Advise = Callable[[Cause, Source, Any, str], str]


class Reporter:
    """The errors of one transport: ``service`` and ``queue``, the ``auth`` it uses (its
    :class:`~fluke_airflow.auth.source.Source` and retry limit), the ``endpoint`` URL it talks to
    (for host and port), and the service's ``advise`` function (:mod:`~fluke_airflow.queues.advice`)."""

    def __init__(self, service: str, queue: str, auth: Any, endpoint: str | None, advise: Advise) -> None:
        self.service = service
        self.queue = queue
        self.auth = auth
        self.endpoint = endpoint
        self.source: Source = getattr(auth, "source", IN_CODE)
        self._limit = getattr(auth, "retry_limit", NO_LIMIT)
        self._advise = advise
        self._notes: dict[str, retrying.RetryNote] = {}

    @contextlib.contextmanager
    def tracked(self, action: str, *, changes_state: bool = False) -> Iterator[Attempts]:
        """Count and bound the SDK's retries of the requests made inside. ``changes_state``:
        a delete or visibility change of received messages, which a task's timeout does not cut
        short (only the connection's budget does)."""
        limit = self._limit.budget_only() if changes_state else self._limit
        note = self._notes.get(action)
        if note is None:
            note = self._notes[action] = self._retrying(action)
        with retrying.tracked(limit, on_retry=note) as record:
            yield record

    def _retrying(self, action: str) -> retrying.RetryNote:
        def note(record: Attempts, answer: Any, pause: float | None) -> None:
            when = f" in {pause:.1f} s" if pause is not None else ""
            log.info(
                "%s: %s of queue %r%s failed (%s); retry %d%s",
                self.service, action, self.queue, self.source.where(), self.cause(answer).text,
                record.retries, when,
            )  # fmt: skip

        return note

    def cause(self, error: Any) -> Cause:
        return cause_of(error, self.endpoint)

    def describe(self, error: Any, action: str) -> str:
        """The cause and what to check, for a warning about one message."""
        cause = self.cause(error)
        return f"{cause.text}. {self._advise(cause, self.source, self.auth, action)}"

    def failure(self, action: str, error: Any, record: Attempts | None = None) -> QueueError:
        """The error to raise once the SDK gave up on ``action``."""
        cause = self.cause(error)
        failure = queue_failure(
            self.service,
            self.queue,
            action,
            cause.text,
            conn_id=self.source.conn_id,
            retried=record.summary() if record is not None else "",
            advice=self._advise(cause, self.source, self.auth, action),
        )
        failure.cause = cause
        failure.retries = record.retries if record is not None else None
        return failure

    def missing(self, error: Any) -> QueueNotFoundError:
        """The queue does not exist (or these credentials may not see it)."""
        cause = self.cause(error)
        advice = self._advise(cause, self.source, self.auth, "opening")
        missing = QueueNotFoundError(self.service, self.queue, f"{cause.text}. {advice}", conn_id=self.source.conn_id)
        missing.cause, missing.action = cause, "opening"
        return missing
