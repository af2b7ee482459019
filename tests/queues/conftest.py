"""Fixtures that run the same queue test on Amazon SQS (moto) and Azure Queue Storage (Azurite),
with the blocking and the asyncio classes.

* ``backend`` (params ``sqs``/``azure``): the service, with an *independent* SDK client
  (:mod:`devtools.admin`: plain boto3 / azure-storage-queue, not our code) to create queues,
  seed messages and check what is left in a queue afterwards.
* ``flavour`` (params ``sync``/``async``) and ``open_queue``: build our queue class for that
  backend and flavour, wrapped in :class:`Facade` so one ``async`` test body drives both.
* Every request our SQS queues make goes through a botocore event hook, every request our
  Azure queues make through the SDK's request hook; at teardown each recorded request is
  checked against the *real* service limits (moto and Azurite are more lenient).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from devtools.admin import AzureService, Service, SQSService
from fluke_airflow.auth import AWSAuth, AzureAuth
from fluke_airflow.queues import AmazonSQSQueue, AsyncAmazonSQSQueue, AsyncAzureStorageQueue, AzureStorageQueue
from fluke_airflow.queues.base import AsyncQueue

SQS_BATCH_OPERATIONS = ("SendMessageBatch", "DeleteMessageBatch", "ChangeMessageVisibilityBatch")


# -- driving a sync or an async queue from one test body ------------------------------------------
class Batches:
    """``async for`` over a blocking or an asyncio poll iterator; ``aclose()`` closes either."""

    def __init__(self, iterator: Any) -> None:
        self._it = iterator

    def __aiter__(self) -> Batches:
        return self

    async def __anext__(self) -> Any:
        if hasattr(self._it, "__anext__"):
            return await self._it.__anext__()
        try:
            return next(self._it)
        except StopIteration:
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        if hasattr(self._it, "aclose"):
            await self._it.aclose()
        else:
            self._it.close()

    async def collect(self) -> list[list[Any]]:
        return [batch async for batch in self]


class Facade:
    """Every queue method as a coroutine, whichever class is behind it."""

    def __init__(self, queue: Any) -> None:
        self.queue = queue
        self.is_async = isinstance(queue, AsyncQueue)

    def is_open(self) -> bool:
        return self.queue.is_open()  # type: ignore[no-any-return]

    def get_name(self) -> str:
        return self.queue.get_name()  # type: ignore[no-any-return]

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.queue, name)
        if not callable(attr):
            return attr

        async def call(*args: Any, **kwargs: Any) -> Any:
            result = attr(*args, **kwargs)
            return await result if inspect.isawaitable(result) else result

        return call

    def poll(self, *args: Any, **kwargs: Any) -> Batches:
        return Batches(self.queue.poll(*args, **kwargs))

    def poll_messages(self, *args: Any, **kwargs: Any) -> Batches:
        return Batches(self.queue.poll_messages(*args, **kwargs))

    async def __aenter__(self) -> Facade:
        if self.is_async:
            await self.queue.__aenter__()
        else:
            self.queue.__enter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.is_async:
            await self.queue.__aexit__(*exc)
        else:
            self.queue.__exit__(*exc)


# -- the two services, seen through independent SDK clients (devtools/admin.py) -------------------------
class Backend(Service):
    """A service's admin client, plus what a test needs to open our queue classes on it: the auth,
    the sync and async classes, and the recording of their requests to check against the limits."""

    auth: Any
    classes: dict[str, type]
    receive_limit: int

    def record(self, queue: Any, log: list[Any]) -> None:
        raise NotImplementedError

    def check_limits(self, log: list[Any]) -> None:
        raise NotImplementedError


class _RecordedDirect:
    """A transport's direct requests, each logged like ``provide-client-params`` logs botocore's; a
    request handed back to botocore (``None``) is logged again there, as the request it is."""

    def __init__(self, direct: Any, log: list[Any]) -> None:
        self._direct, self._log = direct, log

    def call(self, client: Any, operation: str, params: dict[str, Any]) -> Any:
        self._log.append((operation, dict(params)))
        return self._direct.call(client, operation, params)

    async def acall(self, client: Any, operation: str, params: dict[str, Any]) -> Any:
        self._log.append((operation, dict(params)))
        return await self._direct.acall(client, operation, params)


class SQSBackend(Backend, SQSService):
    receive_limit = 10

    def __init__(self, moto: Any) -> None:
        super().__init__(moto)
        self.auth = AWSAuth(
            aws_access_key_id=moto.access_key_id,
            aws_secret_access_key=moto.secret_access_key,
            region=moto.region,
            endpoint_url=moto.endpoint_url,
        )
        self.classes = {"sync": AmazonSQSQueue, "async": AsyncAmazonSQSQueue}

    def record(self, queue: Any, log: list[Any]) -> None:
        """Record (operation, parameters) of every API call of this queue's botocore client, and
        of the requests the transport sends past it (queues/sqs_direct.py)."""
        transport = queue._driver.transport
        self.record_client(transport.client, log)
        direct = getattr(transport, "_direct", None)
        if direct is not None:
            transport._direct = _RecordedDirect(direct, log)

    @staticmethod
    def record_client(client: Any, log: list[Any]) -> None:
        def on_call(params: dict[str, Any], model: Any, **_: Any) -> None:
            log.append((model.name, dict(params)))

        client.meta.events.register("provide-client-params.sqs", on_call)

    def check_limits(self, log: list[Any]) -> None:
        for operation, params in log:
            if operation in SQS_BATCH_OPERATIONS:
                entries = params["Entries"]
                assert 1 <= len(entries) <= 10, f"{operation} with {len(entries)} entries (SQS allows 1-10)"
                ids = [e["Id"] for e in entries]
                assert len(set(ids)) == len(ids), f"{operation} with duplicate entry ids {ids}"
            if operation == "SendMessageBatch":
                size = sum(len(e["MessageBody"].encode()) for e in params["Entries"])
                assert size <= 1_048_576, f"SendMessageBatch of {size} bytes (SQS allows 1 MiB)"
            if operation == "ReceiveMessage":
                assert 1 <= params["MaxNumberOfMessages"] <= 10, params
                assert 0 <= params.get("WaitTimeSeconds", 0) <= 20, params


class AzureBackend(Backend, AzureService):
    receive_limit = 32

    def __init__(self, azurite: Any) -> None:
        super().__init__(azurite)
        self.auth = AzureAuth.from_conn_string(azurite.connection_string)
        self.classes = {"sync": AzureStorageQueue, "async": AsyncAzureStorageQueue}

    def record(self, queue: Any, log: list[Any]) -> None:
        """Record (method, path, query) of every request of this queue's SDK client."""

        def on_request(request: Any) -> None:
            url = urlsplit(request.http_request.url)
            log.append((request.http_request.method, url.path, parse_qs(url.query)))

        for runner in queue._driver.transport.client._pipeline._impl_policies:
            policy = getattr(runner, "_policy", runner)
            if type(policy).__name__ == "StorageRequestHook":
                policy._request_callback = on_request
                return
        raise AssertionError("the Azure SDK pipeline has no StorageRequestHook to record requests with")

    def check_limits(self, log: list[Any]) -> None:
        for method, path, query in log:
            if method == "GET" and path.endswith("/messages"):
                n = int(query.get("numofmessages", ["1"])[0])
                assert 1 <= n <= 32, f"GET messages asking for {n} messages (Azure allows 1-32)"
                if "peekonly" not in query:
                    timeout = int(query.get("visibilitytimeout", ["30"])[0])
                    assert 1 <= timeout <= 7 * 24 * 3600, f"receive with visibilitytimeout={timeout}"


