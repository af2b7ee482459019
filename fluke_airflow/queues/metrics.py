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

COUNTERS: dict[str, str] = {
    "messages.received": "messages a receive returned (a message handed out again counts again)",
    "messages.delivered": "messages handed to the consumer: your poll loop, the sensor's XCom, a trigger's event",
    "messages.deleted": "messages deleted (after delivery, before it with pre_delivery_delete, or by a rule)",
    "messages.delete_failed": "deletes the service refused or that failed; those messages come back",
    "messages.released": "messages made visible again because their consumer failed or stopped",
    "messages.dead_lettered": "messages moved to a dead-letter or poison queue",
    "messages.filtered_out": "messages no filter took (left, deleted or dead-lettered as unmatched says)",
    "messages.pushed": "messages the service accepted from push/push_many",
    "messages.push_failed": "messages the service refused",
    "messages.redriven": "messages moved back from a dead-letter queue to their source queue",
    "receive.errors": "receive requests that failed (after the SDK's own retries)",
    "receive.stalled": "receives a watcher gave up on because they did not answer in time",
}
"""Counter names (after :data:`PREFIX`) and what they count: the docs' table is made from this."""
GAUGES: dict[str, str] = {
    "messages.in_flight": "messages a watcher has received and holds hidden until Airflow stores their events",
    "messages.oldest_age": "seconds since the oldest message of the last non-empty receive was sent",
}
TIMERS: dict[str, str] = {
    "handoff": "from the receive of the oldest message in a delete request to that delete",
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
        self.count("messages.received", len(messages))
        sent = [m.sent_at for m in messages]
        known = [s.timestamp() for s in sent if s is not None]
        if known:
            self.gauge("messages.oldest_age", round(max(0.0, now - min(known)), 3))

    def deleted(self, messages: Sequence[Any], results: Sequence[bool]) -> None:
        done = [m for m, ok in zip(messages, results, strict=False) if ok]
        self.count("messages.deleted", len(done))
        self.count("messages.delete_failed", len(results) - len(done))
        stamps = [m.received_at for m in done if m.received_at]
        if stamps:
            self.timing("handoff", time.time() - min(stamps))

    def pushed(self, results: Sequence[str | None]) -> None:
        ok = sum(1 for r in results if r)
        self.count("messages.pushed", ok)
        self.count("messages.push_failed", len(results) - ok)
