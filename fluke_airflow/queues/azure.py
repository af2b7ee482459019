"""Azure Queue Storage: request limits, pop receipts, encodings and the blocking/asyncio transports.

Azure has no batch API: sends and deletes are one request per message, which the drivers
run concurrently. A receive returns up to 32 messages. Pop receipts change whenever a
message's visibility is updated, so visibility changes hand back the new receipt.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any, Literal

from fluke_airflow.auth.azure import AzureAuth
from fluke_airflow.exceptions import QueueError, QueueNotFoundError, QueueSettingsConflict
from fluke_airflow.queues import limits, management
from fluke_airflow.queues import validation as check
from fluke_airflow.queues.advice import azure_advice
from fluke_airflow.queues.base import AsyncQueue, Queue, QueueBase
from fluke_airflow.queues.causes import strip_query
from fluke_airflow.queues.failures import Reporter
from fluke_airflow.queues.management import QueueCreated
from fluke_airflow.queues.message import Message

log = logging.getLogger("fluke_airflow.queues")

SERVICE = "Azure Queue Storage"
RECEIVE_LIMIT = limits.AZURE_RECEIVE_LIMIT
MAX_MESSAGE_BYTES = limits.AZURE_MAX_MESSAGE_BYTES
MAX_VISIBILITY = limits.AZURE_MAX_VISIBILITY
_OPTIONS = ("delay_seconds", "time_to_live")
POISON_SUFFIX = "-poison"
"""Azure Functions' name for a queue's poison queue: ``<queue>-poison``."""
Encoding = Literal["text", "base64"]


def _quiet_sdk_request_logging() -> None:
    """azure-core logs every request and response header at INFO; keep task logs readable.

    Only when nobody configured that logger: set it to INFO or DEBUG yourself to see requests.
    """
    sdk_log = logging.getLogger("azure.core.pipeline.policies.http_logging_policy")
    if sdk_log.level == logging.NOTSET:
        sdk_log.setLevel(logging.WARNING)


def _requests_transport(pool_size: int, timeouts: dict[str, float]) -> Any:
    """A requests session whose connection pool fits the number of concurrent requests we make,
    with the storage SDK's timeouts (``AzureAuth.timeouts``; azure-core's own default is 300 s)."""
    import requests
    from azure.core.pipeline.transport import RequestsTransport
    from requests.adapters import HTTPAdapter

    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return RequestsTransport(session=session, session_owner=True, **timeouts)


class _AzureRequests:
    """The sans-IO half of the Azure transports: the requests they send (checked bodies and their
    send options, one message per request) and how the SDK's answers read (messages, receipts)."""

    delete_chunk_size = 1
    visibility_chunk_size = 1
    receive_chunk_size = RECEIVE_LIMIT
    late_delete_uncertain = False
    """A stale pop receipt is refused (404 MessageNotFound), so a success proves the delete."""

    def __init__(self, queue: str, encoding: Encoding) -> None:
        self.queue = queue
        self.encoding = encoding
        self._report = Reporter(SERVICE, queue, None, None, azure_advice)

    def _failure(self, action: str, error: Exception, tries: Any = None) -> QueueError:
        return self._report.failure(action, error, tries)

    def _reporting_for(self, auth: AzureAuth) -> None:
        self._report = Reporter(
            SERVICE, self.queue, auth, strip_query(auth.account_url) if auth.account_url else None, azure_advice
        )

    def _client_kwargs(self) -> dict[str, Any]:
        _quiet_sdk_request_logging()
        if self.encoding == "text":
            return {}
        from azure.storage.queue import TextBase64DecodePolicy, TextBase64EncodePolicy

        return {"message_encode_policy": TextBase64EncodePolicy(), "message_decode_policy": TextBase64DecodePolicy()}

    def _open_failed(self, error: Exception, tries: Any = None) -> QueueError:
        from azure.core.exceptions import ResourceNotFoundError

        if isinstance(error, ResourceNotFoundError):
            return self._report.missing(error)
        return self._report.failure("opening", error, tries)

    ordered_sends = False  # no batch API: one request per message, sent concurrently
    needs_deduplication_ids = False  # no deduplication in Azure Queue Storage
    redrive: tuple[str, int] | None = None  # Azure moves nothing by itself: poison messages are the consumer's to move

    def _missing(self, error: Exception) -> bool:
        from azure.core.exceptions import ResourceNotFoundError

        return isinstance(error, ResourceNotFoundError)

    def _created(self) -> None:
        log.warning("%s: created queue %r for poison messages (it did not exist)", SERVICE, self.queue)

    def prepare(
        self, messages: Sequence[str], options: dict[str, Any], *, single_message: bool = False
    ) -> list[tuple[str, dict[str, Any]]]:
        if "message_attributes" in options:
            raise ValueError(
                f"message_attributes are an Amazon SQS feature: {SERVICE} messages carry a body only. Put the "
                "attributes into the body (e.g. JSON with the payload and its attributes), or use an SQS queue"
            )
        unknown = set(options) - set(_OPTIONS)
        if unknown:
            raise TypeError(f"unknown option(s) {sorted(unknown)} for {SERVICE}; allowed: {', '.join(_OPTIONS)}")
        text = self.encoding == "text"
        bodies = check.message_list(
            messages,
            max_bytes=MAX_MESSAGE_BYTES,
            service=SERVICE,
            size_of=check.utf8_size if text else check.base64_size,
            text_only=text,
            single=single_message,
        )
        kwargs: dict[str, Any] = {}
        delay = check.integer("delay_seconds", options.get("delay_seconds"), maximum=MAX_VISIBILITY, allow_none=True)
        if delay:
            kwargs["visibility_timeout"] = delay
        ttl = options.get("time_to_live")
        if ttl is not None:
            if ttl != -1:
                check.integer("time_to_live", ttl, minimum=1)
            kwargs["time_to_live"] = ttl
        return [(body, kwargs) for body in bodies]

    def redrive_entries(self, messages: Sequence[Message]) -> list[Any]:
        return self.prepare([m.body for m in messages], {})  # the body exactly as it was

    @staticmethod
    def dead_letter_options(messages: Sequence[Message], *, reason: str = "", source: str = "") -> dict[str, Any]:
        return {}  # an Azure message is its body only: the body moves exactly as it was (the reason is logged)

    @staticmethod
    def send_chunks(entries: list[Any]) -> list[list[Any]]:
        return [[entry] for entry in entries]

    @staticmethod
    def _receive_params(max_messages: int, visibility_timeout: int) -> dict[str, Any]:
        """``receive_messages`` keywords: one page of at most 32 (Azure has no long polling to wait with)."""
        return {"messages_per_page": min(max_messages, RECEIVE_LIMIT), "visibility_timeout": visibility_timeout}

    @staticmethod
    def _renewed(message: Message, updated: Any) -> Message:
        """``message`` after ``update_message`` answered ``updated``: the new pop receipt replaces the
        old one, which Azure voids with the change."""
        return message.with_receipt(updated.pop_receipt)

    @staticmethod
    def _message(item: Any, received_at: float = 0.0) -> Message:
        def iso(when: Any) -> str | None:
            return when.isoformat() if when is not None else None

        metadata = {
            "inserted_on": iso(item.inserted_on),
            "expires_on": iso(item.expires_on),
            "next_visible_on": iso(item.next_visible_on),
            "dequeue_count": item.dequeue_count or 0,
        }
        return Message(
            id=item.id,
            body=item.content,
            receipt=item.pop_receipt,
            receive_count=item.dequeue_count or 0,
            metadata={k: v for k, v in metadata.items() if v is not None},
            received_at=received_at,
        )

    def _warn(self, action: str, message_id: str, error: Exception, tries: Any = None) -> None:
        log.warning(
            "%s: %s of message %s in queue %r%s failed%s: %s",
            SERVICE, action, message_id, self.queue, self._report.source.where(),
            tries.summary() if tries is not None else "", self._report.describe(error, action),
        )  # fmt: skip

    # -- create / delete (the queue need not exist) ----------------------------------------------------
    def _exists_already(self, error: Exception) -> bool | None:
        """Create Queue of an existing queue: True for 204 (the same metadata: the SDK raises it as
        ResourceExistsError), False for 409 QueueAlreadyExists (other metadata), None otherwise."""
        response = getattr(error, "response", None)
        if getattr(response, "status_code", None) == 204:
            return True
        return False if str(getattr(error, "error_code", "")) == "QueueAlreadyExists" else None

    def _create_refused(self, error: Exception) -> QueueError:
        if str(getattr(error, "error_code", "")) == "QueueBeingDeleted":
            return QueueError(
                f"{SERVICE} refused to create queue {self.queue!r}: a queue of that name is being deleted (409 "
                "QueueBeingDeleted; Azure removes a deleted queue in the background, which takes at least 30 seconds). "
                "Create it later, e.g. give the task retries=2 and retry_delay=timedelta(seconds=60)"
            )
        return self._failure("create", error)

    def _conflict(self, metadata: dict[str, str], existing: dict[str, str]) -> QueueError | None:
        differences = management.azure_differences(metadata, existing)
        return QueueSettingsConflict(SERVICE, self.queue, differences, management.AZURE_REMEDY) if differences else None


