"""The chaos suite's accounting and consumer loops.

Every scenario pushes ``FLUKE_CHAOS_MESSAGES`` uniquely numbered messages, then consumes
them through :class:`devtools.proxy.Proxy` with faults injected, the way an application
would: record each body, and when ``poll`` raises after the SDK's retries are exhausted,
poll again. The faults stay on until the queue looks empty; then they are cleared and the
queue is drained until nothing has come back for longer than the visibility timeout, so
that whatever a fault left behind (an undeleted or a lost-in-flight message) is counted.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from terminal_support import section

from devtools.admin import AzureService, Service, SQSService
from devtools.emulators import AzuriteQueue, MotoSQS
from devtools.proxy import Fault, Proxy
from fluke_airflow.auth import AWSAuth, AzureAuth
from fluke_airflow.exceptions import QueueError
from fluke_airflow.queues import AmazonSQSQueue, AsyncAmazonSQSQueue, AsyncAzureStorageQueue, AzureStorageQueue
from fluke_airflow.queues.base import AsyncQueue, Queue

log = logging.getLogger("tests.chaos")

MESSAGES = int(os.environ.get("FLUKE_CHAOS_MESSAGES", "100"))
"""Messages per scenario; raise it (e.g. ``FLUKE_CHAOS_MESSAGES=5000``) for a soak run."""
BODY_BYTES = 200
VISIBILITY_TIMEOUT = 1
"""Short, so that what a fault leaves undeleted comes back quickly."""
SQS_VISIBILITY_TIMEOUT = 3
"""SQS's receipts expire for real here (the proxy's ``sqs_receipts``): a 100-message batch must be
received and deleted within it under normal load (on a busy 2-core machine, with botocore, 1 s is
not enough), so that what outlives it is what the faults delay."""
SDK_BACKOFF = bool(os.environ.get("FLUKE_CHAOS_SDK_BACKOFF"))
"""Azure with azure-storage's own retry pauses (15-24 s) instead of :class:`FastRetryAzureAuth`'s."""
MAX_ROUNDS = 400
"""A guard against a consumer loop that never ends (each round is a whole ``poll``)."""
ACCOUNTING = section("chaos accounting (pushed / processed / duplicates / lost)")
"""Every scenario's one-line accounting, for the terminal summary (tests/terminal_support.py)."""


def body(number: int) -> str:
    return f"{number:07d}|".ljust(BODY_BYTES, "x")


def number_of(text: str) -> int | None:
    head, sep, _ = text.partition("|")
    return int(head) if sep and head.isdigit() else None


class FastRetryAzureAuth(AzureAuth):
    """``AzureAuth`` whose clients retry as often as azure-storage-queue's default does (3 retries
    of the same errors) but pause ~0.5 s before each instead of 15-24 s.

    Only the pauses shrink, so that a scenario with a few dozen retried requests fits the
    suite's time bound; what is retried and how often stays the SDK's. (fluke_airflow has no
    retry setting of its own to use instead.)
    """

    def create_queue_client(self, queue: str, *, asynchronous: bool = False, **kwargs: Any) -> tuple[Any, Any]:
        # ExponentialRetry: pause = initial_backoff + increment_base ** n, +- random_jitter_range
        kwargs.setdefault("initial_backoff", 0.5)
        kwargs.setdefault("increment_base", 0)
        kwargs.setdefault("random_jitter_range", 0.2)
        return super().create_queue_client(queue, asynchronous=asynchronous, **kwargs)


# -- the services behind the proxy ---------------------------------------------------------------------
@dataclass
class ProxiedService:
    """One emulator seen through a proxy: how to make a queue there and open ours on it."""

    name: str  # "sqs" or "azure"
    proxy: Proxy
    auth: Any
    receive: str  # the proxy's operation names
    delete: str
    batch_size: int
    wait_seconds: int
    visibility_timeout: int  # the scenarios' default
    max_attempts: int  # requests per call when every attempt fails
    admin: Callable[[], Service]
    """An admin client straight to the emulator (devtools/admin.py), opened for each use and closed
    after it: a connection left open would hold up Azurite when a scenario restarts it."""

    def new_queue(self) -> str:
        with self.admin() as admin:
            return admin.new_queue(prefix="chaos")

    def open(self, queue: str) -> Queue[Any]:
        cls = AmazonSQSQueue if self.name == "sqs" else AzureStorageQueue
        return cls(self.auth, queue, suppress_output=True)

    def open_async(self, queue: str) -> AsyncQueue[Any]:
        cls = AsyncAmazonSQSQueue if self.name == "sqs" else AsyncAzureStorageQueue
        return cls(self.auth, queue, suppress_output=True)


