"""``ReceiveMessage`` sent straight through the client's HTTP session, for the asyncio transport.

Why: an idle trigger spends its life in 20 s long polls, three a minute, and a triggerer holds
hundreds of them. Per request, aiobotocore emits about thirty events, rebuilds the User-Agent
twice, validates and serialises the parameters, resolves the endpoint rules and keeps retry
books: in a bare loop about 1.8 ms of CPU per receive here, where signing, sending and reading
cost 0.9 ms; 500 idle triggers used 5.85 % of a core through the client and 3.97 % with this. Kombu's SQS transport skips it with an
HTTP client of its own; this module does the same for the one request that idles, and leaves
everything that is hard to get right to botocore:

* the body: serialised by botocore's own serializer, once per set of parameters (a trigger
  repeats one receive), so the bytes are the ones the client would send;
* credentials and their refresh, and SigV4 (:class:`botocore.auth.SigV4Auth`);
* the client's HTTP session (its connection pool, proxies, TLS settings and timeouts);
* the response parser and the errors (the modeled exception classes of the client).

A receive that fails in a way botocore retries (connection errors, timeouts, throttling, 5xx)
is sent again through the client, with all of botocore's retries; other errors are raised as
the client would raise them. Clients that are not plain (unsigned, another signature version,
another protocol) always go through botocore, and ``FLUKE_AIRFLOW_SQS_DIRECT_RECEIVE=0`` turns
the direct path off altogether.
"""

from __future__ import annotations

import asyncio
import logging
import os
import weakref
from typing import Any

log = logging.getLogger("fluke_airflow.queues")

OPERATION = "ReceiveMessage"
SWITCH = "FLUKE_AIRFLOW_SQS_DIRECT_RECEIVE"
"""Environment variable: ``0``/``false``/``no``/``off`` sends every receive through botocore."""


_MAX_BODIES = 4096
"""Serialised receives kept per client: one per queue and receive shape (a shared client serves
up to 200 queues), about half a kilobyte each."""


def enabled() -> bool:
    return os.environ.get(SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")


class DirectReceive:
    """The direct ``ReceiveMessage`` of one aiobotocore SQS client; see the module docstring."""

    def __init__(self, client: Any) -> None:
        from botocore import parsers, serialize
        from botocore.retries.standard import StandardRetryConditions

        from fluke_airflow import __version__

        meta = client.meta  # the client itself is not kept: this object lives as long as it does
        self._operation = meta.service_model.operation_model(OPERATION)
        self._serializer = serialize.create_serializer(meta.service_model.protocol, include_validation=False)
        self._parser = parsers.create_parser(meta.service_model.protocol)
        self._retryable = StandardRetryConditions(max_attempts=2)
        self._endpoint_url = meta.endpoint_url
        self._signing_name = meta.service_model.signing_name
        self._region = meta.region_name
        self._user_agent = f"fluke-airflow/{__version__} direct-receive"
        self._bodies: dict[tuple[Any, ...], dict[str, Any]] = {}

    @staticmethod
    def usable(client: Any) -> bool:
        """Whether ``client`` is plain enough for the direct path (else botocore sends everything)."""
        meta = getattr(client, "meta", None)
        if meta is None or not enabled():
            return False
        service = meta.service_model
        signer = getattr(client, "_request_signer", None)
        http_session = getattr(getattr(client, "_endpoint", None), "http_session", None)
        return (
            service.protocol == "json"
            and getattr(meta.config, "signature_version", None) in (None, "v4")
            and getattr(signer, "_credentials", None) is not None
            and callable(getattr(http_session, "send", None))
            and str(meta.endpoint_url).startswith(("https://", "http://"))
        )

    def _request_dict(self, params: dict[str, Any]) -> dict[str, Any]:
        key = tuple((name, tuple(v) if isinstance(v, list) else v) for name, v in params.items())
        cached = self._bodies.get(key)
        if cached is None:
            if len(self._bodies) >= _MAX_BODIES:
                self._bodies.clear()
            cached = self._bodies[key] = self._serializer.serialize_to_request(params, self._operation)
        return cached

    async def receive(self, client: Any, params: dict[str, Any]) -> dict[str, Any] | None:
        """The parsed response, as ``client.receive_message(**params)`` returns it; ``None`` when
        the request failed in a way botocore would retry (send it through the client then).
        Raises the client's ``ClientError`` for an error it would not retry."""
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import create_request_object, prepare_request_dict
        from botocore.exceptions import BotoCoreError
        from botocore.retries.standard import RetryContext

        serialized = self._request_dict(params)
        request_dict = {**serialized, "headers": dict(serialized["headers"]), "context": {}}
        prepare_request_dict(request_dict, self._endpoint_url, user_agent=self._user_agent)
        request = create_request_object(request_dict)
        credentials = await client._request_signer._credentials.get_frozen_credentials()
        SigV4Auth(credentials, self._signing_name, self._region).add_auth(request)
        try:
            response = await client._endpoint.http_session.send(request.prepare())
            body = await response.content
        except (BotoCoreError, OSError, asyncio.TimeoutError) as error:
            log.debug("direct %s failed (%s); sending it through botocore", OPERATION, type(error).__name__)
            return None
        parsed: dict[str, Any] = self._parser.parse(
            {"status_code": response.status_code, "headers": response.headers, "body": body},
            self._operation.output_shape,
        )
        metadata = parsed.setdefault("ResponseMetadata", {})
        metadata["HTTPStatusCode"] = response.status_code
        metadata.setdefault("RetryAttempts", 0)
        if response.status_code < 300:
            return parsed
        context = RetryContext(
            attempt_number=1, operation_model=self._operation, parsed_response=parsed, http_response=response
        )
        if self._retryable.is_retryable(context):
            log.debug("direct %s got HTTP %s; sending it through botocore", OPERATION, response.status_code)
            return None
        info = parsed.get("Error", {})
        # botocore names the exception class by the query-compatible code (its error_code_override)
        code = info.get("QueryErrorCode") or info.get("Code")
        raise client.exceptions.from_code(code)(parsed, OPERATION)


_per_client: weakref.WeakKeyDictionary[Any, DirectReceive | None] = weakref.WeakKeyDictionary()


def for_client(client: Any) -> DirectReceive | None:
    """The one :class:`DirectReceive` of ``client`` (a shared client serves many transports), or
    ``None`` where the client is not plain enough."""
    if client not in _per_client:
        _per_client[client] = DirectReceive(client) if DirectReceive.usable(client) else None
    return _per_client[client]
