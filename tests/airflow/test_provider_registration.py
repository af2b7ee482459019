"""The provider as Airflow sees it: entry point, provider.yaml, the CLI, the connection form, parse cost."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
import yaml

import fluke_airflow
from fluke_airflow import _airflow

pytestmark = pytest.mark.compat

ROOT = Path(__file__).resolve().parents[2]
PROVIDER_YAML = ROOT / "fluke_airflow" / "provider.yaml"
AIRFLOW = Path(sys.executable).parent / "airflow"


def provider_yaml() -> dict[str, Any]:
    return yaml.safe_load(PROVIDER_YAML.read_text("utf-8"))  # type: ignore[no-any-return]


def test_entry_point_serves_provider_yaml() -> None:
    (entry,) = [e for e in entry_points(group="apache_airflow_provider") if e.value.startswith("fluke_airflow.")]
    assert entry.value == "fluke_airflow.get_provider_info:get_provider_info"
    info = entry.load()()
    assert info == provider_yaml()
    assert info["package-name"] == "fluke-airflow"


def test_provider_version_is_the_package_version() -> None:
    assert provider_yaml()["versions"][0] == fluke_airflow.__version__


def test_every_module_named_in_provider_yaml_imports() -> None:
    import importlib

    info = provider_yaml()
    modules = {
        m
        for section in ("operators", "sensors", "hooks", "triggers")
        for e in info[section]
        for m in e["python-modules"]
    }
    for module in sorted(modules):
        importlib.import_module(module)
    for conn in info["connection-types"]:
        module, _, name = conn["hook-class-name"].rpartition(".")
        hook = getattr(importlib.import_module(module), name)
        assert hook.conn_type == conn["connection-type"]
        assert hook.hook_name == conn["hook-name"]


def test_secret_connection_fields_are_password_fields() -> None:
    (conn,) = provider_yaml()["connection-types"]
    assert conn["connection-type"] == "azure_storage_queue"
    fields = conn["conn-fields"]
    for secret in ("connection_string", "sas_token"):
        assert fields[secret]["schema"]["format"] == "password"
    for plain in ("tenant_id", "managed_identity_client_id", "queue_endpoint", "message_encoding"):
        assert fields[plain]["schema"].get("format") != "password"


@pytest.mark.usefixtures("airflow_env")
def test_providers_manager_sees_hook_and_form() -> None:
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    assert manager.providers["fluke-airflow"].version == fluke_airflow.__version__
    with warnings.catch_warnings():  # deprecated for task code; the API server still reads it in 3.3
        warnings.simplefilter("ignore")
        hook = manager.hooks["azure_storage_queue"]
    assert hook is not None
    assert hook.hook_class_name == "fluke_airflow.hooks.azure.AzureStorageQueueHook"
    assert hook.connection_testable
    if _airflow.version() < (3, 2):
        # Before 3.2 the fields come from get_connection_form_widgets, which needs wtforms and
        # flask-appbuilder: test_the_connection_form_gets_every_field_with_its_default covers it.
        return
    widgets = {k: v for k, v in manager.connection_form_widgets.items() if k.startswith("extra__azure_storage_queue__")}
    assert {w.field_name for w in widgets.values()} == set(provider_yaml()["connection-types"][0]["conn-fields"])
    sensitive = {w.field_name for w in widgets.values() if w.is_sensitive}
    assert sensitive == {"connection_string", "sas_token"}
    behaviour = manager.field_behaviours["azure_storage_queue"]
    assert behaviour["hidden_fields"] == ["schema", "port"]
    assert behaviour["relabeling"]["password"] == "Account key or client secret"


def _fab_installed() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("wtforms", "flask_appbuilder"))


_HOOK_META = """
import json
from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService
(meta,) = [h for h in HookMetaService.hook_meta_data() if h.connection_type == "azure_storage_queue"]
print(json.dumps(meta.model_dump(mode="json")))
"""


@pytest.mark.usefixtures("airflow_env")
def test_the_connection_form_gets_every_field_with_its_default() -> None:
    """What the UI's connection form receives (``/ui/connections/hook_meta``), on every minor:
    Airflow 3.2+ reads provider.yaml's conn-fields; 3.1 calls get_connection_form_widgets with
    wtforms and flask-appbuilder mocked; 3.0 calls it only where both are installed. In a fresh
    process, as the API server builds it (the mocks must come before the providers load)."""
    done = subprocess.run([sys.executable, "-c", _HOOK_META], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    meta = json.loads(done.stdout.strip().splitlines()[-1])
    assert meta["hook_class_name"] == "fluke_airflow.hooks.azure.AzureStorageQueueHook"
    if _airflow.version() < (3, 1) and not _fab_installed():
        # Airflow 3.0 without flask-appbuilder: no provider's hook gets its extra fields or field
        # behaviours in the form (Airflow logs "UI widgets will be missing"); the connection works.
        assert not meta["extra_fields"] and meta["standard_fields"] is None
        return
    fields = provider_yaml()["connection-types"][0]["conn-fields"]
    extra = meta["extra_fields"] or {}
    assert set(extra) == set(fields)
    defaults = {name: field.get("value") for name, field in extra.items()}
    assert defaults == {name: f["schema"].get("default") for name, f in fields.items()}
    assert defaults["message_encoding"] == "text"
    formats = {name: (field.get("schema") or {}).get("format") for name, field in extra.items()}
    assert {name for name, f in formats.items() if f == "password"} == {"connection_string", "sas_token"}
    standard = meta["standard_fields"]
    assert standard["password"]["title"] == "Account key or client secret"
    assert standard["port"]["hidden"] is True


def cli(*commands: tuple[str, ...]) -> list[Any]:
    """``airflow <command> --output json`` for each command, as a user would run it."""
    outputs = []
    for command in commands:
        done = subprocess.run([str(AIRFLOW), *command, "--output", "json"], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        outputs.append(json.loads(done.stdout[done.stdout.index("[") :]))
    return outputs


@pytest.mark.usefixtures("airflow_env")
def test_cli_providers_list_and_hooks() -> None:
    listed, hooked = cli(("providers", "list"), ("providers", "hooks"))
    providers = {p["package_name"]: p for p in listed}
    assert providers["fluke-airflow"]["version"] == fluke_airflow.__version__
    hooks = {h["connection_type"]: h for h in hooked}
    assert hooks["azure_storage_queue"]["class"] == "fluke_airflow.hooks.azure.AzureStorageQueueHook"
    assert hooks["azure_storage_queue"]["package_name"] == "fluke-airflow"
    assert hooks["aws"]["package_name"] == "apache-airflow-providers-amazon"  # the SQS side: aws, unchanged


@pytest.mark.usefixtures("airflow_env")
def test_airflow_loads_the_providers_plugin_and_its_listener_with_the_default_configuration() -> None:
    """``delete_on_dag_success`` watchers depend on the listener running where DAG runs change state.
    Airflow reads ``provider.yaml``'s plugins only with ``[core] lazy_discover_providers = False``
    (3.3.2's ``plugins_manager._get_plugins``), so the plugin comes through an ``airflow.plugins``
    entry point, which every component loads whatever its configuration."""
    (entry,) = [e for e in entry_points(group="airflow.plugins") if e.value.startswith("fluke_airflow.")]
    assert entry.name == "fluke_airflow" and entry.load().listeners[0].__name__ == "fluke_airflow.plugins.runs"
    assert "plugins" not in provider_yaml(), "listed twice, Airflow would report the second as an import error"
    (plugins,) = cli(("plugins",))
    (ours,) = [p for p in plugins if p["name"] == "fluke_airflow"]
    assert ours["listeners"] == ["fluke_airflow.plugins.runs"]


def test_dag_parsing_loads_no_cloud_sdk() -> None:
    """What a DAG file imports must stay cheap: the scheduler parses DAG files over and over."""
    code = (
        "import sys\n"
        "import airflow.sdk\n"
        "import fluke_airflow.operators, fluke_airflow.sensors, fluke_airflow.triggers\n"
        "from fluke_airflow.operators import QueuePushOperator, QueuePeekOperator\n"
        "from fluke_airflow.sensors import QueuePollSensor\n"
        "from fluke_airflow.triggers import QueuePollTrigger\n"
        "QueuePollSensor(task_id='s', conn_id='c', queue_name='q', deferrable=True, num_messages=20)\n"
        "QueuePushOperator(task_id='p', conn_id='c', queue_name='q', message=['a', 'b'])\n"
        "QueuePollTrigger(conn_id='c', queue='q', dag_ids=['d']).serialize()\n"
        "heavy = ('boto3', 'botocore', 'aiobotocore', 'azure')\n"
        "print(sorted({m for m in sys.modules if m.split('.')[0] in heavy}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_example_dag_files_load_no_cloud_sdk() -> None:
    code = (
        "import runpy, sys\n"
        f"for path in sorted(__import__('glob').glob({str(ROOT / 'example_dags' / '*.py')!r})):\n"
        "    runpy.run_path(path)\n"
        "heavy = ('boto3', 'botocore', 'aiobotocore', 'azure')\n"
        "print(sorted({m.split('.')[0] for m in sys.modules if m.split('.')[0] in heavy}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
