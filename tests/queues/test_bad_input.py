"""Bad input: checked before anything is sent, received or deleted, with an error that names the
parameter and what is allowed. Each check runs on both services, blocking and asyncio."""

from __future__ import annotations

import re
import uuid

import pytest

from fluke_airflow.auth import AWSAuth, AzureAuth
from fluke_airflow.exceptions import QueueNotFoundError
from fluke_airflow.queues import AmazonSQSQueue, AsyncAmazonSQSQueue, AsyncAzureStorageQueue, AzureStorageQueue

pytestmark = pytest.mark.asyncio(loop_scope="session")

MAX_VISIBILITY = {"sqs": 43_200, "azure": 7 * 24 * 3600}

# (poll keyword arguments, error type, what the message must say)
BAD_POLL_ARGUMENTS = {
    "batch_size=0": ({"batch_size": 0}, ValueError, r"batch_size must be an integer >= 1.*got 0"),
    "batch_size=-1": ({"batch_size": -1}, ValueError, r"batch_size must be an integer >= 1.*got -1"),
    "batch_size='10'": ({"batch_size": "10"}, TypeError, r"batch_size must be an integer >= 1.*got str '10'"),
    "batch_size=True": ({"batch_size": True}, TypeError, r"batch_size must be an integer >= 1.*got bool True"),
    "batch_size=2.5": ({"batch_size": 2.5}, TypeError, r"batch_size must be an integer >= 1.*got float 2.5"),
    "batch_size=None": ({"batch_size": None}, TypeError, r"batch_size must be an integer >= 1"),
    "num_messages=0": ({"num_messages": 0}, ValueError, r"num_messages must be an integer >= 1 \(or None\), got 0"),
    "num_messages=-5": ({"num_messages": -5}, ValueError, r"num_messages must be an integer >= 1"),
    "num_messages='3'": ({"num_messages": "3"}, TypeError, r"num_messages must be an integer >= 1"),
    "polling_frequency=-1": (
        {"polling_frequency": -1},
        ValueError,
        r"polling_frequency must be a number of seconds >= 0 \(or None\), got -1",
    ),
    "polling_frequency=nan": ({"polling_frequency": float("nan")}, ValueError, r"polling_frequency must be a number"),
    "polling_frequency='60'": ({"polling_frequency": "60"}, TypeError, r"polling_frequency must be a number"),
    "visibility_timeout=-1": ({"visibility_timeout": -1}, ValueError, r"visibility_timeout must be an integer >= \d"),
    "visibility_timeout='30'": ({"visibility_timeout": "30"}, TypeError, r"visibility_timeout must be an integer"),
    "pre_delivery_delete='yes'": (
        {"pre_delivery_delete": "yes"},
        TypeError,
        r"pre_delivery_delete must be True or False, got str 'yes'",
    ),
    "pre_delivery_delete=1": ({"pre_delivery_delete": 1}, TypeError, r"pre_delivery_delete must be True or False"),
    "batchsize=10": (
        {"batchsize": 10},
        TypeError,
        r"unknown argument\(s\) \['batchsize'\]; 'batchsize' \(did you mean 'batch_size'\?\); allowed: batch_size, ",
    ),
}


async def assert_untouched(backend, queue_name, count, q):
    """Nothing was received (all still visible), deleted or sent, and no request was made."""
    assert q.requests == []
    assert backend.visible(queue_name) == count
    assert backend.total(queue_name) == count


@pytest.mark.parametrize(("kwargs", "error", "says"), BAD_POLL_ARGUMENTS.values(), ids=BAD_POLL_ARGUMENTS)
async def test_bad_poll_argument(backend, q, queue_name, kwargs, error, says):
    backend.seed(queue_name, 3)

    with pytest.raises(error, match=says):
        q.poll(**kwargs)  # raised at the call, before the first batch is asked for

    await assert_untouched(backend, queue_name, 3, q)


async def test_visibility_timeout_above_the_service_limit(backend, q, queue_name):
    backend.seed(queue_name, 2)
    limit = MAX_VISIBILITY[backend.kind]

    with pytest.raises(ValueError, match=rf"visibility_timeout must be an integer >= \d and at most {limit}"):
        q.poll(visibility_timeout=limit + 1)

    await assert_untouched(backend, queue_name, 2, q)
    assert len(await q.poll(visibility_timeout=limit).collect()) == 1  # the limit itself is fine


async def test_azure_visibility_timeout_zero(azure_backend, opener):
    """Azure refuses to receive with a visibility timeout of 0 (the minimum is 1 second)."""
    name = azure_backend.new_queue()
    azure_backend.seed(name, 1)
    q = await opener(azure_backend, name)

    with pytest.raises(ValueError, match=r"visibility_timeout must be an integer >= 1"):
        q.poll(visibility_timeout=0)

    await assert_untouched(azure_backend, name, 1, q)