class SyncAzureTransport(_AzureRequests):
    def __init__(self, auth: AzureAuth, queue: str, encoding: Encoding, pool_size: int, create: bool = False) -> None:
        super().__init__(queue, encoding)
        from azure.core.exceptions import AzureError, ResourceExistsError

        self._errors = AzureError
        self._reporting_for(auth)
        self.client, self._credential = auth.create_queue_client(
            queue, transport=_requests_transport(pool_size, auth.timeouts()), **self._client_kwargs()
        )
        with self._report.tracked("opening") as tries:
            try:
                try:
                    self.client.get_queue_properties()
                except self._errors as error:
                    if not (create and self._missing(error)):
                        raise
                    try:
                        self.client.create_queue()
                        self._created()
                    except ResourceExistsError:  # created meanwhile by another consumer
                        pass
            except self._errors as error:
                self.close()
                raise self._open_failed(error, tries) from None

    def close(self) -> None:
        self.client.close()
        if self._credential is not None:
            self._credential.close()

    def send_batch(self, chunk: Sequence[tuple[str, dict[str, Any]]]) -> list[str | None]:
        body, kwargs = chunk[0]
        with self._report.tracked("send") as tries:
            try:
                sent = self.client.send_message(body, **kwargs)
            except self._errors as error:
                self._warn("send", "(new)", error, tries)
                return [None]
        return [sent.id]

    def receive(self, max_messages: int, visibility_timeout: int, wait_seconds: int) -> list[Message]:
        params = self._receive_params(max_messages, visibility_timeout)
        with self._report.tracked("receive") as tries:
            try:
                pages = self.client.receive_messages(**params)
                return [self._message(item, time.time()) for item in next(pages.by_page(), [])]
            except self._errors as error:
                raise self._report.failure("receive", error, tries) from None

    def delete_batch(self, chunk: Sequence[Message]) -> list[bool]:
        message = chunk[0]
        with self._report.tracked("delete", changes_state=True) as tries:
            try:
                self.client.delete_message(message.id, message.receipt)
            except self._errors as error:
                self._warn("delete", message.id, error, tries)
                return [False]
        return [True]

    def set_visibility_batch(self, chunk: Sequence[Message], timeout: int) -> list[Message | None]:
        message = chunk[0]
        with self._report.tracked("visibility change", changes_state=True) as tries:
            try:
                updated = self.client.update_message(message.id, message.receipt, visibility_timeout=timeout)
            except self._errors as error:
                self._warn("visibility change", message.id, error, tries)
                return [None]
        return [self._renewed(message, updated)]

    def peek(self, limit: int) -> list[str] | None:
        with self._report.tracked("peek") as tries:
            try:
                return [item.content for item in self.client.peek_messages(max_messages=limit)]
            except self._errors as error:
                raise self._report.failure("peek", error, tries) from None

    def count(self) -> int:
        with self._report.tracked("count") as tries:
            try:
                return int(self.client.get_queue_properties().approximate_message_count or 0)
            except self._errors as error:
                raise self._report.failure("count", error, tries) from None

    def purge(self) -> bool:
        with self._report.tracked("clear") as tries:
            try:
                self.client.clear_messages()
            except self._errors as error:
                raise self._report.failure("clear", error, tries) from None
        return True


