"""Amazon SQS: request limits, receipt handles and the blocking/asyncio transports.

What is shared between the two transports (request parameters, response parsing, input
checks) lives in :class:`_SQSRequests`; each transport only awaits or doesn't.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from typing import Any

from fluke_airflow.auth.aws import AWSAuth
from fluke_airflow.exceptions import QueueError, QueueNotFoundError, QueueSettingsConflict
from fluke_airflow.queues import attributes as attrs
from fluke_airflow.queues import limits, management, sqs_direct
from fluke_airflow.queues import validation as check
from fluke_airflow.queues.advice import sqs_advice
from fluke_airflow.queues.base import AsyncQueue, Queue, QueueBase
from fluke_airflow.queues.failures import Reporter
from fluke_airflow.queues.management import QueueCreated
from fluke_airflow.queues.message import SQS_SYSTEM_ATTRIBUTES, Message
from fluke_airflow.queues.sqs_direct import DirectCalls
from fluke_airflow.queues.transport import mark_receive_sent

log = logging.getLogger("fluke_airflow.queues")

SERVICE = "Amazon SQS"
BATCH_ENTRIES = limits.SQS_BATCH_ENTRIES
BATCH_BYTES = limits.SQS_BATCH_BYTES
MAX_VISIBILITY = limits.SQS_MAX_VISIBILITY
MAX_WAIT = limits.SQS_MAX_WAIT
MAX_DELAY = limits.SQS_MAX_DELAY
DEFAULT_MAX_MESSAGE_BYTES = limits.SQS_MAX_MESSAGE_BYTES
_MISSING_QUEUE = {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}
# botocore reports SQS's JSON errors under their query-protocol code (Code) and the JSON one (QueryErrorCode).
_NAME_EXISTS = {"QueueAlreadyExists", "QueueNameExists"}
_DELETED_RECENTLY = {"AWS.SimpleQueueService.QueueDeletedRecently", "QueueDeletedRecently"}
_PURGE_IN_PROGRESS = {"AWS.SimpleQueueService.PurgeQueueInProgress", "PurgeQueueInProgress"}
READY_AFTER_CREATE = 1.0
"""CreateQueue: "After you create a queue, you must wait at least one second after the queue is
created to be able to use the queue" (the SQS API reference): a create returns after that second."""
_COUNTS = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed"]
_OPTIONS = (
    "delay_seconds",
    "message_group_id",
    "message_deduplication_id",
    "message_deduplication_ids",
    "message_attributes",
)


def _error_code(error: Exception) -> str:
    response = getattr(error, "response", None) or {}
    return str(response.get("Error", {}).get("Code", type(error).__name__))


def _is_error(error: Exception, codes: set[str]) -> bool:
    """Whether botocore's error is one of ``codes``, by its query-protocol or its JSON code."""
    err = (getattr(error, "response", None) or {}).get("Error", {})
    return bool({err.get("Code"), err.get("QueryErrorCode")} & codes)


def _redrive(policy: Any) -> tuple[str, int] | None:
    """``RedrivePolicy`` as (dead-letter queue name, maxReceiveCount), None if unset or unreadable."""
    if not policy:
        return None
    try:
        data = json.loads(policy) if isinstance(policy, str) else dict(policy)
        return str(data["deadLetterTargetArn"]).rsplit(":", 1)[-1], int(data["maxReceiveCount"])
    except (ValueError, KeyError, TypeError):
        log.warning("%s: could not read the RedrivePolicy %r", SERVICE, policy)
        return None


def _mark_receive_attempts(client: Any) -> None:
    """Have ``client`` record when each ReceiveMessage attempt is sent (:data:`RECEIVE_SENT`), so that a
    receive botocore retried is measured from the attempt that answered (registered once per client)."""
    client.meta.events.register("before-send.sqs.ReceiveMessage", mark_receive_sent, unique_id="fluke-receive-sent")


