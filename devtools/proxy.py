"""A counting, fault-injecting HTTP reverse proxy in front of moto's SQS server or Azurite.

The proxy listens on a free loopback port and forwards every request to the emulator as it
came: method, path and query, body and headers (``Host`` included; only hop-by-hop headers
are dropped), so SigV4 and Azure shared-key signatures still hold and the Azurite account
path passes through unchanged. Answers come back the same way. aiohttp's low-level server
speaks HTTP/1.1 to the clients; the proxy only decides what each request gets. It runs on a
background thread with its own event loop, so blocking tests and asyncio tests use it alike::

    with Proxy(moto.endpoint_url) as proxy:
        auth = AWSAuth(key, secret, region="us-east-1", endpoint_url=proxy.url)
        proxy.inject(Reset(operation="DeleteMessageBatch", after=True, first=2))
        ...
        assert proxy.counts["SendMessageBatch"] == 20

What it records: :attr:`Proxy.counts` (requests by operation) and :attr:`Proxy.entries`
(one :class:`RequestRecord` per request). Operations are named the way the service
names them: for SQS the action (``X-Amz-Target: AmazonSQS.SendMessageBatch`` for the JSON
protocol that botocore speaks, or the ``Action=`` parameter of the query protocol); for
Azure ``<METHOD> <resource>`` plus the ``comp`` and ``peekonly`` query parameters, e.g.
``POST messages`` (send), ``GET messages`` (receive), ``GET messages peekonly``,
``DELETE message`` (one message), ``PUT message`` (visibility update), ``GET queue metadata``.

What it injects: the :class:`Fault` subclasses below, each filtered by operation, drawn
with a probability from a seeded :class:`random.Random` and/or limited to the first N
matching requests, and applied either before the request is forwarded (the emulator never
sees it) or after (``after=True``: the emulator processed it and the answer is lost or
replaced, e.g. a ``DeleteMessageBatch`` that succeeded upstream but whose response never
arrives).

What it corrects: moto, with its IAM checks on (``INITIAL_NO_AUTH_ACTION_COUNT``), answers a
refused signature or permission in the query protocol's XML even to a JSON-protocol request;
SQS answers such a request in JSON, the error code in ``x-amzn-query-error``
(:func:`_json_protocol_error`).

What it can also do, opt-in: ``Proxy(..., sqs_receipts=True)`` gives moto the real SQS's receipt
semantics (:class:`SQSReceipts`): a delete with a receipt handle whose visibility timeout ran out,
or that a later receive of the same message superseded, is answered success and not carried out.
moto deletes with any handle a message ever had, so without this a client never meets that edge.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import hashlib
import json
import random
import re
import socket
import struct
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlsplit

import aiohttp
from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError
from yarl import URL

__all__ = [
    "DEFAULT_SQS_VISIBILITY_TIMEOUT",
    "EntryFailure",
    "ErrorStatus",
    "Fault",
    "Latency",
    "Proxy",
    "RequestRecord",
    "Reset",
    "SQSReceipts",
    "ServiceError",
    "Throttle",
    "Timeout",
]

_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "expect",
        "content-length",
    }
)
_INDEXED_ID = re.compile(r"\.(\d+)\.Id$")
_MAX_LINE = 65536
"""Longest request line or header accepted (aiohttp: 8190), so that no client request is refused here."""


# -- faults -------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Fault:
    """When a fault applies; the subclasses say what it does.

    ``operation``: an operation name (see the module docstring) or a tuple of them; ``None``
    matches every request. Of the requests that match, the first ``skip`` are left alone,
    then only the next ``first`` are eligible (``None``: all of them), and each eligible one
    is hit with ``probability``. ``limit`` caps how many times the fault fires in total.
    ``after=False`` applies it instead of forwarding (the emulator never sees the request);
    ``after=True`` forwards first, so the emulator processed the request, and then applies it
    to the answer.

    ``retries``: once the fault fires on a request, it also fires on the next ``retries``
    repeats of that same request (same method, target and body: the SDK retrying it), whatever
    the window, probability and limit say, and the repeats do not count against the window.
    With the SDK's retry count here, the call fails for good however the requests of
    concurrent calls interleave.
    """

    operation: str | tuple[str, ...] | None = None
    probability: float = 1.0
    first: int | None = None
    skip: int = 0
    limit: int | None = None
    after: bool = False
    retries: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"probability must be within [0, 1], got {self.probability}")
        for name in ("first", "limit"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0 or None, got {value}")
        if self.skip < 0 or self.retries < 0:
            raise ValueError(f"skip and retries must be >= 0, got {self.skip} and {self.retries}")

    @property
    def terminal(self) -> bool:
        """Whether the client gets no (genuine) answer once this fault fires."""
        return True

    def matches(self, operation: str) -> bool:
        if self.operation is None:
            return True
        if isinstance(self.operation, str):
            return operation == self.operation
        return operation in self.operation

    def describe(self) -> str:
        return type(self).__name__ + ("(after)" if self.after else "")


@dataclass(frozen=True, kw_only=True)
class Reset(Fault):
    """Close the client's connection without an answer (a TCP reset)."""


