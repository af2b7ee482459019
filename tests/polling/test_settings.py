"""The delivery settings: one set of checks for the sensor (at parse time, templates skipped, and
after rendering) and the trigger, against the services' limits. No emulator needed."""

from __future__ import annotations

from typing import Any

import pytest

from fluke_airflow.polling.settings import DeliverySettings, check_arguments
from fluke_airflow.queues import limits

pytestmark = pytest.mark.unit


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
        ({"message_encoding": "utf-8"}, ValueError, "message_encoding must be 'text', 'base64' or None"),
        ({"dead_letter_queue": "dlq"}, ValueError, r"dead_letter_queue needs max_receive_count \(or unmatched"),
        ({"retry_delay": -1}, ValueError, "retry_delay must be a timedelta or a number of seconds >= 0"),
        ({"max_retry_delay": "1h"}, TypeError, "max_retry_delay must be a timedelta or a number of seconds"),
        ({"retry_exponential_backoff": 0.5}, ValueError, "retry_exponential_backoff must be True"),
    ],
)
def test_each_bad_argument_is_named_with_what_is_allowed(values: dict[str, Any], error: type, names: str) -> None:
    with pytest.raises(error, match=names):
        check_arguments(values)
    with pytest.raises(error, match=names):
        DeliverySettings.checked(conn_id="c", queue="q", **values)


def test_templates_wait_for_rendering_and_rendered_numbers_count() -> None:
    templated = {"batch_size": "{{ params.n }}", "visibility_timeout": "{{ params.v }}", "message_encoding": "{{ x }}"}
    assert check_arguments(templated, templates_allowed=True) == templated
    assert check_arguments({"batch_size": "25"}, rendered=True)["batch_size"] == 25
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1, got 0"):
        check_arguments({"batch_size": "0"}, rendered=True)


def test_a_trigger_takes_no_text_for_numbers() -> None:
    with pytest.raises(TypeError, match="batch_size must be an integer >= 1, got str '10'"):
        DeliverySettings.checked(conn_id="c", queue="q", batch_size="10")


def test_settings_round_trip_through_trigger_kwargs() -> None:
    settings = DeliverySettings.checked(conn_id="c", queue="q", num_messages=30, poke_interval=2)
    assert settings.per_delivery == 30 and settings.poke_interval == 2.0
    kwargs = {**settings.as_kwargs(), "event_per_message": True, "single_event": False}
    assert DeliverySettings.pick(kwargs) == settings
    assert settings.stream_key() == DeliverySettings.pick(kwargs).stream_key()


def test_unknown_settings_and_empty_names_are_refused() -> None:
    with pytest.raises(TypeError, match=r"unknown delivery setting\(s\) \['batchsize'\]"):
        DeliverySettings.checked(conn_id="c", queue="q", batchsize=10)
    with pytest.raises(ValueError, match="queue must be a non-empty string"):
        DeliverySettings.checked(conn_id="c", queue=" ")
