"""The delivered-ids record stays within Airflow's cap on a state-store value.

``[state_store] max_value_storage_bytes`` (65,535 by default) caps a value written to the asset
state store; Airflow logs a warning on every write above it (airflow.sdk's
``AssetStateStoreAccessor``). 2,000 UUID message ids are about 80 KB of JSON: the record keeps the
newest ids that fit.
"""

from __future__ import annotations

import json
import uuid

import pytest

from fluke_airflow.triggers.delivered import LIMIT, DeliveredIds, fitting, store_budget

pytestmark = pytest.mark.unit


def test_the_newest_ids_that_fit_are_kept_in_order() -> None:
    ids = [str(uuid.uuid4()) for _ in range(LIMIT)]
    value = fitting({"queue": "orders"}, ids, 65535 - 256)
    assert len(json.dumps(value)) <= 65535 - 256
    assert value["ids"] == ids[-len(value["ids"]) :]  # the newest, oldest first
    assert len(value["ids"]) > 1500  # most of them still fit
    assert fitting({"queue": "orders"}, ids[:10], 65535 - 256)["ids"] == ids[:10]  # a small record is whole


def test_no_cap_keeps_everything() -> None:
    ids = [str(uuid.uuid4()) for _ in range(LIMIT)]
    assert fitting({"queue": "orders"}, ids, 0)["ids"] == ids


def test_the_budget_follows_airflow_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__STATE_STORE__MAX_VALUE_STORAGE_BYTES", "10000")
    assert store_budget() == 10000 - 256
    monkeypatch.setenv("AIRFLOW__STATE_STORE__MAX_VALUE_STORAGE_BYTES", "0")
    assert store_budget() == 0


async def test_a_full_record_is_saved_within_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    written: dict[str, object] = {}

    class Store:
        def __init__(self, name: str) -> None:
            self.name = name

        async def aset(self, key: str, value: object) -> None:
            written[self.name] = value

    monkeypatch.setattr("airflow.sdk.execution_time.context.AssetStateStoreAccessor", Store, raising=False)
    record = DeliveredIds("fluke_sqs", "orders")
    ids = [str(uuid.uuid4()) for _ in range(LIMIT + 100)]
    record.add(ids)
    assert len(record) == LIMIT and ids[-1] in record and ids[0] not in record
    await record.save(["a"])
    saved = written["a"]
    assert isinstance(saved, dict) and len(json.dumps(saved)) <= 65535
    assert saved["ids"][-1] == ids[-1]