class _SQSRequests:
    """The sans-IO half of the SQS transports: the requests they send (parameters, checked push
    entries, chunks) and how SQS's answers read (messages, per-entry outcomes), with the queue's
    own settings that shape both (size limit, FIFO, RedrivePolicy)."""

    delete_chunk_size = BATCH_ENTRIES
    visibility_chunk_size = BATCH_ENTRIES
    receive_chunk_size = BATCH_ENTRIES
    late_delete_uncertain = True
    """A success with an expired receipt handle may delete nothing (see the transport contract)."""

    def __init__(self, queue: str) -> None:
        self.queue = queue
        self.url = queue if queue.startswith(("http://", "https://")) else ""
        self.max_message_bytes = DEFAULT_MAX_MESSAGE_BYTES
        self.fifo = queue.endswith(".fifo")
        self.content_based_deduplication = False
        self.redrive: tuple[str, int] | None = None
        """The queue's own RedrivePolicy: (dead-letter queue name, maxReceiveCount)."""
        self._report = Reporter(SERVICE, queue, None, None, sqs_advice)

    def _reporting_for(self, auth: AWSAuth, client: Any) -> None:
        self._report = Reporter(SERVICE, self.queue, auth, str(client.meta.endpoint_url), sqs_advice)

    def _purge_busy(self, error: Exception) -> bool:
        """SQS allows one PurgeQueue per queue every 60 s; within that window we drain instead."""
        if not _is_error(error, _PURGE_IN_PROGRESS):
            return False
        log.info(
            "%s refused to purge queue %r: a purge is in progress (one PurgeQueue per queue every 60 s); "
            "receiving and deleting its visible messages instead (messages in flight stay)",
            SERVICE,
            self.queue,
        )
        return True

    def _missing(self, error: Exception) -> QueueNotFoundError:
        return self._report.missing(error)

    def _failure(self, action: str, error: Exception, tries: Any = None) -> QueueError:
        return self._report.failure(action, error, tries)

    def _attributes_params(self) -> dict[str, Any]:
        names = ["MaximumMessageSize", "FifoQueue", "ContentBasedDeduplication", "RedrivePolicy"]
        return {"QueueUrl": self.url, "AttributeNames": names}

    def _apply_attributes(self, response: dict[str, Any]) -> None:
        attributes = response.get("Attributes", {})
        self.max_message_bytes = int(attributes.get("MaximumMessageSize", DEFAULT_MAX_MESSAGE_BYTES))
        self.fifo = attributes.get("FifoQueue", "false") == "true"
        self.content_based_deduplication = attributes.get("ContentBasedDeduplication", "false") == "true"
        self.redrive = _redrive(attributes.get("RedrivePolicy"))

    # -- push ------------------------------------------------------------------------------
    @property
    def ordered_sends(self) -> bool:
        """A FIFO queue keeps the order of a message group only if its batches go one after the other."""
        return self.fifo

    @property
    def needs_deduplication_ids(self) -> bool:
        """A FIFO queue without content-based deduplication: every push needs deduplication ids."""
        return self.fifo and not self.content_based_deduplication

    def prepare(
        self, messages: Sequence[str], options: dict[str, Any], *, single_message: bool = False
    ) -> list[dict[str, Any]]:
        unknown = set(options) - set(_OPTIONS)
        if unknown:
            raise TypeError(f"unknown option(s) {sorted(unknown)} for {SERVICE}; allowed: {', '.join(_OPTIONS)}")
        bodies = check.message_list(messages, max_bytes=self.max_message_bytes, service=SERVICE, single=single_message)
        given = options.get("message_attributes")
        with_attributes = attrs.per_message(given, len(bodies)) if given is not None else [({}, 0)] * len(bodies)
        for i, (body, (_, size)) in enumerate(zip(bodies, with_attributes, strict=True)):
            total = check.utf8_size(body) + size
            if size and total > self.max_message_bytes:
                name = "message" if single_message else f"messages[{i}]"
                raise ValueError(
                    f"{name} and its message_attributes are {total} bytes as sent; {SERVICE} queue {self.queue!r} "
                    f"accepts at most {self.max_message_bytes} bytes per message, attributes included"
                )
        delay = check.integer("delay_seconds", options.get("delay_seconds"), maximum=MAX_DELAY, allow_none=True)
        group = options.get("message_group_id")
        if group is not None:
            check.non_empty_str("message_group_id", group)
        elif self.fifo:
            raise ValueError(f"message_group_id is required for the FIFO queue {self.queue!r}")
        dedup = check.optional_str_list(
            "message_deduplication_ids", options.get("message_deduplication_ids"), len(bodies)
        )
        single = options.get("message_deduplication_id")
        if single is not None:
            if len(bodies) != 1:
                raise ValueError("message_deduplication_id is for push(); give push_many() message_deduplication_ids")
            dedup = [check.non_empty_str("message_deduplication_id", single)]
        entries = []
        for i, body in enumerate(bodies):
            entry: dict[str, Any] = {"Id": str(i), "MessageBody": body}
            if with_attributes[i][0]:
                entry["MessageAttributes"] = with_attributes[i][0]
            if delay is not None:
                entry["DelaySeconds"] = delay
            if group is not None:
                entry["MessageGroupId"] = group
            if dedup is not None:
                entry["MessageDeduplicationId"] = dedup[i]
            entries.append(entry)
        return entries

    def redrive_entries(self, messages: Sequence[Message]) -> list[dict[str, Any]]:
        """A message goes back with its own attributes (without the dead-letter reason) and, to a FIFO
        queue, in its own message group (ours if it had none), its old id deduplicating a repeated
        redrive."""
        entries: list[dict[str, Any]] = []
        for message in messages:
            options: dict[str, Any] = {
                "message_attributes": attrs.without_dead_letter_reason(message.message_attributes)
            }
            if self.fifo:
                group = str(message.metadata.get("MessageGroupId") or "fluke-redriven")
                options.update(message_group_id=group, message_deduplication_id=f"redrive-{message.id}")
            entries += self.prepare([message.body], options, single_message=True)
        return entries

    def dead_letter_options(self, messages: Sequence[Message], *, reason: str = "", source: str = "") -> dict[str, Any]:
        """Send options when this queue takes dead letters: a dead letter keeps its body and
        attributes and gains :data:`~fluke_airflow.queues.attributes.DEAD_LETTER_ATTRIBUTES` (why,
        from where, after how many receives) where SQS's 10 attributes leave room; a FIFO queue
        needs a group, and deduplication by the original message id makes a repeated move harmless."""
        options: dict[str, Any] = {
            "message_attributes": [
                attrs.with_dead_letter_reason(m, reason, source, self.max_message_bytes) for m in messages
            ]
        }
        if self.fifo:
            options.update(message_group_id="fluke-dead-letters", message_deduplication_ids=[m.id for m in messages])
        return options

    @staticmethod
    def send_chunks(entries: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
        """Split into SendMessageBatch requests: at most 10 entries and 1 MiB of bodies each."""
        chunks: list[list[dict[str, Any]]] = []
        size = 0
        for entry in entries:
            body_size = len(entry["MessageBody"].encode("utf-8")) + attrs.size_of(entry.get("MessageAttributes"))
            if not chunks or len(chunks[-1]) == BATCH_ENTRIES or size + body_size > BATCH_BYTES:
                chunks.append([])
                size = 0
            chunks[-1].append(entry)
            size += body_size
        return chunks

    def _send_params(self, chunk: Sequence[dict[str, Any]]) -> dict[str, Any]:
        entries = [dict(entry, Id=str(i)) for i, entry in enumerate(chunk)]
        return {"QueueUrl": self.url, "Entries": entries}

    def _sent(self, response: dict[str, Any], chunk: Sequence[dict[str, Any]]) -> list[str | None]:
        """The message id SQS gave each entry of a SendMessageBatch (None where it refused it)."""
        self._batch_outcome("send", response, [f"#{e['Id']}" for e in chunk])
        ids = {item["Id"]: item.get("MessageId") for item in response.get("Successful", [])}
        return [ids.get(str(i)) for i in range(len(chunk))]

    def _batch_outcome(self, action: str, response: dict[str, Any], ids: Sequence[str]) -> list[bool]:
        """Per-entry results of a *Batch request; failures are logged with the message id."""
        ok = {item["Id"] for item in response.get("Successful", [])}
        for failed in response.get("Failed", []):
            index = int(failed["Id"])
            log.warning(
                "%s: %s of message %s in queue %r failed: %s (%s)",
                SERVICE,
                action,
                ids[index],
                self.queue,
                failed.get("Code"),
                failed.get("Message", ""),
            )
        return [str(i) in ok for i in range(len(ids))]

    def _request_failed(self, action: str, count: int, error: Exception, tries: Any = None) -> list[bool]:
        log.warning(
            "%s: %s of %d message(s) in queue %r%s failed%s: %s",
            SERVICE, action, count, self.queue, self._report.source.where(),
            tries.summary() if tries is not None else "", self._report.describe(error, action),
        )  # fmt: skip
        return [False] * count

    # -- receive / delete / visibility -------------------------------------------------------------
    def _receive_params(self, max_messages: int, visibility_timeout: int, wait_seconds: int) -> dict[str, Any]:
        return {
            "QueueUrl": self.url,
            "MaxNumberOfMessages": min(max_messages, BATCH_ENTRIES),
            "VisibilityTimeout": visibility_timeout,
            "WaitTimeSeconds": wait_seconds,
            "MessageSystemAttributeNames": list(SQS_SYSTEM_ATTRIBUTES),
            "MessageAttributeNames": ["All"],
        }

    @staticmethod
    def _parse_receive(response: dict[str, Any], received_at: float = 0.0) -> list[Message]:
        messages = []
        for m in response.get("Messages", []):
            system = m.get("Attributes", {})
            metadata = {name: system[name] for name in SQS_SYSTEM_ATTRIBUTES if name in system}
            user = {
                name: {k: v for k, v in value.items() if k in ("DataType", "StringValue", "BinaryValue")}
                for name, value in (m.get("MessageAttributes") or {}).items()
            }
            messages.append(
                Message(
                    id=m["MessageId"],
                    body=m["Body"],
                    receipt=m["ReceiptHandle"],
                    receive_count=int(system.get("ApproximateReceiveCount", 0)),
                    metadata=metadata,
                    message_attributes=user,
                    received_at=received_at,
                )
            )
        return messages

    def _delete_params(self, chunk: Sequence[Message]) -> dict[str, Any]:
        entries = [{"Id": str(i), "ReceiptHandle": m.receipt} for i, m in enumerate(chunk)]
        return {"QueueUrl": self.url, "Entries": entries}

    def _visibility_params(self, chunk: Sequence[Message], timeout: int) -> dict[str, Any]:
        entries = [
            {"Id": str(i), "ReceiptHandle": m.receipt, "VisibilityTimeout": timeout} for i, m in enumerate(chunk)
        ]
        return {"QueueUrl": self.url, "Entries": entries}

    @staticmethod
    def _kept(chunk: Sequence[Message], results: list[bool]) -> list[Message | None]:
        return [m if ok else None for m, ok in zip(chunk, results, strict=True)]

    @staticmethod
    def _count(response: dict[str, Any]) -> int:
        return int(response.get("Attributes", {}).get("ApproximateNumberOfMessages", 0))

    # -- create / delete (the queue need not exist) ----------------------------------------------------
    def _create_params(self, attributes: dict[str, str], tags: dict[str, str]) -> dict[str, Any]:
        params: dict[str, Any] = {"QueueName": self.queue, "Attributes": attributes}
        if tags:
            params["tags"] = tags
        return params

    def _conflict(
        self, attributes: dict[str, str], tags: dict[str, str], existing: dict[str, Any], existing_tags: dict[str, Any]
    ) -> QueueError | None:
        differences = management.sqs_differences(attributes, existing.get("Attributes", {}))
        differences += management.tag_differences(tags, existing_tags.get("Tags", {}))
        if not differences:
            return None
        return QueueSettingsConflict(SERVICE, self.queue, differences, management.SQS_REMEDY)

    def _create_refused(self, error: Exception) -> QueueError:
        if _is_error(error, _DELETED_RECENTLY):
            return QueueError(
                f"{SERVICE} refused to create queue {self.queue!r}: a queue of that name was deleted less than 60 "
                'seconds ago (CreateQueue: "you must wait at least 60 seconds before creating a queue with the same '
                'name"). Create it a minute later, e.g. give the task retries=1 and retry_delay=timedelta(seconds=60)'
            )
        return self._failure("create", error)

    @staticmethod
    def _total(response: dict[str, Any]) -> int:
        """Messages in the queue: visible, in flight and delayed."""
        return sum(int(response.get("Attributes", {}).get(name, 0)) for name in _COUNTS)


class SyncSQSTransport(_SQSRequests):
    def __init__(self, auth: AWSAuth, queue: str, max_pool_connections: int) -> None:
        super().__init__(queue)
        from botocore.exceptions import BotoCoreError, ClientError

        self._errors = (ClientError, BotoCoreError)
        self.client = auth.create_client("sqs", max_pool_connections=max_pool_connections)
        self._reporting_for(auth, self.client)
        with self._report.tracked("opening") as tries:
            try:
                if not self.url:
                    self.url = self.client.get_queue_url(QueueName=queue)["QueueUrl"]
                self._apply_attributes(self.client.get_queue_attributes(**self._attributes_params()))
            except self._errors as error:
                self.client.close()
                if _error_code(error) in _MISSING_QUEUE:
                    raise self._missing(error) from None
                raise self._failure("opening", error, tries) from None
        self._direct: DirectCalls | None = sqs_direct.for_client(self.client)
        _mark_receive_attempts(self.client)

    def _call(self, operation: str, method: Any, params: dict[str, Any]) -> Any:
        """``method(**params)``, sent directly where it can be (:mod:`~fluke_airflow.queues.sqs_direct`);
        botocore sends it when there is no direct path or the direct attempt failed as botocore retries."""
        if self._direct is None:
            return method(**params)
        response = self._direct.call(self.client, operation, params)
        return response if response is not None else method(**params)

    def close(self) -> None:
        self.client.close()

    def send_batch(self, chunk: Sequence[dict[str, Any]]) -> list[str | None]:
        with self._report.tracked("send") as tries:
            try:
                response = self.client.send_message_batch(**self._send_params(chunk))
            except self._errors as error:
                self._request_failed("send", len(chunk), error, tries)
                return [None] * len(chunk)
        return self._sent(response, chunk)

    def receive(self, max_messages: int, visibility_timeout: int, wait_seconds: int) -> list[Message]:
        params = self._receive_params(max_messages, visibility_timeout, wait_seconds)
        with self._report.tracked("receive") as tries:
            try:
                response = self._call("ReceiveMessage", self.client.receive_message, params)
            except self._errors as error:
                raise self._failure("receive", error, tries) from None
        return self._parse_receive(response, time.time())

    def delete_batch(self, chunk: Sequence[Message]) -> list[bool]:
        with self._report.tracked("delete", changes_state=True) as tries:
            try:
                response = self._call(
                    "DeleteMessageBatch", self.client.delete_message_batch, self._delete_params(chunk)
                )
            except self._errors as error:
                return self._request_failed("delete", len(chunk), error, tries)
        return self._batch_outcome("delete", response, [m.id for m in chunk])

    def set_visibility_batch(self, chunk: Sequence[Message], timeout: int) -> list[Message | None]:
        with self._report.tracked("visibility change", changes_state=True) as tries:
            try:
                response = self.client.change_message_visibility_batch(**self._visibility_params(chunk, timeout))
            except self._errors as error:
                return self._kept(chunk, self._request_failed("visibility change", len(chunk), error, tries))
        return self._kept(chunk, self._batch_outcome("visibility change", response, [m.id for m in chunk]))

    def peek(self, limit: int) -> list[str] | None:
        return None  # no peek in SQS: the queue receives and releases

    def count(self) -> int:
        with self._report.tracked("count") as tries:
            try:
                response = self.client.get_queue_attributes(
                    QueueUrl=self.url, AttributeNames=["ApproximateNumberOfMessages"]
                )
                return self._count(response)
            except self._errors as error:
                raise self._failure("count", error, tries) from None

    def purge(self) -> bool:
        with self._report.tracked("purge") as tries:
            try:
                self.client.purge_queue(QueueUrl=self.url)
            except self._errors as error:
                if not self._purge_busy(error):
                    raise self._failure("purge", error, tries) from None
                return False
        return True


class AsyncSQSTransport(_SQSRequests):
    def __init__(self, queue: str) -> None:
        super().__init__(queue)
        from botocore.exceptions import BotoCoreError, ClientError

        self._errors = (ClientError, BotoCoreError)
        self._client_cm: Any = None
        self._auth: AWSAuth | None = None  # set while holding the auth's shared client
        self.client: Any = None
        self._direct: DirectCalls | None = None

    async def connect(self, auth: AWSAuth, max_pool_connections: int, *, shared: bool = False) -> AsyncSQSTransport:
        if shared:
            self.client = await auth.acquire_shared_async_client()
            self._auth = auth
        else:
            self._client_cm = await auth.create_async_client("sqs", max_pool_connections=max_pool_connections)
            self.client = await self._client_cm.__aenter__()
        self._reporting_for(auth, self.client)
        with self._report.tracked("opening") as tries:
            try:
                if not self.url:
                    self.url = (await self.client.get_queue_url(QueueName=self.queue))["QueueUrl"]
                self._apply_attributes(await self.client.get_queue_attributes(**self._attributes_params()))
            except self._errors as error:
                await self.close()
                if _error_code(error) in _MISSING_QUEUE:
                    raise self._missing(error) from None
                raise self._failure("opening", error, tries) from None
        self._direct = sqs_direct.for_client(self.client)
        _mark_receive_attempts(self.client)
        return self

    async def close(self, *, discard: bool = False) -> None:
        self._direct = None
        if self._client_cm is not None:
            cm, self._client_cm = self._client_cm, None
            await cm.__aexit__(None, None, None)
        elif self._auth is not None:
            auth, self._auth = self._auth, None
            await auth.release_shared_async_client(self.client, retire=discard)

    async def send_batch(self, chunk: Sequence[dict[str, Any]]) -> list[str | None]:
        with self._report.tracked("send") as tries:
            try:
                response = await self.client.send_message_batch(**self._send_params(chunk))
            except self._errors as error:
                self._request_failed("send", len(chunk), error, tries)
                return [None] * len(chunk)
        return self._sent(response, chunk)

    async def _call(self, operation: str, method: Any, params: dict[str, Any]) -> Any:
        """See :meth:`SyncSQSTransport._call`."""
        if self._direct is None:
            return await method(**params)
        response = await self._direct.acall(self.client, operation, params)
        return response if response is not None else await method(**params)

    async def receive(self, max_messages: int, visibility_timeout: int, wait_seconds: int) -> list[Message]:
        params = self._receive_params(max_messages, visibility_timeout, wait_seconds)
        with self._report.tracked("receive") as tries:
            try:
                response = await self._call("ReceiveMessage", self.client.receive_message, params)
            except self._errors as error:
                raise self._failure("receive", error, tries) from None
        return self._parse_receive(response, time.time())

    async def delete_batch(self, chunk: Sequence[Message]) -> list[bool]:
        with self._report.tracked("delete", changes_state=True) as tries:
            try:
                response = await self._call(
                    "DeleteMessageBatch", self.client.delete_message_batch, self._delete_params(chunk)
                )
            except self._errors as error:
                return self._request_failed("delete", len(chunk), error, tries)
        return self._batch_outcome("delete", response, [m.id for m in chunk])

    async def set_visibility_batch(self, chunk: Sequence[Message], timeout: int) -> list[Message | None]:
        with self._report.tracked("visibility change", changes_state=True) as tries:
            try:
                response = await self.client.change_message_visibility_batch(**self._visibility_params(chunk, timeout))
            except self._errors as error:
                return self._kept(chunk, self._request_failed("visibility change", len(chunk), error, tries))
        return self._kept(chunk, self._batch_outcome("visibility change", response, [m.id for m in chunk]))

    async def peek(self, limit: int) -> list[str] | None:
        return None  # no peek in SQS: the queue receives and releases

    async def count(self) -> int:
        with self._report.tracked("count") as tries:
            try:
                return self._count(
                    await self.client.get_queue_attributes(
                        QueueUrl=self.url, AttributeNames=["ApproximateNumberOfMessages"]
                    )
                )
            except self._errors as error:
                raise self._failure("count", error, tries) from None

    async def purge(self) -> bool:
        with self._report.tracked("purge") as tries:
            try:
                await self.client.purge_queue(QueueUrl=self.url)
            except self._errors as error:
                if not self._purge_busy(error):
                    raise self._failure("purge", error, tries) from None
                return False
        return True


class SQSQueueLifecycle(_SQSRequests):
    """Create or delete one queue, blocking. Nothing is opened: the queue need not exist."""

    def __init__(self, auth: AWSAuth, queue: str) -> None:
        super().__init__(queue if management.is_queue_url(queue) else management.sqs_queue_name(queue))
        from botocore.exceptions import BotoCoreError, ClientError

        self._errors = (ClientError, BotoCoreError)
        self._named = not self.url
        self.client = auth.create_client("sqs")
        self._reporting_for(auth, self.client)

    def close(self) -> None:
        self.client.close()

    def _find(self) -> str | None:
        """The queue's URL, None if there is no such queue."""
        if self.url:
            return self.url
        try:
            self.url = str(self.client.get_queue_url(QueueName=self.queue)["QueueUrl"])
            return self.url
        except self._errors as error:
            if _error_code(error) in _MISSING_QUEUE:
                return None
            raise self._failure("opening", error) from error

    def create(self, attributes: dict[str, Any] | None = None, tags: dict[str, Any] | None = None) -> QueueCreated:
        """Create the queue, or find it with the attributes and tags asked for (only those are
        compared, as SQS compares them); :class:`QueueSettingsConflict` names what differs."""
        if not self._named:
            raise ValueError(f"queue must be a queue name to create an {SERVICE} queue, got the URL {self.queue!r}")
        wanted, wanted_tags = management.sqs_attributes(self.queue, attributes), management.sqs_tags(tags)
        url = self._find()
        if url is None:
            try:
                url = str(self.client.create_queue(**self._create_params(wanted, wanted_tags))["QueueUrl"])
            except self._errors as error:
                if not _is_error(error, _NAME_EXISTS):  # else created meanwhile, with other settings
                    raise self._create_refused(error) from error
                url = self._find()
            else:
                log.info("Created %s queue %r: %s", SERVICE, self.queue, url)
                time.sleep(READY_AFTER_CREATE)
                return QueueCreated(url, True)
        if url is None:
            raise self._failure("create", RuntimeError("the queue was there and then gone again"))
        try:
            existing = self.client.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])
            existing_tags = self.client.list_queue_tags(QueueUrl=url) if wanted_tags else {}
        except self._errors as error:
            raise self._failure("opening", error) from error
        conflict = self._conflict(wanted, wanted_tags, existing, existing_tags)
        if conflict is not None:
            raise conflict
        compared = [*wanted, *(f"tag {key!r}" for key in wanted_tags)]
        checked = f"with the settings asked for ({', '.join(compared)})" if compared else "(no settings asked for)"
        log.info("%s queue %r exists already, %s: %s", SERVICE, self.queue, checked, url)
        return QueueCreated(url, False)

    def held(self) -> int:
        """Messages in the queue (visible, in flight and delayed), approximately."""
        url = self._find()
        if url is None:
            raise QueueNotFoundError(SERVICE, self.queue)
        try:
            return self._total(self.client.get_queue_attributes(QueueUrl=url, AttributeNames=_COUNTS))
        except self._errors as error:
            if _error_code(error) in _MISSING_QUEUE:
                raise self._missing(error) from None
            raise self._failure("count", error) from error

    def delete(self) -> bool:
        """Delete the queue and every message in it; False if there was no such queue."""
        try:
            held = self.held()
        except QueueNotFoundError:
            return False
        try:
            self.client.delete_queue(QueueUrl=self.url)
        except self._errors as error:
            if _error_code(error) in _MISSING_QUEUE:
                return False
            raise self._failure("delete", error) from error
        log.info("Deleted %s queue %r, which held about %d message(s)", SERVICE, self.queue, held)
        return True


