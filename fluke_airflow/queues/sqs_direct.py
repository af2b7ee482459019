"""SQS's two hot requests, ``ReceiveMessage`` and ``DeleteMessageBatch``, sent straight through
the client's HTTP session.

Why: a poll is 10 receives and 10 deletes per 100 messages, and an idle trigger spends its life
in 20 s long polls, three a minute, hundreds of them in one triggerer. Per request, botocore
emits about thirty events, rebuilds the User-Agent twice, validates the parameters, resolves
the endpoint rules and keeps retry books: in a bare loop about 1.8 ms of CPU per receive here,
where serialising, signing, sending and parsing cost 0.9 ms. 500 idle triggers used 5.85 % of
a core through the client and 3.97 % with this. Kombu's SQS transport skips that machinery with
an HTTP client of its own; this module does the same for these two requests, and leaves what is
hard to get right to botocore:

* the body: botocore's own serializer (a receive, which a trigger repeats, serialised once per
  set of parameters), so the bytes are the ones the client would send;
* credentials and their refresh, and SigV4 (:class:`botocore.auth.SigV4Auth`);
* the client's HTTP session (its connection pool, proxies, TLS settings and timeouts);
* the response parser and the errors (the modeled exception classes of the client).

A request that fails in a way botocore retries (connection errors, timeouts, throttling, 5xx)
is sent again through the client, with all of botocore's retries; other errors are raised as
the client would raise them. Clients that are not plain (unsigned, another signature version,
another protocol) always go through botocore, and ``FLUKE_AIRFLOW_SQS_DIRECT=0`` turns the
direct path off altogether.
"""

from __future__ import annotations

import asyncio
import logging
import os
import weakref
from typing import Any

from fluke_airflow.auth import retrying
from fluke_airflow.queues.transport import mark_receive_sent

log = logging.getLogger("fluke_airflow.queues")

OPERATIONS = ("ReceiveMessage", "DeleteMessageBatch")
SWITCH = "FLUKE_AIRFLOW_SQS_DIRECT"
"""Environment variable: ``0``/``false``/``no``/``off`` sends every request through botocore."""
_MAX_BODIES = 4096
"""Serialised receives kept per client: one per queue and receive shape (a shared client serves
up to 200 queues), about half a kilobyte each."""


