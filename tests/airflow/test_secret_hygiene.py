"""Secrets and message bodies stay out of logs, XComs and rendered templates, in real DAG runs.

The emulators run with fresh random credentials (devtools/emulators.py), so any of them found
in an output was leaked by this run. The scenarios push, peek and poll (poke and deferred)
with every Azure auth method Azurite serves and with SQS keys, fail with a wrong key, and
have a task log its connection's secrets on purpose. Bodies are unique markers: Airflow logs
at INFO here, so a marker anywhere in the output would be a body logged above DEBUG.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import secrets
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from airflow_support import DagRunResult, iter_strings, run_dag_captured, set_connection
from azure.storage.queue import AccountSasPermissions, ResourceTypes, generate_account_sas

from devtools.admin import AzureService, Service, SQSService
from devtools.emulators import AzuriteQueue, MotoSQS
from devtools.support import fresh_name, wait_until

pytestmark = pytest.mark.usefixtures("airflow_env")

HIDDEN = 3600
"""Seconds the test hides the later bodies for: only its release shows them again."""


class OnLogLine(logging.Handler):
    """Runs ``step`` once, inside the logging call of the first record that contains ``cue``: the
    code that logged it goes on only once the step is done."""

    def __init__(self, cue: str, step: Callable[[], None]) -> None:
        super().__init__(level=logging.DEBUG)
        self.cue, self.step = cue, step
        self.done = False
        self.failure: BaseException | None = None
        self._running = False

    def emit(self, record: logging.LogRecord) -> None:
        if self.done or self._running or self.failure is not None or self.cue not in record.getMessage():
            return
        self._running = True  # the step's own log records pass by
        try:
            self.step()
            self.done = True
        except BaseException as error:  # logging would swallow it: kept for check()
            self.failure = error
        finally:
            self._running = False

    def check(self) -> None:
        if self.failure is not None:
            raise AssertionError(f"the step on the log line {self.cue!r} failed") from self.failure
        assert self.done, f"the run never logged {self.cue!r}"


@contextlib.contextmanager
def deferred_through_the_trigger(
    service: Service, queue: str, later: list[str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """The deferrable sensor takes messages already waiting without deferring, so push_later's bodies
    must be out of its sight when it first looks, and come back once its trigger looked. When
    push_later has pushed them, the test receives them (hidden for an hour); when the trigger logs its
    first receive (empty: nothing is visible), the test releases them, and the trigger's next receive
    takes them. dag.test runs each task and the trigger in line, in this process: these two moments
    are where the test acts, with no wall-clock margin."""
    from fluke_airflow.operators import QueuePushOperator

    held: list[tuple[str, Any]] = []
    hidden = False

    def hide() -> None:
        def all_taken() -> bool:
            held.extend(service.receive(queue, visibility_timeout=HIDDEN))
            return len(held) >= len(later)

        wait_until(all_taken, timeout=60, interval=0.2, what=f"push_later's {len(later)} message(s) to show")
        assert sorted(body for body, _ in held) == sorted(later)

    def release() -> None:
        assert hidden, "the trigger looked before the test had hidden push_later's messages"
        for _, handle in held:
            service.release(queue, handle)

    push = QueuePushOperator.execute

    def push_then_hide(self: Any, context: Any) -> Any:
        nonlocal hidden
        result = push(self, context)
        if self.task_id == "push_later":
            hide()
            hidden = True
        return result

    monkeypatch.setattr(QueuePushOperator, "execute", push_then_hide)
    # On fluke_airflow's logger: Airflow's logging setup, at each task, replaces the handlers of the
    # root logger and of every "airflow" logger, and leaves the others alone.
    first_look = OnLogLine("First receive from ", release)
    logger = logging.getLogger("fluke_airflow.delivery")
    logger.addHandler(first_look)
    try:
        yield
    finally:
        logger.removeHandler(first_look)
    assert hidden, "push_later never ran"
    first_look.check()


class RecordKeeper:
    """Every stdlib log record the run handled, whatever the loggers' handlers are by then. Airflow's
    logging setup replaces the root logger's handlers (and those of every "airflow" logger) at each
    task, so a handler added before the run sees nothing: the keeper sits in front of
    ``Logger.callHandlers``, which every handled record goes through."""

    def __init__(self) -> None:
        self.records: list[logging.LogRecord] = []

    def texts(self, min_level: int) -> Iterator[tuple[logging.LogRecord, str]]:
        for record in self.records:
            if record.levelno >= min_level:
                text = record.getMessage()
                if record.exc_info and record.exc_info[1] is not None:
                    text += f" {record.exc_info[1]!r}"
                yield record, text


@pytest.fixture
def records(monkeypatch: pytest.MonkeyPatch) -> RecordKeeper:
    keeper = RecordKeeper()
    call_handlers = logging.Logger.callHandlers

    def keeping(self: logging.Logger, record: logging.LogRecord) -> None:
        keeper.records.append(record)
        call_handlers(self, record)

    monkeypatch.setattr(logging.Logger, "callHandlers", keeping)
    return keeper


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
    assert any(r.name.startswith("airflow.") for r in records.records), "no log record of the run was kept"
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


def test_sqs_run_leaks_nothing(
    moto: MotoSQS, sqs: SQSService, records: RecordKeeper, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = fresh_name()
    sqs.create(name)
    bodies = marker_bodies(6)
    conf = {"conn_id": sqs.conn_id, "queue": name, "bodies": bodies, "delay": 1}
    with deferred_through_the_trigger(sqs, name, bodies[1:], monkeypatch):
        result, output = run_dag_captured("fluke_test_all_tasks", conf)
    assert result.state == "success", result.task_states()
    assert "[DAG TEST] running trigger in line" in output  # the deferred sensor went through the trigger
    delivered = result.xcom("poll_poke") + result.xcom("poll_deferred")
    assert sorted(delivered) == sorted(bodies)  # the bodies did travel, through XCom only
    assert any(r.name.startswith("fluke_airflow") for r in records.records)  # the scan saw our records too
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
    conf = {"conn_id": conn_id, "queue": name, "bodies": bodies, "delay": 1}
    with deferred_through_the_trigger(azure, name, bodies[1:], monkeypatch):
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