@pytest.fixture(scope="session")
def sqs_backend(moto: Any) -> SQSBackend:
    return SQSBackend(moto)


@pytest.fixture(scope="session")
def azure_backend(azurite: Any) -> AzureBackend:
    return AzureBackend(azurite)


@pytest.fixture(params=["sqs", "azure"])
def backend(request: pytest.FixtureRequest) -> Backend:
    return request.getfixturevalue(f"{request.param}_backend")  # type: ignore[no-any-return]


@pytest.fixture(params=["sync", "async"])
def flavour(request: pytest.FixtureRequest) -> str:
    return request.param  # type: ignore[no-any-return]


OpenQueue = Callable[..., Any]


@pytest.fixture
async def opener(flavour: str) -> AsyncIterator[Callable[..., Any]]:
    """``await opener(backend, name, **kwargs)``: our queue class for that backend and this
    flavour, opened, its requests recorded in ``facade.requests`` and checked against the
    service's limits at teardown."""
    opened: list[tuple[Backend, Facade]] = []

    async def factory(backend: Backend, name: str, *, auth: Any = None, **kwargs: Any) -> Facade:
        queue = backend.classes[flavour](auth or backend.auth, name, **kwargs)
        if flavour == "async":
            await queue.open()
        facade = Facade(queue)
        facade.requests = []  # type: ignore[attr-defined]
        backend.record(queue, facade.requests)  # type: ignore[attr-defined]
        opened.append((backend, facade))
        return facade

    yield factory
    for _, facade in opened:
        await facade.close()
    for backend, facade in opened:
        backend.check_limits(facade.requests)  # type: ignore[attr-defined]


@pytest.fixture
def open_queue(opener: Callable[..., Any], backend: Backend) -> OpenQueue:
    """``await open_queue(name, **kwargs)``: :func:`opener` on the parametrised backend."""
    return functools.partial(opener, backend)


@pytest.fixture
def queue_name(backend: Backend) -> Iterator[str]:
    """A fresh, empty queue on the backend."""
    name = backend.new_queue()
    yield name


@pytest.fixture
async def q(open_queue: OpenQueue, queue_name: str) -> Facade:
    """Our queue object on ``queue_name``."""
    return await open_queue(queue_name)  # type: ignore[no-any-return]
