"""Fixtures of the chaos suite: a fault-injecting proxy in front of each session emulator."""

from __future__ import annotations

import zlib
from collections.abc import Iterator

import pytest

from devtools.emulators import AzuriteQueue, MotoSQS
from devtools.proxy import Proxy

from .support import ProxiedService, azure_service, sqs_service


def _seed(request: pytest.FixtureRequest) -> int:
    """A seed per test, stable across runs, so a failing scenario replays the same fault draws."""
    return zlib.crc32(request.node.nodeid.encode())


@pytest.fixture
def sqs(moto: MotoSQS, request: pytest.FixtureRequest) -> Iterator[ProxiedService]:
    """moto with the real SQS's receipt semantics (see :class:`devtools.proxy.SQSReceipts`): a delete
    with an expired or superseded receipt handle succeeds and deletes nothing."""
    with Proxy(moto.endpoint_url, seed=_seed(request), sqs_receipts=True) as proxy:
        yield sqs_service(moto, proxy)


@pytest.fixture
def azure(azurite: AzuriteQueue, request: pytest.FixtureRequest) -> Iterator[ProxiedService]:
    with Proxy(azurite.account_url, seed=_seed(request)) as proxy:
        yield azure_service(azurite, proxy)


@pytest.fixture(params=["sqs", "azure"])
def service(request: pytest.FixtureRequest) -> ProxiedService:
    return request.getfixturevalue(request.param)  # type: ignore[no-any-return]