@dataclass(frozen=True, kw_only=True)
class Timeout(Fault):
    """Hold the request for ``seconds`` without answering, then close the connection."""

    seconds: float = 5.0


@dataclass(frozen=True, kw_only=True)
class ErrorStatus(Fault):
    """Answer with an HTTP error the way the service does (SQS JSON or XML error, Azure XML error)."""

    status: int = 500


@dataclass(frozen=True, kw_only=True)
class Throttle(Fault):
    """The service's throttling answer.

    SQS: ``400`` with ``__type`` ``com.amazonaws.sqs#<code>`` and ``x-amzn-query-error:
    <code>;Sender`` (botocore classifies ``RequestThrottled`` and ``ThrottlingException`` as
    throttling). Azure: ``503 ServerBusy``.
    """

    code: str = "RequestThrottled"


@dataclass(frozen=True, kw_only=True)
class ServiceError(Fault):
    """One of the service's own errors, answered the way the service sends it, for rules the
    emulator does not enforce (e.g. SQS's ``QueueDeletedRecently``, Azure's ``QueueBeingDeleted``).

    SQS (JSON protocol): ``status`` with ``__type`` ``com.amazonaws.sqs#<code>`` and
    ``x-amzn-query-error: <query_code>;Sender``, the legacy code botocore reports as the error's
    ``Code`` (``query_code`` defaults to ``code``). Azure: ``status`` with ``x-ms-error-code: <code>``
    and the XML error body.
    """

    code: str
    query_code: str | None = None
    status: int = 400
    message: str = "injected service error"


@dataclass(frozen=True, kw_only=True)
class EntryFailure(Fault):
    """An SQS ``*Batch`` call answered ``200`` with entries under ``Failed`` (JSON protocol only).

    Before forwarding, every entry fails and nothing reaches the emulator. After forwarding
    (the emulator carried the whole batch out), the first ``entries`` successes (all with
    ``None``) are reported as failed. The SDK does not retry entry failures, so this is the
    cheap way to a delete that failed for good. Give it a ``*Batch`` ``operation``: on other
    requests it does nothing (but still counts as the request's fault).
    """

    code: str = "InternalError"
    entries: int | None = None


@dataclass(frozen=True, kw_only=True)
class Latency(Fault):
    """Delay the request (``after=False``) or its answer (``after=True``) by ``seconds``; not terminal."""

    seconds: float = 0.5

    @property
    def terminal(self) -> bool:
        return False


@dataclass
class _Armed:
    fault: Fault
    matched: int = 0
    fired: int = 0
    pending: dict[bytes, int] = field(default_factory=dict)
    """Requests (by key) the fault fired on, and how many of their repeats it still fires on."""

    def repeat(self, key: bytes) -> bool:
        """Whether this request repeats one the fault fired on and still owes retries to."""
        left = self.pending.get(key, 0)
        if left <= 0:
            return False
        if left == 1:
            del self.pending[key]
        else:
            self.pending[key] = left - 1
        return True

    def eligible(self, operation: str, rng: random.Random) -> bool:
        """Count a request against this fault's window and draw whether the fault may fire on it."""
        f = self.fault
        if not f.matches(operation):
            return False
        index = self.matched
        self.matched += 1
        if index < f.skip or (f.first is not None and index >= f.skip + f.first):
            return False
        if f.limit is not None and self.fired >= f.limit:
            return False
        return f.probability >= 1.0 or rng.random() < f.probability


# -- records ----------------------------------------------------------------------------------------
@dataclass
class RequestRecord:
    """One request as the proxy saw it."""

    operation: str
    method: str
    path: str
    service: str
    """``sqs`` (JSON protocol), ``sqs-query``, ``azure`` or ``http``."""
    entries: int | None = None
    """Entries of an SQS ``*Batch`` request."""
    max_messages: int | None = None
    """SQS ``MaxNumberOfMessages`` / Azure ``numofmessages`` of a receive."""
    wait_seconds: int | None = None
    """SQS ``WaitTimeSeconds`` of a receive (long polling), when the request sets it."""
    status: int | None = None
    """The status the client got; ``None`` when the connection was closed without an answer."""
    upstream_status: int | None = None
    """The emulator's status; ``None`` when the request never reached it."""
    faults: list[str] = field(default_factory=list)
    """The faults applied, e.g. ``["Latency", "Reset(after)"]``."""
    stale_receipts: int = 0
    """Entries of a delete or visibility change that :class:`SQSReceipts` answered itself, without
    forwarding them, because their receipt handle had expired or was superseded."""
    started: float = 0.0
    """``time.monotonic()`` when the request arrived."""
    seconds: float = 0.0
    """How long the proxy took to answer (or close), faults included."""