async def test_sqs_visibility_timeout_zero_is_allowed(sqs_backend, opener):
    name = sqs_backend.new_queue()
    sqs_backend.seed(name, 1)
    q = await opener(sqs_backend, name)
    assert await q.poll(visibility_timeout=0).collect() == [["m-000"]]


BAD_MESSAGES = {
    "int": (123, TypeError, r"message must be a str .*got int"),
    "None": (None, TypeError, r"message must be a str .*got NoneType"),
    "dict": ({"a": 1}, TypeError, r"message must be a str \(serialise other data first, e\.g\. json\.dumps\)"),
    "bytes": (b"hello", TypeError, r"message must be a str .*got bytes"),
    "NUL": ("a\x00b", ValueError, r"message contains the character U\+0000 at index 1.*allowed: tab, newlines"),
    "control": ("bell\x07", ValueError, r"message contains the character U\+0007 at index 4"),
    "noncharacter": ("x\ufffe", ValueError, r"message contains the character U\+FFFE"),
    "surrogate": ("x\ud800y", ValueError, r"message contains the character U\+D800"),
}


@pytest.mark.parametrize(("message", "error", "says"), BAD_MESSAGES.values(), ids=BAD_MESSAGES)
async def test_bad_push_message(backend, q, queue_name, message, error, says):
    with pytest.raises(error, match=says):
        await q.push(message)
    with pytest.raises(error, match=re.sub(r"^message ", r"messages\\[1\\] ", says)):
        await q.push_many(["good message", message])  # the good one is not sent either

    await assert_untouched(backend, queue_name, 0, q)


BAD_MESSAGE_LISTS = {
    "empty list": ([], ValueError, r"messages must contain at least one message, got an empty list"),
    "empty tuple": ((), ValueError, r"messages must contain at least one message"),
    "a str": ("abc", TypeError, r"messages must be a list of str, got str"),
    "bytes": (b"abc", TypeError, r"messages must be a list of str, got bytes"),
    "None": (None, TypeError, r"messages must be a list of str, got NoneType"),
    "an int": (5, TypeError, r"messages must be a list of str, got int"),
}


@pytest.mark.parametrize(("messages", "error", "says"), BAD_MESSAGE_LISTS.values(), ids=BAD_MESSAGE_LISTS)
async def test_bad_push_many_list(backend, q, queue_name, messages, error, says):
    with pytest.raises(error, match=says):
        await q.push_many(messages)
    await assert_untouched(backend, queue_name, 0, q)


async def test_message_over_the_size_limit(backend, q, queue_name):
    limit = backend.max_body_bytes(queue_name)
    with pytest.raises(ValueError, match=rf"message is {limit + 3} bytes as sent; .* accepts at most {limit} bytes"):
        await q.push("€" + "a" * limit)  # the euro sign is 3 bytes in UTF-8
    await assert_untouched(backend, queue_name, 0, q)


async def test_unknown_push_option(backend, q, queue_name):
    allowed = {"sqs": "delay_seconds, message_group_id", "azure": "delay_seconds, time_to_live"}[backend.kind]
    with pytest.raises(TypeError, match=rf"unknown option\(s\) \['colour'\] for .*; allowed: {allowed}"):
        await q.push("x", colour="red")
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['colour'\]"):
        await q.push_many(["x"], colour="red")
    await assert_untouched(backend, queue_name, 0, q)


@pytest.mark.parametrize("delay", [-1, "5", 10**6])
async def test_bad_delay_seconds(backend, q, queue_name, delay):
    with pytest.raises((TypeError, ValueError), match=r"delay_seconds must be an integer >= 0"):
        await q.push("x", delay_seconds=delay)
    await assert_untouched(backend, queue_name, 0, q)


@pytest.mark.parametrize("max_messages", [0, 11, "3"])
async def test_bad_peek_max_messages(backend, q, queue_name, max_messages):
    backend.seed(queue_name, 2)
    with pytest.raises((TypeError, ValueError), match=r"max_messages must be an integer >= 1 and at most 10"):
        await q.peek(max_messages=max_messages)
    await assert_untouched(backend, queue_name, 2, q)


async def test_bad_change_visibility_timeout(backend, q, queue_name):
    backend.seed(queue_name, 1)
    batches = q.poll_messages(visibility_timeout=30)
    batch = await batches.__anext__()
    limit = MAX_VISIBILITY[backend.kind]
    for timeout in (-1, limit + 1):
        with pytest.raises(ValueError, match=rf"timeout must be an integer >= 0 and at most {limit}"):
            await q.change_visibility(batch, timeout)
    await batches.aclose()


# -- queue names, missing queues, auth types (construction: nothing is sent) ------------------------
INVALID_NAMES = {
    "sqs": ["has space", "a" * 81, "bad!name", "dots.in.name", "x" * 76 + ".fifo", "ünï"],
    "azure": ["UPPER", "ab", "a" * 64, "a--b", "-abc", "abc-", "under_score", "dots.no", "ünï"],
}
SYNC_ASYNC = {"sqs": (AmazonSQSQueue, AsyncAmazonSQSQueue), "azure": (AzureStorageQueue, AsyncAzureStorageQueue)}


