"""Session-wide emulators: moto's SQS server and Azurite, on free loopback ports."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.emulators import AzuriteQueue, MotoSQS

LOGS = Path(os.environ.get("FLUKE_TEST_LOGS", Path(__file__).resolve().parent.parent / ".work" / "test-logs"))


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoSQS]:
    LOGS.mkdir(parents=True, exist_ok=True)
    server = MotoSQS.create(log_path=LOGS / "moto.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def azurite() -> Iterator[AzuriteQueue]:
    LOGS.mkdir(parents=True, exist_ok=True)
    server = AzuriteQueue.create(log_path=LOGS / "azurite.log")
    server.start()
    yield server
    server.remove()


def unique_name(prefix: str = "q") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"