@dataclass(frozen=True)
class _Request:
    """A request read in full: what naming, faults and forwarding need of it."""

    method: str
    target: str
    """Path and query exactly as the client sent them."""
    headers: list[tuple[str, str]]
    """In the client's order and spelling, so that signatures over them still verify upstream."""
    body: bytes

    def header(self, name: str) -> str | None:
        name = name.lower()
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None


_Response = tuple[int, list[tuple[str, str]], bytes]
_CLOSED: _Response = (0, [], b"")


# -- the real SQS's receipt handles -----------------------------------------------------------------
DEFAULT_SQS_VISIBILITY_TIMEOUT = 30
"""A queue's ``VisibilityTimeout`` when nobody set it (SQS's default)."""
_RECEIPT_OPERATIONS = frozenset(
    {"ReceiveMessage", "DeleteMessage", "DeleteMessageBatch", "ChangeMessageVisibility", "ChangeMessageVisibilityBatch"}
)


@dataclass
class _Handle:
    queue: str
    message_id: str
    deadline: float
    """The receipts clock's reading when the visibility timeout runs out."""


@dataclass
class _Screened:
    """A delete or visibility change, split by the state of its receipt handles."""

    forward: dict[str, Any] | None
    """The request to forward (only the live entries of a batch); None: nothing is left to forward."""
    stale: list[tuple[dict[str, Any], str]]
    """Entries (a single request's payload, or a batch's entries) answered here, with why:
    ``expired`` or ``superseded``."""


