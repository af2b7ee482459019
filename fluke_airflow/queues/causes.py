"""What went wrong in a request, as the SDK saw it, with the secrets taken out.

The SDKs' exceptions bury the cause: botocore's ``EndpointConnectionError`` names the URL only,
the Azure SDK's ``ServiceRequestError`` holds urllib3's text (with the request URL, a SAS token's
signature included) and the ``ConnectionRefusedError`` under it. :func:`cause_of` walks an
exception's chain for the part a person can act on (a DNS failure, a refused or timed-out
connection, a reset, TLS, or the service's HTTP status and error code) and renders it from those
parts only, never from the SDK's own message, except the service's error message, which is
scrubbed of URL queries and key material and shortened.
"""

from __future__ import annotations

import errno
import os
import re
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

_SECRETS = re.compile(
    r"(?i)\b(sig|signature|x-amz-signature|x-amz-security-token|accountkey|sharedaccesssignature|"
    r"password|secret|client_secret)=[^\s&;'\",)]*"
)
_QUERY = re.compile(r"(https?://[^\s?'\"]*)\?[^\s'\"]*")
_MAX_MESSAGE = 1000
"""Long enough for a service's whole message (Azurite's API-version refusal names its fix in its last
words, after 330 characters); a longer one is an HTML error page or a dump."""


def scrub(text: str) -> str:
    """``text`` without URL queries (SAS tokens) or ``key=value`` pairs that carry key material,
    on one line and at most a few hundred characters."""
    text = _QUERY.sub(r"\1", text)
    text = _SECRETS.sub(lambda m: f"{m.group(1)}=<hidden>", text)
    text = " ".join(text.split())
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."


def host_port(url: str | None) -> tuple[str | None, int | None]:
    """The host and port a URL connects to (the scheme's default port if it names none)."""
    if not url:
        return None, None
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None and parts.scheme in ("http", "https"):
        port = 443 if parts.scheme == "https" else 80
    return parts.hostname, port


def strip_query(url: str) -> str:
    """A URL without its query and fragment: what may be shown of an address."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}" if parts.scheme else url.split("?", 1)[0]


@dataclass(frozen=True)
class Cause:
    """One failure, classified. ``kind`` is one of ``dns``, ``refused``, ``connect-timeout``,
    ``read-timeout``, ``reset``, ``unreachable``, ``tls``, ``network``, ``http``, ``credentials``
    or ``other``; ``text`` says it in words, secrets removed."""

    kind: str
    text: str
    host: str | None = None
    port: int | None = None
    status: int | None = None
    """The HTTP status of the service's answer."""
    code: str | None = None
    """The service's error code (``AuthenticationFailed``, ``AccessDenied``...)."""
    operation: str | None = None
    """The SQS API operation that failed (``ReceiveMessage``...), where the SDK says."""

    @property
    def network(self) -> bool:
        return self.kind in (
            "dns",
            "refused",
            "connect-timeout",
            "read-timeout",
            "reset",
            "unreachable",
            "tls",
            "network",
        )


def _chain(error: BaseException) -> Iterator[BaseException]:
    """``error`` and every exception it wraps: causes, contexts, and the SDKs' own links
    (botocore's ``kwargs['error']``, azure-core's ``inner_exception``, aiohttp's ``os_error``)."""
    seen: set[int] = set()
    todo: list[BaseException] = [error]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        linked = [
            current.__cause__,
            current.__context__,
            (getattr(current, "kwargs", None) or {}).get("error")
            if isinstance(getattr(current, "kwargs", None), dict)
            else None,
            getattr(current, "inner_exception", None),
            getattr(current, "os_error", None),
            getattr(current, "reason", None),
        ]
        todo += [e for e in linked if isinstance(e, BaseException)]


def _names(error: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(error).__mro__}


def _errno_text(error: OSError) -> str:
    number = error.errno
    name = errno.errorcode.get(number, "") if isinstance(number, int) and number > 0 else ""
    # The system's words for the errno (aiohttp puts its own in strerror: "Connect call failed (...)").
    reason = os.strerror(number) if name and number is not None else (error.strerror or "")
    bits = [reason.lower() if reason else ""]
    if number is not None:
        bits.append(f"errno {number}{' ' + name if name else ''}")
    return ", ".join(b for b in bits if b)