class AsyncAzureTransport(_AzureRequests):
    def __init__(self, queue: str, encoding: Encoding) -> None:
        super().__init__(queue, encoding)
        from azure.core.exceptions import AzureError

        self._errors = AzureError
        self.client: Any = None
        self._credential: Any = None
        self._auth: AzureAuth | None = None  # set while holding the auth's shared service client
        self._service: Any = None

    async def connect(self, auth: AzureAuth, *, shared: bool = False, create: bool = False) -> AsyncAzureTransport:
        from azure.core.exceptions import ResourceExistsError

        self._reporting_for(auth)
        if shared:
            self._service = await auth.acquire_shared_service_client()
            self._auth = auth
            self.client = self._service.get_queue_client(self.queue, **self._client_kwargs())
        else:
            self.client, self._credential = auth.create_queue_client(
                self.queue, asynchronous=True, **self._client_kwargs()
            )
        with self._report.tracked("opening") as tries:
            try:
                try:
                    await self.client.get_queue_properties()
                except self._errors as error:
                    if not (create and self._missing(error)):
                        raise
                    try:
                        await self.client.create_queue()
                        self._created()
                    except ResourceExistsError:
                        pass
            except self._errors as error:
                await self.close()
                raise self._open_failed(error, tries) from None
        return self

    async def close(self, *, discard: bool = False) -> None:
        if self.client is not None:
            await self.client.close()  # a shared service client's queue client leaves its transport open
        if self._credential is not None:
            await self._credential.close()
        if self._auth is not None:
            auth, self._auth = self._auth, None
            await auth.release_shared_service_client(self._service, retire=discard)

    async def send_batch(self, chunk: Sequence[tuple[str, dict[str, Any]]]) -> list[str | None]:
        body, kwargs = chunk[0]
        with self._report.tracked("send") as tries:
            try:
                sent = await self.client.send_message(body, **kwargs)
            except self._errors as error:
                self._warn("send", "(new)", error, tries)
                return [None]
        return [sent.id]

    async def receive(self, max_messages: int, visibility_timeout: int, wait_seconds: int) -> list[Message]:
        params = self._receive_params(max_messages, visibility_timeout)
        with self._report.tracked("receive") as tries:
            try:
                pages = self.client.receive_messages(**params)
                try:
                    page = await pages.by_page().__anext__()
                except StopAsyncIteration:
                    return []
                now = time.time()
                return [self._message(item, now) async for item in page]
            except self._errors as error:
                raise self._report.failure("receive", error, tries) from None

    async def delete_batch(self, chunk: Sequence[Message]) -> list[bool]:
        message = chunk[0]
        with self._report.tracked("delete", changes_state=True) as tries:
            try:
                await self.client.delete_message(message.id, message.receipt)
            except self._errors as error:
                self._warn("delete", message.id, error, tries)
                return [False]
        return [True]

    async def set_visibility_batch(self, chunk: Sequence[Message], timeout: int) -> list[Message | None]:
        message = chunk[0]
        with self._report.tracked("visibility change", changes_state=True) as tries:
            try:
                updated = await self.client.update_message(message.id, message.receipt, visibility_timeout=timeout)
            except self._errors as error:
                self._warn("visibility change", message.id, error, tries)
                return [None]
        return [self._renewed(message, updated)]

    async def peek(self, limit: int) -> list[str] | None:
        with self._report.tracked("peek") as tries:
            try:
                return [item.content for item in await self.client.peek_messages(max_messages=limit)]
            except self._errors as error:
                raise self._report.failure("peek", error, tries) from None

    async def count(self) -> int:
        with self._report.tracked("count") as tries:
            try:
                return int((await self.client.get_queue_properties()).approximate_message_count or 0)
            except self._errors as error:
                raise self._report.failure("count", error, tries) from None

    async def purge(self) -> bool:
        with self._report.tracked("clear") as tries:
            try:
                await self.client.clear_messages()
            except self._errors as error:
                raise self._report.failure("clear", error, tries) from None
        return True