class SQSReceipts:
    """What the real SQS does with receipt handles and moto does not (JSON protocol, which botocore
    and :mod:`fluke_airflow.queues.sqs_direct` speak).

    The SQS API Reference, DeleteMessage
    (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_DeleteMessage.html):
    "If you use an old ReceiptHandle, the request will succeed, but the message might not be
    deleted"; its ReceiptHandle parameter: "Receipt handles are opaque strings that become invalid
    after the message is deleted or after the message visibility timeout expires".
    ChangeMessageVisibility: "the 10 seconds begin to count from the time that you make the
    ChangeMessageVisibility call. Thus, any attempt to change the visibility timeout or to delete
    that message 10 seconds after you initially change the visibility timeout (a total of 25
    seconds) might result in an error." moto deletes with any handle a message ever had.

    Every handle a ``ReceiveMessage`` answer hands out gets a deadline: the moment the proxy
    forwarded the receive (the earliest the service can have handed the message out, so the proxy
    is at least as strict as the service) plus the receive's ``VisibilityTimeout``, else the queue's
    (learned from ``CreateQueue``, ``SetQueueAttributes`` and ``GetQueueAttributes``; else SQS's
    default, 30 s). A visibility change that succeeds moves it to the moment the change was
    forwarded plus its new timeout. A later receive of the same message supersedes the earlier
    handles.

    When a delete is about to be forwarded (after any fault before forwarding: a ``Latency`` on
    ``DeleteMessageBatch`` is a delete that reaches the service late), each entry whose handle has
    expired or was superseded is answered success and NOT forwarded: the worst the reference
    allows, success with nothing deleted. The live entries of a batch are forwarded on their own
    (moto does not check request signatures, so the body can be rewritten) and the two answers are
    merged. A visibility change with such a handle fails with ``MessageNotInflight``, also without
    being forwarded. Handles the proxy never saw handed out pass through for moto to judge.

    ``clock`` (``time.monotonic``) may be replaced, e.g. by a test that moves time on.
    """

    def __init__(self, clock: Any = time.monotonic) -> None:
        self.clock = clock
        self.ignored_deletes: collections.Counter[str] = collections.Counter()
        """Delete entries answered success without being carried out, by why (expired, superseded)."""
        self.ignored_handles: set[str] = set()
        """The receipt handles of those entries (an SDK's retries repeat an entry, not a handle)."""
        self.refused_changes: collections.Counter[str] = collections.Counter()
        """Visibility changes refused with ``MessageNotInflight``, by why."""
        self._handles: dict[str, _Handle] = {}
        self._latest: dict[tuple[str, str], str] = {}
        self._queue_timeouts: dict[str, int] = {}

    @staticmethod
    def _queue(payload: dict[str, Any]) -> str:
        return str(payload.get("QueueUrl") or payload.get("QueueName") or "").rstrip("/").rsplit("/", 1)[-1]

    def _why_stale(self, handle: Any, now: float) -> str | None:
        held = self._handles.get(handle) if isinstance(handle, str) else None
        if held is None:
            return None  # never seen handed out: moto judges
        if self._latest.get((held.queue, held.message_id)) != handle:
            return "superseded"
        if now >= held.deadline:
            return "expired"
        return None

    def screen(self, operation: str, payload: dict[str, Any], now: float) -> _Screened | None:
        """How to carry out a delete or visibility change at ``now``; None: forward it as it is."""
        if operation in ("DeleteMessage", "ChangeMessageVisibility"):
            why = self._why_stale(payload.get("ReceiptHandle"), now)
            return None if why is None else _Screened(None, [(payload, why)])
        if operation not in ("DeleteMessageBatch", "ChangeMessageVisibilityBatch"):
            return None
        entries = payload.get("Entries")
        if not isinstance(entries, list):
            return None
        live: list[dict[str, Any]] = []
        stale: list[tuple[dict[str, Any], str]] = []
        for entry in entries:
            why = self._why_stale(entry.get("ReceiptHandle") if isinstance(entry, dict) else None, now)
            if why is None:
                live.append(entry)
            else:
                stale.append((entry, why))
        if not stale:
            return None
        return _Screened({**payload, "Entries": live} if live else None, stale)

    def observe(self, operation: str, payload: dict[str, Any], forwarded_at: float, answer: _Response) -> None:
        """Learn from an answer the service gave: handles handed out, moved, deleted; queue timeouts."""
        status, _, body = answer
        if status != 200:
            return
        try:
            parsed: Any = json.loads(body or b"{}")
        except ValueError:
            return
        if not isinstance(parsed, dict):
            return
        queue = self._queue(payload)
        if operation == "ReceiveMessage":
            if "VisibilityTimeout" in payload:
                timeout = int(payload["VisibilityTimeout"])
            else:
                timeout = self._queue_timeouts.get(queue, DEFAULT_SQS_VISIBILITY_TIMEOUT)
            for message in parsed.get("Messages") or []:
                handle, message_id = message.get("ReceiptHandle"), message.get("MessageId")
                self._handles[handle] = _Handle(queue, message_id, forwarded_at + timeout)
                self._latest[(queue, message_id)] = handle
        elif operation in ("CreateQueue", "SetQueueAttributes", "GetQueueAttributes"):
            attributes = (parsed if operation == "GetQueueAttributes" else payload).get("Attributes") or {}
            if "VisibilityTimeout" in attributes:
                self._queue_timeouts[queue] = int(attributes["VisibilityTimeout"])
        elif operation in ("ChangeMessageVisibility", "DeleteMessage"):
            self._settled(operation, payload, forwarded_at)
        elif operation in ("ChangeMessageVisibilityBatch", "DeleteMessageBatch"):
            done = {item.get("Id") for item in parsed.get("Successful") or []}
            for entry in payload.get("Entries") or []:
                if entry.get("Id") in done:
                    self._settled(operation, entry, forwarded_at)

    def _settled(self, operation: str, entry: dict[str, Any], forwarded_at: float) -> None:
        held = self._handles.get(entry.get("ReceiptHandle"))  # type: ignore[arg-type]
        if held is None:
            return
        if operation.startswith("Delete"):
            del self._handles[entry["ReceiptHandle"]]
        else:
            held.deadline = forwarded_at + int(entry.get("VisibilityTimeout", 0))

    def answer(self, operation: str, screened: _Screened, upstream: _Response | None) -> _Response:
        """The client's answer: the stale entries' (success for a delete, ``MessageNotInflight`` for a
        change) merged with what the service answered for the live ones."""
        deleting = operation.startswith("Delete")
        for entry, why in screened.stale:
            (self.ignored_deletes if deleting else self.refused_changes)[why] += 1
            if deleting:
                self.ignored_handles.add(str(entry.get("ReceiptHandle")))
        headers = [("Content-Type", "application/x-amz-json-1.0"), ("x-amzn-RequestId", str(uuid.uuid4()))]
        if not operation.endswith("Batch"):
            if deleting:
                return 200, headers, b"{}"
            error = {"__type": "com.amazonaws.sqs#MessageNotInflight", "message": "The message is not in flight."}
            headers.append(("x-amzn-query-error", "AWS.SimpleQueueService.MessageNotInflight;Sender"))
            return 400, headers, json.dumps(error).encode()
        merged: dict[str, Any] = {"Successful": [], "Failed": []}
        if upstream is not None:
            status, upstream_headers, body = upstream
            if status != 200:
                return upstream  # the live entries' request failed as a whole: the client retries all
            merged.update(json.loads(body or b"{}"))
            headers = upstream_headers
        for entry, why in screened.stale:
            if deleting:
                merged.setdefault("Successful", []).append({"Id": entry.get("Id")})
            else:
                failure = {"Id": entry.get("Id"), "SenderFault": True, "Code": "MessageNotInflight"}
                merged.setdefault("Failed", []).append({**failure, "Message": f"The receipt handle is {why}."})
        return 200, headers, json.dumps(merged).encode()


async def _read(incoming: web.BaseRequest) -> _Request:
    """The request with its whole body; a client that expects ``100 Continue`` gets it first."""
    if incoming.headers.get("Expect") is not None:
        await incoming.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        incoming.writer.output_size = 0  # the answer proper has not started (aiohttp's own expect handler does this)
    # content.read(), not incoming.read(): no client_max_size cap, the emulator judges sizes
    body = await incoming.content.read()
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in incoming.raw_headers]
    return _Request(incoming.method, incoming.raw_path, headers, body)


