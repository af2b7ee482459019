"""One auth per connection for async queues that share a client (triggers), a new one when the
connection changes; the fingerprint that tells them apart gives nothing away."""

from __future__ import annotations

import json
from typing import Any

from airflow.sdk import Connection

from fluke_airflow.hooks.base import SharedAuths, connection_fingerprint

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY"


def conn(password: str = SECRET, **extra: Any) -> Connection:
    return Connection(
        conn_id="q", conn_type="aws", login="AKIAEXAMPLE", password=password, extra=json.dumps(extra) if extra else None
    )


def test_fingerprint_changes_with_any_field_and_hides_the_secret() -> None:
    base = connection_fingerprint(conn())
    assert connection_fingerprint(conn()) == base
    assert connection_fingerprint(conn(password=SECRET + "2")) != base
    assert connection_fingerprint(conn(region_name="eu-west-1")) != base
    assert SECRET not in base and "AKIAEXAMPLE" not in base


def test_shared_auths_one_per_key_and_the_oldest_forgotten() -> None:
    auths: SharedAuths[object] = SharedAuths(limit=2)
    built: list[object] = []

    def build() -> object:
        built.append(object())
        return built[-1]

    first = auths.get(("q", "a"), build)
    assert auths.get(("q", "a"), build) is first and len(built) == 1
    rotated = auths.get(("q", "b"), build)  # the same conn_id, changed connection: a new auth
    assert rotated is not first
    auths.get(("q", "c"), build)
    assert auths.values() == [rotated, built[-1]]  # more than 2: the oldest went
