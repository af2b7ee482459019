"""The public queue classes' shared half: argument checks, logging and the flow plumbing.

A backend (``sqs.py``, ``azure.py``) supplies transports (:mod:`fluke_airflow.queues.transport`)
and its limits; everything a user calls is defined here once for the blocking classes and once
for the asyncio ones, and here it is decided which flow of :mod:`fluke_airflow.queues.flows`
serves a call.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator, Mapping, Sequence
from typing import Any, ClassVar, Generic, TypeVar

from fluke_airflow.exceptions import QueueClosedError
from fluke_airflow.queues import arguments, lifecycle
from fluke_airflow.queues import validation as check
from fluke_airflow.queues.drivers import AsyncDriver, AsyncHolding, Push, SyncDriver, SyncHolding
from fluke_airflow.queues.filters import MessageFilter
from fluke_airflow.queues.flows import Redriven, drain_flow, peek_by_receive_flow, poll_flow, redrive_flow
from fluke_airflow.queues.limits import PEEK_LIMIT
from fluke_airflow.queues.message import Message
from fluke_airflow.queues.metrics import QueueMetrics
from fluke_airflow.queues.options import DeliveryOptions, RetryPolicy
from fluke_airflow.queues.steps import Flow, Renewal, SetVisibility
from fluke_airflow.queues.transport import AsyncTransport, SyncTransport, TransportRules

log = logging.getLogger("fluke_airflow.queues")

AuthT = TypeVar("AuthT")

DEFAULT_VISIBILITY_TIMEOUT = 30
DEFAULT_MAX_CONCURRENCY = 10
"""Independent requests at once (SQS's default; Azure's queues take 16): ten, so that the nine
receives that fill a batch of 100, and its ten deletes, each go in one wave."""
PEEK_WAIT_SECONDS = 1


POSITIONAL = ("num_messages", "batch_size", "polling_frequency", "pre_delivery_delete")
"""The guide's poll arguments, which may also be given by position."""