# -- the proxy --------------------------------------------------------------------------------------
class Proxy:
    """A reverse proxy on ``127.0.0.1`` in front of ``upstream_url``; see the module docstring.

    ``url`` is ``http://127.0.0.1:<port>``; requests keep their path, so an Azure client
    uses ``url + "/<account>"`` (:attr:`endpoint` is exactly that for an upstream URL with a
    path, such as Azurite's account URL). ``seed`` seeds the fault draws. ``sqs_receipts``:
    the real SQS's receipt-handle semantics in front of moto (:class:`SQSReceipts`).
    """

    def __init__(
        self, upstream_url: str, *, port: int | None = None, seed: int = 0, sqs_receipts: bool = False
    ) -> None:
        parts = urlsplit(upstream_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"upstream_url must be an http:// URL, got {upstream_url!r}")
        self.upstream_url = upstream_url
        self._upstream = f"http://{parts.netloc}"
        self._upstream_path = parts.path.rstrip("/")
        self.port: int = port or 0
        self.counts: collections.Counter[str] = collections.Counter()
        self.entries: list[RequestRecord] = []
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._faults: list[_Armed] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: web.Server | None = None
        self._listener: asyncio.base_events.Server | None = None
        self._session: aiohttp.ClientSession | None = None
        self._handlers: set[asyncio.Task[Any]] = set()
        self.receipts: SQSReceipts | None = SQSReceipts() if sqs_receipts else None
        """The real SQS's receipt semantics (``sqs_receipts=True``), else None: moto's leniency."""

    # -- lifecycle ----------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def endpoint(self) -> str:
        """``url`` plus the upstream URL's path (Azurite's ``/<account>``)."""
        return self.url + self._upstream_path

    def start(self) -> Proxy:
        if self._thread is not None:
            return self
        loop = asyncio.new_event_loop()
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._startup())
            except BaseException as error:
                failure.append(error)
                started.set()
                loop.close()
                return
            started.set()
            try:
                loop.run_forever()
            finally:
                loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name=f"fluke-proxy-{self.port or 'new'}", daemon=True)
        self._thread.start()
        started.wait()
        if failure:
            self._thread.join()
            self._thread = self._loop = None
            raise RuntimeError(f"the proxy could not start: {failure[0]!r}") from failure[0]
        return self

    def stop(self) -> None:
        if self._thread is None or self._loop is None:
            return
        loop, thread = self._loop, self._thread
        with contextlib.suppress(RuntimeError, TimeoutError, concurrent.futures.TimeoutError):
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        self._thread = self._loop = None

    def __enter__(self) -> Proxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _startup(self) -> None:
        # handler_cancellation off: a client that hangs up does not stop a request the emulator
        # is carrying out. No access log and no decompression: the body goes upstream as it came.
        self._server = web.Server(
            self._handle,
            access_log=None,
            auto_decompress=False,
            max_line_size=_MAX_LINE,
            max_field_size=_MAX_LINE,
        )
        loop = asyncio.get_running_loop()
        self._listener = await loop.create_server(self._server, "127.0.0.1", self.port)
        self.port = int(self._listener.sockets[0].getsockname()[1])
        self._session = aiohttp.ClientSession(
            auto_decompress=False,
            skip_auto_headers=("Accept-Encoding", "User-Agent", "Accept", "Content-Type"),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=120),
            # No keep-alive upstream: an emulator that is stopped (restart()) is not held up by idle
            # connections, and each request reaches whatever server listens now.
            connector=aiohttp.TCPConnector(limit=0, force_close=True),
        )

    async def _shutdown(self) -> None:
        """Reset every client connection and cancel what is in flight (a long poll, a ``Timeout``)."""
        if self._listener is not None:
            self._listener.close()
        if self._server is not None:
            for connection in self._server.connections:
                if connection.transport is not None:
                    _abort(connection.transport)
        for task in list(self._handlers):
            task.cancel()
        if self._handlers:
            await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._listener is not None:
            await self._listener.wait_closed()
            self._listener = None
        self._server = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- accounting and fault plan ----------------------------------------------------------------
    def reset(self) -> None:
        """Forget the counts and records (the fault plan stays)."""
        with self._lock:
            self.counts.clear()
            self.entries.clear()

    def inject(self, *faults: Fault) -> None:
        """Replace the fault plan; faults are tried in order, the first terminal one that fires wins."""
        with self._lock:
            self._faults = [_Armed(f) for f in faults]

    def clear_faults(self) -> None:
        self.inject()

    def fired(self) -> collections.Counter[str]:
        """How many times each fault of the current plan fired (by ``describe()`` and operation)."""
        with self._lock:
            counter: collections.Counter[str] = collections.Counter()
            for armed in self._faults:
                counter[f"{armed.fault.describe()} {armed.fault.operation or '*'}"] += armed.fired
            return counter

    def total(self, *operations: str) -> int:
        """Requests seen for these operations (all requests without arguments)."""
        with self._lock:
            if not operations:
                return sum(self.counts.values())
            return sum(self.counts[o] for o in operations)

    def records(self, operation: str | None = None) -> list[RequestRecord]:
        with self._lock:
            return [r for r in self.entries if operation is None or r.operation == operation]

    def _plan(self, operation: str, after: bool, key: bytes) -> list[Fault]:
        """The faults that fire for this request at this stage: latencies, then at most one terminal.

        Every fault of the stage counts the request against its window (``skip``/``first``),
        so windows refer to the n-th matching request whatever the other faults did.
        """
        chosen: list[Fault] = []
        terminal = False
        with self._lock:
            for armed in self._faults:
                if armed.fault.after != after:
                    continue
                repeat = armed.repeat(key)
                if not repeat and not armed.eligible(operation, self._rng):
                    continue
                if armed.fault.terminal and terminal:
                    continue
                armed.fired += 1
                if not repeat and armed.fault.retries:
                    armed.pending[key] = armed.fault.retries
                chosen.append(armed.fault)
                terminal = terminal or armed.fault.terminal
        chosen.sort(key=lambda fault: fault.terminal)  # latencies first
        return chosen

    # -- serving ----------------------------------------------------------------------------------------
    async def _handle(self, incoming: web.BaseRequest) -> web.StreamResponse:
        """aiohttp's handler: it parses HTTP/1.1 and keeps connections alive, the proxy answers."""
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            try:
                response = await self._answer(await _read(incoming), incoming)
            except (RequestPayloadError, ConnectionError, ValueError):
                _abort(incoming.transport)
                response = _CLOSED
        finally:
            self._handlers.discard(task)
        if response is _CLOSED:
            # The connection is closed already: aiohttp finds it so, sends nothing and logs nothing.
            return web.Response()
        status, headers, body = response
        return web.Response(status=status, headers=headers, body=body)

    async def _answer(self, request: _Request, incoming: web.BaseRequest) -> _Response:
        """The answer to one request, or ``_CLOSED`` when its connection was closed instead."""
        record = _describe(request)
        record.started = time.monotonic()
        with self._lock:
            self.counts[record.operation] += 1
        key = hashlib.sha256(f"{request.method} {request.target}\n".encode("latin-1") + request.body).digest()
        response = await self._apply(self._plan(record.operation, False, key), record, request, incoming)
        if response is None:
            try:
                response = await self._carry_out(request, record)
            except (aiohttp.ClientError, OSError, asyncio.TimeoutError):
                record.faults.append("UpstreamUnreachable")
                self._finish(record)
                _abort(incoming.transport)
                return _CLOSED
            response = _json_protocol_error(record, response)  # (_carry_out set record.upstream_status)
            replaced = await self._apply(
                self._plan(record.operation, True, key), record, request, incoming, upstream=response
            )
            response = replaced or response
        if response is not _CLOSED:
            record.status = response[0]
            self._finish(record)
        return response

    async def _apply(
        self,
        faults: list[Fault],
        record: RequestRecord,
        request: _Request,
        incoming: web.BaseRequest,
        upstream: _Response | None = None,
    ) -> _Response | None:
        """Carry out the faults chosen for one stage: an error answer, ``_CLOSED``, or ``None`` (go on)."""
        for fault in faults:
            record.faults.append(fault.describe())
            if isinstance(fault, Latency):
                await asyncio.sleep(fault.seconds)
            elif isinstance(fault, Reset):
                self._finish(record)
                _abort(incoming.transport)
                return _CLOSED
            elif isinstance(fault, Timeout):
                self._finish(record)
                await asyncio.sleep(fault.seconds)
                if incoming.transport is not None:
                    incoming.transport.close()  # a clean close, after the client waited in vain
                return _CLOSED
            elif isinstance(fault, (ErrorStatus, Throttle, ServiceError)):
                return _error_response(record, request, fault)
            elif isinstance(fault, EntryFailure):
                failed = _entry_failure(record, request, fault, upstream)
                if failed is not None:
                    return failed
        return None

    async def _carry_out(self, request: _Request, record: RequestRecord) -> _Response:
        """Forward the request (with :class:`SQSReceipts`: only what the real SQS would carry out) and
        set ``record.upstream_status``; the answer for the client."""
        receipts = self.receipts if record.service in ("sqs", "sqs-query") else None
        if receipts is None:
            response = await self._forward(request)
            record.upstream_status = response[0]
            return response
        if record.service == "sqs-query" and record.operation in _RECEIPT_OPERATIONS:
            message = "the proxy's SQS receipt semantics (sqs_receipts=True) speak the JSON protocol only"
            xml = f"<ErrorResponse><Error><Type>Sender</Type><Code>UnsupportedOperation</Code><Message>{message}"
            return 400, [("Content-Type", "text/xml")], (xml + "</Message></Error></ErrorResponse>").encode()
        try:
            payload: Any = json.loads(request.body or b"{}") if record.service == "sqs" else None
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            response = await self._forward(request)
            record.upstream_status = response[0]
            return response
        now = receipts.clock()
        screened = receipts.screen(record.operation, payload, now)
        upstream: _Response | None = None
        if screened is None or screened.forward is not None:
            sent = request if screened is None else replace(request, body=json.dumps(screened.forward).encode())
            upstream = await self._forward(sent)
            record.upstream_status = upstream[0]
            receipts.observe(record.operation, payload if screened is None else screened.forward or {}, now, upstream)
        if screened is None:
            assert upstream is not None
            return upstream
        record.stale_receipts = len(screened.stale)
        return receipts.answer(record.operation, screened, upstream)

    def _finish(self, record: RequestRecord) -> None:
        record.seconds = time.monotonic() - record.started
        with self._lock:
            self.entries.append(record)

    async def _forward(self, request: _Request) -> _Response:
        assert self._session is not None
        headers = [(k, v) for k, v in request.headers if k.lower() not in _HOP_BY_HOP]
        async with self._session.request(
            request.method,
            URL(self._upstream + request.target, encoded=True),
            headers=headers,
            data=request.body or None,
            allow_redirects=False,
        ) as upstream:
            body = await upstream.read()
            out = [
                (k.decode("latin-1"), v.decode("latin-1"))
                for k, v in upstream.raw_headers
                if k.decode("latin-1").lower() not in _HOP_BY_HOP
            ]
            return upstream.status, out, body


