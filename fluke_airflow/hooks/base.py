"""What every queue hook offers the operators, the sensor and the trigger."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, Generic, Protocol, TypeVar

from fluke_airflow.queues.base import AsyncQueue, Queue


class QueueHook(Protocol):
    service: str

    def get_auth(self) -> Any:
        """The connection as an ``AWSAuth`` / ``AzureAuth``."""

    def get_queue(self, queue: str, **kwargs: Any) -> Queue[Any]:
        """An open blocking queue (use it as a context manager)."""

    async def aget_queue(self, queue: str, *, share_client: bool = False, **kwargs: Any) -> AsyncQueue[Any]:
        """An asyncio queue, not yet opened (``async with``); resolving credentials never blocks the loop.
        ``share_client``: share one client per connection among the queues of the event loop."""


_FINGERPRINT_KEY = secrets.token_bytes(32)


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
    than ``limit`` are forgotten (queues still open keep theirs)."""

    def __init__(self, limit: int = 64) -> None:
        self._auths: OrderedDict[Hashable, AuthT] = OrderedDict()
        self._lock = threading.Lock()  # triggers that start together build one auth, not one each
        self._limit = limit

    def get(self, key: Hashable, build: Callable[[], AuthT]) -> AuthT:
        with self._lock:
            auth = self._auths.get(key)
            if auth is None:
                auth = self._auths[key] = build()
                while len(self._auths) > self._limit:
                    self._auths.popitem(last=False)
            self._auths.move_to_end(key)
            return auth

    def values(self) -> list[AuthT]:
        with self._lock:
            return list(self._auths.values())
