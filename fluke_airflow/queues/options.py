"""The one options object every flow takes: checked arguments in the form the rules read.

The arguments a user writes are declared once (:mod:`fluke_airflow.queues.arguments`) and checked
against the service by the queue (:meth:`~fluke_airflow.queues.base.QueueBase.delivery_options`);
what comes out is a :class:`DeliveryOptions`. Free of I/O.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace

from fluke_airflow.queues.filters import NO_FILTER, MessageFilter
from fluke_airflow.queues.steps import Renewal


@dataclass(frozen=True)
class RetryPolicy:
    """How long a released message stays hidden before it is delivered again: ``delay`` seconds,
    times ``multiplier`` for each earlier receive (Airflow's ``retry_delay`` and
    ``retry_exponential_backoff`` for task retries, with the receive count as try number), at most
    ``max_delay`` seconds. The default releases at once."""

    delay: float = 0.0
    multiplier: float = 1.0
    max_delay: float | None = None

    def delay_for(self, receive_count: int) -> int:
        if self.delay <= 0:
            return 0
        try:
            seconds = self.delay * self.multiplier ** max(0, receive_count - 1)
        except OverflowError:
            seconds = math.inf
        if self.max_delay is not None:
            seconds = min(seconds, self.max_delay)
        return math.ceil(seconds) if math.isfinite(seconds) else int(self.max_delay or 0)


@dataclass(frozen=True)
class DeliveryOptions:
    """What one poll, sensor delivery or watcher batch is asked for, checked.

    The service's facts that shape requests (``per_request``, ``long_polling``,
    ``held_messages_block``) come from the queue class, the rest from the declared arguments.
    """

    queue: str
    """The queue's name, for logs."""
    batch_size: int = 10
    num_messages: int | None = None
    polling_frequency: float | None = None
    pre_delivery_delete: bool = False
    visibility_timeout: int = 30
    wait_seconds: int = 1
    """The long-poll wait of a receive (0 where the service cannot wait)."""
    renewal: Renewal | None = None
    """Renew a delivered batch's visibility while the consumer holds it (None: do not)."""
    max_receive_count: int | None = None
    dead_letter_queue: str | None = None
    """Where poison (and, with ``unmatched='dead_letter'``, unmatched) messages go."""
    filter: MessageFilter = NO_FILTER
    unmatched: str = "leave"
    retry: RetryPolicy | None = None
    """When a batch the consumer did not finish comes back (None: at once)."""
    max_bytes: int | None = None
    """The most bytes of bodies in one delivery (None: no cap)."""
    window: float = 0.0
    """After a delivery's first message, keep gathering this many seconds (Lambda's batching window)."""
    per_request: int | None = None
    """The backend's receive limit: a full receive is followed by concurrent ones."""
    long_polling: bool = True
    """Whether a receive can wait at the service (SQS); otherwise an empty one is followed by a pause."""
    idle_sleep: float = 1.0
    """The pause after an empty receive while a window gathers, where the service cannot wait."""
    held_messages_block: bool = False
    """A receive can come back empty while messages wait, because the messages this poll holds
    block them (SQS FIFO: a message group is locked while any of its messages is in flight)."""
    level: int = logging.INFO
    """How loudly the poll logs its batches (DEBUG with ``suppress_output``)."""
    spared: frozenset[str] = frozenset()
    """Ids not to dead-letter for their receive count: a watcher's messages that came back while the
    consumer run of their earlier delivery is still going (a triggerer restart lost their receipts)."""

    @property
    def per_delivery(self) -> int:
        """Messages in one sensor or watcher delivery."""
        return self.num_messages or self.batch_size

    def but(self, **changes: object) -> DeliveryOptions:
        """These options with some changed (a watcher's one-message deliveries, a 0 s first wait)."""
        return replace(self, **changes)  # type: ignore[arg-type]
