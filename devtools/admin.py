"""The emulators (moto's SQS server, Azurite) through *independent* clients: plain boto3 and
azure-storage-queue, never fluke_airflow's code.

The tests, the chaos scenarios, the e2e stacks, the benchmarks and the demo create, seed, count and
drain queues with these: what a test checks then does not depend on the code under test, and (in
the benchmarks, which talk to the emulators directly) none of it shows in a contender's requests.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from devtools.emulators import AzuriteQueue, MotoSQS
from devtools.support import WaitTimeout, fresh_name, wait_until

SQS_CONN = "fluke_sqs"
AZURE_CONN = "fluke_azure"
"""The Airflow connections the example DAGs (and tests that run them) reach each emulator through."""

_Service = TypeVar("_Service", bound="Service")


class Service:
    """A queue service as a test sees it, through its own SDK.

    ``kind`` is ``"sqs"`` or ``"azure"``; ``conn_id`` the Airflow connection that reaches the same
    emulator; ``secrets`` what must never show in an output (the suite scans for them).
    """

    kind: str
    conn_id: str
    secrets: tuple[str, ...]

    # -- queues --------------------------------------------------------------------------------------
    def create(self, name: str, **attributes: Any) -> str:
        """``name`` as a new, empty queue: deleted first if it exists (the example DAGs' fixed names).
        SQS: the queue's URL; Azure: its name."""
        raise NotImplementedError

    def new_queue(self, name: str | None = None, *, prefix: str = "", **attributes: Any) -> str:
        """Create a queue that does not exist yet (a fresh name unless ``name``); its name."""
        raise NotImplementedError

    def delete_queue(self, name: str) -> None:
        """Delete the queue; one that does not exist is no error."""
        raise NotImplementedError

    def exists(self, name: str) -> bool:
        """Whether the service has the queue now (asked each time: our code may have created or
        deleted it)."""
        raise NotImplementedError

    # -- messages ------------------------------------------------------------------------------------
    def send(self, name: str, bodies: Iterable[str], *, delay: int | None = None, threads: int = 1) -> None:
        """Send ``bodies`` in order. ``delay``: seconds each stays hidden (None: the queue's own
        setting). ``threads`` > 1: send in parallel (fast seeding, order not kept)."""
        raise NotImplementedError

    def seed(self, name: str, count: int, prefix: str = "m") -> list[str]:
        """Send ``count`` numbered bodies (``m-000``, ``m-001``...); the bodies."""
        bodies = [f"{prefix}-{i:03d}" for i in range(count)]
        self.send(name, bodies)
        return bodies

    def receive(self, name: str, *, visibility_timeout: int = 60) -> list[tuple[str, Any]]:
        """One receive of visible messages: ``(body, handle)`` pairs, hidden for ``visibility_timeout``."""
        raise NotImplementedError

    def delete(self, name: str, handle: Any) -> None:
        """Delete a message this admin received."""
        raise NotImplementedError

    def delete_many(self, name: str, handles: Sequence[Any]) -> None:
        for handle in handles:
            self.delete(name, handle)

    def release(self, name: str, handle: Any) -> None:
        """Make a message this admin received visible again at once."""
        raise NotImplementedError

    # -- counts --------------------------------------------------------------------------------------
    def total(self, name: str) -> int:
        """Messages in the queue: visible, in flight or delayed (moto and Azurite count exactly)."""
        raise NotImplementedError

    def visible(self, name: str) -> int:
        """Messages a receive could take now (not hidden by a receive or a delay)."""
        raise NotImplementedError

    def max_body_bytes(self, name: str) -> int:
        """The largest body the queue accepts."""
        raise NotImplementedError

    # -- derived -------------------------------------------------------------------------------------
    def drain(self, name: str, *, visibility_timeout: int = 60) -> list[str]:
        """Receive and delete every message visible now; their bodies, in the order received."""
        return self._drain(name, lambda: self.receive(name, visibility_timeout=visibility_timeout))

    def _drain(self, name: str, receive: Callable[[], list[tuple[str, Any]]]) -> list[str]:
        bodies: list[str] = []
        while batch := receive():
            bodies += [body for body, _ in batch]
            self.delete_many(name, [handle for _, handle in batch])
        return bodies

    def collect(self, name: str, count: int, *, timeout: float = 60.0, interval: float = 0.5) -> list[str]:
        """Drain until ``count`` messages came back (hidden ones reappear after their visibility
        timeout); their bodies, in the order received. :class:`WaitTimeout` after ``timeout`` s."""
        bodies: list[str] = []

        def enough() -> bool:
            bodies.extend(self.drain(name))
            return len(bodies) >= count

        try:
            wait_until(enough, what=f"{count} message(s) in {name!r}", timeout=timeout, interval=interval)
        except WaitTimeout as error:
            raise WaitTimeout(f"{error}; collected {len(bodies)}: {bodies[:20]}") from None
        return bodies

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self: _Service) -> _Service:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SQSService(Service):
    kind = "sqs"

    def __init__(self, moto: MotoSQS, conn_id: str = SQS_CONN) -> None:
        import boto3
        from botocore.config import Config

        self.moto = moto
        self.conn_id = conn_id
        self.secrets = (moto.secret_access_key,)
        self.client: Any = boto3.client(
            "sqs",
            endpoint_url=moto.endpoint_url,
            region_name=moto.region,
            aws_access_key_id=moto.access_key_id,
            aws_secret_access_key=moto.secret_access_key,
            config=Config(max_pool_connections=16),  # room for threaded sends
        )
        self._urls: dict[str, str] = {}

    def url(self, name: str) -> str:
        if name not in self._urls:
            self._urls[name] = str(self.client.get_queue_url(QueueName=name)["QueueUrl"])
        return self._urls[name]

    def create(self, name: str, **attributes: Any) -> str:
        self.delete_queue(name)
        return self.url(self.new_queue(name, **attributes))

    def new_queue(self, name: str | None = None, *, prefix: str = "sqs", **attributes: Any) -> str:
        name = name or fresh_name(prefix)
        attrs = {k: str(v) for k, v in attributes.items()}
        if name.endswith(".fifo"):
            attrs.setdefault("FifoQueue", "true")
        self._urls[name] = str(self.client.create_queue(QueueName=name, Attributes=attrs)["QueueUrl"])
        return name

    def delete_queue(self, name: str) -> None:
        with contextlib.suppress(self.client.exceptions.QueueDoesNotExist):
            self.client.delete_queue(QueueUrl=self.url(name))
        self._urls.pop(name, None)

    def exists(self, name: str) -> bool:
        try:
            self._urls[name] = str(self.client.get_queue_url(QueueName=name)["QueueUrl"])
        except self.client.exceptions.QueueDoesNotExist:
            self._urls.pop(name, None)
            return False
        return True

    def send(self, name: str, bodies: Iterable[str], *, delay: int | None = None, threads: int = 1) -> None:
        url, items = self.url(name), list(bodies)
        timing = {} if delay is None else {"DelaySeconds": delay}

        def batch(chunk: list[str]) -> None:
            entries = [{"Id": str(i), "MessageBody": body, **timing} for i, body in enumerate(chunk)]
            failed = self.client.send_message_batch(QueueUrl=url, Entries=entries).get("Failed")
            if failed:
                raise RuntimeError(f"sending to {name} failed: {failed[:1]}")

        _each(batch, [items[i : i + 10] for i in range(0, len(items), 10)], threads)

    def receive(self, name: str, *, visibility_timeout: int = 60) -> list[tuple[str, Any]]:
        response = self.client.receive_message(
            QueueUrl=self.url(name), MaxNumberOfMessages=10, VisibilityTimeout=visibility_timeout, WaitTimeSeconds=0
        )
        return [(m["Body"], m["ReceiptHandle"]) for m in response.get("Messages", [])]

    def delete(self, name: str, handle: Any) -> None:
        self.client.delete_message(QueueUrl=self.url(name), ReceiptHandle=handle)

    def delete_many(self, name: str, handles: Sequence[Any]) -> None:
        for start in range(0, len(handles), 10):
            entries = [{"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(handles[start : start + 10])]
            failed = self.client.delete_message_batch(QueueUrl=self.url(name), Entries=entries).get("Failed")
            if failed:
                raise RuntimeError(f"deleting from {name} failed: {failed[:1]}")

    def release(self, name: str, handle: Any) -> None:
        self.client.change_message_visibility(QueueUrl=self.url(name), ReceiptHandle=handle, VisibilityTimeout=0)

    def counts(self, name: str) -> dict[str, int]:
        """``visible``, ``in_flight`` and ``delayed``: SQS's approximate counters (exact on moto)."""
        names = {
            "visible": "ApproximateNumberOfMessages",
            "in_flight": "ApproximateNumberOfMessagesNotVisible",
            "delayed": "ApproximateNumberOfMessagesDelayed",
        }
        found = self.client.get_queue_attributes(QueueUrl=self.url(name), AttributeNames=list(names.values()))
        return {short: int(found["Attributes"][long]) for short, long in names.items()}

    def total(self, name: str) -> int:
        return sum(self.counts(name).values())

    def visible(self, name: str) -> int:
        return self.counts(name)["visible"]

    def in_flight(self, name: str) -> int:
        """Messages received and neither deleted nor visible again yet."""
        return self.counts(name)["in_flight"]

    def max_body_bytes(self, name: str) -> int:
        attributes = self.client.get_queue_attributes(QueueUrl=self.url(name), AttributeNames=["MaximumMessageSize"])
        return int(attributes["Attributes"]["MaximumMessageSize"])

    def close(self) -> None:
        self.client.close()


class AzureService(Service):
    kind = "azure"

    def __init__(self, azurite: AzuriteQueue, conn_id: str = AZURE_CONN) -> None:
        from azure.storage.queue import QueueServiceClient

        self.azurite = azurite
        self.conn_id = conn_id
        self.secrets = (azurite.key, azurite.connection_string)
        self.client = QueueServiceClient.from_connection_string(azurite.connection_string)

    def queue_client(self, name: str, *, base64: bool = False) -> Any:
        """The SDK's client of one queue; ``base64``: bodies encoded as other SDKs and Azure Functions
        expect them (``message_encoding="base64"``)."""
        if not base64:
            return self.client.get_queue_client(name)
        from azure.storage.queue import TextBase64DecodePolicy, TextBase64EncodePolicy

        return self.client.get_queue_client(
            name, message_encode_policy=TextBase64EncodePolicy(), message_decode_policy=TextBase64DecodePolicy()
        )

    def create(self, name: str, **attributes: Any) -> str:
        from azure.core.exceptions import ResourceExistsError

        self.delete_queue(name)
        for _ in range(50):
            try:
                return self.new_queue(name)
            except ResourceExistsError:  # still being deleted
                time.sleep(0.2)
        raise AssertionError(f"could not recreate the Azure queue {name!r}")

    def new_queue(self, name: str | None = None, *, prefix: str = "az", **attributes: Any) -> str:
        """Azure queues have none of SQS's attributes: ``attributes`` are ignored."""
        name = name or fresh_name(prefix)
        self.client.create_queue(name)
        return name

    def delete_queue(self, name: str) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        with contextlib.suppress(ResourceNotFoundError):
            self.client.delete_queue(name)

    def exists(self, name: str) -> bool:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            self.client.get_queue_client(name).get_queue_properties()
        except ResourceNotFoundError:
            return False
        return True

    def send(
        self, name: str, bodies: Iterable[str], *, delay: int | None = None, threads: int = 1, base64: bool = False
    ) -> None:
        queue = self.queue_client(name, base64=base64)
        _each(lambda body: queue.send_message(body, visibility_timeout=delay or None), list(bodies), threads)

    def receive(self, name: str, *, visibility_timeout: int = 60, base64: bool = False) -> list[tuple[str, Any]]:
        """One request for up to 32 (Azure's limit per receive)."""
        pages = self.queue_client(name, base64=base64).receive_messages(
            messages_per_page=32, visibility_timeout=visibility_timeout
        )
        return [(m.content, m) for m in next(pages.by_page(), [])]

    def drain(self, name: str, *, visibility_timeout: int = 60, base64: bool = False) -> list[str]:
        return self._drain(name, lambda: self.receive(name, visibility_timeout=visibility_timeout, base64=base64))

    def delete(self, name: str, handle: Any) -> None:
        self.client.get_queue_client(name).delete_message(handle)

    def release(self, name: str, handle: Any) -> None:
        self.client.get_queue_client(name).update_message(handle, visibility_timeout=0)

    def total(self, name: str) -> int:
        return int(self.client.get_queue_client(name).get_queue_properties().approximate_message_count or 0)

    def visible(self, name: str) -> int:
        """Up to 32 (a peek's limit)."""
        return len(list(self.client.get_queue_client(name).peek_messages(max_messages=32)))

    def max_body_bytes(self, name: str) -> int:
        return 65_536

    def close(self) -> None:
        self.client.close()


def _each(send: Callable[[Any], None], items: list[Any], threads: int) -> None:
    """``send`` each item, one after the other or on ``threads`` threads."""
    if threads <= 1:
        for item in items:
            send(item)
        return
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(send, items))