def _abort(transport: asyncio.Transport | None) -> None:
    """Close with a TCP reset (SO_LINGER 0), so the client sees ECONNRESET, not a clean close."""
    if transport is None:
        return  # the client is gone already
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


# -- naming requests ----------------------------------------------------------------------------------
def _describe(request: _Request) -> RequestRecord:
    path, _, query = request.target.partition("?")
    params = dict(parse_qsl(query, keep_blank_values=True))
    target = request.header("x-amz-target")
    if target:
        record = RequestRecord(target.rsplit(".", 1)[-1], request.method, path, "sqs")
        try:
            payload: Any = json.loads(request.body or b"{}")
        except ValueError:
            payload = {}
        if isinstance(payload, dict):
            if isinstance(payload.get("Entries"), list):
                record.entries = len(payload["Entries"])
            if "MaxNumberOfMessages" in payload:
                record.max_messages = int(payload["MaxNumberOfMessages"])
            if "WaitTimeSeconds" in payload:
                record.wait_seconds = int(payload["WaitTimeSeconds"])
        return record
    content_type = (request.header("content-type") or "").lower()
    form: dict[str, list[str]] = {}
    if "x-www-form-urlencoded" in content_type:
        form = parse_qs(request.body.decode("utf-8", "replace"), keep_blank_values=True)
    action = (form.get("Action") or [params.get("Action", "")])[0]
    if action:
        record = RequestRecord(action, request.method, path, "sqs-query")
        indexes = {m.group(1) for key in form if (m := _INDEXED_ID.search(key))}
        if indexes:
            record.entries = len(indexes)
        if "MaxNumberOfMessages" in form:
            record.max_messages = int(form["MaxNumberOfMessages"][0])
        if "WaitTimeSeconds" in form:
            record.wait_seconds = int(form["WaitTimeSeconds"][0])
        return record
    if request.header("x-ms-version") is None and request.header("x-ms-date") is None:
        return RequestRecord(f"{request.method} {path}", request.method, path, "http")
    segments = [s for s in path.split("/") if s]
    resource = ["account", "account", "queue", "messages", "message"][min(len(segments), 4)]
    if len(segments) >= 3 and segments[2] != "messages":
        resource = "/".join(segments[2:])
    name = f"{request.method} {resource}"
    if params.get("comp"):
        name += f" {params['comp']}"
    if params.get("peekonly", "").lower() == "true":
        name += " peekonly"
    record = RequestRecord(name, request.method, path, "azure")
    if "numofmessages" in params:
        record.max_messages = int(params["numofmessages"])
    return record