class _SQSConfig(QueueBase[AWSAuth]):
    service = SERVICE
    metrics_service = "sqs"
    max_visibility_timeout = MAX_VISIBILITY
    max_wait_seconds = MAX_WAIT
    long_polling = True
    max_hidden_seconds = MAX_VISIBILITY  # SQS counts 12 hours from the receive
    receive_limit = BATCH_ENTRIES
    receipts_survive_visibility_change = True
    has_message_attributes = True

    def _check_auth(self, auth: Any) -> None:
        if not isinstance(auth, AWSAuth):
            raise TypeError(f"auth must be an AWSAuth for an {SERVICE} queue, got {type(auth).__name__}")

    def _check_queue(self, queue: str) -> str:
        return queue if management.is_queue_url(queue) else management.sqs_queue_name(queue)

    def get_name(self) -> str:
        return self._queue.rstrip("/").rsplit("/", 1)[-1]

    def _held_messages_block(self) -> bool:
        return self.get_name().endswith(".fifo")  # SQS requires FIFO queue names to end so

    def _pool_connections(self) -> int:
        """A connection for every concurrent request, and two for the heartbeat and a long poll
        beside them (urllib3 drops the connections past its pool size)."""
        return max(10, self._max_concurrency + 2)


class AmazonSQSQueue(_SQSConfig, Queue[AWSAuth]):
    """An Amazon SQS queue, by name or URL. Opens (and checks the queue exists) on construction.

    ``push``/``push_many`` accept ``delay_seconds`` and, for FIFO queues, ``message_group_id``
    and ``message_deduplication_id`` (``message_deduplication_ids`` for ``push_many``).
    """

    def _connect(self, queue: str | None = None, *, create: bool = False) -> SyncSQSTransport:
        return SyncSQSTransport(self._auth, queue or self._queue, self._pool_connections())


class AsyncAmazonSQSQueue(_SQSConfig, AsyncQueue[AWSAuth]):
    """The asyncio twin of :class:`AmazonSQSQueue` (aiobotocore); ``async with`` opens it.

    ``share_client=True``: use the one client that ``auth`` shares among all async queues
    opened so on the running event loop, instead of a client of its own (what triggers do:
    hundreds of them in one triggerer then cost one client per connection, not one each).
    """

    async def _connect(self, queue: str | None = None, *, create: bool = False) -> AsyncSQSTransport:
        transport = AsyncSQSTransport(queue or self._queue)
        return await transport.connect(self._auth, self._pool_connections(), shared=self._share_client)
