"""One async client shared by many queues of one event loop.

A triggerer runs hundreds of triggers on one event loop, most of them on a handful of
connections. Each aiobotocore client carries its own event-handler tables, endpoint
resolver, retry handlers and connection pool (about 1.5 MB of resident memory once used),
so a client per trigger costs memory that grows with the number of deferred tasks. A
:class:`ClientShare` belongs to one auth object and hands the same client to every queue
that asks on the same loop, up to :data:`MAX_USERS` each, and closes a client with its last
user.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

MAX_USERS = 200
"""Users (queues) per shared client; more open a second client."""
POOL_CONNECTIONS = 256
"""Connections per shared client: a long poll holds one for up to 20 s, so the pool must
exceed the users (each has at most one long poll out), leaving room for deletes."""


@dataclass
class _Entry:
    context: AbstractAsyncContextManager[Any]
    client: Any
    users: int = 0
    retired: bool = False
    """Handed to no new user (it got stuck); closed with its last user."""


class ClientShare:
    """Clients made by ``open_client(pool_connections)``, shared per event loop."""

    def __init__(self, open_client: Callable[[int], Awaitable[AbstractAsyncContextManager[Any]]]) -> None:
        self._open_client = open_client
        self._entries: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, list[_Entry]] = weakref.WeakKeyDictionary()
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()

    def _lock(self, loop: asyncio.AbstractEventLoop) -> asyncio.Lock:
        # Triggers that start together must not each build a client: one builds, the others wait.
        lock = self._locks.get(loop)
        if lock is None:
            lock = self._locks[loop] = asyncio.Lock()
        return lock

    async def acquire(self) -> Any:
        loop = asyncio.get_running_loop()
        async with self._lock(loop):
            entries = [e for e in self._entries.get(loop, []) if e.users < MAX_USERS and not e.retired]
            if entries:
                entry = entries[0]
            else:
                context = await self._open_client(POOL_CONNECTIONS)
                entry = _Entry(context, await context.__aenter__())
                self._entries.setdefault(loop, []).append(entry)
            entry.users += 1
            return entry.client

    async def release(self, client: Any, *, retire: bool = False) -> None:
        """Give ``client`` back; ``retire``: it is suspect (a request got stuck on it), so the next
        users get a new client, and this one closes once its remaining users have let it go."""
        loop = asyncio.get_running_loop()
        async with self._lock(loop):
            entries = self._entries.get(loop, [])
            entry = next((e for e in entries if e.client is client), None)
            if entry is None:
                return
            entry.retired = entry.retired or retire
            entry.users -= 1
            if entry.users > 0:
                return
            entries.remove(entry)
        await entry.context.__aexit__(None, None, None)

    def clients(self) -> int:
        """Open clients on the running loop (for tests and diagnostics)."""
        return len(self._entries.get(asyncio.get_running_loop(), []))

    def users(self) -> int:
        """Users of the open clients on the running loop."""
        return sum(e.users for e in self._entries.get(asyncio.get_running_loop(), []))
