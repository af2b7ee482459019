"""Fixtures for the auth tests: fresh queues on moto and Azurite, made with independent SDK clients."""

from __future__ import annotations

from typing import Any

import pytest
from auth_support import sqs_client
from azure.storage.queue import QueueServiceClient

from devtools.support import fresh_name


@pytest.fixture(params=["sync", "async"])
def flavour(request: pytest.FixtureRequest) -> str:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def sqs_queue(moto: Any) -> str:
    """A fresh SQS queue in us-east-1."""
    name = fresh_name("auth")
    sqs_client(moto).create_queue(QueueName=name)
    return name


@pytest.fixture(scope="session")
def azure_service(azurite: Any) -> QueueServiceClient:
    return QueueServiceClient.from_connection_string(azurite.connection_string)


@pytest.fixture
def azure_queue(azure_service: QueueServiceClient) -> str:
    name = fresh_name("auth")
    azure_service.create_queue(name)
    return name
