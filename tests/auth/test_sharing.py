"""ClientShare: one client per event loop for many queues; a retired client goes to nobody new."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from fluke_airflow.auth import sharing
from fluke_airflow.auth.sharing import ClientShare

pytestmark = pytest.mark.unit


class _Client:
    """A stand-in client context: counts opens and closes (ClientShare's own logic is under test)."""

    def __init__(self, log: list[str], n: int) -> None:
        self.log, self.n = log, n

    async def __aenter__(self) -> _Client:
        self.log.append(f"open {self.n}")
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.log.append(f"close {self.n}")


def _share(log: list[str]) -> ClientShare:
    made = iter(range(1, 100))

    async def open_client(pool: int) -> _Client:
        assert pool == sharing.POOL_CONNECTIONS
        return _Client(log, next(made))

    return ClientShare(open_client)


def test_users_share_one_client_and_the_last_closes_it() -> None:
    async def run() -> list[str]:
        log: list[str] = []
        share = _share(log)
        clients = await asyncio.gather(*(share.acquire() for _ in range(5)))
        assert len({id(c) for c in clients}) == 1 and share.users() == 5
        for client in clients[:-1]:
            await share.release(client)
        assert log == ["open 1"]
        await share.release(clients[-1])
        assert share.clients() == 0
        return log

    assert asyncio.run(run()) == ["open 1", "close 1"]


def test_a_retired_client_serves_its_users_and_no_new_one() -> None:
    async def run() -> list[str]:
        log: list[str] = []
        share = _share(log)
        stuck, other = await share.acquire(), await share.acquire()
        await share.release(stuck, retire=True)  # the watchdog gave up on a request of this client
        assert log == ["open 1"]  # its other user keeps it for now
        fresh = await share.acquire()
        assert fresh is not other and fresh.n == 2
        await share.release(other)  # the retired client's last user: closed
        assert log == ["open 1", "open 2", "close 1"]
        assert share.clients() == 1 and share.users() == 1
        await share.release(fresh)
        return log

    assert asyncio.run(run()) == ["open 1", "open 2", "close 1", "close 2"]


def test_more_users_than_a_client_takes_open_a_second(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sharing, "MAX_USERS", 2)

    async def run() -> None:
        log: list[str] = []
        share = _share(log)
        clients = [await share.acquire() for _ in range(3)]
        assert [c.n for c in clients] == [1, 1, 2] and share.clients() == 2
        for client in clients:
            await share.release(client)
        assert sorted(log) == ["close 1", "close 2", "open 1", "open 2"]

    asyncio.run(run())


def test_each_event_loop_gets_its_own_client() -> None:
    log: list[str] = []
    share = _share(log)

    async def use() -> int:
        client = await share.acquire()
        await share.release(client)
        return int(client.n)

    assert [asyncio.run(use()), asyncio.run(use())] == [1, 2]
