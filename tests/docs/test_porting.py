"""docs/porting.rst against the code: each table lists every argument of the installed amazon class
(its own and its AWS base class's), and our class accepts each of them by the amazon name."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

PAGE = Path(__file__).resolve().parents[2] / "docs" / "porting.rst"
EXTRA = {"SqsSensor": {"waiter_delay"}}
"""Names the amazon class takes through ``**kwargs`` (its deferrable trigger's pause)."""


def tables() -> dict[str, list[tuple[str, str]]]:
    """{amazon class: [(amazon argument, ours)]} from the page's list tables."""
    found: dict[str, list[tuple[str, str]]] = {}
    for block in PAGE.read_text().split(".. list-table::")[1:]:
        rows = re.findall(r"^   \* - ``(\w+)``\n     - ``(\w+)``", block, flags=re.M)
        amazon, _ = rows[0]
        found[amazon] = rows[1:]
    return found


def amazon_arguments(cls: type) -> set[str]:
    names: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" in vars(klass) and klass.__module__.startswith("airflow.providers.amazon"):
            names |= {p for p in inspect.signature(klass.__init__).parameters if p not in ("self", "kwargs")}
    return names


def test_every_amazon_argument_is_on_the_page_and_accepted_by_our_class() -> None:
    from airflow.providers.amazon.aws.operators.sqs import SqsPublishOperator
    from airflow.providers.amazon.aws.sensors.sqs import SqsSensor

    from fluke_airflow.operators import QueuePushOperator
    from fluke_airflow.sensors import QueuePollSensor

    pages = tables()
    for amazon, ours in ((SqsSensor, QueuePollSensor), (SqsPublishOperator, QueuePushOperator)):
        listed = {name for name, _ in pages[amazon.__name__]}
        assert listed == amazon_arguments(amazon) | EXTRA.get(amazon.__name__, set()), amazon.__name__
        accepted = set(inspect.signature(ours.__init__).parameters)
        assert listed <= accepted, f"{ours.__name__} does not take {sorted(listed - accepted)}"
        becomes = {target for _, target in pages[amazon.__name__]} - {"poke_interval"}
        assert becomes <= accepted, f"the page maps to {sorted(becomes - accepted)}, which {ours.__name__} lacks"
