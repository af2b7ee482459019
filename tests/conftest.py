"""Session-wide emulators: moto's SQS server and Azurite, on free loopback ports.

Also the Airflow the Airflow-level suites (tests/airflow, hooks, operators, sensors, triggers)
run in: its configuration is set here, before anything imports airflow (airflow reads it once,
at import), and ``airflow_db`` migrates one fresh metadata database per session.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from terminal_support import SECTIONS, section

from devtools import airflow_db as airflow_database
from devtools.emulators import AzuriteQueue, MotoSQS

ROOT = Path(__file__).resolve().parent.parent
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
"""This process's pytest-xdist worker id (``gw0``, ``gw1``...; empty without xdist)."""
LOGS_ROOT = Path(os.environ.get("FLUKE_TEST_LOGS", ROOT / ".work" / "test-logs"))
LOGS = LOGS_ROOT / WORKER if WORKER else LOGS_ROOT
"""This process's emulator logs: one folder per xdist worker, each starting emulators of its own."""

# -- Airflow: one AIRFLOW_HOME per pytest session, never the user's --------------------------------
AIRFLOW_HOME = ROOT / ".work" / f"airflow-test-{os.getpid()}"
TEST_DAGS = ROOT / "tests" / "dags"
LOCAL_BUNDLE = "airflow.dag_processing.bundles.local.LocalDagBundle"
os.environ.update(
    {
        "AIRFLOW_HOME": str(AIRFLOW_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "example_dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # The example DAGs, plus the DAGs the tests run (dag.test() needs a DAG's bundle to serialise it).
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(
            [
                {"name": "dags-folder", "classpath": LOCAL_BUNDLE, "kwargs": {}},
                {"name": "fluke-test-dags", "classpath": LOCAL_BUNDLE, "kwargs": {"path": str(TEST_DAGS)}},
            ]
        ),
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
    }
)
for _name in [n for n in os.environ if n.startswith(("AIRFLOW_CONN_", "AIRFLOW_VAR_"))]:
    del os.environ[_name]  # connections come from the tests only
# Importing airflow writes airflow.cfg there; remove the folder when this process ends.
atexit.register(shutil.rmtree, AIRFLOW_HOME, ignore_errors=True)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Migrate this virtualenv's template database before the first test, outside every test's
    timeout (devtools/airflow_db.py): xdist's workers all get here, one migrates, the rest wait."""
    if any("airflow_db" in getattr(item, "fixturenames", ()) or "/e2e/" in item.nodeid for item in session.items):
        LOGS.mkdir(parents=True, exist_ok=True)
        airflow_database.template(log=LOGS / "db-migrate.log")


@pytest.fixture(scope="session")
def airflow_db() -> Iterator[Path]:
    """A migrated metadata database (SQLite) in this session's AIRFLOW_HOME (removed at exit)."""
    LOGS.mkdir(parents=True, exist_ok=True)
    airflow_database.migrated(AIRFLOW_HOME / "airflow.db", log=LOGS / "db-migrate.log")
    yield AIRFLOW_HOME


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


# -- Secret hygiene: no credential the emulators were given may appear in any output -----------------
_CAPTURED: list[tuple[str, str]] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Keep every test's captured stdout, stderr and log records for the scan at the end."""
    for title, text in report.sections:
        _CAPTURED.append((f"{report.nodeid} [{title}]", text))
    if report.longreprtext:
        _CAPTURED.append((f"{report.nodeid} [traceback]", report.longreprtext))


def _leaks() -> list[str]:
    """Where a secret issued to an emulator in this session shows up, unmasked."""
    from devtools.emulators import ISSUED_SECRETS

    secrets = [s for s in ISSUED_SECRETS if len(s) >= 16]
    if not secrets:  # an xdist controller, or a run that started no emulator
        return []
    places: list[tuple[str, str]] = list(_CAPTURED)
    work = ROOT / ".work"
    for folder in [LOGS_ROOT, *work.glob("airflow-*/logs")]:  # every worker's: a secret may cross
        for path in folder.rglob("*") if folder.is_dir() else []:
            if path.is_file() and path.stat().st_size < 50_000_000:
                places.append((str(path.relative_to(ROOT)), path.read_text("utf-8", errors="replace")))
    places = [(where, _without_airflow_30_mask_requests(text)) for where, text in places]
    return sorted({where for where, text in places for secret in secrets if secret in text})


def _without_airflow_30_mask_requests(text: str) -> str:
    """Airflow 3.0's task runner logs its own requests to the supervisor at debug level, the
    ``MaskSecret`` ones with the secret in them (3.1 no longer does); dag.test() prints them. Those
    lines are Airflow's, not this provider's: dropped from the scan on 3.0 only."""
    if "msg=MaskSecret(" not in text:
        return text
    from fluke_airflow import _airflow

    if _airflow.version() >= (3, 1):
        return text
    kept = [line for line in text.splitlines() if "Sending request" not in line or "msg=MaskSecret(" not in line]
    return "\n".join(kept)


# Under pytest-xdist every worker starts its own emulators (so issues its own secrets) and removes
# its AIRFLOW_HOME when it exits: each worker scans its own outputs and files when its session ends,
# and sends what it found to the controller, which reports for the whole run.
_SCANS: list[dict[str, Any]] = []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    from devtools.emulators import ISSUED_SECRETS

    scan = {"leaks": _leaks(), "secrets": len(ISSUED_SECRETS), "outputs": len(_CAPTURED)}
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: the controller reports
        workeroutput["fluke_scan"] = scan
        workeroutput["fluke_sections"] = SECTIONS
        return
    scans = [scan, *_SCANS]
    leaks = sorted({where for s in scans for where in s["leaks"]})
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if leaks:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if reporter:
            reporter.write_line("SECRET LEAK: an emulator credential appears unmasked in:", red=True)
            for where in leaks[:50]:
                reporter.write_line(f"  {where}", red=True)
    elif reporter:
        secrets, outputs = sum(s["secrets"] for s in scans), sum(s["outputs"] for s in scans)
        processes = f" in {len(_SCANS)} workers" if _SCANS else ""
        reporter.write_line(
            f"secret scan: {secrets} emulator credential(s), {outputs} captured outputs "
            f"and the session's log files checked{processes}; none leaked"
        )


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """An xdist worker finished: keep its secret scan and its terminal sections."""
    output = getattr(node, "workeroutput", {})
    if "fluke_scan" in output:
        _SCANS.append(output["fluke_scan"])
    else:  # a worker that crashed sent nothing: its files were not scanned
        _SCANS.append({"leaks": [f"(worker {getattr(node, 'gateway', node)} crashed before its scan)"],
                       "secrets": 0, "outputs": 0})  # fmt: skip
    for title, lines in output.get("fluke_sections", {}).items():
        section(title).extend(lines)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The accounting sections of the scenarios that ran (tests/terminal_support.py)."""
    if hasattr(terminalreporter.config, "workeroutput"):
        return
    for title, lines in SECTIONS.items():
        if lines:
            terminalreporter.section(title)
            for line in lines:
                terminalreporter.write_line(line)


# -- test tiers (markers in pyproject.toml) ----------------------------------------------------------
_IO_FIXTURES = {
    "moto", "azurite", "airflow_db", "airflow_env", "stack", "sqs_proxy", "azure_proxy",
    "backend", "sqs_backend", "azure_backend",
}  # fmt: skip
"""Fixtures that start an emulator, migrate an Airflow database or run Airflow: never in the unit tier."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A ``unit`` test must not reach an emulator or Airflow's database (make test-unit runs without them)."""
    wrong = [
        f"{item.nodeid} uses {', '.join(sorted(_IO_FIXTURES & set(getattr(item, 'fixturenames', ()))))}"
        for item in items
        if item.get_closest_marker("unit") and _IO_FIXTURES & set(getattr(item, "fixturenames", ()))
    ]
    if wrong:
        raise pytest.UsageError("tests marked unit need I/O fixtures:\n  " + "\n  ".join(wrong))


# -- pytest-xdist: make test runs the suite on several workers (tests/xdist_support.py) ----------------
_NICE_BESIDE_E2E = 5
_niced = False


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Under xdist the e2e stacks are the run's longest path, and a starved triggerer trips Airflow's
    30 s watchdog: a worker lowers its own priority (and so its emulators' and Airflow runs') when it
    first runs a test outside tests/e2e. The stacks, started before that, keep theirs."""
    global _niced
    if WORKER and not _niced and ROOT / "tests" / "e2e" not in Path(item.path).parents:
        os.nice(_NICE_BESIDE_E2E)
        _niced = True


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    from xdist_support import make_scheduler

    return make_scheduler(config, log)


class _UnitGuard:
    """The same for fixtures asked for at run time (``request.getfixturevalue``). A plugin, not a
    hook of this conftest: a session fixture's setup hooks come from the conftests that apply to
    the rootdir, and tests/conftest.py is not one of them."""

    @pytest.hookimpl(tryfirst=True)
    def pytest_fixture_setup(self, fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest) -> None:
        item = getattr(request, "_pyfuncitem", None)
        if fixturedef.argname in _IO_FIXTURES and item is not None and item.get_closest_marker("unit"):
            raise pytest.UsageError(f"{item.nodeid} is marked unit but asks for {fixturedef.argname}")


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(_UnitGuard(), "fluke-unit-guard")