def sqs_service(moto: MotoSQS, proxy: Proxy) -> ProxiedService:
    return ProxiedService(
        name="sqs",
        proxy=proxy,
        auth=AWSAuth(moto.access_key_id, moto.secret_access_key, region=moto.region, endpoint_url=proxy.url),
        receive="ReceiveMessage",
        delete="DeleteMessageBatch",
        batch_size=100,
        visibility_timeout=SQS_VISIBILITY_TIMEOUT,
        wait_seconds=0,  # short polls: an empty round costs nothing (long polling is not under test)
        # fluke_airflow.auth.aws configures retries={"mode": "standard", "max_attempts": 5}, and
        # botocore reads a Config's max_attempts as *retries*: 6 attempts in all.
        max_attempts=6,
        admin=lambda: SQSService(moto),
    )


def azure_service(azurite: AzuriteQueue, proxy: Proxy, *, fast_retry: bool = not SDK_BACKOFF) -> ProxiedService:
    conn = azurite.connection_string.replace(f"QueueEndpoint={azurite.account_url}", f"QueueEndpoint={proxy.endpoint}")
    assert conn != azurite.connection_string
    return ProxiedService(
        name="azure",
        proxy=proxy,
        auth=(FastRetryAzureAuth if fast_retry else AzureAuth).from_conn_string(conn),
        receive="GET messages",
        delete="DELETE message",
        batch_size=64,  # two receives (of 32) per batch
        visibility_timeout=VISIBILITY_TIMEOUT,
        wait_seconds=0,
        max_attempts=4,  # azure-storage-queue: ExponentialRetry(retry_total=3)
        admin=lambda: AzureService(azurite),
    )


# -- accounting ------------------------------------------------------------------------------------------
@dataclass
class Ledger:
    """Which message numbers were pushed and how often each one was processed."""

    scenario: str
    delete_operation: str
    """The proxy's name for the service's delete request (to tell deletes whose answer was lost)."""
    pushed: set[int] = field(default_factory=set)
    processed: Counter[int] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    batches: int = 0
    poll_errors: int = 0
    rounds: int = 0
    processed_under_faults: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    same_batch_duplicates: int = 0
    """Deliveries of a message that was already in the same batch."""
    client: Counter[str] = field(default_factory=Counter)
    """What the queue counted (its metrics' totals): ``messages.late_delete``, ``messages.delete_failed``..."""

    def note_client(self, queue: Queue[Any] | AsyncQueue[Any]) -> None:
        """Take the queue's own counts (totals since it was opened) after a consumption."""
        self.client = queue.metrics.totals()

    @property
    def late_deletes(self) -> int:
        """Deletes the client saw answered after the visibility deadline (not delivered, pre-delivery)."""
        return self.client["messages.late_delete"]

    @property
    def failed_deletes(self) -> int:
        return self.client["messages.delete_failed"]

    def record(self, batch: list[str]) -> None:
        self.batches += 1
        in_batch: set[int] = set()
        for text in batch:
            number = number_of(text)
            if number is None or number not in self.pushed:
                self.unexpected.append(text[:40])
                continue
            self.processed[number] += 1
            if number in in_batch:
                self.same_batch_duplicates += 1
            in_batch.add(number)

    @property
    def duplicates(self) -> int:
        return sum(count - 1 for count in self.processed.values() if count > 1)

    @property
    def lost(self) -> list[int]:
        return sorted(self.pushed - set(self.processed))

    @property
    def complete(self) -> bool:
        return not self.lost

    def unanswered_deletes(self, proxy: Proxy) -> int:
        """Messages in delete requests that may have been carried out without the client hearing
        so: the service answered and the proxy then dropped or replaced the answer, or the
        connection to the service broke mid-request (an emulator going down)."""
        count = 0
        for r in proxy.records(self.delete_operation):
            answered_upstream = r.upstream_status is not None and 200 <= r.upstream_status < 300
            lost_answer = any(f.endswith("(after)") and not f.startswith("Latency") for f in r.faults)
            if (answered_upstream and lost_answer) or "UpstreamUnreachable" in r.faults:
                count += r.entries or 1
        return count

    def summary(self, proxy: Proxy) -> str:
        records = proxy.records()
        statuses = Counter(r.status for r in records)
        faults = sum(len(r.faults) for r in records)
        return (
            f"[chaos {self.scenario}] pushed={len(self.pushed)} processed={len(self.processed)} "
            f"duplicates={self.duplicates} (same batch {self.same_batch_duplicates}; after a delete the client "
            f"saw fail {self.failed_deletes} or answered late {self.late_deletes}) lost={len(self.lost)} "
            f"unexpected={len(self.unexpected)} | deletes-done-unanswered={self.unanswered_deletes(proxy)} "
            f"under-faults={self.processed_under_faults} poll-errors={self.poll_errors} rounds={self.rounds} "
            f"requests={proxy.total()} no-answer={statuses.get(None, 0)} faults={faults}{self._receipts(proxy)}"
        )

    @staticmethod
    def _receipts(proxy: Proxy) -> str:
        """What the real receipt semantics did: deletes answered success without deleting."""
        if proxy.receipts is None:
            return ""
        ignored = proxy.receipts.ignored_deletes
        return (
            f" | stale-receipt deletes answered success, nothing deleted: expired={ignored['expired']} "
            f"superseded={ignored['superseded']} ({len(proxy.receipts.ignored_handles)} handles)"
        )

    def detail(self, proxy: Proxy) -> str:
        dup = sorted(n for n, c in self.processed.items() if c > 1)
        return (
            f"{self.summary(proxy)}\n  lost ids: {self.lost[:20]}\n  duplicated ids: {dup[:20]}\n"
            f"  unexpected: {self.unexpected[:5]}\n  poll errors: {dict(self.errors)}\n"
            f"  faults: {dict(Counter(f for r in proxy.records() for f in r.faults))}\n"
            f"  requests: {dict(proxy.counts)}"
        )


