"""The ``fluke`` scheme of the common-messaging provider's ``MessageQueueTrigger``.

The provider is registered through ``get_provider_info`` (``queues``); ``MessageQueueTrigger``
finds it among Airflow's message-queue providers, builds a ``QueuePollTrigger`` with the keyword
arguments given (``queue_name`` for the queue), and serialises as that trigger, so the triggerer
runs ours.
"""

from __future__ import annotations

import pytest

from fluke_airflow.messaging import FlukeMessageQueueProvider
from fluke_airflow.triggers import QueuePollTrigger
from fluke_airflow.triggers.poll import CLASSPATH

pytestmark = [pytest.mark.usefixtures("airflow_env"), pytest.mark.compat]


def test_the_provider_is_registered_with_airflow() -> None:
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    manager.initialize_providers_queues()
    assert "fluke_airflow.messaging.FlukeMessageQueueProvider" in manager.queue_class_names


def test_the_scheme_and_nothing_else_matches() -> None:
    provider = FlukeMessageQueueProvider()
    assert provider.scheme_matches("fluke")
    assert not provider.scheme_matches("sqs") and not provider.scheme_matches("kafka")
    assert not provider.queue_matches("https://sqs.us-east-1.amazonaws.com/1/q")  # no queue URIs: scheme only
    assert provider.trigger_class() is QueuePollTrigger


def test_message_queue_trigger_builds_and_serialises_as_ours() -> None:
    from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger

    trigger = MessageQueueTrigger(
        scheme="fluke", conn_id="fluke_sqs", queue_name="orders", batch_size=25, dag_ids=["process_orders"]
    )
    assert isinstance(trigger.trigger, QueuePollTrigger)
    classpath, kwargs = trigger.serialize()
    assert classpath == CLASSPATH
    assert kwargs["conn_id"] == "fluke_sqs" and kwargs["queue"] == "orders" and kwargs["batch_size"] == 25
    assert QueuePollTrigger(**kwargs).serialize() == (classpath, kwargs)  # the triggerer can rebuild it


def test_bad_arguments_through_message_queue_trigger_name_the_argument() -> None:
    from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger

    with pytest.raises(ValueError, match="batch_size"):
        _ = MessageQueueTrigger(
            scheme="fluke", conn_id="fluke_sqs", queue_name="orders", batch_size=0, dag_ids=["process_orders"]
        ).trigger
