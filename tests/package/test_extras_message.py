"""The missing-extra error tells a user a pip command that works today, and Airflow's CLI prints it
whole.

``airflow connections test`` prints a failed test's message through its rich console
(``airflow/cli/commands/connection_command.py``: ``console.print(f"[bold][red]\\nConnection
failed![/bold]\\n{message}\\n")``), and rich takes ``[amazon]`` for a markup tag and drops it: a
message saying ``pip install 'fluke-airflow[amazon]' (or '[all]')`` came out as ``pip install
'fluke-airflow' (or '')``. The message now names the packages themselves, without square brackets;
these tests render it the way the CLI does.
"""

from __future__ import annotations

import io
import shlex
from pathlib import Path

import pytest
import tomllib
from airflow.cli.simple_table import AirflowConsole

from fluke_airflow import _extras
from fluke_airflow._extras import EXTRAS, REQUIREMENTS, require
from fluke_airflow.exceptions import MissingExtraError

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def _as_the_cli_prints(message: str) -> str:
    """What ``airflow connections test`` shows for a failed test with this message, with the
    console's line wrapping (200 columns when not a terminal) undone."""
    out = io.StringIO()
    console = AirflowConsole(file=out, color_system=None)
    console.print(f"[bold][red]\nConnection failed![/bold]\n{message}\n")
    return " ".join(out.getvalue().split())


def _missing_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    _extras.missing.cache_clear()
    monkeypatch.setattr(_extras, "_found", lambda module: False)


@pytest.fixture(autouse=True)
def _fresh_cache():
    _extras.missing.cache_clear()
    yield
    _extras.missing.cache_clear()


def test_each_extras_packages_are_those_pyproject_lists() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert set(REQUIREMENTS) == set(EXTRAS)
    for extra, requirements in REQUIREMENTS.items():
        assert list(requirements) == extras[extra], f"_extras.REQUIREMENTS[{extra!r}] differs from pyproject.toml"
    assert extras["all"] == ["fluke-airflow[amazon,azure]"]


@pytest.mark.parametrize("extra", sorted(EXTRAS))
def test_the_message_reads_the_same_through_the_cli(monkeypatch: pytest.MonkeyPatch, extra: str) -> None:
    _missing_everything(monkeypatch)
    with pytest.raises(MissingExtraError) as raised:
        require(extra, "The connection 'orders' (type 'x')")
    message = str(raised.value)

    assert "[" not in message and "]" not in message, message
    printed = _as_the_cli_prints(message)
    assert message in printed, f"rich changed the message:\n{message}\n{printed}"
    # The command in it installs exactly what the extra would.
    command = message.split("install it: ", 1)[1].split(" (what ", 1)[0]
    assert shlex.split(command) == ["pip", "install", *REQUIREMENTS[extra]]
    assert EXTRAS[extra][0] in message
    for module in EXTRAS[extra][1]:
        assert module in message


def test_the_old_wording_was_eaten_by_rich() -> None:
    """The check above can fail: rich drops an extra written in square brackets."""
    printed = _as_the_cli_prints("pip install 'fluke-airflow[azure]' (or '[all]')")
    assert "pip install 'fluke-airflow' (or '')" in printed