class AzureQueueLifecycle(_AzureRequests):
    """Create or delete one queue, blocking. Nothing is opened: the queue need not exist."""

    def __init__(self, auth: AzureAuth, queue: str) -> None:
        super().__init__(management.azure_queue_name(queue), "text")
        from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError

        self._errors = AzureError
        self._exists, self._not_found = ResourceExistsError, ResourceNotFoundError
        self._reporting_for(auth)
        self.client, self._credential = auth.create_queue_client(queue, **self._client_kwargs())

    def close(self) -> None:
        self.client.close()
        if self._credential is not None:
            self._credential.close()

    def create(self, metadata: dict[str, Any] | None = None) -> QueueCreated:
        """Create the queue, or find it with the metadata asked for (all of it, as Azure compares it;
        ``None`` leaves an existing queue's metadata unchecked); :class:`QueueSettingsConflict` names
        what differs. The XCom-safe name comes back: an Azure queue URL may carry a SAS token."""
        wanted = management.azure_metadata(metadata)
        try:
            self.client.create_queue(metadata=wanted)
        except self._exists as error:
            same = self._exists_already(error)
            if same is None:
                raise self._create_refused(error) from None
            if not same and wanted is not None:
                try:
                    existing = dict(self.client.get_queue_properties().metadata or {})
                except self._errors as failure:
                    raise self._failure("opening", failure) from None
                conflict = self._conflict(wanted, existing)
                if conflict is not None:
                    raise conflict from None
            checked = "the metadata asked for" if wanted is not None else "its metadata unchecked (none given)"
            log.info("%s queue %r exists already, with %s", SERVICE, self.queue, checked)
            return QueueCreated(self.queue, False)
        except self._errors as error:
            raise self._create_refused(error) from None
        log.info("Created %s queue %r", SERVICE, self.queue)
        return QueueCreated(self.queue, True)

    def held(self) -> int:
        """Messages in the queue, visible or not, approximately (Azure's count is never lower)."""
        try:
            return int(self.client.get_queue_properties().approximate_message_count or 0)
        except self._errors as error:
            raise self._open_failed(error) from None

    def delete(self) -> bool:
        """Delete the queue and every message in it; False if there was no such queue."""
        try:
            held = self.held()
        except QueueNotFoundError:
            return False
        try:
            self.client.delete_queue()
        except self._not_found:
            return False
        except self._errors as error:
            raise self._failure("delete", error) from None
        log.info("Deleted %s queue %r, which held about %d message(s)", SERVICE, self.queue, held)
        return True