@pytest.mark.parametrize(
    ("service", "name"), [(s, n) for s, names in INVALID_NAMES.items() for n in names], ids=lambda v: str(v)[:20]
)
async def test_invalid_queue_name(request, service, name):
    backend = request.getfixturevalue(f"{service}_backend")
    rule = {"sqs": r"1-80 letters, digits, hyphens or underscores", "azure": r"3-63 lowercase letters, digits"}
    for cls in SYNC_ASYNC[service]:
        with pytest.raises(ValueError, match=rf"queue '{re.escape(name)}' is not a valid .* {rule[service]}"):
            cls(backend.auth, name)


@pytest.mark.parametrize("name", ["", "   "])
async def test_empty_queue_name(backend, name):
    for cls in backend.classes.values():
        with pytest.raises(ValueError, match=r"queue must be a non-empty string"):
            cls(backend.auth, name)
    with pytest.raises(TypeError, match=r"queue must be a non-empty string, got NoneType"):
        backend.classes["sync"](backend.auth, None)


async def test_valid_names_at_the_limits(sqs_backend, azure_backend, opener):
    """The name rules are not stricter than the services'."""
    # Azure's shortest names (3 characters) are few: take one no other test (or run) created.
    taken = {q.name for q in azure_backend.client.list_queues(name_starts_with="a-")}
    shortest = next(f"a-{c}" for c in "0123456789abcdefghijklmnopqrstuvwxyz" if f"a-{c}" not in taken)
    for backend, name in (
        (sqs_backend, "A_b-" + uuid.uuid4().hex + "c" * 44),
        (azure_backend, uuid.uuid4().hex + "a" * 31),
        (azure_backend, shortest),
    ):
        backend.new_queue(name)
        q = await opener(backend, name)
        assert await q.push("ok") is True
        assert sorted(backend.drain(name)) == ["ok"]


async def test_queue_that_does_not_exist(backend, flavour):
    name = f"missing-{uuid.uuid4().hex[:10]}"
    cls = backend.classes[flavour]

    with pytest.raises(QueueNotFoundError) as raised:
        queue = cls(backend.auth, name)
        if flavour == "async":
            await queue.open()

    assert raised.value.queue == name
    assert f"queue '{name}' does not exist" in str(raised.value)
    assert isinstance(raised.value, LookupError)


async def test_sqs_queue_url_that_does_not_exist(sqs_backend, flavour):
    url = sqs_backend.url(sqs_backend.new_queue()).rsplit("/", 1)[0] + "/gone-" + uuid.uuid4().hex[:8]
    with pytest.raises(QueueNotFoundError, match=re.escape(url)):
        queue = sqs_backend.classes[flavour](sqs_backend.auth, url)
        if flavour == "async":
            await queue.open()


async def test_wrong_auth_type(backend, azurite, moto):
    other = {
        "sqs": AzureAuth.from_conn_string(azurite.connection_string),
        "azure": AWSAuth(moto.access_key_id, moto.secret_access_key, endpoint_url=moto.endpoint_url),
    }[backend.kind]
    expected = {"sqs": "auth must be an AWSAuth for an Amazon SQS queue", "azure": "auth must be an AzureAuth"}
    for cls in backend.classes.values():
        for auth in (other, None, "key=secret"):
            with pytest.raises(TypeError, match=rf"{expected[backend.kind]}.*got {type(auth).__name__}"):
                cls(auth, "some-queue")


async def test_bad_constructor_options(backend):
    for cls in backend.classes.values():
        with pytest.raises(TypeError, match=r"suppress_output must be True or False, got str 'yes'"):
            cls(backend.auth, "some-queue", suppress_output="yes")
        with pytest.raises(ValueError, match=r"max_concurrency must be an integer >= 1 and at most 64, got 0"):
            cls(backend.auth, "some-queue", max_concurrency=0)


async def test_azure_bad_message_encoding(azure_backend):
    for cls in SYNC_ASYNC["azure"]:
        with pytest.raises(ValueError, match=r"message_encoding must be 'text' or 'base64', got 'hex'"):
            cls(azure_backend.auth, "some-queue", message_encoding="hex")


async def test_the_guides_poll_arguments_by_position(backend, q, queue_name):
    """fluke's ``poll(num_messages, batch_size, polling_frequency, pre_delivery_delete)`` order holds."""
    backend.seed(queue_name, 5)
    with pytest.raises(TypeError, match="at most 4 positional arguments"):
        q.poll(2, 2, None, False, 30)
    with pytest.raises(TypeError, match="batch_size both by position and by name"):
        q.poll(2, 2, batch_size=3)
    await assert_untouched(backend, queue_name, 5, q)
    batches = await q.poll(4, 2, None, True).collect()
    assert [len(b) for b in batches] == [2, 2]
    assert backend.total(queue_name) == 1  # pre-delivery: the four delivered are deleted
