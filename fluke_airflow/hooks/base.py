"""What every queue hook offers the operators, the sensor and the trigger."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import hmac
import json
import logging
import secrets
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from typing import Any, Generic, Protocol, TypeVar

from fluke_airflow.auth.retrying import Deadline
from fluke_airflow.queues.base import AsyncQueue, Queue
from fluke_airflow.queues.management import QueueCreated

log = logging.getLogger("fluke_airflow.hooks")


class QueueHook(Protocol):
    service: str

    def get_auth(self) -> Any:
        """The connection as an ``AWSAuth`` / ``AzureAuth``."""

    def get_queue(self, queue: str, *, deadline: Deadline | None = None, **kwargs: Any) -> Queue[Any]:
        """An open blocking queue (use it as a context manager). ``deadline``: what the task has
        left (:func:`~fluke_airflow.hooks.deadline.task_deadline`), which bounds the SDK's retries."""

    async def aget_queue(self, queue: str, *, share_client: bool = False, **kwargs: Any) -> AsyncQueue[Any]:
        """An asyncio queue, not yet opened (``async with``); resolving credentials never blocks the loop.
        ``share_client``: share one client per connection among the queues of the event loop."""

    def create_queue(
        self,
        queue: str,
        *,
        attributes: dict[str, Any] | None = None,
        tags: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> QueueCreated:
        """Create ``queue``, or find it with the settings asked for (SQS ``attributes`` and
        ``tags``, Azure ``metadata``); raises ``QueueSettingsConflict`` naming what differs."""

    def delete_queue(self, queue: str) -> bool:
        """Delete ``queue`` and its messages; False if there was no such queue."""

    def purge_queue(self, queue: str) -> int:
        """Delete every message of ``queue``; how many it held, approximately."""


class Management(Protocol):
    """A service's queue management half (``SQSQueueLifecycle``, ``AzureQueueLifecycle``)."""

    def held(self) -> int: ...
    def delete(self) -> bool: ...
    def close(self) -> None: ...


class ManagesQueues:
    """Delete and purge, the same for every service: a hook mixes this in and says how to reach
    its queue management half (``_management``)."""

    service: str

    def _management(self, queue: str) -> Any:
        raise NotImplementedError

    def get_queue(self, queue: str, **kwargs: Any) -> Queue[Any]:
        raise NotImplementedError

    @contextlib.contextmanager
    def managing(self, queue: str) -> Iterator[Any]:
        """The queue's management half, closed after the block."""
        management = self._management(queue)
        try:
            yield management
        finally:
            management.close()

    def delete_queue(self, queue: str) -> bool:
        """Delete the queue (a name, or an SQS URL) and its messages; False if there was no such queue."""
        with self.managing(queue) as management:
            deleted: bool = management.delete()
            return deleted

    def purge_queue(self, queue: str) -> int:
        """``Queue.clear()`` (on SQS: PurgeQueue, or receive-and-delete while SQS refuses a purge),
        after counting what the queue holds: neither service says how many messages a purge deleted.
        How many messages the queue held, approximately."""
        with self.managing(queue) as management, self.get_queue(queue, suppress_output=True) as opened:
            held: int = management.held()  # (a missing queue failed above, clearly)
            opened.clear()
        log.info("Purged %s queue %r: it held about %d message(s)", self.service, queue, held)
        return held


def refuse_settings(service: str, given: dict[str, Any], allowed: str) -> None:
    """A create's settings of the other service: say which ones this service has instead."""
    foreign = sorted(name for name, value in given.items() if value is not None)
    if foreign:
        raise ValueError(f"{' and '.join(foreign)} cannot be given for an {service} queue: it takes {allowed}")


_FINGERPRINT_KEY = secrets.token_bytes(32)

AuthWithLimit = TypeVar("AuthWithLimit")


def with_deadline(auth: AuthWithLimit, deadline: Deadline | None) -> AuthWithLimit:
    """``auth`` (a fresh one, made for one queue) whose SDK retries also end at ``deadline``."""
    if deadline is not None:
        auth.retry_limit = dataclasses.replace(auth.retry_limit, deadline=deadline)  # type: ignore[attr-defined]
    return auth


def connection_fingerprint(conn: Any) -> str:
    """A digest of everything in a connection: two connections with the same fingerprint reach
    the same service the same way. Keyed with a random per-process key, so that the digest of
    the secrets in it cannot be checked against guesses elsewhere."""
    fields = [getattr(conn, name, None) for name in ("conn_type", "host", "login", "password", "schema", "port")]
    extra = conn.extra_dejson if hasattr(conn, "extra_dejson") else getattr(conn, "extra", None)
    payload = json.dumps([fields, extra], sort_keys=True, default=str)
    return hmac.new(_FINGERPRINT_KEY, payload.encode(), hashlib.sha256).hexdigest()


AuthT = TypeVar("AuthT")


class SharedAuths(Generic[AuthT]):
    """The auth object of each connection, as the connection is now, for async queues that
    share their client (the client lives on the auth object). Keys include the connection's
    fingerprint, so a changed connection (rotated keys) gets a new auth; the oldest of more
    than ``limit`` are forgotten (queues still open keep theirs).

    Used from the event loop only, and it never blocks it: there is no lock. A missing auth
    is built once, in a worker thread (building may read files, assume a role or ask the
    triggerer's supervisor for the connection with a blocking call), and every trigger that
    asks for the same key meanwhile awaits that one build. A lock held while building is what
    deadlocked a restarted triggerer: a build that talks to the supervisor suspends its
    coroutine, and the next trigger then blocked the loop's thread on the lock.
    """

    def __init__(self, limit: int = 64) -> None:
        self._auths: OrderedDict[Hashable, AuthT] = OrderedDict()
        self._building: dict[Hashable, asyncio.Future[AuthT]] = {}
        self._limit = limit

    async def aget(self, key: Hashable, build: Callable[[], AuthT]) -> AuthT:
        auth = self._auths.get(key)
        if auth is not None:
            self._auths.move_to_end(key)
            return auth
        pending = self._building.get(key)
        if pending is None or pending.get_loop() is not asyncio.get_running_loop():
            from fluke_airflow._airflow import run_blocking

            pending = asyncio.ensure_future(run_blocking(build))
            self._building[key] = pending
            pending.add_done_callback(lambda done: self._built(key, done))
        return await asyncio.shield(pending)

    def _built(self, key: Hashable, done: asyncio.Future[AuthT]) -> None:
        if self._building.get(key) is done:
            del self._building[key]
        if done.cancelled() or done.exception() is not None:
            return  # the askers see the error; the next ask builds again
        self._auths[key] = done.result()
        self._auths.move_to_end(key)
        while len(self._auths) > self._limit:
            self._auths.popitem(last=False)

    def values(self) -> list[AuthT]:
        return list(self._auths.values())
