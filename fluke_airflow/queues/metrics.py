"""What every queue counts, sent through Airflow's own stats client.

Airflow configures one stats client per process (StatsD, Datadog or OpenTelemetry, from its
``[metrics]`` section) in the worker's task runner, the triggerer and the other components.
These metrics go through it, so they reach wherever the deployment's metrics go, with no
client of our own. They are emitted where the requests are made (the queue drivers) and where
the queue rules decide a message's fate (the flows' :class:`~fluke_airflow.queues.flows.Tally`
steps), so ``poll`` in a task, the sensor and the trigger all count the same way.

Every metric carries the tags ``service`` (``sqs`` or ``azure``), ``queue`` and, for queues a
hook opened, ``conn_id``. Plain StatsD has no tags: set ``[fluke_airflow] metrics_queue_in_name``
to put service and queue into the names instead (``fluke_airflow.messages.received.sqs.orders``).

Each queue also keeps its own running totals (:meth:`QueueMetrics.totals`), which a watcher's
periodic health line reports.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

log = logging.getLogger("fluke_airflow.queues")

PREFIX = "fluke_airflow"

RECEIVED = "messages.received"
DELIVERED = "messages.delivered"
DELETED = "messages.deleted"
DELETE_FAILED = "messages.delete_failed"
LATE_DELETE = "messages.late_delete"
RELEASED = "messages.released"
DEAD_LETTERED = "messages.dead_lettered"
FILTERED_OUT = "messages.filtered_out"
PUSHED = "messages.pushed"
PUSH_FAILED = "messages.push_failed"
REDRIVEN = "messages.redriven"
RECEIVE_ERRORS = "receive.errors"
RECEIVE_STALLED = "receive.stalled"
IN_FLIGHT = "messages.in_flight"
OLDEST_AGE = "messages.oldest_age"
CONSUMERS_UNKNOWN = "consumers.unknown"
CONSUMERS_STALLED = "consumers.stalled"
HANDOFF = "handoff"
"""Every metric's name (after :data:`PREFIX`), once: the code counts with these constants only."""

COUNTERS: dict[str, str] = {
    RECEIVED: "messages a receive returned (a message handed out again counts again)",
    DELIVERED: "messages handed to the consumer: your poll loop, the sensor's XCom, a trigger's event",
    DELETED: "messages deleted (after delivery, before it with pre_delivery_delete, or by a rule)",
    DELETE_FAILED: "deletes the service refused or that failed; those messages come back",
    LATE_DELETE: "deletes answered after the message's visibility deadline (SQS): the service may not have "
    "deleted them; with pre_delivery_delete they were not delivered",
    RELEASED: "messages made visible again because their consumer failed or stopped",
    DEAD_LETTERED: "messages moved to a dead-letter or poison queue",
    FILTERED_OUT: "messages no filter took (left, deleted or dead-lettered as unmatched says)",
    PUSHED: "messages the service accepted from push/push_many",
    PUSH_FAILED: "messages the service refused",
    REDRIVEN: "messages moved back from a dead-letter queue to their source queue",
    RECEIVE_ERRORS: "receive requests that failed (after the SDK's own retries)",
    RECEIVE_STALLED: "receives a watcher gave up on because they did not answer in time",
}
"""Counter names (after :data:`PREFIX`) and what they count: the docs' table is made from this."""
GAUGES: dict[str, str] = {
    IN_FLIGHT: "messages a watcher has received and holds hidden until Airflow stores their events",
    OLDEST_AGE: "seconds since the oldest message of the last non-empty receive was sent",
    CONSUMERS_UNKNOWN: "DAGs of a watcher's dag_ids that do not exist in Airflow (left out of its pacing)",
    CONSUMERS_STALLED: "DAGs of a watcher's dag_ids that started no run for its last event and have none queued "
    "or running (paused, not scheduled on its asset, or waiting for other assets)",
}
TIMERS: dict[str, str] = {
    HANDOFF: "from the receive of the oldest message in a delete request to that delete",
}


class _Stats:
    """Airflow's stats functions, found once (their home moved between Airflow releases)."""

    def __init__(self) -> None:
        self._api: Any = None
        self._disabled = False

    def api(self) -> Any:
        if self._api is None and not self._disabled:
            try:
                from airflow.sdk.observability import stats  # Airflow 3.2+

                self._api = stats
            except ImportError:
                try:
                    from airflow.stats import Stats  # Airflow 3.0 and 3.1

                    self._api = Stats
                except ImportError:  # the queue classes used outside Airflow
                    self._disabled = True
        return self._api

    def send(self, kind: str, name: str, value: Any, tags: Mapping[str, str]) -> None:
        api = self.api()
        if api is None:
            return
        try:
            getattr(api, kind)(name, value, tags=dict(tags))
        except Exception as error:  # a metrics backend must never break a queue
            log.debug("Could not emit metric %s: %s", name, error)


STATS = _Stats()


def _queue_in_name() -> bool:
    try:
        from fluke_airflow._airflow import conf
    except ImportError:
        return False
    try:
        return conf.getboolean("fluke_airflow", "metrics_queue_in_name", fallback=False)
    except Exception:
        return False


def _name_part(value: str) -> str:
    """A tag value as one part of a dotted StatsD name (a queue URL or ``.fifo`` keeps no dots)."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in value)


class QueueMetrics:
    """The metrics of one queue object: tags, names, and running totals."""

    def __init__(self, service: str, queue: str, tags: Mapping[str, str] | None = None) -> None:
        self.tags: dict[str, str] = {"service": service, "queue": queue, **(tags or {})}
        self._suffix = f".{_name_part(service)}.{_name_part(queue)}" if _queue_in_name() else ""
        self._totals: Counter[str] = Counter()
        self.last_receive: float | None = None
        """``time.time()`` of the last receive that succeeded (empty or not)."""

    def add_tags(self, **tags: str) -> None:
        self.tags.update(tags)

    def _name(self, name: str) -> str:
        return f"{PREFIX}.{name}{self._suffix}"

    def count(self, name: str, n: int = 1) -> None:
        if n <= 0:
            return
        self._totals[name] += n
        STATS.send("incr", self._name(name), n, self.tags)

    def gauge(self, name: str, value: float) -> None:
        STATS.send("gauge", self._name(name), value, self.tags)

    def timing(self, name: str, seconds: float) -> None:
        STATS.send("timing", self._name(name), timedelta(seconds=max(0.0, seconds)), self.tags)

    def totals(self) -> Counter[str]:
        """Everything counted so far (for a watcher's health line)."""
        return Counter(self._totals)

    # -- what the drivers report -----------------------------------------------------------------
    def received(self, messages: Sequence[Any]) -> None:
        now = time.time()
        self.last_receive = now
        if not messages:
            return
        self.count(RECEIVED, len(messages))
        sent = [m.sent_at for m in messages]
        known = [s.timestamp() for s in sent if s is not None]
        if known:
            self.gauge(OLDEST_AGE, round(max(0.0, now - min(known)), 3))

    def deleted(self, messages: Sequence[Any], results: Sequence[bool]) -> None:
        done = [m for m, ok in zip(messages, results, strict=False) if ok]
        self.count(DELETED, len(done))
        self.count(DELETE_FAILED, len(results) - len(done))
        stamps = [m.received_at for m in done if m.received_at]
        if stamps:
            self.timing(HANDOFF, time.time() - min(stamps))

    def pushed(self, results: Sequence[str | None]) -> None:
        ok = sum(1 for r in results if r)
        self.count(PUSHED, ok)
        self.count(PUSH_FAILED, len(results) - ok)
