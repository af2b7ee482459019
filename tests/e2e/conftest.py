"""One real Airflow for the end-to-end tests: scheduler, triggerer, DAG processor and API server.

It runs the example DAGs plus the test-only DAGs of ``tests/e2e/dags`` against its own moto and
Azurite (not the session ones: an AssetWatcher polls fixed queue names, and must not take
messages meant for other tests). Logs: ``.work/test-logs/e2e/`` (emulators) and
``.work/airflow-e2e/logs/`` (Airflow's components and task logs). Under pytest-xdist (``make test``)
each group of modules in ``tests/xdist_support.py`` runs on a stack of its own, named after its
worker: ``.work/test-logs/gw0/e2e/`` and ``.work/airflow-e2e-gw0/logs/``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from stack_support import LOGS, NAME, Stack, running_stack

__all__ = ["Stack"]

E2E = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/e2e is the ``e2e`` tier: ``-m "not e2e"`` leaves it out."""
    for item in items:
        if E2E in Path(item.path).parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="package")
def stack() -> Iterator[Stack]:
    with running_stack(NAME, LOGS) as running:
        yield running
