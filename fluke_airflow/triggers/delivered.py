"""Which messages a watcher has already handed to Airflow: a redelivered one starts no second run.

A message comes back when its delete did not happen: the delete failed at the service, or the
triggerer died after Airflow stored the asset event but before the delete. The watcher records
the ids of every delivery once Airflow has confirmed its asset events stored, *before* it
deletes the messages, in the state store of each asset it feeds (Airflow 3.3+), keeping the
latest :data:`LIMIT` in memory and as many of the latest as fit in Airflow's cap on a stored value
(``[state_store] max_value_storage_bytes``, 64 KiB by default: about 1,500 SQS or Azure ids;
Airflow logs a warning on every write above it). A message whose id is there is deleted without a new event. The record
cannot cover the second or so between Airflow storing an event and confirming it to the
trigger: a triggerer killed then hands those messages out again (a duplicate, at least once).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any

log = logging.getLogger("fluke_airflow.triggers")

LIMIT = 2000
"""Ids kept per queue and asset: well above what a triggerer holds at once (a batch per watcher)."""
STORE_MARGIN = 256
"""Bytes of the state store's cap left free: its own wrapping of the value."""


def store_budget() -> int:
    """The most bytes a value in the asset state store should take (0: no cap), from Airflow's
    ``[state_store] max_value_storage_bytes`` (65,535 when Airflow does not say)."""
    try:
        from airflow.configuration import conf

        limit = conf.getint("state_store", "max_value_storage_bytes", fallback=65535)
    except Exception:  # no such section before Airflow 3.3, which has no state store either
        limit = 65535
    return max(limit - STORE_MARGIN, 1) if limit > 0 else 0


def fitting(value: dict[str, Any], ids: list[str], budget: int) -> dict[str, Any]:
    """``value`` with the newest of ``ids`` (oldest first) that keep its JSON within ``budget``."""
    full = {**value, "ids": ids}
    if budget <= 0 or len(json.dumps(full)) <= budget:
        return full
    room = budget - len(json.dumps({**value, "ids": []}))
    kept: list[str] = []
    for message_id in reversed(ids):
        room -= len(json.dumps(message_id)) + 2  # the id and its ", "
        if room < 0:
            break
        kept.append(message_id)
    return {**value, "ids": kept[::-1]}


def asset_names(trigger: Any) -> list[str]:
    """The names of the assets a watcher trigger feeds (the triggerer gives it their state store)."""
    accessors = getattr(trigger, "asset_state_store", None)
    return sorted(getattr(accessors, "_by_name", None) or {})


class DeliveredIds:
    """The latest delivered message ids of one queue, in memory and in the assets' state stores."""

    def __init__(self, conn_id: str, queue: str, limit: int = LIMIT) -> None:
        self.queue = queue
        digest = hashlib.sha256(f"{conn_id}\0{queue}".encode()).hexdigest()[:16]
        self.key = f"fluke_airflow.delivered.{digest}"
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._limit = limit
        self._loaded: set[str] = set()
        self._broken = False

    def __contains__(self, message_id: object) -> bool:
        return message_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, ids: Iterable[str]) -> None:
        for message_id in ids:
            self._ids[message_id] = None
            self._ids.move_to_end(message_id)
        while len(self._ids) > self._limit:
            self._ids.popitem(last=False)

    async def load(self, assets: Sequence[str]) -> None:
        """Merge what the stores of ``assets`` hold (once per asset)."""
        for name in [a for a in assets if a not in self._loaded]:
            self._loaded.add(name)
            value = await self._call("read", name)
            if isinstance(value, dict) and value.get("queue") == self.queue:
                self.add(str(i) for i in value.get("ids", []) if i not in self._ids)

    async def save(self, assets: Sequence[str]) -> None:
        value = fitting({"queue": self.queue}, list(self._ids), store_budget())
        for name in assets:
            await self._call("write", name, value)

    async def _call(self, action: str, asset: str, value: Any = None) -> Any:
        if self._broken:
            return None
        try:
            from airflow.sdk.execution_time.context import AssetStateStoreAccessor

            store = AssetStateStoreAccessor(name=asset)
            if action == "read":
                return await store.aget(self.key)
            await store.aset(self.key, value)
        except Exception as error:  # the record is a guard against duplicates, not a reason to stop
            self._broken = True
            log.warning(
                "Queue %r: cannot %s the delivered-message record in the state store of asset %r (%s); "
                "a message redelivered after a failed delete may start a second run",
                self.queue,
                action,
                asset,
                error,
            )
        return None