def _network(error: BaseException, endpoint: str | None) -> Cause | None:
    host, port = host_port(endpoint)
    at = f"{host}:{port}" if host else "the endpoint"
    links = list(_chain(error))
    names = set().union(*(_names(e) for e in links))
    for link in links:
        if isinstance(link, socket.gaierror):
            detail = link.strerror or str(link)
            return Cause("dns", f"the host name {host!r} could not be resolved (DNS: {detail.lower()})", host, port)
    for link in links:
        if isinstance(link, ConnectionRefusedError) or (isinstance(link, OSError) and link.errno == errno.ECONNREFUSED):
            return Cause("refused", f"could not connect to {at}: {_errno_text(link)}", host, port)
    for link in links:
        if isinstance(link, OSError) and link.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            return Cause("unreachable", f"could not connect to {at}: {_errno_text(link)}", host, port)
    if names & {"SSLError", "ClientSSLError", "ClientConnectorCertificateError"} or any(
        isinstance(e, ssl.SSLError) for e in links
    ):
        reason = next((e for e in links if isinstance(e, ssl.SSLError)), None)
        detail = scrub(str(getattr(reason, "reason", None) or reason or "handshake failed"))
        return Cause("tls", f"the TLS connection to {at} failed ({detail})", host, port)
    if names & {"ConnectTimeoutError", "ConnectionTimeoutError", "ConnectTimeout"}:
        return Cause("connect-timeout", f"could not connect to {at}: the connection attempt timed out", host, port)
    if names & {"ReadTimeoutError", "ReadTimeout", "SocketTimeoutError", "ServerTimeoutError", "TimeoutError"}:
        return Cause("read-timeout", f"{at} did not answer in time (the read timed out)", host, port)
    for link in links:
        if isinstance(link, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
            detail = _errno_text(link)
            text = f"the connection to {at} was closed without an answer" + (f" ({detail})" if detail else "")
            return Cause("reset", text, host, port)
    if names & {"ConnectionClosedError", "ServerDisconnectedError", "RemoteDisconnected", "ProtocolError",
                "IncompleteRead", "ClientPayloadError", "ServiceResponseError"}:  # fmt: skip
        return Cause("reset", f"the connection to {at} was closed without a complete answer", host, port)
    for link in links:
        if isinstance(link, OSError) and link.errno is not None:
            return Cause("network", f"could not talk to {at}: {_errno_text(link)}", host, port)
    if names & {"EndpointConnectionError", "ServiceRequestError", "ClientConnectorError", "NewConnectionError"}:
        return Cause("network", f"could not connect to {at}", host, port)
    return None


def _code_text(code: Any) -> str | None:
    """An error code as the service spells it (the Azure SDK hands out ``StorageErrorCode`` enums)."""
    if code is None or code == "":
        return None
    return str(getattr(code, "value", code))


def _http(error: Any, endpoint: str | None) -> Cause | None:
    host, port = host_port(endpoint)
    response = getattr(error, "response", None)
    if isinstance(response, dict) and "Error" in response:  # botocore's ClientError
        info = response.get("Error") or {}
        status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
        code = _code_text(info.get("Code") or info.get("QueryErrorCode"))  # SQS: x-amzn-query-error's code
        message = scrub(str(info.get("Message") or ""))
        operation = getattr(error, "operation_name", None)
        return Cause("http", _answer(status, code, message), host, port, status, code, operation)
    status = getattr(error, "status_code", None)
    if isinstance(status, int):  # azure-core's HttpResponseError or a bare HttpResponse of a retry
        headers = getattr(response if response is not None else error, "headers", None) or {}
        code = _code_text(getattr(error, "error_code", None)) or _code_text(headers.get("x-ms-error-code"))
        message = getattr(error, "message", None) or getattr(error, "reason", None) or ""
        first = str(message).split("\n", 1)[0]  # the rest repeats the request id, the time and the body
        return Cause("http", _answer(status, code, scrub(first)), host, port, status, code)
    return None


def _answer(status: int | None, code: str | None, message: str) -> str:
    head = " ".join(x for x in (f"HTTP {status}" if status else "", code or "") if x) or "an error answer"
    message = message.rstrip(". ")
    return f"the service answered {head}" + (f": {message}" if message and message != code else "")


def parsed_answer(parsed: dict[str, Any], endpoint: str | None) -> Cause:
    """A botocore parsed error answer (what a retry handler sees) as a :class:`Cause`."""

    class _Answer:
        response = parsed
        operation_name = None

    cause = _http(_Answer(), endpoint)
    assert cause is not None
    return cause


def cause_of(error: BaseException | Any, endpoint: str | None = None) -> Cause:
    """The cause of ``error`` (an SDK exception, or an answer a retry saw) in words, secrets
    removed; ``endpoint`` is the URL the client talks to, for the host and port."""
    if isinstance(error, dict):
        return parsed_answer(error, endpoint)
    found = _http(error, endpoint)
    if found is not None:
        return found
    if isinstance(error, BaseException):
        found = _network(error, endpoint)
        if found is not None:
            return found
        names = set().union(*(_names(e) for e in _chain(error)))
        if names & {"NoCredentialsError", "PartialCredentialsError", "CredentialUnavailableError",
                    "CredentialRetrievalError"}:  # fmt: skip
            return Cause("credentials", f"no credentials: {scrub(str(error))}")
        if "ClientAuthenticationError" in names:
            return Cause(
                "credentials", f"getting a token failed: {scrub(str(error).splitlines()[0] if str(error) else '')}"
            )
        text = str(error).splitlines()[0] if str(error) else ""
        return Cause("other", f"{type(error).__name__}" + (f": {scrub(text)}" if text else ""))
    return Cause("other", scrub(str(error)))