def _error_response(
    record: RequestRecord, request: _Request, fault: ErrorStatus | Throttle | ServiceError
) -> _Response:
    request_id = str(uuid.uuid4())
    query_code = None
    if record.service in ("sqs", "sqs-query"):
        if isinstance(fault, ServiceError):
            status, code, kind, message = fault.status, fault.code, "Sender", fault.message
            query_code = fault.query_code
        elif isinstance(fault, Throttle):
            status, code, kind, message = 400, fault.code, "Sender", "Rate exceeded"
        else:
            status = fault.status
            code = "ServiceUnavailable" if status == 503 else "InternalFailure"
            kind, message = "Receiver", f"injected HTTP {status}"
        if record.service == "sqs":
            body = json.dumps({"__type": f"com.amazonaws.sqs#{code}", "message": message}).encode()
            return (
                status,
                [
                    ("Content-Type", "application/x-amz-json-1.0"),
                    ("x-amzn-RequestId", request_id),
                    ("x-amzn-query-error", f"{query_code or code};{kind}"),
                ],
                body,
            )
        xml = (
            f"<?xml version='1.0' encoding='utf-8'?><ErrorResponse><Error><Type>{kind}</Type>"
            f"<Code>{query_code or code}</Code><Message>{message}</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        )
        return status, [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)], xml.encode()
    if isinstance(fault, ServiceError):
        status, code, message = fault.status, fault.code, fault.message
    elif isinstance(fault, Throttle):
        status, code, message = 503, "ServerBusy", "Operations per second is over the account limit."
    else:
        status = fault.status
        code = "ServerBusy" if status == 503 else "InternalError"
        message = f"injected HTTP {status}"
    xml = (
        f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{code}</Code>'
        f"<Message>{message}\nRequestId:{request_id}</Message></Error>"
    )
    headers = [
        ("Content-Type", "application/xml"),
        ("x-ms-request-id", request_id),
        ("x-ms-error-code", code),
    ]
    version = request.header("x-ms-version")
    if version:
        headers.append(("x-ms-version", version))
    return status, headers, xml.encode()


