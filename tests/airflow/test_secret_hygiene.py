"""Secrets and message bodies stay out of logs, XComs and rendered templates, in real DAG runs.

The emulators run with fresh random credentials (devtools/emulators.py), so any of them found
in an output was leaked by this run. The scenarios push, peek and poll (poke and deferred)
with every Azure auth method Azurite serves and with SQS keys, fail with a wrong key, and
have a task log its connection's secrets on purpose. Bodies are unique markers: Airflow logs
at INFO here, so a marker anywhere in the output would be a body logged above DEBUG.
"""

from __future__ import annotations

import base64
import logging
import secrets
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from airflow_support import (
    AzureService,
    DagRunResult,
    SQSService,
    fresh_name,
    iter_strings,
    run_dag_captured,
    set_connection,
)
from azure.storage.queue import AccountSasPermissions, ResourceTypes, generate_account_sas

from devtools.emulators import AzuriteQueue, MotoSQS

pytestmark = pytest.mark.usefixtures("airflow_env")

DEFERRED_DELAY = 25
"""Seconds the later bodies stay invisible: the deferrable sensor takes messages already waiting
at once, so they must still be hidden when it first looks, for it to go through the trigger. A
wall-clock margin, the one this DAG can have (dag.test runs the trigger in line, so nothing can
push while it waits): the DAG's 3 s, then 10 s, were not always enough on a loaded machine (make
test's workers beside three Airflow stacks; one fresh-clone run took 11 s from the sensor's start
to its first receive's answer, which takes 0.1 s on a quiet machine)."""


