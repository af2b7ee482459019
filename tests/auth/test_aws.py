"""AWSAuth against moto's server (SQS and STS): every way in, used by the blocking and the asyncio queue."""

from __future__ import annotations

import logging
import re
import socket
import traceback

import boto3
import pytest
from auth_support import open_queue, records_text, roundtrip, sqs_client
from botocore.exceptions import BotoCoreError

from devtools.support import fresh_name
from fluke_airflow.auth import AWSAuth
from fluke_airflow.exceptions import QueueError, QueueNotFoundError

pytestmark = pytest.mark.asyncio(loop_scope="session")

ROLE = "arn:aws:iam::123456789012:role/fluke-test"
EXPECTED = [["auth round trip 1", "auth round trip 2"]]


def key_auth(moto, **kwargs):
    return AWSAuth(
        aws_access_key_id=moto.access_key_id,
        aws_secret_access_key=moto.secret_access_key,
        endpoint_url=moto.endpoint_url,
        **kwargs,
    )


def sorted_batches(batches):
    return [sorted(b) for b in batches]


async def test_access_keys(moto, sqs_queue, flavour):
    auth = key_auth(moto, region="us-east-1")
    assert sorted_batches(await roundtrip("sqs", flavour, auth, sqs_queue)) == EXPECTED


async def test_region_enum_and_default_region(moto, flavour, monkeypatch):
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    name = fresh_name("auth")
    sqs_client(moto, "ap-southeast-2").create_queue(QueueName=name)

    auth = key_auth(moto, region=AWSAuth.Region.AP_SOUTHEAST_2)
    assert auth.region == "ap-southeast-2"
    assert sorted_batches(await roundtrip("sqs", flavour, auth, name)) == EXPECTED
    assert key_auth(moto).region == "us-east-1"


