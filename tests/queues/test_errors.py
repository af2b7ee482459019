"""Errors a person can act on (issue 20, item 4), one test per case, on both services, blocking and
asyncio (the triggerer's shared client).

Every failure names the service, the queue and the connection; the cause as the SDK saw it, with
the secrets taken out (host:port and errno, the DNS failure, the HTTP status and the service's
error code); and the connection field or permission to check. "after N retries over T s" only
when the SDK retried, with the count the requests show.

Real parts only: the session's moto and Azurite; a moto of this module's own with its IAM checks
on (``INITIAL_NO_AUTH_ACTION_COUNT``), which verifies signatures and evaluates policies, behind
devtools/proxy.py, which answers its refusals in SQS's JSON protocol as SQS does; closed loopback
ports (nothing listens: refused); names under ``.invalid`` (RFC 2606: they never resolve); and the
proxy's resets for connections that die mid-request. The connections carry a small
``retry_budget_seconds`` so that the Azure SDK's 18 s backoff does not stretch the suite.
"""

from __future__ import annotations

import base64
import datetime
import json
import logging
import re
import secrets
import traceback
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from airflow_support import set_connection
from azure.storage.queue import QueueSasPermissions, generate_queue_sas

from devtools.emulators import ISSUED_SECRETS, AzuriteQueue, MotoSQS, free_port
from devtools.proxy import Proxy, Reset
from fluke_airflow.auth import AzureAuth
from fluke_airflow.exceptions import QueueError, QueueNotFoundError
from fluke_airflow.hooks import aget_queue_hook, get_queue_hook
from fluke_airflow.queues import AsyncAzureStorageQueue, AzureStorageQueue

BUDGET = 2
"""Seconds the SDK may retry one request in these tests (the connection extra)."""
RETRIED = r"(?: after (\d+) retr(?:y|ies) over [\d.]+ s)?"
STOPPED = rf"(?: \((?:no more retries|not retried): the connection's retry_budget_seconds={BUDGET} leaves no time for another attempt\))?"  # noqa: E501


def issued(secret: str) -> str:
    """A secret of these tests: the suite's scan looks for it in every output and log."""
    ISSUED_SECRETS.append(secret)
    return secret


def fresh_key() -> str:
    return issued(base64.b64encode(secrets.token_bytes(64)).decode())


@pytest.fixture(params=["sync", "async"])
def flavour(request: pytest.FixtureRequest) -> str:
    return request.param  # type: ignore[no-any-return]


async def open_through_hook(conn_id: str, queue: str, flavour: str) -> Any:
    """The queue as the sensor (blocking) and the trigger (asyncio, shared client) open it."""
    if flavour == "sync":
        return get_queue_hook(conn_id).get_queue(queue)
    hook = await aget_queue_hook(conn_id)
    opened = await hook.aget_queue(queue, share_client=True)
    await opened.open()
    return opened


async def close(queue: Any) -> None:
    result = queue.close()
    if result is not None:
        await result


async def first_receive(queue: Any) -> None:
    """One receive, as a poll starts."""
    if hasattr(queue.poll(), "__anext__"):
        await queue.poll(num_messages=1).__anext__()
    else:
        next(iter(queue.poll(num_messages=1)), None)


async def failure(conn_id: str, queue: str, flavour: str, *, receive: bool = False) -> QueueError:
    """The error that opening ``queue`` (or, with ``receive``, its first receive) raises."""
    with pytest.raises(QueueError) as raised:
        opened = await open_through_hook(conn_id, queue, flavour)
        try:
            if receive:
                await first_receive(opened)
        finally:
            await close(opened)
    return raised.value


def shows_nothing_of(error: BaseException, caplog: pytest.LogCaptureFixture, *hidden: str) -> None:
    """No secret in the message, the traceback or anything logged meanwhile."""
    text = "".join(traceback.format_exception(error)) + repr(error)
    text += "\n".join(r.getMessage() for r in caplog.records)
    for secret in hidden:
        assert secret not in text