def push_all(queue: Queue[Any], ledger: Ledger, count: int = MESSAGES) -> None:
    """Push (through the proxy, no faults) and remember what went in."""
    numbers = list(range(count))
    results = queue.push_many([body(n) for n in numbers])
    assert all(results), f"push failed for {results.count(False)} message(s)"
    ledger.pushed.update(numbers)


async def apush_all(queue: AsyncQueue[Any], ledger: Ledger, count: int = MESSAGES) -> None:
    numbers = list(range(count))
    results = await queue.push_many([body(n) for n in numbers])
    assert all(results), f"push failed for {results.count(False)} message(s)"
    ledger.pushed.update(numbers)


# -- consumers ----------------------------------------------------------------------------------------------
@dataclass
class Consumption:
    """How a scenario consumes: the poll arguments, the fault plan, and an optional hook per batch."""

    service: ProxiedService
    pre_delivery: bool
    faults: tuple[Fault, ...] = ()
    on_batch: Callable[[Ledger], None] | None = None
    visibility_timeout: int | None = None
    """None: the service's (:attr:`ProxiedService.visibility_timeout`)."""
    batch_size: int | None = None

    @property
    def timeout(self) -> int:
        return self.visibility_timeout or self.service.visibility_timeout

    def poll_kwargs(self) -> dict[str, Any]:
        return {
            "batch_size": self.batch_size or self.service.batch_size,
            "pre_delivery_delete": self.pre_delivery,
            "visibility_timeout": self.timeout,
            "wait_time_seconds": self.service.wait_seconds,
        }


class _Rounds:
    """The stop rule shared by the blocking and the asyncio consumer.

    With faults on: keep polling while anything comes back (or errors). After two empty
    rounds in a row (or, post-delivery, once every message was seen) clear the faults. Then
    stop at the first empty round that started more than the visibility timeout after the
    last activity: every message that a fault hid or left undeleted has reappeared by then.
    """

    def __init__(self, plan: Consumption, ledger: Ledger) -> None:
        self.plan = plan
        self.ledger = ledger
        self.faulty = bool(plan.faults)
        plan.service.proxy.inject(*plan.faults)
        self.last_activity = time.monotonic()
        self.empty_streak = 0
        self.started = 0.0

    def begin(self) -> bool:
        """Whether to run another round."""
        if self.ledger.rounds >= MAX_ROUNDS:
            raise AssertionError(f"the queue did not drain in {MAX_ROUNDS} rounds:\n{self.ledger.detail(self.proxy)}")
        self.ledger.rounds += 1
        self.started = time.monotonic()
        return True

    @property
    def proxy(self) -> Proxy:
        return self.plan.service.proxy

    def failed(self, error: QueueError) -> None:
        self.ledger.poll_errors += 1
        self.ledger.errors[str(error).split(":")[0]] += 1
        log.info("%s: poll raised (%s); polling again", self.ledger.scenario, error)
        self.last_activity = time.monotonic()
        self.empty_streak = 0

    def ended(self, got: int, received: int = 0) -> float | None:
        """After a round that got ``got`` messages (and received ``received``: pre-delivery does not
        deliver a message whose delete was answered late): ``None`` to stop, else the pause before the next."""
        if self.faulty:
            self.ledger.processed_under_faults += got
        if got or received:
            self.last_activity = time.monotonic()
            self.empty_streak = 0
            return 0.0
        self.empty_streak += 1
        if self.faulty:
            if self.empty_streak >= 2 or (not self.plan.pre_delivery and self.ledger.complete):
                self.proxy.clear_faults()
                self.faulty = False
                self.last_activity = time.monotonic()
            return 0.2
        if self.started - self.last_activity > self.plan.timeout + 0.5:
            return None
        return 0.2


