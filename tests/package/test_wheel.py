"""The built wheel, installed the way a user installs it: ``fluke-airflow[all]`` into a clean
virtualenv (no checkout on the path, no dev or test dependencies), then Airflow itself is asked
what it found: the provider (``airflow providers list``), its connection type, and the example
DAGs importing against the installed package.

Fast because uv installs from its cache (the same pins as ``make setup``, ``constraints.txt``):
the wheel is built once, the venv created and filled in seconds once the cache is warm.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.package

ROOT = Path(__file__).resolve().parents[2]
UV = Path(sys.executable).parent / "uv"


@dataclass
class Installed:
    python: Path
    env: dict[str, str]
    cwd: Path

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(list(args), cwd=self.cwd, env=self.env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{args} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return done


def _uv(*args: str, cwd: Path = ROOT) -> None:
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    done = subprocess.run([str(UV), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"uv {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not UV.exists():
        pytest.skip(f"needs uv next to the interpreter ({UV}): make setup installs it")
    dist = tmp_path_factory.mktemp("dist")
    _uv("build", "--quiet", "--wheel", "--build-constraint", "constraints.txt", "--out-dir", str(dist))
    (built,) = dist.glob("fluke_airflow-*.whl")
    return built


def _install(tmp: Path, requirement: str) -> Installed:
    venv = tmp / "venv"
    _uv("venv", "--quiet", "--python", sys.executable, str(venv))
    python = venv / "bin" / "python"
    _uv("pip", "install", "--quiet", "--python", str(python), "-c", "constraints.txt", requirement)
    home = tmp / "airflow-home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTHON", "VIRTUAL_ENV"))}
    env.update({"AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"})
    env["PATH"] = f"{venv / 'bin'}:{env['PATH']}"
    # A directory outside the checkout: only the installed package can be imported.
    return Installed(python, env, tmp)


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    return _install(tmp_path_factory.mktemp("all"), f"{wheel}[all]")


@pytest.fixture(scope="module")
def base_only(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    return _install(tmp_path_factory.mktemp("base"), str(wheel))


def test_the_wheel_installs_the_package_not_the_checkout(installed: Installed) -> None:
    done = installed.run(str(installed.python), "-c", "import fluke_airflow; print(fluke_airflow.__file__)")
    where = Path(done.stdout.strip())
    assert "site-packages" in where.parts and ROOT not in where.parents
    # [all] brings both services' SDKs, and no dev or test tool.
    listed = installed.run(str(UV), "pip", "list", "--format", "json", "--python", str(installed.python))
    names = {p["name"] for p in json.loads(listed.stdout)}
    assert {"apache-airflow-providers-amazon", "azure-storage-queue", "boto3", "aiobotocore"} <= names
    assert not names & {"pytest", "moto", "ruff", "apache-airflow-providers-microsoft-azure"}


def test_airflow_lists_the_provider(installed: Installed) -> None:
    done = installed.run(str(installed.python.parent / "airflow"), "providers", "list", "--output", "json")
    providers = {p["package_name"]: p for p in json.loads(done.stdout[done.stdout.index("[") :])}
    assert "fluke-airflow" in providers, sorted(providers)
    from fluke_airflow import __version__

    assert providers["fluke-airflow"]["version"] == __version__


def test_its_connection_type_is_registered(installed: Installed) -> None:
    script = (
        "from airflow.providers_manager import ProvidersManager\n"
        "hooks = ProvidersManager().hooks\n"
        "info = hooks['azure_storage_queue']\n"
        "print(info.hook_class_name, info.package_name)\n"
    )
    done = installed.run(str(installed.python), "-c", script)
    assert done.stdout.split()[-2:] == ["fluke_airflow.hooks.azure.AzureStorageQueueHook", "fluke-airflow"]


def test_the_example_dags_import(installed: Installed) -> None:
    script = (
        "import json, sys\n"
        "try:\n"
        "    from airflow.dag_processing.dagbag import DagBag\n"
        "except ImportError:\n"
        "    from airflow.models.dagbag import DagBag\n"
        "bag = DagBag(sys.argv[1])\n"
        "errors = {k: str(v)[-500:] for k, v in bag.import_errors.items()}\n"
        "print(json.dumps({'errors': errors, 'dags': sorted(bag.dags)}))\n"
    )
    done = installed.run(str(installed.python), "-c", script, str(ROOT / "example_dags"))
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["errors"] == {}
    assert {"example_queue_sqs", "example_queue_azure", "example_queue_event_driven"} <= set(result["dags"])


def test_the_base_package_installs_no_cloud_tree_and_names_the_missing_extra(base_only: Installed) -> None:
    listed = base_only.run(str(UV), "pip", "list", "--format", "json", "--python", str(base_only.python))
    names = {p["name"] for p in json.loads(listed.stdout)}
    assert "fluke-airflow" in names and "apache-airflow" in names
    assert not names & {"apache-airflow-providers-amazon", "boto3", "azure-storage-queue", "azure-identity"}
    script = (
        "from airflow.sdk import Connection\n"
        "import fluke_airflow.operators, fluke_airflow.sensors, fluke_airflow.triggers  # DAG files parse\n"
        "from fluke_airflow.exceptions import MissingExtraError\n"
        "from fluke_airflow.hooks.resolve import hook_for_connection\n"
        "for conn_type in ('aws', 'azure_storage_queue'):\n"
        "    try:\n"
        "        hook_for_connection(Connection(conn_id='q', conn_type=conn_type))\n"
        "    except MissingExtraError as error:\n"
        "        print(error)\n"
    )
    done = base_only.run(str(base_only.python), "-c", script)
    lines = done.stdout.strip().splitlines()[-2:]
    assert "pip install 'apache-airflow-providers-amazon>=9.12.0' 'boto3>=1.39'" in lines[0], lines[0]
    assert "Amazon SQS" in lines[0]
    assert "pip install 'azure-storage-queue>=12.13'" in lines[1] and "Azure Queue Storage" in lines[1]


def test_airflow_connections_test_prints_the_missing_packages_whole(base_only: Installed) -> None:
    """Airflow's CLI prints a failed test through rich, whose markup ate ``[azure]`` and ``[all]``
    from the old message (issue 23): the command must come out as the package wrote it."""
    env = {
        **base_only.env,
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
        "AIRFLOW_CONN_FLUKE_AZURE": json.dumps({"conn_type": "azure_storage_queue", "host": "myaccount"}),
    }
    airflow = str(base_only.python.parent / "airflow")
    done = subprocess.run(
        [airflow, "connections", "test", "fluke_azure"], cwd=base_only.cwd, env=env, capture_output=True, text=True,
        timeout=600, check=False,
    )  # fmt: skip
    printed = " ".join(done.stdout.split())  # rich wraps at 200 columns
    assert done.returncode == 1 and "Connection failed!" in printed, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert "pip install 'azure-storage-queue>=12.13' 'azure-identity>=1.24' 'aiohttp>=3.12'" in printed, printed
    assert "extra 'azure' or 'all'" in printed, printed


def test_the_long_description_has_no_link_into_the_repository(wheel: Path) -> None:
    """The README is the wheel's description; rendered anywhere but the repository (an index, a
    wheel viewer) a relative link leads nowhere, so the build turns them into paths."""
    import email
    import zipfile

    from readme_renderer.markdown import render

    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = email.message_from_bytes(archive.read(name))
    assert metadata["Description-Content-Type"].startswith("text/markdown")
    assert "Home-page" not in metadata
    assert not any("pypi.org/project/fluke-airflow" in url for url in metadata.get_all("Project-URL"))
    assert metadata["Requires-Python"] == ">=3.11"
    html = render(metadata.get_payload(), variant="GFM")
    assert html, "readme_renderer could not render the description"
    links = re.findall(r'(?:href|src)="([^"]*)"', html)
    assert len(links) >= 5, links  # the README's links to Airflow, Fluke, Keep a Changelog...
    relative = [link for link in links if not link.startswith(("https://", "http://", "#"))]
    assert relative == [], f"links that only work inside the repository: {relative}"
    # The paths are still there, as text.
    assert "`docs/installation.rst`" in metadata.get_payload()


def test_a_git_url_resolves(tmp_path: Path) -> None:
    """The install docs' ``fluke-airflow[all] @ git+URL@ref`` form: uv (as pip would) clones the
    repository, builds the package and resolves its extras (a dry run: nothing is installed)."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True)
    venv = tmp_path / "venv"
    _uv("venv", "--quiet", "--python", sys.executable, str(venv))
    requirement = f"fluke-airflow[all] @ git+file://{ROOT}@{head.stdout.strip()}"
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    done = subprocess.run(
        [str(UV), "pip", "install", "--dry-run", "--python", str(venv / "bin" / "python"), "-c", "constraints.txt",
         requirement],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert "fluke-airflow" in done.stderr + done.stdout and "boto3" in done.stderr + done.stdout
