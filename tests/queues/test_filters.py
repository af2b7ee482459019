"""Message filters with the amazon provider's names (and attribute filters), on their own."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fluke_airflow.queues.filters import MessageFilter, check_unmatched
from fluke_airflow.queues.message import Message

pytestmark = pytest.mark.unit


def msg(body: Any, **attributes: str) -> Message:
    text = body if isinstance(body, str) else json.dumps(body)
    held = {k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()}
    return Message(id=text[:20], body=text, receipt="r", message_attributes=held)


def taken(f: MessageFilter, *messages: Message) -> list[str]:
    return [m.body for m in f.split(list(messages))[0]]


def test_literal_matches_whole_bodies() -> None:
    f = MessageFilter.build("literal", ["hello", "world"])
    assert taken(f, msg("hello"), msg("hello!"), msg("world")) == ["hello", "world"]


def test_jsonpath_finds_a_value_and_optionally_one_of_the_values() -> None:
    orders = [msg({"order": {"status": "paid"}}), msg({"order": {"status": "new"}}), msg({"other": 1})]
    assert len(taken(MessageFilter.build("jsonpath", None, "order.status"), *orders)) == 2
    paid = MessageFilter.build("jsonpath", ["paid"], "order.status")
    assert taken(paid, *orders) == [orders[0].body]


def test_jsonpath_ext_filters_inside_lists() -> None:
    f = MessageFilter.build("jsonpath-ext", ["sku-2"], "items[?qty > 1].sku")
    big = msg({"items": [{"sku": "sku-1", "qty": 1}, {"sku": "sku-2", "qty": 3}]})
    small = msg({"items": [{"sku": "sku-2", "qty": 1}]})
    assert taken(f, big, small) == [big.body]


def test_a_body_that_is_not_json_does_not_match_instead_of_failing() -> None:
    f = MessageFilter.build("jsonpath", None, "a")
    assert taken(f, msg("not json"), msg({"a": 1})) == ['{"a": 1}']


def test_values_that_are_dicts_or_lists_compare_by_content() -> None:
    f = MessageFilter.build("jsonpath", [{"x": 1}], "v")
    assert taken(f, msg({"v": {"x": 1}}), msg({"v": {"x": 2}})) == ['{"v": {"x": 1}}']


def test_attribute_filters_need_every_name() -> None:
    f = MessageFilter.build(message_filtering_attributes={"type": ["created", "updated"], "region": "eu"})
    yes, wrong, missing = msg("a", type="created", region="eu"), msg("b", type="deleted", region="eu"), msg("c")
    assert taken(f, yes, wrong, missing) == ["a"] and f.uses_attributes


def test_body_and_attribute_filters_combine() -> None:
    f = MessageFilter.build("literal", ["a", "b"], message_filtering_attributes={"type": "x"})
    assert taken(f, msg("a", type="x"), msg("b", type="y"), msg("c", type="x")) == ["a"]


def test_no_filter_takes_everything() -> None:
    f = MessageFilter.build()
    assert not f.active and taken(f, msg("a"), msg("b")) == ["a", "b"]


@pytest.mark.parametrize(
    ("kwargs", "error", "says"),
    [
        ({"message_filtering": "regex"}, ValueError, "message_filtering must be one of 'literal', 'jsonpath'"),
        ({"message_filtering": "literal"}, TypeError, "message_filtering_match_values must be given"),
        ({"message_filtering": "literal", "message_filtering_match_values": "abc"}, TypeError, "must be a list"),
        ({"message_filtering": "literal", "message_filtering_match_values": []}, ValueError, "at least one value"),
        ({"message_filtering": "jsonpath"}, ValueError, "message_filtering_config must be a JSONPath expression"),
        ({"message_filtering": "jsonpath", "message_filtering_config": "a[?("}, ValueError, "is not a valid jsonpath"),
        ({"message_filtering_match_values": ["x"]}, ValueError, "need message_filtering"),
        ({"message_filtering_attributes": []}, TypeError, "message_filtering_attributes must be a non-empty dict"),
        ({"message_filtering_attributes": {"t": []}}, ValueError, r"message_filtering_attributes\['t'\]"),
    ],
)
def test_bad_filters_are_refused_naming_the_parameter(kwargs: dict[str, Any], error: type, says: str) -> None:
    with pytest.raises(error, match=says):
        MessageFilter.build(**kwargs)


def test_unmatched_policy() -> None:
    assert check_unmatched("leave", None) == "leave"
    with pytest.raises(ValueError, match="unmatched must be one of 'leave', 'delete', 'dead_letter'"):
        check_unmatched("drop", None)
    with pytest.raises(ValueError, match="needs dead_letter_queue"):
        check_unmatched("dead_letter", None)