def consume(queue: Queue[Any], plan: Consumption, ledger: Ledger) -> None:
    """Poll until drained (see :class:`_Rounds`), recording every body; a failed poll is polled again."""
    rounds = _Rounds(plan, ledger)
    while rounds.begin():
        got = 0
        received = queue.metrics.totals()["messages.received"]
        try:
            for batch in queue.poll(**plan.poll_kwargs()):
                ledger.record(batch)
                got += len(batch)
                if plan.on_batch is not None:
                    plan.on_batch(ledger)
        except QueueError as error:
            rounds.failed(error)
            continue
        pause = rounds.ended(got, queue.metrics.totals()["messages.received"] - received)
        if pause is None:
            ledger.note_client(queue)
            return
        time.sleep(pause)


async def aconsume(queue: AsyncQueue[Any], plan: Consumption, ledger: Ledger) -> None:
    """The asyncio twin of :func:`consume`."""
    rounds = _Rounds(plan, ledger)
    while rounds.begin():
        got = 0
        received = queue.metrics.totals()["messages.received"]
        try:
            async for batch in queue.poll(**plan.poll_kwargs()):
                ledger.record(batch)
                got += len(batch)
                if plan.on_batch is not None:
                    plan.on_batch(ledger)
        except QueueError as error:
            rounds.failed(error)
            continue
        pause = rounds.ended(got, queue.metrics.totals()["messages.received"] - received)
        if pause is None:
            ledger.note_client(queue)
            return
        await asyncio.sleep(pause)


def settle(ledger: Ledger, proxy: Proxy, *, pre_delivery: bool) -> None:
    """Print the one-line accounting and check the delivery guarantee.

    Post-delivery delete: nothing lost, and each duplicate explained: it followed a delete the client
    saw fail or saw answered after the visibility deadline (``messages.late_delete``); every delete
    the real receipt semantics answered success without deleting was one the client counted so.
    Pre-delivery delete: nothing processed twice, and nothing lost beyond the messages whose delete
    the service may have carried out while the answer never reached the client, or reached it after
    the deadline (at most once permits those; any other loss is a bug).
    """
    line = ledger.summary(proxy)
    print(line)
    ACCOUNTING.append(line)
    if os.environ.get("FLUKE_CHAOS_DEBUG"):
        print(ledger.detail(proxy))
        start = min((r.started for r in proxy.records()), default=0.0)
        for r in proxy.records():
            at = r.started - start
            print(f" {at:7.2f} {r.seconds:5.2f} {r.operation:22} {r.entries} {r.status} {r.upstream_status} {r.faults}")
    assert not ledger.unexpected, ledger.detail(proxy)
    if proxy.receipts is not None:
        ignored = len(proxy.receipts.ignored_handles)
        assert ignored <= ledger.late_deletes + ledger.failed_deletes, (
            f"{ignored} delete(s) answered success without deleting, but the client counted only "
            f"{ledger.late_deletes} late and {ledger.failed_deletes} failed:\n{ledger.detail(proxy)}"
        )
    if not pre_delivery:
        assert not ledger.lost, f"messages lost under post-delivery delete:\n{ledger.detail(proxy)}"
        assert ledger.duplicates <= ledger.failed_deletes + ledger.late_deletes, (
            f"duplicates the client's failed or late deletes do not explain:\n{ledger.detail(proxy)}"
        )
        return
    assert ledger.duplicates == 0, f"messages processed twice under pre-delivery delete:\n{ledger.detail(proxy)}"
    assert len(ledger.lost) <= ledger.unanswered_deletes(proxy) + ledger.late_deletes, (
        f"more messages lost than deletes went unanswered or were answered late:\n{ledger.detail(proxy)}"
    )


class Restarter:
    """Restarts an emulator on a thread (so the poll keeps running against it meanwhile)."""

    def __init__(self, emulator: AzuriteQueue) -> None:
        self.emulator = emulator
        self.thread: threading.Thread | None = None
        self.restarts = 0

    def trigger(self) -> None:
        if self.thread is None:
            self.thread = threading.Thread(target=self._run, name="chaos-restart", daemon=True)
            self.thread.start()

    def _run(self) -> None:
        self.emulator.restart()
        self.restarts += 1

    def join(self) -> None:
        if self.thread is not None:
            self.thread.join(60)