def enabled() -> bool:
    return os.environ.get(SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")


class DirectCalls:
    """The direct requests of one botocore or aiobotocore SQS client; see the module docstring.

    :meth:`call` (blocking client) and :meth:`acall` (asyncio client) return the parsed response
    as the client's method would, or ``None`` when the request failed in a way botocore retries:
    the caller then sends it through the client.
    """

    def __init__(self, client: Any) -> None:
        from botocore import parsers, serialize
        from botocore.retries.standard import StandardRetryConditions

        from fluke_airflow import __version__

        meta = client.meta  # the client itself is not kept: this object lives as long as it does
        protocol = meta.service_model.protocol
        self._operations = {name: meta.service_model.operation_model(name) for name in OPERATIONS}
        self._serializer = serialize.create_serializer(protocol, include_validation=False)
        self._parser = parsers.create_parser(protocol)
        self._retryable = StandardRetryConditions(max_attempts=2)
        self._endpoint_url = meta.endpoint_url
        self._signing_name = meta.service_model.signing_name
        self._region = meta.region_name
        self._user_agent = f"fluke-airflow/{__version__} direct"
        self._bodies: dict[tuple[Any, ...], dict[str, Any]] = {}

    @staticmethod
    def usable(client: Any) -> bool:
        """Whether ``client`` is plain enough for the direct path (else botocore sends everything)."""
        meta = getattr(client, "meta", None)
        if meta is None or not enabled():
            return False
        signer = getattr(client, "_request_signer", None)
        http_session = getattr(getattr(client, "_endpoint", None), "http_session", None)
        return (
            meta.service_model.protocol == "json"
            and getattr(meta.config, "signature_version", None) in (None, "v4")
            and getattr(signer, "_credentials", None) is not None
            and callable(getattr(http_session, "send", None))
            and str(meta.endpoint_url).startswith(("https://", "http://"))
        )

    # -- the request and the answer, the same for both flavours ------------------------------------
    def _serialized(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        model = self._operations[operation]
        if operation != "ReceiveMessage":  # every delete has other receipts: nothing to reuse
            return self._serializer.serialize_to_request(params, model)  # type: ignore[no-any-return]
        key = tuple((name, tuple(v) if isinstance(v, list) else v) for name, v in params.items())
        cached = self._bodies.get(key)
        if cached is None:
            if len(self._bodies) >= _MAX_BODIES:
                self._bodies.clear()
            cached = self._bodies[key] = self._serializer.serialize_to_request(params, model)
        return cached

    def _request(self, operation: str, params: dict[str, Any], credentials: Any) -> Any:
        """The signed, prepared request, as botocore's endpoint would send it."""
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import create_request_object, prepare_request_dict

        serialized = self._serialized(operation, params)
        request_dict = {**serialized, "headers": dict(serialized["headers"]), "context": {}}
        prepare_request_dict(request_dict, self._endpoint_url, user_agent=self._user_agent)
        request = create_request_object(request_dict)
        SigV4Auth(credentials, self._signing_name, self._region).add_auth(request)
        return request.prepare()

    def _answer(self, client: Any, operation: str, response: Any, body: bytes) -> dict[str, Any] | None:
        model = self._operations[operation]
        parsed: dict[str, Any] = self._parser.parse(
            {"status_code": response.status_code, "headers": response.headers, "body": body}, model.output_shape
        )
        metadata = parsed.setdefault("ResponseMetadata", {})
        metadata["HTTPStatusCode"] = response.status_code
        metadata.setdefault("RetryAttempts", 0)
        if response.status_code < 300:
            return parsed
        from botocore.retries.standard import RetryContext

        context = RetryContext(attempt_number=1, operation_model=model, parsed_response=parsed, http_response=response)
        if self._retryable.is_retryable(context):
            log.debug("direct %s got HTTP %s; sending it through botocore", operation, response.status_code)
            _retried(parsed)
            return None
        info = parsed.get("Error", {})
        # botocore names the exception class by the query-compatible code (its error_code_override)
        code = info.get("QueryErrorCode") or info.get("Code")
        raise client.exceptions.from_code(code)(parsed, operation)

    @staticmethod
    def _unanswered(operation: str, error: Exception) -> None:
        log.debug("direct %s failed (%s); sending it through botocore", operation, type(error).__name__)
        _retried(error)

    # -- the two flavours ---------------------------------------------------------------------------------
    def call(self, client: Any, operation: str, params: dict[str, Any]) -> dict[str, Any] | None:
        from botocore.exceptions import BotoCoreError

        credentials = client._request_signer._credentials.get_frozen_credentials()
        try:
            request = self._request(operation, params, credentials)
            if operation == "ReceiveMessage":
                mark_receive_sent()
            response = client._endpoint.http_session.send(request)
            body = response.content
        except (BotoCoreError, OSError) as error:
            self._unanswered(operation, error)
            return None
        return self._answer(client, operation, response, body)

    async def acall(self, client: Any, operation: str, params: dict[str, Any]) -> dict[str, Any] | None:
        from botocore.exceptions import BotoCoreError

        credentials = await client._request_signer._credentials.get_frozen_credentials()
        try:
            request = self._request(operation, params, credentials)
            if operation == "ReceiveMessage":
                mark_receive_sent()
            response = await client._endpoint.http_session.send(request)
            body = await response.content
        except (BotoCoreError, OSError, asyncio.TimeoutError) as error:
            self._unanswered(operation, error)
            return None
        return self._answer(client, operation, response, body)


def _retried(answer: Any) -> None:
    """The direct attempt failed as botocore retries: botocore sends it again, which is a retry of
    the request the caller tracks (:mod:`fluke_airflow.auth.retrying`)."""
    tries = retrying.current()
    if tries is not None:
        tries.note_retry(answer, None)


_per_client: weakref.WeakKeyDictionary[Any, DirectCalls | None] = weakref.WeakKeyDictionary()


def for_client(client: Any) -> DirectCalls | None:
    """The one :class:`DirectCalls` of ``client`` (a shared client serves many transports), or
    ``None`` where the client is not plain enough."""
    if client not in _per_client:
        _per_client[client] = DirectCalls(client) if DirectCalls.usable(client) else None
    return _per_client[client]