class QueueBase(Generic[AuthT]):
    """What the blocking and asyncio queues share: configuration and input checks."""

    service: ClassVar[str]
    """The service's name, as it appears in logs and errors."""
    metrics_service: ClassVar[str]
    """The service as the ``service`` tag of the metrics: ``sqs`` or ``azure``."""
    poison_suffix: ClassVar[str | None] = None
    """Where ``max_receive_count`` without a ``dead_letter_queue`` moves messages: the queue's name
    plus this (Azure Functions' ``-poison``); None where a dead-letter queue must be named (SQS)."""
    max_visibility_timeout: ClassVar[int]
    """The largest visibility timeout one request may set."""
    min_visibility_timeout: ClassVar[int] = 0
    """The smallest visibility timeout a receive may set (Azure: 1)."""
    max_wait_seconds: ClassVar[int] = 20
    """The largest ``wait_time_seconds`` (SQS long polling; accepted and ignored on Azure)."""
    long_polling: ClassVar[bool] = False
    """Whether a receive can wait for messages at the service (SQS) or returns at once (Azure)."""
    max_hidden_seconds: ClassVar[int]
    """How long the service lets one delivery stay hidden in total (renewals stop there)."""
    receive_limit: ClassVar[int]
    """The most messages one receive request returns (SQS 10, Azure 32)."""
    has_message_attributes: ClassVar[bool] = False
    """Whether messages carry user attributes besides the body (SQS)."""
    receipts_survive_visibility_change: ClassVar[bool]
    """Whether a receipt still deletes its message after a visibility change (SQS). Azure hands out
    a new pop receipt instead and voids the old one: a holder of stored receipts must not renew."""

    def __init__(
        self,
        auth: AuthT,
        queue: str,
        *,
        suppress_output: bool = False,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        metric_tags: Mapping[str, str] | None = None,
    ) -> None:
        self._check_auth(auth)
        self._auth = auth
        self._queue = self._check_queue(check.non_empty_str("queue", queue))
        self._suppress_output = check.boolean("suppress_output", suppress_output)
        self._max_concurrency = check.integer("max_concurrency", max_concurrency, minimum=1, maximum=64)
        self._level = logging.DEBUG if suppress_output else logging.INFO
        self.metrics = QueueMetrics(self.metrics_service, self.get_name(), metric_tags)
        """What this queue counted (see :mod:`fluke_airflow.queues.metrics`)."""

    def _check_auth(self, auth: Any) -> None:
        raise NotImplementedError

    def _check_queue(self, queue: str) -> str:
        return queue

    def get_name(self) -> str:
        """The queue's name (for SQS the last part of a queue URL)."""
        return self._queue

    def check_visibility_timeout(self, value: Any, name: str = "visibility_timeout") -> int:
        """``value`` if this service accepts it as a receive's visibility timeout, else a clear error."""
        allowed = f" on {self.service}" if self.min_visibility_timeout else ""
        try:
            return check.integer(name, value, minimum=self.min_visibility_timeout, maximum=self.max_visibility_timeout)
        except ValueError as error:
            raise ValueError(f"{error}{allowed}") from None

    def _push_step(self, messages: Any, options: dict[str, Any], single: bool = False) -> Push:
        return Push(tuple(self._transport_rules().prepare(messages, options, single_message=single)))  # type: ignore[attr-defined]

    def _log_push(self, results: Sequence[str | None], level: int) -> None:
        failed = [i for i, ok in enumerate(results) if not ok]
        log.log(level, "Pushed %d of %d message(s) to %s queue %r", len(results) - len(failed), len(results),
                self.service, self._queue)  # fmt: skip
        if failed:
            log.warning(
                "%s queue %r did not accept the message(s) at position(s) %s", self.service, self._queue, failed
            )

    def _level_for(self, suppress_output: bool) -> int:
        return logging.DEBUG if suppress_output else self._level

    def poll_options(self, args: Sequence[Any] = (), given: Mapping[str, Any] | None = None) -> DeliveryOptions:
        """``poll``'s arguments (declared in :mod:`~fluke_airflow.queues.arguments`), checked."""
        values: dict[str, Any] = dict(given or {})
        if len(args) > len(POSITIONAL):
            raise TypeError(f"poll() takes at most {len(POSITIONAL)} positional arguments ({', '.join(POSITIONAL)})")
        for name, value in zip(POSITIONAL, args, strict=False):
            if name in values:
                raise TypeError(f"poll() got {name} both by position and by name")
            values[name] = value
        try:
            checked = arguments.check(arguments.POLL, values)
        except TypeError as error:
            raise TypeError(f"poll(): {error}") from None
        return self.delivery_options(checked)

    def delivery_options(self, values: Mapping[str, Any]) -> DeliveryOptions:
        """The one place where checked arguments (``poll``'s, or a sensor's or trigger's
        :class:`~fluke_airflow.queues.arguments.DeliverySettings`) meet this service's rules."""
        visibility = self.check_visibility_timeout(values["visibility_timeout"])
        receive_limit = values.get("max_receive_count")
        unmatched = values.get("unmatched", "leave")
        renew = values.get("heartbeat", True) and visibility > 0
        return DeliveryOptions(
            queue=self._queue,
            batch_size=values["batch_size"],
            num_messages=values.get("num_messages"),
            polling_frequency=values.get("polling_frequency"),
            pre_delivery_delete=values["pre_delivery_delete"],
            visibility_timeout=visibility,
            wait_seconds=values["wait_time_seconds"] if self.long_polling else 0,
            renewal=Renewal(visibility, self.max_hidden_seconds) if renew else None,
            max_receive_count=receive_limit,
            dead_letter_queue=self.dead_letter_target(receive_limit, values.get("dead_letter_queue"), unmatched),
            filter=self.message_filter(values),
            unmatched=unmatched,
            retry=self._retry_of(values),
            max_bytes=values.get("max_delivery_bytes"),
            window=values.get("max_batching_window", 0.0),
            per_request=self.receive_limit,
            long_polling=self.long_polling,
            idle_sleep=min(1.0, values.get("poke_interval", 1.0)),
            held_messages_block=self._held_messages_block(),
            level=logging.DEBUG if values.get("suppress_output") else self._level,
        )

    def _retry_of(self, values: Mapping[str, Any]) -> RetryPolicy | None:
        backoff = values.get("retry_exponential_backoff", False)
        return self.retry_policy(values.get("retry_delay", 0), backoff, values.get("max_retry_delay"))

    def retry_policy(self, delay: Any, backoff: Any, max_delay: Any) -> RetryPolicy | None:
        """The checked retry arguments as a policy (None: release at once). Delays are capped at the
        service's longest visibility timeout."""
        longest = float(self.max_visibility_timeout)
        seconds = check.seconds("retry_delay", delay, maximum=longest)
        multiplier = check.backoff_multiplier("retry_exponential_backoff", backoff)
        cap = check.seconds("max_retry_delay", max_delay, maximum=longest, allow_none=True)
        if not seconds:
            return None
        return RetryPolicy(seconds, multiplier, cap if cap is not None else longest)

    def poison_queue(self) -> str | None:
        """The queue ``max_receive_count`` moves messages to when no ``dead_letter_queue`` is named."""
        if self.poison_suffix is None:
            return None
        return self._check_queue_name("the poison queue", self.get_name() + self.poison_suffix)

    def _check_queue_name(self, what: str, name: str) -> str:
        try:
            return self._check_queue(name)
        except ValueError as error:
            raise ValueError(f"{what} of queue {self._queue!r}: {error}; name a dead_letter_queue") from None

    def dead_letter_target(
        self, max_receive_count: int | None, dead_letter_queue: str | None, unmatched: str
    ) -> str | None:
        """The queue dead letters go to, by the rules of :data:`~fluke_airflow.queues.arguments.DEAD_LETTER_RULES`:
        the named one, or the poison queue (Azure); a clear error where there is none."""
        if dead_letter_queue is not None:
            self._check_queue(check.non_empty_str("dead_letter_queue", dead_letter_queue))
            if dead_letter_queue == self._queue:
                raise ValueError("dead_letter_queue must be another queue than the one being polled")
            return dead_letter_queue
        if max_receive_count is None:
            return None
        poison = self.poison_queue()
        if poison is None:
            raise ValueError(
                f"max_receive_count needs a dead_letter_queue on {self.service} (the queue that takes messages "
                f"received more than max_receive_count times); or leave the move to SQS: configure the queue's "
                f"RedrivePolicy and drop max_receive_count"
            )
        return poison

    def check_redrive(self, max_receive_count: int | None) -> None:
        """Against the service's own poison handling (an SQS RedrivePolicy): say what it does, and
        refuse a ``max_receive_count`` it makes unreachable (the service moves the message first)."""
        redrive = self.redrive_policy()
        if redrive is None:
            return
        target, limit = redrive
        log.info("%s queue %r moves messages received %d times to %r (its RedrivePolicy)", self.service,
                 self._queue, limit, target)  # fmt: skip
        if max_receive_count is not None and max_receive_count >= limit:
            raise ValueError(
                f"max_receive_count={max_receive_count} can never take effect on {self.service} queue {self._queue!r}: "
                f"its RedrivePolicy moves a message to {target!r} once it has been received {limit} times, before "
                f"it could be received more than {max_receive_count} times. Use a max_receive_count below {limit}, "
                "or drop it and let the RedrivePolicy move poison messages"
            )

    def redrive_policy(self) -> tuple[str, int] | None:
        """The service's own poison handling: (dead-letter queue, receives before it moves a
        message), from an SQS queue's RedrivePolicy; None if there is none (always on Azure)."""
        return self._transport_rules().redrive

    def _transport_rules(self) -> TransportRules:
        raise NotImplementedError

    def message_filter(self, given: Mapping[str, Any]) -> MessageFilter:
        """The filter of checked arguments, against what this service's messages carry."""
        found = MessageFilter.build(*(given.get(name) for name in arguments.FILTERS))
        if found.uses_attributes and not self.has_message_attributes:
            raise ValueError(
                f"message_filtering_attributes filter on SQS message attributes; {self.service} messages have "
                "none (filter on the body with message_filtering instead)"
            )
        return found

    def _peek_flow(self, max_messages: Any) -> tuple[int, Flow]:
        """The checked limit, and the peek where the service has none: receive and release
        (messages held 30 s meanwhile)."""
        limit = check.integer("max_messages", max_messages, minimum=1, maximum=PEEK_LIMIT)
        return limit, peek_by_receive_flow(limit, DeliveryOptions(self._queue, visibility_timeout=30,
                                                                  wait_seconds=PEEK_WAIT_SECONDS))  # fmt: skip

    def _redrive_flow(self, to: str, max_messages: int | None, visibility_timeout: int) -> tuple[str, Flow]:
        """The checked target and the flow of :meth:`Queue.redrive`."""
        limit = check.integer("max_messages", max_messages, minimum=1, allow_none=True)
        timeout = self.check_visibility_timeout(visibility_timeout)
        target = self._check_queue(check.non_empty_str("to", to))
        if target == self._queue:
            raise ValueError("to must be another queue than the dead-letter queue the messages come from")
        wait = 1 if self.long_polling else 0
        options = DeliveryOptions(self._queue, batch_size=100, visibility_timeout=timeout, wait_seconds=wait,
                                  per_request=self.receive_limit)  # fmt: skip
        return target, redrive_flow(limit, target, options)

    def _drain_flow(self) -> Flow:
        return drain_flow(DeliveryOptions(self._queue))

    def _cleared(self) -> None:
        log.log(self._level, "Cleared %s queue %r", self.service, self._queue)

    def _log_peek(self, bodies: list[str], suppress_output: bool) -> list[str]:
        log.log(
            self._level_for(suppress_output), "Peeked at %d message(s) in %s queue %r", len(bodies), self.service,
            self._queue,
        )  # fmt: skip
        return bodies

    def _held_messages_block(self) -> bool:
        """Whether messages this poll holds can keep others from being received (see PollOptions)."""
        return False

    def __repr__(self) -> str:
        return f"{type(self).__name__}(queue={self._queue!r}, auth={self._auth!r})"


