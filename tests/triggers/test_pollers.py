"""Poll loops of one queue see each other through a Variable (no triggerer, no emulator)."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from fluke_airflow.triggers.pollers import STALE_AFTER, PollerRegistry, variable_key

pytestmark = pytest.mark.unit


class Variables:
    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.now = 1000.0

    async def get(self, key: str) -> str | None:
        return self.values.get(key)

    async def put(self, key: str, value: str) -> None:
        self.values[key] = value


def registry(store: Variables, process: str, settings: Any, assets: tuple[str, ...], dags: tuple[str, ...]) -> Any:
    return PollerRegistry(
        "fluke_sqs", "orders", settings, lambda: (assets, dags), process=process,
        get=store.get, put=store.put, clock=lambda: store.now,
    )  # fmt: skip


async def test_the_same_settings_on_two_triggerers_is_an_error_naming_both(caplog: pytest.LogCaptureFixture) -> None:
    store = Variables()
    here = registry(store, "host-a:11", ("key",), ("orders_eu",), ("eu_dag",))
    there = registry(store, "host-b:22", ("key",), ("orders_us",), ("us_dag",))
    with caplog.at_level(logging.WARNING, logger="fluke_airflow.triggers"):
        assert await here.beat() == []
        (other,) = await there.beat()
        assert other.process == "host-a:11" and other.assets == ("orders_eu",)
        (other,) = await here.beat()
        assert other.process == "host-b:22"
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2
    assert all("host-a:11" in e and "host-b:22" in e and "orders_eu" in e and "orders_us" in e for e in errors)
    assert "one asset with one watcher" in errors[0]
    stored = json.loads(store.values[variable_key("fluke_sqs", "orders")])
    assert stored["queue"] == "orders" and len(stored["pollers"]) == 2


async def test_other_settings_compete_with_a_warning_and_one_process_is_no_split(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = Variables()
    a = registry(store, "host-a:11", ("batch",), ("a",), ("dag_a",))
    b = registry(store, "host-a:11", ("per-message",), ("b",), ("dag_b",))
    c = registry(store, "host-a:11", ("batch",), ("c",), ("dag_c",))  # same process, same settings: one stream
    with caplog.at_level(logging.WARNING, logger="fluke_airflow.triggers"):
        for r in (a, b, c, a):
            await r.beat()
    levels = [r.levelno for r in caplog.records]
    assert logging.ERROR not in levels and logging.WARNING in levels
    assert all("They compete" in r.getMessage() for r in caplog.records)


async def test_stale_and_departed_pollers_are_not_reported(caplog: pytest.LogCaptureFixture) -> None:
    store = Variables()
    gone = registry(store, "host-b:22", ("key",), ("x",), ("d",))
    await gone.beat()
    store.now += STALE_AFTER + 1  # killed without leaving: its heartbeat ages out
    here = registry(store, "host-a:11", ("key",), ("y",), ("d",))
    assert await here.beat() == []
    left = registry(store, "host-c:33", ("key",), ("z",), ("d",))
    await left.beat()
    await left.leave()
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="fluke_airflow.triggers"):
        assert await here.beat() == []
    assert not caplog.records


async def test_a_finding_is_repeated_only_every_ten_minutes(caplog: pytest.LogCaptureFixture) -> None:
    store = Variables()
    here = registry(store, "host-a:11", ("key",), ("a",), ("d",))
    there = registry(store, "host-b:22", ("key",), ("b",), ("d",))
    await there.beat()
    with caplog.at_level(logging.ERROR, logger="fluke_airflow.triggers"):
        for _ in range(5):
            store.now += 60
            await there.beat()
            await here.beat()
        store.now += 600
        await there.beat()
        await here.beat()
    said_by_here = [r for r in caplog.records if r.getMessage().split(": here, ")[1].startswith("host-a:11")]
    assert len(said_by_here) == 2


async def test_the_same_watcher_after_a_failover_is_no_split(caplog: pytest.LogCaptureFixture) -> None:
    store = Variables()
    before = registry(store, "host-a:11", ("key",), ("orders",), ("d",))
    await before.beat()  # then its triggerer is killed: the heartbeat stays until it ages out
    after = registry(store, "host-b:22", ("key",), ("orders",), ("d",))
    with caplog.at_level(logging.WARNING, logger="fluke_airflow.triggers"):
        (other,) = await after.beat()
    assert other.process == "host-a:11" and not caplog.records