class RecordKeeper(logging.Handler):
    """Every stdlib log record of the run, whatever the logger's handlers do with it."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def texts(self, min_level: int) -> Iterator[tuple[logging.LogRecord, str]]:
        for record in self.records:
            if record.levelno >= min_level:
                text = record.getMessage()
                if record.exc_info and record.exc_info[1] is not None:
                    text += f" {record.exc_info[1]!r}"
                yield record, text


@pytest.fixture
def records() -> Iterator[RecordKeeper]:
    keeper = RecordKeeper()
    root = logging.getLogger()
    root.addHandler(keeper)
    try:
        yield keeper
    finally:
        root.removeHandler(keeper)


def sas_for(azurite: AzuriteQueue) -> str:
    return generate_account_sas(
        azurite.account,
        azurite.key,
        resource_types=ResourceTypes(service=True, container=True, object=True),
        permission=AccountSasPermissions(read=True, write=True, delete=True, list=True, add=True, process=True),
        expiry=datetime.now(timezone.utc) + timedelta(hours=1),
    )


def scan(result: DagRunResult, output: str, records: RecordKeeper, secrets_: list[str], bodies: list[str]) -> None:
    assert all(len(s) >= 16 for s in secrets_)
    leaks = [s[:6] + "..." for s in secrets_ if s in output]
    assert not leaks, f"secret(s) in the run's output: {leaks}"
    for _, text in records.texts(logging.DEBUG):
        assert not any(s in text for s in secrets_), "a secret in a log record"
    for task_id, map_index, key, value in result.all_xcoms():
        for text in iter_strings(value):
            assert not any(s in text for s in secrets_), f"a secret in XCom {task_id}[{map_index}] {key}"
    for fields in result.all_rendered():
        for text in iter_strings(fields):
            assert not any(s in text for s in secrets_), "a secret in a rendered template field"
    # Bodies: never in a log record at INFO or above, nor anywhere in the (INFO-level) output.
    for record, text in records.texts(logging.INFO):
        assert not any(b in text for b in bodies), f"a message body logged at {record.levelname} by {record.name}"
    assert not any(b in output for b in bodies), "a message body in the run's output"


def marker_bodies(count: int) -> list[str]:
    run = uuid.uuid4().hex
    return [f"body-{run}-{i}" for i in range(count)]


def test_sqs_run_leaks_nothing(moto: MotoSQS, sqs: SQSService, records: RecordKeeper) -> None:
    name = fresh_name()
    sqs.create(name)
    bodies = marker_bodies(6)
    conf = {"conn_id": sqs.conn_id, "queue": name, "bodies": bodies, "delay": DEFERRED_DELAY}
    result, output = run_dag_captured("fluke_test_all_tasks", conf)
    assert result.state == "success", result.task_states()
    assert "[DAG TEST] running trigger in line" in output  # the deferred sensor went through the trigger
    delivered = result.xcom("poll_poke") + result.xcom("poll_deferred")
    assert sorted(delivered) == sorted(bodies)  # the bodies did travel, through XCom only
    scan(result, output, records, [moto.secret_access_key], bodies)


AZURE_AUTH = ["connection_string", "account_key", "sas_token"]


@pytest.mark.parametrize("auth", AZURE_AUTH)
def test_azure_run_leaks_nothing(
    auth: str, azurite: AzuriteQueue, azure: AzureService, records: RecordKeeper, monkeypatch: pytest.MonkeyPatch
) -> None:
    sas = sas_for(azurite)
    conn: dict[str, Any] = {
        "connection_string": {
            "conn_type": "azure_storage_queue",
            "extra": {"connection_string": azurite.connection_string},
        },
        "account_key": {
            "conn_type": "azure_storage_queue",
            "password": azurite.key,
            "extra": {"queue_endpoint": azurite.account_url},
        },
        "sas_token": {
            "conn_type": "azure_storage_queue",
            "extra": {"sas_token": sas, "queue_endpoint": azurite.account_url},
        },
    }[auth]
    conn_id = set_connection(monkeypatch, f"hygiene_{auth}", conn)
    name = azure.create(fresh_name())
    bodies = marker_bodies(6)
    conf = {"conn_id": conn_id, "queue": name, "bodies": bodies, "delay": DEFERRED_DELAY}
    result, output = run_dag_captured("fluke_test_all_tasks", conf)
    assert result.state == "success", result.task_states()
    assert "[DAG TEST] running trigger in line" in output
    assert sorted(result.xcom("poll_poke") + result.xcom("poll_deferred")) == sorted(bodies)
    signature = dict(p.split("=", 1) for p in sas.split("&"))["sig"]
    scan(result, output, records, [azurite.key, azurite.connection_string, sas, signature], bodies)


def test_failures_with_a_wrong_key_leak_nothing(
    azurite: AzuriteQueue, records: RecordKeeper, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = base64.b64encode(secrets.token_bytes(64)).decode()
    conn = {"conn_type": "azure_storage_queue", "password": wrong, "extra": {"queue_endpoint": azurite.account_url}}
    conn_id = set_connection(monkeypatch, "hygiene_wrong_key", conn)
    result, output = run_dag_captured("fluke_test_each_task", {"conn_id": conn_id, "queue": "fluke-hygiene"})
    assert set(result.task_states().values()) == {"failed"}
    assert "AuthenticationFailed" in output or "AUTHENTICATION_FAILED" in output or "403" in output
    scan(result, output, records, [wrong, azurite.key], [])


def fresh_secret() -> str:
    return base64.b64encode(secrets.token_bytes(48)).decode()


def test_hooks_hand_every_secret_to_airflows_masker(
    moto: MotoSQS, azurite: AzuriteQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What keeps secrets out of real task logs: Airflow's masker, which the hooks feed.

    (dag.test() runs tasks in-process without the supervisor that applies the masker to task
    output, so this is checked on the masker itself, with secrets no other test registered.)
    """
    from airflow.sdk._shared.secrets_masker import redact

    from fluke_airflow.hooks import get_queue_hook

    key, sqs_secret, account_key, sas_sig, client_secret = (fresh_secret() for _ in range(5))
    conn_string = f"DefaultEndpointsProtocol=http;AccountName={azurite.account};AccountKey={key};"
    sas = f"sv=2024-08-04&ss=q&srt=sco&sp=rl&sig={sas_sig}"
    connections = {
        "mask_conn_string": {"conn_type": "azure_storage_queue", "extra": {"connection_string": conn_string}},
        "mask_key": {"conn_type": "azure_storage_queue", "host": "acct", "password": account_key},
        "mask_sas": {"conn_type": "wasb", "host": "acct", "extra": {"sas_token": sas}},
        "mask_sp": {
            "conn_type": "azure_storage_queue",
            "host": "acct",
            "login": "client-id",
            "password": client_secret,
            "extra": {"tenant_id": "tenant"},
        },
        "mask_sqs": {
            "conn_type": "aws",
            "login": moto.access_key_id,
            "password": sqs_secret,
            "extra": {"endpoint_url": moto.endpoint_url, "region_name": "us-east-1"},
        },
    }
    for conn_id, conn in connections.items():
        get_queue_hook(set_connection(monkeypatch, conn_id, conn)).get_auth()
    for secret in (conn_string, key, account_key, sas, client_secret, sqs_secret):
        assert redact(f"before {secret} after") == "before *** after"