class Queue(QueueBase[AuthT]):
    """A queue with blocking methods. Opens on construction; use it as a context manager."""

    def __init__(
        self,
        auth: AuthT,
        queue: str,
        *,
        suppress_output: bool = False,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        metric_tags: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(
            auth, queue, suppress_output=suppress_output, max_concurrency=max_concurrency, metric_tags=metric_tags
        )
        self._driver: SyncDriver | None = None
        self.open()

    # -- backend hooks ------------------------------------------------------------------------
    def _connect(self, queue: str | None = None, *, create: bool = False) -> SyncTransport:
        """Create the transport for ``queue`` (default: this queue) and check that it exists
        (``create``: create it if it does not, where the service allows)."""
        raise NotImplementedError

    # -- lifecycle -------------------------------------------------------------------------------
    def open(self) -> None:
        """Connect and check that the queue exists (raises QueueNotFoundError otherwise)."""
        if self._driver is None:
            self._driver = SyncDriver(self._connect(), self._max_concurrency, self.metrics)
            log.log(self._level, "Opened %s queue %r", self.service, self._queue)

    def close(self) -> None:
        """Close the connection (and any dead-letter queue opened for it); ``open()`` reopens."""
        if self._driver is not None:
            driver, self._driver = self._driver, None
            driver.close()
            for transport in (driver.transport, *driver.dead_letters.values()):
                transport.close()
            log.log(self._level, "Closed %s queue %r", self.service, self._queue)

    def is_open(self) -> bool:
        """Whether the queue is open (constructed, or reopened, and not closed)."""
        return self._driver is not None

    def __enter__(self) -> Queue[AuthT]:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def _d(self) -> SyncDriver:
        if self._driver is None:
            raise QueueClosedError(f"{self.service} queue {self._queue!r} is closed; call open() first")
        return self._driver

    @property
    def _t(self) -> SyncTransport:
        return self._d.transport

    def _transport_rules(self) -> TransportRules:
        return self._t

    @property
    def needs_deduplication_ids(self) -> bool:
        """Whether pushes need deduplication ids (an SQS FIFO queue without content-based deduplication)."""
        return self._t.needs_deduplication_ids

    # -- the guide's API ---------------------------------------------------------------------------
    def push(self, message: str, *, suppress_output: bool = False, **options: Any) -> bool:
        """Send one message; ``True`` once the service accepted it, ``False`` (logged) if not."""
        return self._push([message], options, suppress_output, single=True)[0] is not None

    def push_many(self, messages: Sequence[str], *, suppress_output: bool = False, **options: Any) -> list[str | None]:
        """Send messages with the service's batch API (or concurrently); for each, in order, the
        message id the service gave it, or ``None`` (logged) where it refused it."""
        return self._push(messages, options, suppress_output)

    def _push(
        self, messages: Any, options: dict[str, Any], suppress_output: bool, single: bool = False
    ) -> list[str | None]:
        results: list[str | None] = self._d.execute(self._push_step(messages, options, single))
        self._log_push(results, self._level_for(suppress_output))
        return results

    def peek(self, *, max_messages: int = PEEK_LIMIT, suppress_output: bool = False) -> list[str]:
        """Up to ``max_messages`` (at most 10) bodies, as many as are available; nothing is deleted.

        Where the service has no peek (SQS), the messages are received and released at once.
        """
        limit, flow = self._peek_flow(max_messages)
        bodies = self._t.peek(limit)
        return self._log_peek(self._d.run(flow) if bodies is None else bodies, suppress_output)

    def run_flow(self, flow: Flow) -> Any:
        """Run a flow of :mod:`fluke_airflow.queues.flows` (used by the sensor)."""
        return self._d.run(flow)

    def hold(self, messages: Sequence[Message], visibility_timeout: int) -> SyncHolding:
        """Keep received ``messages`` hidden until :meth:`SyncHolding.stop`, renewing their
        visibility every ``visibility_timeout / 2`` seconds on a thread (up to the service's limit
        on hidden time); ``stop()`` returns them with their current receipts (Azure issues new ones)."""
        return self._d.hold(messages, Renewal(visibility_timeout, self.max_hidden_seconds))

    @contextlib.contextmanager
    def holding(self, messages: Sequence[Message], visibility_timeout: int) -> Iterator[SyncHolding]:
        """:meth:`hold` while the block runs; the holding's ``messages`` carry the current receipts
        once the block is left: delete or release with those."""
        held = self.hold(messages, visibility_timeout)
        try:
            yield held
        finally:
            held.messages = held.stop()

    def reconnect(self) -> None:
        """Drop this queue's connection and open a fresh one (with its dead-letter queues)."""
        dead_letters = list(self._driver.dead_letters) if self._driver is not None else []
        self.close()
        self.open()
        for name in dead_letters:
            self.attach_dead_letter_queue(name)

    def attach_dead_letter_queue(self, name: str) -> None:
        """Open ``name`` (same credentials) as the target of dead-letter moves; checks it exists
        (this queue's poison queue is created if missing)."""
        if name not in self._d.dead_letters:
            self._d.dead_letters[name] = self._connect(name, create=name == self.poison_queue())

    def poll(self, *args: Any, **arguments: Any) -> Iterator[list[str]]:
        """Batches of bodies, as in the guide.

        ``num_messages`` (all when None), ``batch_size`` (may exceed one request: several
        receives fill it), ``polling_frequency`` (poll forever, sleeping this long between
        rounds), ``pre_delivery_delete`` (delete before delivering: at most once; by default a
        batch is deleted when the next one is requested: at least once); these four may also be
        given by position. If the loop body raises or the iterator is closed, the current batch is
        released for redelivery instead of deleted. Every argument, with its default and what is
        allowed: :mod:`fluke_airflow.queues.arguments` (the ``poll`` column of the reference docs).
        """
        return _bodies(self.poll_messages(*args, **arguments))

    def poll_messages(self, *args: Any, **arguments: Any) -> Iterator[list[Message]]:
        """:meth:`poll` with :class:`Message` objects (ids, receipts, receive counts); same arguments."""
        options = self.poll_options(args, arguments)
        self.check_redrive(options.max_receive_count)
        if options.dead_letter_queue:
            self.attach_dead_letter_queue(options.dead_letter_queue)
        return self._d.iterate(lifecycle.tracked(poll_flow(options), lifecycle.Held(), self._queue))

    def redrive(self, to: str, *, max_messages: int | None = None, visibility_timeout: int = 60) -> list[Redriven]:
        """This queue being a dead-letter (or poison) queue, move up to ``max_messages`` (None: all)
        of its messages back to the queue ``to`` (same credentials), each deleted here only once it
        was sent there. One :class:`~fluke_airflow.queues.flows.Redriven` per message handled."""
        target, flow = self._redrive_flow(to, max_messages, visibility_timeout)
        self.attach_dead_letter_queue(target)
        results: list[Redriven] = self._d.run(flow)
        return results

    def delete_messages(self, messages: Sequence[Message]) -> list[bool]:
        """Delete received messages by receipt; one result each (failures are logged by id). A delete
        answered after the message's visibility deadline may not have deleted it (SQS): it is counted
        as ``messages.late_delete`` and logged (:func:`~fluke_airflow.queues.lifecycle.report_deleted`)."""
        gone = {id(m) for m in self._d.run(lifecycle.delete(messages, self._queue))}
        return [id(m) in gone for m in messages]

    def change_visibility(self, messages: Sequence[Message], timeout: int) -> list[Message]:
        """Hide received messages for ``timeout`` more seconds (0 releases them now).

        Returns the messages whose change succeeded, with their current receipts.
        """
        check.integer("timeout", timeout, maximum=self.max_visibility_timeout)
        kept: list[Message] = self._d.execute(SetVisibility(tuple(messages), timeout))
        return kept

    def count(self) -> int:
        """The approximate number of messages waiting (the services only know it approximately)."""
        return self._t.count()

    def clear(self) -> None:
        """Delete every message in the queue (receive-and-delete when the service refuses a purge now)."""
        if not self._t.purge():
            self._d.run(self._drain_flow())
        self._cleared()


def _bodies(batches: Iterator[list[Message]]) -> Iterator[list[str]]:
    """Bodies only; closing this closes ``batches`` at once, so no batch is deleted on close."""
    try:
        for batch in batches:
            yield [m.body for m in batch]
    finally:
        if isinstance(batches, Generator):  # the driver's iterator, not a caller's own iterable
            batches.close()


async def _abodies(batches: AsyncIterator[list[Message]]) -> AsyncIterator[list[str]]:
    try:
        async for batch in batches:
            yield [m.body for m in batch]
    finally:
        if isinstance(batches, AsyncGenerator):
            await batches.aclose()


class AsyncQueue(QueueBase[AuthT]):
    """The asyncio twin of :class:`Queue`: ``async with`` opens it; same semantics, same flows."""

    def __init__(
        self,
        auth: AuthT,
        queue: str,
        *,
        suppress_output: bool = False,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        share_client: bool = False,
        metric_tags: Mapping[str, str] | None = None,
        stall_grace: float | None = None,
    ) -> None:
        super().__init__(
            auth, queue, suppress_output=suppress_output, max_concurrency=max_concurrency, metric_tags=metric_tags
        )
        self._share_client = check.boolean("share_client", share_client)
        """Use the client that the auth shares among the async queues of the running event loop."""
        self.stall_grace = check.non_negative_number("stall_grace", stall_grace, allow_none=True)
        """A receive that has not answered this many seconds after its wait raises ReceiveStalled."""
        self._driver: AsyncDriver | None = None

    async def _connect(self, queue: str | None = None, *, create: bool = False) -> AsyncTransport:
        raise NotImplementedError

    async def open(self) -> None:
        """Connect and check that the queue exists (raises QueueNotFoundError otherwise)."""
        if self._driver is None:
            self._driver = AsyncDriver(await self._connect(), self._max_concurrency, self.metrics, self.stall_grace)
            log.log(self._level, "Opened %s queue %r (async)", self.service, self._queue)

    async def close(self) -> None:
        """Close the connection (and any dead-letter queue opened for it)."""
        if self._driver is not None:
            driver, self._driver = self._driver, None
            for transport in (driver.transport, *driver.dead_letters.values()):
                await transport.close()

    def is_open(self) -> bool:
        """Whether the queue is open."""
        return self._driver is not None

    async def __aenter__(self) -> AsyncQueue[AuthT]:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def _d(self) -> AsyncDriver:
        if self._driver is None:
            raise QueueClosedError(f"{self.service} queue {self._queue!r} is closed; await open() first")
        return self._driver

    @property
    def _t(self) -> AsyncTransport:
        return self._d.transport

    def _transport_rules(self) -> TransportRules:
        return self._t

    async def reconnect(self) -> None:
        """Drop this queue's connection (and, if shared, the client for every queue that shares it)
        and open a fresh one: what a watcher does when a receive got stuck."""
        driver = self._driver
        if driver is not None:
            self._driver = None
            dead_letters = list(driver.dead_letters)
            for transport in (driver.transport, *driver.dead_letters.values()):
                await transport.close(discard=True)
            await self.open()
            for name in dead_letters:
                await self.attach_dead_letter_queue(name)

    @property
    def needs_deduplication_ids(self) -> bool:
        """As :attr:`Queue.needs_deduplication_ids`."""
        return self._t.needs_deduplication_ids

    async def push(self, message: str, *, suppress_output: bool = False, **options: Any) -> bool:
        """As :meth:`Queue.push`."""
        return (await self._push([message], options, suppress_output, single=True))[0] is not None

    async def push_many(
        self, messages: Sequence[str], *, suppress_output: bool = False, **options: Any
    ) -> list[str | None]:
        """As :meth:`Queue.push_many`."""
        return await self._push(messages, options, suppress_output)

    async def _push(
        self, messages: Any, options: dict[str, Any], suppress_output: bool, single: bool = False
    ) -> list[str | None]:
        results: list[str | None] = await self._d.execute(self._push_step(messages, options, single))
        self._log_push(results, self._level_for(suppress_output))
        return results

    async def peek(self, *, max_messages: int = PEEK_LIMIT, suppress_output: bool = False) -> list[str]:
        """As :meth:`Queue.peek`."""
        limit, flow = self._peek_flow(max_messages)
        bodies = await self._t.peek(limit)
        return self._log_peek(await self._d.run(flow) if bodies is None else bodies, suppress_output)

    async def poll_messages(self, *args: Any, **arguments: Any) -> AsyncIterator[list[Message]]:
        """:meth:`poll` with :class:`Message` objects; same arguments."""
        options = self.poll_options(args, arguments)
        self.check_redrive(options.max_receive_count)
        if options.dead_letter_queue:
            await self.attach_dead_letter_queue(options.dead_letter_queue)
        batches = self._d.iterate(lifecycle.tracked(poll_flow(options), lifecycle.Held(), self._queue))
        try:
            async for batch in batches:
                yield batch
        finally:
            # Close the driver's iterator now (not when the garbage collector finds it): that
            # stops the renewal and releases the batch the consumer stopped with.
            await batches.aclose()

    def poll(self, *args: Any, **arguments: Any) -> AsyncIterator[list[str]]:
        """``async for batch in queue.poll(...)``: as :meth:`Queue.poll` (arguments checked at the call)."""
        self.poll_options(args, arguments)
        return _abodies(self.poll_messages(*args, **arguments))

    async def redrive(
        self, to: str, *, max_messages: int | None = None, visibility_timeout: int = 60
    ) -> list[Redriven]:
        """As :meth:`Queue.redrive`."""
        target, flow = self._redrive_flow(to, max_messages, visibility_timeout)
        await self.attach_dead_letter_queue(target)
        results: list[Redriven] = await self._d.run(flow)
        return results

    async def run_flow(self, flow: Flow) -> Any:
        """Run a flow of :mod:`fluke_airflow.queues.flows` (used by the trigger)."""
        return await self._d.run(flow)

    def hold(self, messages: Sequence[Message], visibility_timeout: int) -> AsyncHolding:
        """Keep received ``messages`` hidden until :meth:`AsyncHolding.stop`, renewing their
        visibility every ``visibility_timeout / 2`` seconds (up to the service's limit on hidden
        time); ``stop()`` returns them with their current receipts (Azure issues new ones)."""
        return self._d.hold(messages, Renewal(visibility_timeout, self.max_hidden_seconds))

    @contextlib.asynccontextmanager
    async def holding(self, messages: Sequence[Message], visibility_timeout: int) -> AsyncIterator[AsyncHolding]:
        """:meth:`hold` while the block runs; the holding's ``messages`` carry the current receipts
        once the block is left: delete or release with those."""
        held = self.hold(messages, visibility_timeout)
        try:
            yield held
        finally:
            held.messages = await held.stop()

    async def attach_dead_letter_queue(self, name: str) -> None:
        """As :meth:`Queue.attach_dead_letter_queue`."""
        if name not in self._d.dead_letters:
            self._d.dead_letters[name] = await self._connect(name, create=name == self.poison_queue())

    async def delete_messages(self, messages: Sequence[Message]) -> list[bool]:
        """As :meth:`Queue.delete_messages`."""
        gone = {id(m) for m in await self._d.run(lifecycle.delete(messages, self._queue))}
        return [id(m) in gone for m in messages]

    async def change_visibility(self, messages: Sequence[Message], timeout: int) -> list[Message]:
        """As :meth:`Queue.change_visibility`."""
        check.integer("timeout", timeout, maximum=self.max_visibility_timeout)
        kept: list[Message] = await self._d.execute(SetVisibility(tuple(messages), timeout))
        return kept

    async def count(self) -> int:
        """As :meth:`Queue.count`."""
        return await self._t.count()

    async def clear(self) -> None:
        """As :meth:`Queue.clear`."""
        if not await self._t.purge():
            await self._d.run(self._drain_flow())
        self._cleared()