@pytest.fixture
def caplog_all(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    import airflow.sdk  # noqa: F401  Airflow configures logging when first loaded: load it before capturing

    caplog.set_level(logging.DEBUG, logger="fluke_airflow")  # ours, at every level (urllib3's DEBUG lines
    return caplog  # show SAS URLs: that is urllib3's, and Airflow's logging keeps it at INFO)


@pytest.fixture
def unanswered() -> Iterator[int]:
    """A loopback port that never accepts a connection: a listener with a backlog of one, filled
    (Linux then drops further connection attempts, which time out as to a host that is gone)."""
    import socket

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = int(listener.getsockname()[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            yield port


# -- Amazon SQS -------------------------------------------------------------------------------------------
def sqs_connection(endpoint: str, key_id: str, secret: str, **extra: Any) -> dict[str, Any]:
    return {
        "conn_type": "aws",
        "login": key_id,
        "password": secret,
        "extra": {"endpoint_url": endpoint, "region_name": "us-east-1", "retry_budget_seconds": BUDGET, **extra},
    }


async def test_sqs_connection_refused(moto: MotoSQS, flavour, monkeypatch, caplog_all) -> None:
    port = free_port()  # bound and closed again: nothing listens
    secret = issued(secrets.token_urlsafe(30))
    conn_id = set_connection(
        monkeypatch, "err_sqs_refused", sqs_connection(f"http://127.0.0.1:{port}", "AKIAREFUSED", secret)
    )

    error = await failure(conn_id, "invoices", flavour)

    assert re.fullmatch(
        rf"opening on Amazon SQS queue 'invoices' \(connection 'err_sqs_refused'\) failed{RETRIED}{STOPPED}: "
        rf"could not connect to 127\.0\.0\.1:{port}: connection refused, errno 111 ECONNREFUSED; nothing was sent, "
        r"received or deleted\. Check the connection's endpoint_url extra: is the SQS endpoint running at "
        rf"127\.0\.0\.1:{port}, and is that the right host and port\?",
        str(error),
    ), str(error)
    assert error.cause.kind == "refused" and error.conn_id == "err_sqs_refused"
    shows_nothing_of(error, caplog_all, secret)


async def test_sqs_endpoint_does_not_answer(moto: MotoSQS, unanswered: int, flavour, monkeypatch, caplog_all) -> None:
    """The connection attempt waits no longer than the budget leaves (botocore's own: 60 s), and then
    there is no time for a retry."""
    secret = issued(secrets.token_urlsafe(30))
    conn = sqs_connection(f"http://127.0.0.1:{unanswered}", "AKIASILENT", secret)
    conn_id = set_connection(monkeypatch, "err_sqs_silent", conn)

    error = await failure(conn_id, "invoices", flavour)

    assert str(error) == (
        "opening on Amazon SQS queue 'invoices' (connection 'err_sqs_silent') failed (not retried: the connection's "
        f"retry_budget_seconds={BUDGET} leaves no time for another attempt): could not connect to "
        f"127.0.0.1:{unanswered}: the connection attempt timed out; nothing was sent, received or deleted. Check the "
        f"connection's endpoint_url extra: 127.0.0.1:{unanswered} did not accept a connection; is it the right "
        "address, and may this machine reach it (firewall, security group, proxy, private network)?"
    )
    shows_nothing_of(error, caplog_all, secret)


async def test_sqs_dns_failure(moto: MotoSQS, flavour, monkeypatch, caplog_all) -> None:
    secret = issued(secrets.token_urlsafe(30))
    conn = sqs_connection("http://sqs.fluke-no-such-host.invalid:4566", "AKIADNS", secret)
    conn_id = set_connection(monkeypatch, "err_sqs_dns", conn)

    error = await failure(conn_id, "invoices", flavour)

    assert str(error).startswith("opening on Amazon SQS queue 'invoices' (connection 'err_sqs_dns') failed")
    assert "the host name 'sqs.fluke-no-such-host.invalid' could not be resolved (DNS: " in str(error)
    assert (
        "Check the connection's endpoint_url extra: the host name 'sqs.fluke-no-such-host.invalid' does not resolve "
        "from this machine"
    ) in str(error)
    shows_nothing_of(error, caplog_all, secret)


async def test_sqs_connection_reset_counts_the_retries(moto: MotoSQS, flavour, monkeypatch, caplog_all) -> None:
    """A receive whose every connection is reset: the SDK retries; the error says how often, and the
    proxy saw exactly that many requests more than one."""
    boto3.client(
        "sqs", endpoint_url=moto.endpoint_url, region_name="us-east-1",
        aws_access_key_id=moto.access_key_id, aws_secret_access_key=moto.secret_access_key,
    ).create_queue(QueueName="err-reset")  # fmt: skip
    with Proxy(moto.endpoint_url) as proxy:
        conn = sqs_connection(proxy.url, moto.access_key_id, moto.secret_access_key, retry_budget_seconds=30)
        conn_id = set_connection(monkeypatch, "err_sqs_reset", conn)
        proxy.inject(Reset(operation="ReceiveMessage"))

        error = await failure(conn_id, "err-reset", flavour, receive=True)
        requests = proxy.total("ReceiveMessage")

    match = re.fullmatch(
        r"receive on Amazon SQS queue 'err-reset' \(connection 'err_sqs_reset'\) failed after (\d+) retries over "
        rf"[\d.]+ s: the connection to 127\.0\.0\.1:{proxy.port} was closed without (?:an|a complete) answer.*",
        str(error),
    )
    assert match, str(error)
    assert int(match.group(1)) == error.retries == requests - 1 >= 1
    assert (
        f"Check the connection's endpoint_url extra and the network between this machine and 127.0.0.1:{proxy.port}"
        in str(error)
    )
    retry_lines = [
        r
        for r in caplog_all.records
        if "receive of queue 'err-reset' (connection 'err_sqs_reset') failed" in r.getMessage()
    ]
    assert len(retry_lines) == error.retries  # each retry was logged, with its cause
    shows_nothing_of(error, caplog_all, moto.secret_access_key)


async def test_sqs_missing_queue(moto: MotoSQS, flavour, monkeypatch, caplog_all) -> None:
    conn_id = set_connection(
        monkeypatch, "err_sqs_missing", sqs_connection(moto.endpoint_url, moto.access_key_id, moto.secret_access_key)
    )

    error = await failure(conn_id, "no-such-queue", flavour)

    assert isinstance(error, QueueNotFoundError)
    assert str(error) == (
        "Amazon SQS queue 'no-such-queue' (connection 'err_sqs_missing') does not exist or is not accessible with "
        "these credentials: the service answered HTTP 400 AWS.SimpleQueueService.NonExistentQueue: The specified "
        "queue does not exist. "
        "Check the queue's name (case matters) and the region (us-east-1); a queue of another "
        "account needs its URL and that account's permission"
    )
    shows_nothing_of(error, caplog_all, moto.secret_access_key)


# A moto of this module's own that checks signatures and IAM policies. Its first requests are not
# checked (INITIAL_NO_AUTH_ACTION_COUNT): exactly the ones that create the user, its key, its
# policy and the queue.
_SETUP_REQUESTS = 4
ALLOWED = ["sqs:GetQueueUrl", "sqs:GetQueueAttributes"]
"""The consumer's policy: it may open the queue, not receive from it."""


@pytest.fixture(scope="module")
def moto_iam(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    server = MotoSQS.create(log_path=tmp_path_factory.mktemp("moto-iam") / "moto.log")
    server.env = {"INITIAL_NO_AUTH_ACTION_COUNT": str(_SETUP_REQUESTS)}
    server.start()
    try:
        setup = {
            "endpoint_url": server.endpoint_url,
            "region_name": "us-east-1",
            "aws_access_key_id": server.access_key_id,
            "aws_secret_access_key": server.secret_access_key,
        }
        iam = boto3.client("iam", **setup)
        iam.create_user(UserName="consumer")
        key = iam.create_access_key(UserName="consumer")["AccessKey"]
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ALLOWED, "Resource": "*"}]}
        iam.put_user_policy(UserName="consumer", PolicyName="open-only", PolicyDocument=json.dumps(policy))
        boto3.client("sqs", **setup).create_queue(QueueName="guarded")
        with Proxy(server.endpoint_url) as proxy:
            yield {"proxy": proxy, "key_id": key["AccessKeyId"], "secret": issued(key["SecretAccessKey"])}
    finally:
        server.stop()


async def test_sqs_wrong_secret(moto_iam, flavour, monkeypatch, caplog_all) -> None:
    """moto checks the signature and refuses it as SQS does: HTTP 403 SignatureDoesNotMatch."""
    wrong = issued(secrets.token_urlsafe(30))
    conn = sqs_connection(moto_iam["proxy"].url, moto_iam["key_id"], wrong)
    conn_id = set_connection(monkeypatch, "err_sqs_secret", conn)

    error = await failure(conn_id, "guarded", flavour)

    assert str(error) == (
        "opening on Amazon SQS queue 'guarded' (connection 'err_sqs_secret') failed: the service answered HTTP 403 "
        "SignatureDoesNotMatch: The request signature we calculated does not match the signature you provided. "
        "Check your AWS Secret Access Key and signing method. Consult the service documentation for details; "
        "nothing was sent, received or deleted. Check the connection's AWS Access Key ID (Login) and AWS Secret "
        "Access Key (Password): the secret access key does not belong to the access key id (copied incompletely, "
        "or rotated), or this machine's clock is far off"
    )
    shows_nothing_of(error, caplog_all, wrong, moto_iam["secret"])


async def test_sqs_unknown_access_key(moto_iam, flavour, monkeypatch, caplog_all) -> None:
    """An access key id AWS does not know: HTTP 403 InvalidClientTokenId (the API reference's Common Errors)."""
    secret = issued(secrets.token_urlsafe(30))
    conn_id = set_connection(
        monkeypatch, "err_sqs_key_id", sqs_connection(moto_iam["proxy"].url, "AKIANOTKNOWN0000", secret)
    )

    error = await failure(conn_id, "guarded", flavour)

    assert "(connection 'err_sqs_key_id') failed: the service answered HTTP 403 InvalidClientTokenId: " in str(error)
    assert (
        "Check the connection's AWS Access Key ID (Login) and AWS Secret Access Key (Password): AWS does not know "
        "the access key id"
    ) in str(error)
    shows_nothing_of(error, caplog_all, secret)


async def test_sqs_missing_permission(moto_iam, flavour, monkeypatch, caplog_all) -> None:
    """The consumer may open the queue but not receive: moto evaluates its policy and refuses with
    AccessDenied, which SQS answers to a JSON-protocol request with ``x-amzn-query-error:
    AccessDenied;Sender`` ("Interpreting Amazon SQS JSON API responses")."""
    conn = sqs_connection(moto_iam["proxy"].url, moto_iam["key_id"], moto_iam["secret"])
    conn_id = set_connection(monkeypatch, "err_sqs_denied", conn)

    error = await failure(conn_id, "guarded", flavour, receive=True)

    assert str(error).startswith(
        "receive on Amazon SQS queue 'guarded' (connection 'err_sqs_denied') failed: the service answered HTTP 403 "
        "AccessDenied: User: arn:aws:iam::123456789012:user/consumer is not authorized to perform: sqs:ReceiveMessage"
    ), str(error)
    assert str(error).endswith(
        "Check the IAM permissions of the identity of the connection's AWS Access Key ID (Login) and AWS Secret "
        "Access Key (Password): it needs sqs:ReceiveMessage on this queue (in an identity policy or the queue's "
        "access policy; an explicit Deny or an SCP overrides both)"
    ), str(error)
    shows_nothing_of(error, caplog_all, moto_iam["secret"])


# -- Azure Queue Storage -------------------------------------------------------------------------------
def azure_connection(endpoint: str, key: str, **extra: Any) -> dict[str, Any]:
    """An account key in Password, the address in the queue_endpoint extra (as users of Azurite write them)."""
    return {
        "conn_type": "azure_storage_queue",
        "password": key,
        "extra": {"queue_endpoint": endpoint, "retry_budget_seconds": BUDGET, **extra},
    }


AZURE_STOPPED = f" (not retried: the connection's retry_budget_seconds={BUDGET} leaves no time for another attempt)"
"""The storage SDK first retries after 15-21 s: past these tests' budget."""


async def test_azure_connection_refused(azurite: AzuriteQueue, flavour, monkeypatch, caplog_all) -> None:
    port = free_port()
    key = fresh_key()
    conn_id = set_connection(monkeypatch, "err_az_refused", azure_connection(f"http://127.0.0.1:{port}/acct", key))

    error = await failure(conn_id, "nc-invoices", flavour)

    assert str(error) == (
        f"opening on Azure Queue Storage queue 'nc-invoices' (connection 'err_az_refused') failed{AZURE_STOPPED}: "
        f"could not connect to 127.0.0.1:{port}: connection refused, errno 111 ECONNREFUSED; nothing was sent, "
        "received or deleted. Check the connection's queue_endpoint extra (Queue endpoint): is the queue service "
        f"running at 127.0.0.1:{port}, and is that the right host and port?"
    )
    shows_nothing_of(error, caplog_all, key)


async def test_azure_endpoint_does_not_answer(
    azurite: AzuriteQueue, unanswered: int, flavour, monkeypatch, caplog_all
) -> None:
    """The connection attempt waits no longer than the budget leaves (the storage SDK's own: 20 s)."""
    key = fresh_key()
    conn_id = set_connection(monkeypatch, "err_az_silent", azure_connection(f"http://127.0.0.1:{unanswered}/acct", key))

    error = await failure(conn_id, "nc-invoices", flavour)

    assert str(error) == (
        f"opening on Azure Queue Storage queue 'nc-invoices' (connection 'err_az_silent') failed{AZURE_STOPPED}: "
        f"could not connect to 127.0.0.1:{unanswered}: the connection attempt timed out; nothing was sent, received "
        f"or deleted. Check the connection's queue_endpoint extra (Queue endpoint): 127.0.0.1:{unanswered} did not "
        "accept a connection; is it the right address, and may this machine reach it (firewall, security group, "
        "proxy, private network)?"
    )
    shows_nothing_of(error, caplog_all, key)


async def test_azure_dns_failure(azurite: AzuriteQueue, flavour, monkeypatch, caplog_all) -> None:
    key = fresh_key()
    conn = {"conn_type": "azure_storage_queue", "host": "http://fluke-no-such-account.invalid", "password": key,
            "extra": {"retry_budget_seconds": BUDGET}}  # fmt: skip
    conn_id = set_connection(monkeypatch, "err_az_dns", conn)

    error = await failure(conn_id, "nc-invoices", flavour)

    assert str(error).startswith(
        f"opening on Azure Queue Storage queue 'nc-invoices' (connection 'err_az_dns') failed{AZURE_STOPPED}: "
        "the host name 'fluke-no-such-account.invalid' could not be resolved (DNS: "
    ), str(error)
    assert str(error).endswith(
        "Check the URL in the connection's Host field: the host name 'fluke-no-such-account.invalid' does not "
        "resolve from this machine (a typo in the account name or region, or a private endpoint this machine's DNS "
        "does not know)"
    ), str(error)
    shows_nothing_of(error, caplog_all, key)


async def test_azure_connection_reset_counts_the_retries(
    azurite: AzuriteQueue, azure_backend, flavour, caplog_all
) -> None:
    """With the SDK's backoff made short (client options), every retry happens: the error counts
    them, as many as the proxy saw requests beyond the first."""
    name = azure_backend.new_queue()
    queues = {"sync": AzureStorageQueue, "async": AsyncAzureStorageQueue}
    with Proxy(azurite.account_url) as proxy:
        auth = AzureAuth.from_account_key(azurite.key, account_url=proxy.endpoint).with_client_options(
            retry_total=2, initial_backoff=0, increment_base=1, random_jitter_range=0
        )
        proxy.inject(Reset(operation="GET messages"))
        queue = queues[flavour](auth, name)
        with pytest.raises(QueueError) as raised:
            if flavour == "async":
                await queue.open()
            try:
                await first_receive(queue)
            finally:
                await close(queue)
        requests = proxy.total("GET messages")
    error = raised.value

    # aiohttp sends an idempotent request (a receive is a GET) once more on a fresh connection when
    # the first one was reset (aiohttp's client, "Retrying Requests" of RFC 9112): two per attempt.
    assert error.retries == 2 and requests == (error.retries + 1) * (2 if flavour == "async" else 1)
    assert str(error).startswith(f"receive on Azure Queue Storage queue {name!r} failed after 2 retries over "), str(
        error
    )
    assert f"the connection to 127.0.0.1:{proxy.port} was closed without" in str(error)
    assert (
        f"Check the account_url (or storage_account) and the network between this machine and 127.0.0.1:{proxy.port}"
        in str(error)
    )
    shows_nothing_of(error, caplog_all, azurite.key)


async def test_azure_missing_queue(azurite: AzuriteQueue, flavour, monkeypatch, caplog_all) -> None:
    conn_id = set_connection(monkeypatch, "err_az_missing", azure_connection(azurite.account_url, azurite.key))

    error = await failure(conn_id, "no-such-queue", flavour)

    assert isinstance(error, QueueNotFoundError)
    assert str(error) == (
        "Azure Queue Storage queue 'no-such-queue' (connection 'err_az_missing') does not exist or is not accessible "
        "with these credentials: the service answered HTTP 404 QueueNotFound: The specified queue does not exist. "
        "Check the queue's name (lowercase letters, digits, hyphens) and that it exists in storage account "
        f"{azurite.account!r}, which the connection's queue_endpoint extra (Queue endpoint) points to"
    )
    shows_nothing_of(error, caplog_all, azurite.key)


async def test_azure_wrong_account_key(azurite: AzuriteQueue, azure_backend, flavour, monkeypatch, caplog_all) -> None:
    """Azurite checks the shared key signature as Azure does: HTTP 403 AuthenticationFailed."""
    name = azure_backend.new_queue()
    wrong = fresh_key()
    conn_id = set_connection(monkeypatch, "err_az_key", azure_connection(azurite.account_url, wrong))

    error = await failure(conn_id, name, flavour)

    assert str(error) == (
        f"opening on Azure Queue Storage queue {name!r} (connection 'err_az_key') failed: the service answered "
        "HTTP 403 AuthenticationFailed: Server failed to authenticate the request.Make sure the value of the "
        "Authorization header is formed correctly including the signature; nothing was sent, received or deleted. "
        "Check the connection's Password field (Account key or client secret): the account key must be key1 or key2 "
        f"of storage account {azurite.account!r} (Azure portal: the storage account's Access keys), copied whole"
    )
    shows_nothing_of(error, caplog_all, wrong, azurite.key)


async def test_azure_wrong_key_in_a_connection_string(
    azurite: AzuriteQueue, azure_backend, flavour, monkeypatch, caplog_all
) -> None:
    name = azure_backend.new_queue()
    wrong = fresh_key()
    conn = {"conn_type": "azure_storage_queue",
            "extra": {"connection_string": azurite.connection_string.replace(azurite.key, wrong)}}  # fmt: skip
    conn_id = set_connection(monkeypatch, "err_az_cs", conn)

    error = await failure(conn_id, name, flavour)

    assert "(connection 'err_az_cs') failed: the service answered HTTP 403 AuthenticationFailed" in str(error)
    assert (
        "Check the AccountKey in the connection's connection_string extra: the account key must be key1 or key2 "
        f"of storage account {azurite.account!r}"
    ) in str(error)
    shows_nothing_of(error, caplog_all, wrong, azurite.key)


def sas(azurite: AzuriteQueue, queue: str, key: str, **permissions: bool) -> str:
    expiry = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
    token = generate_queue_sas(
        azurite.account, queue, key, permission=QueueSasPermissions(**permissions), expiry=expiry
    )
    # Not an issued secret: Azurite's own log shows request URLs, signatures included (each test
    # checks our outputs for it instead).
    return str(token)


def signature(token: str) -> str:
    return dict(p.split("=", 1) for p in token.split("&"))["sig"]


def sas_connection(azurite: AzuriteQueue, token: str) -> dict[str, Any]:
    return {
        "conn_type": "azure_storage_queue",
        "extra": {"sas_token": token, "queue_endpoint": azurite.account_url, "retry_budget_seconds": BUDGET},
    }


async def test_azure_sas_signed_with_a_wrong_key(
    azurite: AzuriteQueue, azure_backend, flavour, monkeypatch, caplog_all
) -> None:
    """Azurite checks a SAS token's signature as Azure does: HTTP 403 AuthenticationFailed."""
    name = azure_backend.new_queue()
    token = sas(azurite, name, fresh_key(), read=True, process=True)
    conn_id = set_connection(monkeypatch, "err_az_sas", sas_connection(azurite, token))

    error = await failure(conn_id, name, flavour)

    assert (
        f"queue {name!r} (connection 'err_az_sas') failed: the service answered HTTP 403 AuthenticationFailed"
        in str(error)
    )
    assert str(error).endswith(
        "Check the connection's sas_token extra (SAS token): the SAS token must be signed with a current key of "
        f"storage account {azurite.account!r}, be valid now (st= and se=, its expiry) and allow the queue service "
        "(ss=q for an account SAS, or be made for this queue)"
    ), str(error)
    shows_nothing_of(error, caplog_all, signature(token), azurite.key)


async def test_azure_missing_permission(azurite: AzuriteQueue, azure_backend, flavour, monkeypatch, caplog_all) -> None:
    """A SAS that may read (open, peek) but not process (receive): Azurite refuses the receive as Azure
    does, HTTP 403 AuthorizationPermissionMismatch ("Queue service error codes" / "Common REST API
    error codes": "This request is not authorized to perform this operation using this permission")."""
    name = azure_backend.new_queue()
    token = sas(azurite, name, azurite.key, read=True)
    conn_id = set_connection(monkeypatch, "err_az_denied", sas_connection(azurite, token))

    error = await failure(conn_id, name, flavour, receive=True)

    assert str(error) == (
        f"receive on Azure Queue Storage queue {name!r} (connection 'err_az_denied') failed: the service answered "
        "HTTP 403 AuthorizationPermissionMismatch: This request is not authorized to perform this operation using "
        "this permission; this request received nothing, so no message changed state (batches delivered before keep "
        "theirs). Check the permissions (sp=) of the connection's sas_token extra (SAS token): receive needs p "
        "(process: get and delete messages)"
    )
    shows_nothing_of(error, caplog_all, signature(token), azurite.key)


async def test_azure_refused_with_a_sas_token_shows_no_signature(
    azurite: AzuriteQueue, flavour, monkeypatch, caplog_all
) -> None:
    """The SDK's own text for a refused connection holds the request URL, SAS query included: the
    error is built from the parts, and the SDK's exception is not chained to it."""
    port = free_port()
    token = sas(azurite, "nc-invoices", azurite.key, read=True, process=True)
    conn = {"conn_type": "azure_storage_queue",
            "extra": {"sas_token": token, "queue_endpoint": f"http://127.0.0.1:{port}/{azurite.account}",
                      "retry_budget_seconds": BUDGET}}  # fmt: skip
    conn_id = set_connection(monkeypatch, "err_az_sas_refused", conn)

    error = await failure(conn_id, "nc-invoices", flavour)

    assert f"could not connect to 127.0.0.1:{port}: connection refused" in str(error)
    assert error.__cause__ is None and error.__suppress_context__
    shows_nothing_of(error, caplog_all, signature(token), azurite.key)


# -- the pieces, without I/O -------------------------------------------------------------------------------
@pytest.mark.unit
@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (
            "GET http://127.0.0.1:1/acct/q/messages?sv=2026&sig=SECRETSIG%3D&se=x failed",
            "GET http://127.0.0.1:1/acct/q/messages failed",
        ),
        (
            "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=SECRETKEY==;",
            "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=<hidden>;",
        ),
        (
            "X-Amz-Signature=abcdef&X-Amz-Security-Token=SECRETTOKEN",
            "X-Amz-Signature=<hidden>&X-Amz-Security-Token=<hidden>",
        ),
        ("line one\n  line two", "line one line two"),
    ],
)
def test_scrub_removes_queries_and_key_material(text: str, shown: str) -> None:
    from fluke_airflow.queues.causes import scrub

    assert scrub(text) == shown


