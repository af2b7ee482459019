"""docs/index.rst's comparison with Airflow's amazon provider, checked against the classes' signatures.

The table once said ``QueuePushOperator`` had "No message attributes" and ``QueuePollSensor`` "No
filtering", while both had them (issue 23). Here every row names its classes, every argument a
cell names (``name`` or ``name=value`` in code) is one that class takes, and each feature below is
both in the class's signature and claimed in its cell (never as "no ...").
"""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

INDEX = Path(__file__).resolve().parents[2] / "docs" / "index.rst"

# row -> (the amazon provider's class, ours); None where the row says there is none.
ROWS: dict[str, tuple[str | None, str | None]] = {
    "Connection": (None, None),
    "Hook": ("airflow.providers.amazon.aws.hooks.sqs.SqsHook", "fluke_airflow.hooks.AmazonSQSQueueHook"),
    "Send": (
        "airflow.providers.amazon.aws.operators.sqs.SqsPublishOperator",
        "fluke_airflow.operators.QueuePushOperator",
    ),
    "Look without consuming": (None, "fluke_airflow.operators.QueuePeekOperator"),
    "Create, purge, delete queues": (None, "fluke_airflow.operators.QueueCreateOperator"),
    "Wait for and receive messages": (
        "airflow.providers.amazon.aws.sensors.sqs.SqsSensor",
        "fluke_airflow.sensors.QueuePollSensor",
    ),
    "Deferrable": (
        "airflow.providers.amazon.aws.triggers.sqs.SqsSensorTrigger",
        "fluke_airflow.triggers.QueuePollTrigger",
    ),
    "Event-driven scheduling": (
        "airflow.providers.common.messaging.triggers.msg_queue.MessageQueueTrigger",
        "fluke_airflow.triggers.QueuePollTrigger",
    ),
    "Delete only when the pipeline succeeded": (None, "fluke_airflow.sensors.QueuePollSensor"),
    "Azure Queue Storage": (None, None),
}

# (row, column 1 = amazon / 2 = ours, the argument, the words the cell uses for it)
FEATURES: list[tuple[str, int, str, str]] = [
    ("Send", 1, "message_attributes", "message attributes"),
    ("Send", 1, "delay_seconds", "delay"),
    ("Send", 1, "message_group_id", "FIFO group"),
    ("Send", 1, "message_deduplication_id", "deduplication id"),
    ("Send", 2, "message_attributes", "message attributes"),
    ("Send", 2, "delay_seconds", "delay"),
    ("Send", 2, "message_group_id", "FIFO group"),
    ("Send", 2, "message_deduplication_id", "deduplication ids"),
    ("Wait for and receive messages", 1, "message_filtering", "filtering"),
    ("Wait for and receive messages", 1, "num_batches", "num_batches"),
    ("Wait for and receive messages", 1, "delete_message_on_reception", "delete_message_on_reception"),
    ("Wait for and receive messages", 2, "message_filtering", "filtering"),
    ("Wait for and receive messages", 2, "message_filtering_attributes", "attribute filters"),
    ("Wait for and receive messages", 2, "unmatched", "unmatched"),
    ("Wait for and receive messages", 2, "num_messages", "num_messages"),
    ("Wait for and receive messages", 2, "pre_delivery_delete", "pre_delivery_delete=True"),
    ("Wait for and receive messages", 2, "include_metadata", "include_metadata=True"),
    ("Event-driven scheduling", 2, "event_per_message", "event_per_message"),
    ("Event-driven scheduling", 1, "scheme", 'scheme="sqs"'),
    ("Delete only when the pipeline succeeded", 2, "delete_on_dag_success", "delete_on_dag_success=True"),
]

# Code in a cell that is not an argument of the row's class: names of things the cell talks about.
NOT_ARGUMENTS = {"azure_storage_queue", "create_queue", "send_message", "get_queue()", "push_many", "messages"}


def _table() -> dict[str, list[str]]:
    """The list-table's rows: first cell -> the three cells, each joined into one line."""
    text = INDEX.read_text()
    body = text[text.index("How it compares with what Airflow ships") :]
    body = body[body.index(".. list-table::") :]
    rows: list[list[str]] = []
    for line in body.splitlines()[1:]:
        if line.startswith("   * - "):
            rows.append([line[7:].strip()])
        elif line.startswith("     - "):
            rows[-1].append(line[7:].strip())
        elif line.startswith("       ") and rows:
            rows[-1][-1] += " " + line.strip()
        elif line.strip() and not line.startswith("   :") and rows:
            break
    return {cells[0]: cells for cells in rows[1:]}


def _load(path: str) -> type:
    module, name = path.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


def _arguments(cls: type) -> set[str]:
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is not None:
            names |= {p for p in inspect.signature(init).parameters if p not in ("self", "args", "kwargs")}
    return names


def test_the_rows_are_those_checked_here() -> None:
    assert list(_table()) == list(ROWS)


@pytest.mark.parametrize("row", list(ROWS))
def test_each_cell_names_its_class_and_only_arguments_it_takes(row: str) -> None:
    cells = _table()[row]
    for column, path in enumerate(ROWS[row], start=1):
        cell = cells[column]
        if path is None:
            continue
        cls = _load(path)
        assert f"``{cls.__name__}" in cell, f"{row}: the cell does not name {cls.__name__}: {cell}"
        accepted = _arguments(cls)
        for code in re.findall(r"``([^`]+)``", cell):
            name = code.split("=", 1)[0]
            if re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)+", name) and code not in NOT_ARGUMENTS:
                assert name in accepted, f"{row}: {cls.__name__} takes no argument {name!r} ({cell})"


def _claim_problem(cell: str, cls: type, argument: str, words: str) -> str | None:
    if argument not in _arguments(cls):
        return f"{cls.__name__} has no argument {argument!r}: the table's claim is wrong"
    if words not in cell:
        return f"{cls.__name__} has {argument!r}, and the cell does not say so: {cell}"
    if f"no {words.lower()}" in cell.lower():
        return f"the cell denies {words!r}, which {cls.__name__} has: {cell}"
    return None


@pytest.mark.parametrize(("row", "column", "argument", "words"), FEATURES)
def test_each_feature_is_claimed_where_the_class_has_it(row: str, column: int, argument: str, words: str) -> None:
    path = ROWS[row][column - 1]
    assert path is not None
    assert _claim_problem(_table()[row][column], _load(path), argument, words) is None


def test_the_old_cells_are_caught() -> None:
    """What the table said before issue 23."""
    from fluke_airflow.operators import QueuePushOperator
    from fluke_airflow.sensors import QueuePollSensor

    push = (
        "``QueuePushOperator``: one message or a list; delay, FIFO group and deduplication ids. No message attributes."
    )
    poll = "``QueuePollSensor``: ``num_messages`` bodies; (``pre_delivery_delete=True``, at most once). No filtering."
    assert "denies" in str(_claim_problem(push, QueuePushOperator, "message_attributes", "message attributes"))
    assert "denies" in str(_claim_problem(poll, QueuePollSensor, "message_filtering", "filtering"))
