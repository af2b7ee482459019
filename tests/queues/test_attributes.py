"""SQS message attributes checked before anything is sent (no emulator)."""

from __future__ import annotations

from typing import Any

import pytest

from fluke_airflow.queues.attributes import check_attributes, per_message

pytestmark = pytest.mark.unit


def s(value: str) -> dict[str, str]:
    return {"DataType": "String", "StringValue": value}


def test_sizes_count_name_type_and_value() -> None:
    _, size = check_attributes({"team": s("data"), "n": {"DataType": "Number.int", "StringValue": "42"},
                                "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"}})  # fmt: skip
    assert size == (4 + 6 + 4) + (1 + 10 + 2) + (4 + 6 + 2)


def test_one_dict_for_all_or_one_per_message() -> None:
    assert len(per_message({"a": s("x")}, 3)) == 3
    assert [a for a, _ in per_message([{"a": s("1")}, {"a": s("2")}], 2)] == [{"a": s("1")}, {"a": s("2")}]
    with pytest.raises(ValueError, match=r"one per message \(3\), got a list of 2"):
        per_message([{}, {}], 3)


@pytest.mark.parametrize(
    ("attributes", "error", "says"),
    [
        ({f"a{i}": s("x") for i in range(11)}, ValueError, "has 11 attributes; SQS allows at most 10"),
        ({"AWS.trace": s("x")}, ValueError, "must not start with 'AWS.' or 'Amazon.'"),
        ({"amazon.x": s("x")}, ValueError, "must not start with 'AWS.' or 'Amazon.'"),
        ({"a..b": s("x")}, ValueError, "two in a row"),
        ({".a": s("x")}, ValueError, "start or end with a period"),
        ({"a b": s("x")}, ValueError, "may only contain letters, digits"),
        ({"x" * 257: s("x")}, ValueError, "at most 256"),
        ({"a": {"DataType": "Text", "StringValue": "x"}}, ValueError, r"\['DataType'\] must be 'String', 'Number'"),
        ({"a": {"DataType": "Number", "StringValue": "ten"}}, ValueError, "must be a number"),
        ({"a": {"DataType": "String", "StringValue": ""}}, ValueError, "non-empty str"),
        ({"a": {"DataType": "Binary", "StringValue": "x"}}, ValueError, "non-empty bytes"),
        ({"a": {"DataType": "String", "StringValue": "bad\x00"}}, ValueError, "U\\+0000"),
        ({"a": {"DataType": "String", "Value": "x"}}, ValueError, "unknown key"),
        ({"a": "x"}, TypeError, "must be a dict like"),
    ],
)
def test_bad_attributes_are_refused(attributes: dict[str, Any], error: type, says: str) -> None:
    with pytest.raises(error, match=says):
        check_attributes(attributes)