@pytest.mark.unit
@pytest.mark.parametrize("value", ["soon", 0, -5, float("inf"), True, [3]])
def test_a_bad_retry_budget_names_the_extra(value: Any) -> None:
    from fluke_airflow.hooks.azure_connection import azure_auth_from_connection

    extras = {"queue_endpoint": "http://127.0.0.1:10001/acct", "retry_budget_seconds": value}
    with pytest.raises(ValueError) as raised:
        azure_auth_from_connection("fluke_az", "azure_storage_queue", None, None, fresh_key(), extras)
    assert str(raised.value) == (
        f"The connection 'fluke_az' has retry_budget_seconds={value!r} in its extra: give a number of seconds "
        "greater than 0 (how long the SDK may retry one request), or leave it out for the SDK's own retry limits"
    )


@pytest.mark.unit
def test_a_retry_budget_and_a_deadline_the_earlier_wins() -> None:
    from fluke_airflow.auth.retrying import Deadline, RetryLimit

    soon, late = Deadline.within(5, "the sensor's timeout of 5 s"), Deadline.within(3600, "the task's")
    assert RetryLimit(budget=60, deadline=soon).for_call() == soon
    chosen = RetryLimit(budget=60, deadline=late).for_call()
    assert chosen is not None and chosen.reason == "the connection's retry_budget_seconds=60"
    assert RetryLimit(budget=60, deadline=soon).budget_only() == RetryLimit(budget=60)
    assert RetryLimit().for_call() is None and RetryLimit().connect_timeout(20.0) == 20.0
    assert RetryLimit(deadline=soon).connect_timeout(20.0) <= 5.0
    assert RetryLimit(deadline=Deadline.within(-10, "past")).connect_timeout(20.0) == 1.0


@pytest.mark.unit
def test_scrub_keeps_a_service_message_whole_and_shortens_a_dump() -> None:
    """Azurite refuses an API version it does not know with 360 characters whose last words name the
    fix (a new user met it cut at 300: "... Visual Studio Code configura")."""
    from fluke_airflow.queues.causes import scrub

    azurite = (
        "The API version 2026-10-06 is not supported by Azurite. Please upgrade Azurite to latest version and "
        "retry. If you are using Azurite in Visual Studio Code, please upgrade Azurite extension. Azurite "
        'command line parameter "--skipApiVersionCheck" or Visual Studio Code configuration "Skip API Version '
        'Check" can skip this error.'
    )
    assert scrub(azurite) == azurite
    dump = "<html>" + "x" * 5000
    assert len(scrub(dump)) <= 1000 and scrub(dump).endswith("...")