class _AzureConfig(QueueBase[AzureAuth]):
    service = SERVICE
    metrics_service = "azure"
    poison_suffix = POISON_SUFFIX
    max_visibility_timeout = MAX_VISIBILITY
    max_hidden_seconds = MAX_VISIBILITY
    min_visibility_timeout = limits.AZURE_MIN_RECEIVE_VISIBILITY
    receive_limit = RECEIVE_LIMIT
    receipts_survive_visibility_change = False  # every visibility change issues a new pop receipt
    # wait_time_seconds is accepted for symmetry with SQS and ignored: Azure has no long polling.

    def __init__(
        self,
        auth: AzureAuth,
        queue: str,
        *,
        max_concurrency: int = 16,
        message_encoding: Encoding = "text",
        **options: Any,
    ) -> None:
        """``options``: ``suppress_output``, and ``share_client`` for the async queue."""
        if message_encoding not in ("text", "base64"):
            raise ValueError(f"message_encoding must be 'text' or 'base64', got {message_encoding!r}")
        self._encoding: Encoding = message_encoding
        super().__init__(auth, queue, max_concurrency=max_concurrency, **options)

    def _check_auth(self, auth: Any) -> None:
        if not isinstance(auth, AzureAuth):
            raise TypeError(f"auth must be an AzureAuth for an {SERVICE} queue, got {type(auth).__name__}")

    def _check_queue(self, queue: str) -> str:
        return management.azure_queue_name(queue)


class AzureStorageQueue(_AzureConfig, Queue[AzureAuth]):
    """An Azure Storage queue. Opens (and checks the queue exists) on construction.

    ``message_encoding="base64"`` reads and writes base64 bodies, as Azure Functions and
    other SDKs do; the default ``"text"`` sends bodies as they are. ``push`` accepts
    ``delay_seconds`` and ``time_to_live``.
    """

    def _connect(self, queue: str | None = None, *, create: bool = False) -> SyncAzureTransport:
        return SyncAzureTransport(
            self._auth, queue or self._queue, self._encoding, max(10, self._max_concurrency), create=create
        )


class AsyncAzureStorageQueue(_AzureConfig, AsyncQueue[AzureAuth]):
    """The asyncio twin of :class:`AzureStorageQueue` (``azure.storage.queue.aio``).

    ``share_client=True``: use the service client that ``auth`` shares among all async queues
    opened so on the running event loop (one connection pool per account, as triggers use it).
    """

    async def _connect(self, queue: str | None = None, *, create: bool = False) -> AsyncAzureTransport:
        transport = AsyncAzureTransport(queue or self._queue, self._encoding)
        return await transport.connect(self._auth, shared=self._share_client, create=create)
