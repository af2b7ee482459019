"""The delivery arguments, declared once (``queues/arguments.py``): one set of checks for ``poll``,
the sensor (at parse time, templates skipped, and after rendering) and the trigger, against the
services' limits; and what derives from the declarations. No emulator needed."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from devtools import signatures
from fluke_airflow.queues import arguments, limits
from fluke_airflow.queues.arguments import POLL, SENSOR, TRIGGER, DeliverySettings

pytestmark = pytest.mark.unit

NAMED = {"conn_id": "c", "queue": "q"}


@pytest.mark.parametrize(
    ("values", "error", "names"),
    [
        ({"batch_size": 0}, ValueError, r"batch_size must be an integer >= 1, got 0"),
        ({"num_messages": -1}, ValueError, r"num_messages must be an integer >= 1 \(or None\)"),
        ({"visibility_timeout": limits.MAX_VISIBILITY + 1}, ValueError, rf"at most {limits.MAX_VISIBILITY}"),
        ({"wait_time_seconds": limits.MAX_WAIT + 1}, ValueError, r"wait_time_seconds .* at most 20"),
        ({"max_delivery_bytes": 0}, ValueError, "max_delivery_bytes"),
        ({"poke_interval": -1}, ValueError, "poke_interval"),
        ({"pre_delivery_delete": "yes"}, TypeError, "pre_delivery_delete must be True or False"),
        ({"message_encoding": "utf-8"}, ValueError, "message_encoding must be one of None, 'text', 'base64'"),
        ({"dead_letter_queue": "dlq"}, ValueError, r"dead_letter_queue needs max_receive_count \(or unmatched"),
        ({"unmatched": "dead_letter"}, ValueError, r"unmatched='dead_letter' needs dead_letter_queue"),
        ({"unmatched": "drop"}, ValueError, r"unmatched must be one of 'leave', 'delete', 'dead_letter'"),
        ({"retry_delay": -1}, ValueError, "retry_delay must be a timedelta or a number of seconds >= 0"),
        ({"max_retry_delay": "1h"}, TypeError, "max_retry_delay must be a timedelta or a number of seconds"),
        ({"retry_exponential_backoff": 0.5}, ValueError, "retry_exponential_backoff must be True"),
        ({"max_batching_window": 301}, ValueError, "max_batching_window must be a number of seconds from 0 to 300"),
        ({"max_batching_window": 60, "visibility_timeout": 60}, ValueError, "must be shorter than visibility_timeout"),
        ({"message_filtering": "regex"}, ValueError, "message_filtering must be one of 'literal'"),
        ({"dag_ids": []}, TypeError, "dag_ids must be a non-empty list of DAG ids"),
    ],
)
def test_each_bad_argument_is_named_with_what_is_allowed(values: dict[str, Any], error: type, names: str) -> None:
    with pytest.raises(error, match=names):
        arguments.check(TRIGGER, {**NAMED, **values})


def test_templates_wait_for_rendering_and_rendered_numbers_count() -> None:
    templated = {"batch_size": "{{ params.n }}", "visibility_timeout": "{{ params.v }}", "queue": "{{ x }}"}
    checked = arguments.check(SENSOR, {"conn_id": "c", **templated}, templates_allowed=True)
    assert {name: checked[name] for name in templated} == templated
    assert arguments.check(SENSOR, {**NAMED, "batch_size": "25"}, rendered=True)["batch_size"] == 25
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1, got 0"):
        arguments.check(SENSOR, {**NAMED, "batch_size": "0"}, rendered=True)


def test_a_trigger_takes_no_text_for_numbers() -> None:
    with pytest.raises(TypeError, match="batch_size must be an integer >= 1, got str '10'"):
        DeliverySettings.checked(TRIGGER, {**NAMED, "batch_size": "10"})


def test_each_context_fills_in_its_own_defaults() -> None:
    assert arguments.check(POLL, {})["visibility_timeout"] == 30
    assert arguments.check(SENSOR, NAMED)["visibility_timeout"] == 300
    assert arguments.check(TRIGGER, NAMED)["visibility_timeout"] == 600
    assert arguments.check(TRIGGER, NAMED)["batch_size"] == 100
    with pytest.raises(TypeError, match="conn_id is required"):
        arguments.check(TRIGGER, {"queue": "q"})


def test_settings_round_trip_through_trigger_kwargs() -> None:
    settings = DeliverySettings.checked(TRIGGER, {**NAMED, "num_messages": 30, "poke_interval": 2})
    assert settings.per_delivery == 30 and settings.poke_interval == 2.0
    assert DeliverySettings.checked(TRIGGER, settings.as_kwargs()) == settings


def test_unknown_arguments_and_empty_names_are_refused() -> None:
    with pytest.raises(TypeError, match=r"unknown argument\(s\) \['batchsize'\]"):
        DeliverySettings.checked(TRIGGER, {**NAMED, "batchsize": 10})
    with pytest.raises(TypeError, match=r"unknown argument\(s\) \['dag_ids'\]"):
        arguments.check(POLL, {"dag_ids": ["x"]})
    with pytest.raises(ValueError, match="queue must be a non-empty string"):
        DeliverySettings.checked(TRIGGER, {"conn_id": "c", "queue": " "})


def test_the_generated_signatures_and_docs_match_the_declarations() -> None:
    assert signatures.main(["--check"]) == 0
    from fluke_airflow.sensors import QueuePollSensor
    from fluke_airflow.triggers import QueuePollTrigger

    for cls, context in ((QueuePollSensor, SENSOR), (QueuePollTrigger, TRIGGER)):
        parameters = inspect.signature(cls.__init__).parameters
        for declared, default in arguments.defaults(context).items():
            name = arguments.shown_name(context, declared)
            if default is not arguments.REQUIRED and name != "deferrable":
                assert parameters[name].default == default, (cls.__name__, name)
            assert name in parameters, (cls.__name__, name)
            assert f":param {name}:" in (cls.__doc__ or ""), (cls.__name__, name)
    assert set(QueuePollSensor.template_fields) == {
        "conn_id", "queue_name", "batch_size", "num_messages", "visibility_timeout", "message_filtering_config"
    }  # fmt: skip


def test_every_argument_has_a_doc_and_a_context() -> None:
    for name, spec in arguments.specs():
        assert spec.doc.strip().endswith((".", ".)")), name
        assert spec.defaults, name
