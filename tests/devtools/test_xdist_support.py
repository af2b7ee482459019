"""How make test splits the suite over xdist workers (tests/xdist_support.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from xdist_support import STACK_GROUPS, unit_of

pytestmark = pytest.mark.unit

E2E = Path(__file__).resolve().parents[1] / "e2e"


def test_every_stack_group_names_an_e2e_module_that_exists() -> None:
    modules = {path.name for path in E2E.glob("test_*.py")}
    assert set(STACK_GROUPS) <= modules, set(STACK_GROUPS) - modules
    assert modules <= set(STACK_GROUPS), (
        f"e2e modules without a group (each would get a stack): {modules - set(STACK_GROUPS)}"
    )


def test_a_module_is_a_unit_and_an_e2e_module_is_its_stacks() -> None:
    assert unit_of("tests/queues/test_flows.py::test_x[sqs]") == "tests/queues/test_flows.py"
    assert unit_of("tests/queues/test_flows.py::TestY::test_x") == "tests/queues/test_flows.py"
    assert unit_of("tests/e2e/test_e2e_faults.py::test_x") == unit_of("tests/e2e/test_e2e_browser.py::test_y")
    assert unit_of("tests/e2e/test_e2e_new.py::test_x") == "e2e-test_e2e_new"