@pytest.fixture
def aws_files(tmp_path, monkeypatch, moto):
    """Shared config and credentials files with a profile for moto, and no other credentials around."""
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(var, raising=False)
    config = tmp_path / "config"
    credentials = tmp_path / "credentials"
    config.write_text("[profile fluke-test]\nregion = eu-west-1\n")
    credentials.write_text(
        f"[fluke-test]\naws_access_key_id = {moto.access_key_id}\naws_secret_access_key = {moto.secret_access_key}\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    return config, credentials


async def test_from_profile(moto, aws_files, flavour):
    name = fresh_name("auth")
    sqs_client(moto, "eu-west-1").create_queue(QueueName=name)  # only in the profile's region

    auth = AWSAuth.from_profile("fluke-test", endpoint_url=moto.endpoint_url)

    assert auth.region == "eu-west-1"
    assert auth.botocore_session().get_credentials().access_key == moto.access_key_id
    assert sorted_batches(await roundtrip("sqs", flavour, auth, name)) == EXPECTED
    assert "fluke-test" in repr(auth) and moto.secret_access_key not in repr(auth)


async def test_from_profile_region_override(moto, aws_files, flavour):
    name = fresh_name("auth")
    sqs_client(moto, "us-west-2").create_queue(QueueName=name)
    auth = AWSAuth.from_profile("fluke-test", region="us-west-2", endpoint_url=moto.endpoint_url)
    assert sorted_batches(await roundtrip("sqs", flavour, auth, name)) == EXPECTED


async def test_from_profile_that_does_not_exist(moto, aws_files, flavour):
    auth = AWSAuth.from_profile("no-such-profile", endpoint_url=moto.endpoint_url)
    with pytest.raises((QueueError, BotoCoreError), match="no-such-profile"):
        await open_queue("sqs", flavour, auth, "whatever")


async def test_from_boto3_session(moto, flavour):
    name = fresh_name("auth")
    sqs_client(moto, "eu-central-1").create_queue(QueueName=name)
    session = boto3.Session(
        aws_access_key_id=moto.access_key_id,
        aws_secret_access_key=moto.secret_access_key,
        region_name="eu-central-1",
    )

    auth = AWSAuth.from_boto3_session(session, endpoint_url=moto.endpoint_url)

    assert auth.region == "eu-central-1"
    assert sorted_batches(await roundtrip("sqs", flavour, auth, name)) == EXPECTED
    assert moto.secret_access_key not in repr(auth)


def assumed(moto, **kwargs):
    return AWSAuth.assume_role(
        ROLE, source=key_auth(moto, region="us-east-1"), sts_endpoint_url=moto.endpoint_url, **kwargs
    )


async def test_assume_role(moto, sqs_queue, flavour):
    auth = assumed(moto, role_session_name="fluke-tests")

    assert sorted_batches(await roundtrip("sqs", flavour, auth, sqs_queue)) == EXPECTED
    credentials = auth.botocore_session().get_credentials()
    assert credentials.method == "assume-role"
    frozen = credentials.get_frozen_credentials()
    assert frozen.access_key.startswith("ASIA") and frozen.access_key != moto.access_key_id
    assert frozen.token
    for text in (repr(auth), str(auth)):
        assert frozen.secret_key not in text and frozen.token not in text and moto.secret_access_key not in text


async def test_assumed_role_credentials_are_refreshed_for_every_client(moto, sqs_queue, flavour):
    """Credentials of 900 s are inside botocore's refresh window from the start, so every signing
    asks STS again: requests must go on working with the renewed keys, also on the asyncio client
    (whose signer gets the blocking credentials through the bridge, refreshed off the event loop)."""
    auth = assumed(moto, duration_seconds=900)
    queue = await open_queue("sqs", flavour, auth, sqs_queue)
    signed_with: list[str] = []

    def on_send(request, **_):
        match = re.search(r"Credential=([A-Z0-9]+)/", request.headers["Authorization"].decode())
        signed_with.append(match.group(1))

    queue._driver.transport.client.meta.events.register("before-send.sqs", on_send)

    async def call(result):
        return await result if flavour == "async" else result

    try:
        for i in range(3):
            assert await call(queue.push(f"refresh {i}")) is True
        assert await call(queue.count()) == 3
    finally:
        await call(queue.close())

    assert len(signed_with) >= 4
    assert all(key.startswith("ASIA") for key in signed_with)
    assert len(set(signed_with)) > 1, "the credentials were never refreshed"
    assert sorted(
        m["Body"]
        for m in sqs_client(moto).receive_message(
            QueueUrl=sqs_client(moto).get_queue_url(QueueName=sqs_queue)["QueueUrl"], MaxNumberOfMessages=10
        )["Messages"]
    ) == ["refresh 0", "refresh 1", "refresh 2"]


async def test_async_client_uses_bridged_credentials(moto, sqs_queue):
    from fluke_airflow.queues import AsyncAmazonSQSQueue

    auth = assumed(moto)
    async with AsyncAmazonSQSQueue(auth, sqs_queue) as queue:
        credentials = queue._driver.transport.client._request_signer._credentials
        assert "bridged" in repr(credentials) and "ASIA" not in repr(credentials)
        frozen = await credentials.get_frozen_credentials()
        assert frozen.access_key.startswith("ASIA")
        assert await queue.push("bridged") is True


async def test_async_clients_started_together_share_one_loader(monkeypatch):
    """A restarted triggerer opens all its triggers at once: one botocore loader (~30 MB of
    parsed endpoint data) must serve them all, not one each."""
    import asyncio

    from fluke_airflow.auth import aws

    monkeypatch.setattr(aws, "_LOADER", None)
    loaders = await asyncio.gather(*(aws._shared_loader() for _ in range(12)))
    assert len({id(loader) for loader in loaders}) == 1
    assert loaders[0] is aws._LOADER


# -- secrets stay secret ----------------------------------------------------------------------------
async def test_no_secret_in_repr_or_str(moto):
    auth = AWSAuth("AKIAEXAMPLEKEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "SESSIONTOKEN-abc123")
    for text in (repr(auth), str(auth)):
        assert "wJalrXUtnFEMI" not in text and "SESSIONTOKEN" not in text
    assert "access key" in repr(auth)


async def test_no_secret_in_errors_or_logs(moto, flavour, caplog):
    caplog.set_level(logging.DEBUG)
    secret, token = moto.secret_access_key, "FwoGZXIvYXdzEXAMPLETOKEN" + fresh_name("auth")
    auth = AWSAuth(moto.access_key_id, secret, token, endpoint_url=moto.endpoint_url)
    name = fresh_name("missing")

    with pytest.raises(QueueNotFoundError) as missing:
        await open_queue("sqs", flavour, auth, name)

    assert name in str(missing.value)
    text = "".join(traceback.format_exception(missing.value)) + repr(missing.value)
    assert secret not in text and token not in text
    assert secret not in records_text(caplog.records)  # the secret key never leaves the process
    assert token not in records_text(caplog.records, logging.INFO)
    assert token not in records_text(caplog.records, prefix="fluke_airflow")


async def test_no_secret_when_the_endpoint_is_unreachable(flavour, caplog):
    caplog.set_level(logging.DEBUG)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket is closed
    secret = "unreachable-secret-" + fresh_name("auth")
    auth = AWSAuth("AKIAUNREACHABLE", secret, endpoint_url=f"http://127.0.0.1:{port}")

    with pytest.raises(QueueError) as failed:
        await open_queue("sqs", flavour, auth, "some-queue")

    assert not isinstance(failed.value, QueueNotFoundError)
    assert "some-queue" in str(failed.value)
    assert secret not in "".join(traceback.format_exception(failed.value))
    assert secret not in records_text(caplog.records)


# -- bad arguments ----------------------------------------------------------------------------------
@pytest.mark.unit
@pytest.mark.parametrize(
    ("kwargs", "error", "says"),
    [
        ({"aws_access_key_id": "AKIA1"}, ValueError, "must be given together"),
        ({"aws_secret_access_key": "s3cr3t-value"}, ValueError, "must be given together"),
        ({"aws_session_token": "t0ken-value"}, ValueError, "aws_session_token needs"),
        ({"aws_access_key_id": "", "aws_secret_access_key": "s3cr3t-value"}, TypeError, "non-empty string"),
        ({"aws_access_key_id": 5, "aws_secret_access_key": "s3cr3t-value"}, TypeError, "aws_access_key_id must be"),
        ({"endpoint_url": "localhost:4566"}, ValueError, "endpoint_url must start with http:// or https://"),
        (
            {"aws_access_key_id": "AKIA1", "aws_secret_access_key": "s3cr3t-value", "profile_name": "p"},
            ValueError,
            "either profile_name or access keys",
        ),
    ],
)
async def test_bad_arguments(kwargs, error, says):
    with pytest.raises(error, match=says) as raised:
        AWSAuth(**kwargs)
    assert "s3cr3t-value" not in str(raised.value) and "t0ken-value" not in str(raised.value)


# -- one client per auth for async queues that share (triggers) --------------------------------------------
def keys_auth(moto) -> AWSAuth:
    return AWSAuth(moto.access_key_id, moto.secret_access_key, region=moto.region, endpoint_url=moto.endpoint_url)


async def test_async_queues_that_share_use_one_client_closed_with_the_last(moto):
    import asyncio

    from fluke_airflow.auth.sharing import MAX_USERS, POOL_CONNECTIONS
    from fluke_airflow.queues import AsyncAmazonSQSQueue

    auth = keys_auth(moto)
    names = [fresh_name("share") for _ in range(3)]
    for name in names:
        sqs_client(moto).create_queue(QueueName=name)
    queues = [AsyncAmazonSQSQueue(auth, name, share_client=True) for name in names]
    await asyncio.gather(*(q.open() for q in queues))  # opened together: still one client
    clients = {id(q._driver.transport.client) for q in queues}
    assert len(clients) == 1 and auth._share.clients() == 1 and auth._share.users() == 3
    client = queues[0]._driver.transport.client
    # A long poll holds a connection for up to 20 s: the pool has room for every user's.
    assert client.meta.config.max_pool_connections == POOL_CONNECTIONS > MAX_USERS

    # Each queue still reaches its own queue, concurrently.
    assert await asyncio.gather(*(q.push(f"to {q.get_name()}") for q in queues)) == [True] * 3
    polled = await asyncio.gather(*(anext(aiter(q.poll(batch_size=10))) for q in queues))
    assert polled == [[f"to {name}"] for name in names]

    # Not shared: a client of its own.
    async with AsyncAmazonSQSQueue(auth, names[0]) as own:
        assert own._driver.transport.client is not client

    await queues[0].close()
    await queues[1].close()
    assert auth._share.clients() == 1 and auth._share.users() == 1
    await queues[2].close()
    assert auth._share.clients() == 0
    assert client._endpoint.http_session._sessions is None  # closed with its last user


async def test_each_event_loop_gets_its_own_shared_client(moto, sqs_queue):
    """Clients are bound to their loop: two loops (threads) sharing an auth never share one."""
    import asyncio
    import threading

    from fluke_airflow.queues import AsyncAmazonSQSQueue

    auth = keys_auth(moto)
    both_hold = threading.Barrier(2, timeout=60)  # both loops hold their client at the same time

    async def client_of_this_loop():
        async with AsyncAmazonSQSQueue(auth, sqs_queue, share_client=True) as q:
            assert await q.push("from a loop") is True
            await asyncio.to_thread(both_hold.wait)
            return q._driver.transport.client

    clients = await asyncio.gather(asyncio.to_thread(asyncio.run, client_of_this_loop()), client_of_this_loop())
    assert clients[0] is not clients[1]


async def test_the_async_client_is_set_up_off_the_event_loop(moto, sqs_queue, monkeypatch):
    """Building botocore sessions (~250 handlers registered each) and parsing botocore's JSON
    models take tens of milliseconds: on a triggerer's loop, a restart's triggers add them up
    into a stall. They run in worker threads; only the cached client assembly stays on the loop."""
    import threading

    import botocore.loaders
    import botocore.session

    from fluke_airflow.queues.sqs import AsyncAmazonSQSQueue

    where: list[tuple[str, int]] = []

    def recording(name, original):
        def call(*args, **kwargs):
            where.append((name if name == "session" else f"{name} {args[1:]}", threading.get_ident()))
            return original(*args, **kwargs)

        return call

    monkeypatch.setattr(botocore.session.Session, "_register_builtin_handlers",
                        recording("session", botocore.session.Session._register_builtin_handlers))  # fmt: skip
    monkeypatch.setattr(botocore.loaders.JSONFileLoader, "load_file",
                        recording("json model", botocore.loaders.JSONFileLoader.load_file))  # fmt: skip
    loop_thread = threading.get_ident()
    async with AsyncAmazonSQSQueue(key_auth(moto, region="us-east-1"), sqs_queue, share_client=True) as queue:
        await queue.peek()
    on_the_loop = [name for name, thread in where if thread == loop_thread]
    assert not on_the_loop, f"{on_the_loop} ran on the event loop"
    assert any(name == "session" for name, _ in where)  # the recording saw the session being built