def _entry_failure(
    record: RequestRecord, request: _Request, fault: EntryFailure, upstream: _Response | None
) -> _Response | None:
    if record.service != "sqs" or record.entries is None:
        return None
    if upstream is None:
        successful: list[Any] = []
        failed: list[Any] = [{"Id": e.get("Id")} for e in json.loads(request.body).get("Entries", [])]
    else:
        status, _, body = upstream
        if status != 200:
            return None
        answer = json.loads(body or b"{}")
        successful = list(answer.get("Successful", []))
        count = len(successful) if fault.entries is None else min(fault.entries, len(successful))
        failed, successful = successful[:count], successful[count:]
        failed = [{"Id": item.get("Id")} for item in failed] + list(answer.get("Failed", []))
    for item in failed:
        item.setdefault("SenderFault", False)
        item.setdefault("Code", fault.code)
        item.setdefault("Message", "injected entry failure")
    payload = json.dumps({"Successful": successful, "Failed": failed}).encode()
    headers = [("Content-Type", "application/x-amz-json-1.0"), ("x-amzn-RequestId", str(uuid.uuid4()))]
    return 200, headers, payload


# -- what the real service answers where the emulator does not ------------------------------------
_XML_FIELD = re.compile(rb"<(Code|Message|Type)>([^<]*)</\1>")
_JSON_ERROR_TYPES = {
    "AccessDenied": "AccessDeniedException",
    "SignatureDoesNotMatch": "InvalidSignatureException",
    "InvalidClientTokenId": "UnrecognizedClientException",
}
"""The ``__type`` of AWS's JSON protocol for the query error codes moto's IAM checks answer with."""


def _json_protocol_error(record: RequestRecord, response: _Response) -> _Response:
    """moto's XML error answer to a JSON-protocol SQS request, as SQS sends it.

    "Interpreting Amazon SQS JSON API responses" (SQS Developer Guide): "In the HTTP header,
    x-amzn-RequestId contains the UUID of the request. x-amzn-query-error contains two pieces of
    information: the type of error, and whether the error was a producer or consumer error. In the
    response body, "__type" indicates other error details, and Message indicates the error condition
    in a readable format." The codes are the SQS API reference's Common Errors (InvalidClientTokenId:
    "The X.509 certificate or AWS access key ID provided does not exist in our records. HTTP Status
    Code: 403"), AccessDenied, and "Troubleshoot Signature Version 4 signing for AWS API requests"
    (IAM User Guide): "you might receive HTTP 403 SignatureDoesNotMatch from AWS services"; the
    status stays moto's (403).
    """
    status, headers, body = response
    if record.service != "sqs" or status < 400 or b"<ErrorResponse" not in body[:300]:
        return response
    fields = {name.decode(): value.decode("utf-8", "replace") for name, value in _XML_FIELD.findall(body)}
    code = fields.get("Code", "InternalFailure")
    request_id = next((v for k, v in headers if k.lower() == "x-amzn-requestid"), str(uuid.uuid4()))
    payload = {
        "__type": f"com.amazon.coral.service#{_JSON_ERROR_TYPES.get(code, code)}",
        "message": fields.get("Message", ""),
    }
    return (
        status,
        [
            ("Content-Type", "application/x-amz-json-1.0"),
            ("x-amzn-RequestId", request_id),
            ("x-amzn-query-error", f"{code};{fields.get('Type', 'Sender')}"),
        ],
        json.dumps(payload).encode(),
    )
