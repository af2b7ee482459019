"""Shared helpers of the Airflow-level suites (tests/airflow, hooks, operators, sensors, triggers).

* The ``service``, ``sqs`` and ``azure`` fixtures: one emulator (moto's SQS server or Azurite)
  seen through an *independent* SDK client (:mod:`devtools.admin`, not our code): create queues,
  seed messages, and check afterwards what is left in a queue.
* Connections go in as ``AIRFLOW_CONN_<ID>`` environment variables (JSON), as a user would
  set them; Airflow resolves them the same way in tasks, hooks and triggers.
* :func:`run_dag` runs a DAG with ``dag.test()`` and reads the outcome back from the metadata
  database: task states, tries, XComs and rendered template fields.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import io
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from devtools.admin import AZURE_CONN, SQS_CONN, AzureService, Service, SQSService
from devtools.emulators import AzuriteQueue, MotoSQS
from devtools.support import fresh_name, wait_until, wait_until_async

# Service, SQSService, AzureService, fresh_name and wait_until were defined here once: still importable
# from here for code written then; new code imports them from devtools.admin and devtools.support.

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_DAGS = ROOT / "example_dags"
TEST_DAGS = ROOT / "tests" / "dags"


# -- connections ------------------------------------------------------------------------------------
def conn_env(conn_id: str) -> str:
    return f"AIRFLOW_CONN_{conn_id.upper()}"


def sqs_connection(moto: MotoSQS, **extra: Any) -> dict[str, Any]:
    """An ``aws`` connection to moto, as users write them: keys in login/password, endpoint in the extra."""
    return {
        "conn_type": "aws",
        "login": moto.access_key_id,
        "password": moto.secret_access_key,
        "extra": {"endpoint_url": moto.endpoint_url, "region_name": moto.region, **extra},
    }


def azure_connection(azurite: AzuriteQueue) -> dict[str, Any]:
    """An ``azure_storage_queue`` connection to Azurite with nothing but a connection string."""
    return {"conn_type": "azure_storage_queue", "extra": {"connection_string": azurite.connection_string}}


def set_connection(monkeypatch: Any, conn_id: str, conn: dict[str, Any]) -> str:
    monkeypatch.setenv(conn_env(conn_id), json.dumps(conn))
    return conn_id


def proxied_connection(monkeypatch: Any, conn_id: str, kind: str, moto: MotoSQS, azurite: AzuriteQueue,
                       proxy: Any) -> str:  # fmt: skip
    """Connection ``conn_id`` to moto (``kind`` ``"sqs"``) or Azurite through ``proxy`` (devtools/proxy.py)."""
    if kind == "sqs":
        conn = sqs_connection(moto, endpoint_url=proxy.url)
    else:
        conn = azure_connection(azurite)
        conn["extra"]["connection_string"] = azurite.connection_string.replace(
            f"QueueEndpoint={azurite.account_url}", f"QueueEndpoint={proxy.endpoint}"
        )
    return set_connection(monkeypatch, conn_id, conn)


# -- running DAGs -------------------------------------------------------------------------------------
@cache
def dagbag_class() -> Any:
    """Airflow's DagBag (``airflow.dag_processing.dagbag`` from 3.2 on, ``airflow.models.dagbag`` before)."""
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 3.0 and 3.1
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]
    return DagBag


def _dagbag(folder: str) -> Any:
    return dagbag_class()(folder)


def dagbag(folder: Path = EXAMPLE_DAGS) -> Any:
    return _dagbag(str(folder))


def load_dag(dag_id: str) -> Any:
    for folder in (EXAMPLE_DAGS, TEST_DAGS):
        bag = dagbag(folder)
        if dag_id in bag.dags:
            return bag.dags[dag_id]
    errors = {**dagbag(EXAMPLE_DAGS).import_errors, **dagbag(TEST_DAGS).import_errors}
    raise LookupError(f"no DAG {dag_id!r}; import errors: {errors}")


@dataclass
class DagRunResult:
    dag_id: str
    run_id: str
    state: str
    logical_date: Any = None
    run_after: Any = None
    states: dict[tuple[str, int], str] = field(default_factory=dict)
    tries: dict[tuple[str, int], int] = field(default_factory=dict)

    def state_of(self, task_id: str, map_index: int = -1) -> str:
        return self.states[(task_id, map_index)]

    def task_states(self) -> dict[str, str]:
        """``task_id -> state`` for unmapped tasks, ``task_id[i] -> state`` for mapped ones."""
        return {(t if i < 0 else f"{t}[{i}]"): s for (t, i), s in sorted(self.states.items())}

    def xcom(self, task_id: str, map_index: int = -1, key: str = "return_value") -> Any:
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session

        with create_session() as session:
            query = XComModel.get_many(
                run_id=self.run_id, key=key, task_ids=task_id, dag_ids=self.dag_id, map_indexes=map_index
            )
            rows = session.scalars(query).all()
            if not rows:
                raise LookupError(f"no XCom {key!r} of {task_id}[{map_index}] in {self.run_id}")
            return XComModel.deserialize_value(rows[0])

    def all_xcoms(self) -> list[tuple[str, int, str, Any]]:
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session

        with create_session() as session:
            rows = session.scalars(XComModel.get_many(run_id=self.run_id, dag_ids=self.dag_id)).all()
            return [(r.task_id, r.map_index, r.key, XComModel.deserialize_value(r)) for r in rows]

    def rendered(self, task_id: str, map_index: int = -1) -> dict[str, Any]:
        from airflow.models.renderedtifields import RenderedTaskInstanceFields as RTIF
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            row = session.scalars(
                select(RTIF).where(
                    RTIF.dag_id == self.dag_id,
                    RTIF.run_id == self.run_id,
                    RTIF.task_id == task_id,
                    RTIF.map_index == map_index,
                )
            ).one()
            return dict(row.rendered_fields)

    def all_rendered(self) -> list[dict[str, Any]]:
        from airflow.models.renderedtifields import RenderedTaskInstanceFields as RTIF
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            rows = session.scalars(select(RTIF).where(RTIF.dag_id == self.dag_id, RTIF.run_id == self.run_id))
            return [dict(r.rendered_fields) for r in rows]

    def reschedules(self, task_id: str) -> int:
        from airflow.models.taskinstance import TaskInstance
        from airflow.models.taskreschedule import TaskReschedule
        from airflow.utils.session import create_session
        from sqlalchemy import func, select

        with create_session() as session:
            return int(
                session.scalar(
                    select(func.count())
                    .select_from(TaskReschedule)
                    .join(TaskInstance, TaskInstance.id == TaskReschedule.ti_id)
                    .where(TaskInstance.run_id == self.run_id, TaskInstance.task_id == task_id)
                )
                or 0
            )


_param_defaults: dict[str, dict[str, Any]] = {}


def run_dag(dag_id: str, conf: dict[str, Any] | None = None) -> DagRunResult:
    """``dag.test()`` the DAG (parsed from its folder, as Airflow would) and read back the outcome.

    The run's conf always carries every param: dag.test() runs tasks in this process on the
    parsed DAG object, and a run's conf would otherwise linger in its params for the next run.
    """
    dag = load_dag(dag_id)
    defaults = _param_defaults.setdefault(dag_id, copy.deepcopy(dag.params.dump()))
    dr = dag.test(run_conf={**copy.deepcopy(defaults), **(conf or {})})
    result = DagRunResult(
        dag_id=dag_id, run_id=dr.run_id, state=str(dr.state), logical_date=dr.logical_date, run_after=dr.run_after
    )
    for ti in dr.get_task_instances():
        result.states[(ti.task_id, ti.map_index)] = str(ti.state)
        result.tries[(ti.task_id, ti.map_index)] = int(ti.try_number)
    return result


class Deferred:
    """Whether a task of a run of ``dag_id`` started after now has deferred (its task instance's
    ``next_method`` is set in the metadata database)."""

    def __init__(self, dag_id: str, task_id: str) -> None:
        from datetime import datetime, timezone

        self.since = datetime.now(timezone.utc)
        self.dag_id, self.task_id = dag_id, task_id
        # Import, parse and query once here: imports racing the main thread's can deadlock.
        load_dag(dag_id)
        assert not self()

    def __call__(self) -> bool:
        from airflow.models.dagrun import DagRun
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            found = session.scalars(
                select(TaskInstance.next_method)
                .join(DagRun, (DagRun.dag_id == TaskInstance.dag_id) & (DagRun.run_id == TaskInstance.run_id))
                .where(
                    TaskInstance.dag_id == self.dag_id,
                    TaskInstance.task_id == self.task_id,
                    DagRun.run_after >= self.since,
                    TaskInstance.next_method.is_not(None),
                )
            ).first()
            return found is not None


class SendWhenDeferred:
    """Send messages as soon as a task of the next run of ``dag_id`` has deferred.

    A deferrable sensor first looks for waiting messages and takes them without deferring; sending
    only once it has deferred makes sure the trigger is the one that waits for them.
    """

    def __init__(self, service: Service, queue: str, bodies: list[str], dag_id: str, task_id: str) -> None:
        import threading

        self.deferred = Deferred(dag_id, task_id)
        self.args = (service, queue, bodies, dag_id, task_id)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        service, queue, bodies, dag_id, task_id = self.args
        try:
            wait_until(self.deferred, timeout=120, interval=0.1, what=f"{dag_id}.{task_id} to defer")
            service.send(queue, bodies)
        except BaseException as error:
            self.error = error

    def check(self) -> None:
        self.thread.join(timeout=130)
        if self.error is not None:
            raise self.error


class DripFeed:
    """Send ``bodies`` one at a time, each once the one before has been received (no message of the
    queue is visible any more): a consumer that gathers for a batching window gets them one by one,
    and the test needs no clock. ``after``: start only once this is true (e.g. the sensor deferred)."""

    def __init__(
        self, service: Service, queue: str, bodies: list[str], after: Callable[[], bool] | None = None
    ) -> None:
        import threading

        self.args = (service, queue, bodies, after)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        service, queue, bodies, after = self.args
        try:
            if after is not None:
                wait_until(after, timeout=120, interval=0.1, what="the consumer to be ready")
            for body in bodies:
                service.send(queue, [body])
                wait_until(lambda: service.visible(queue) == 0, timeout=120, interval=0.1,
                           what=f"{body!r} to be received")  # fmt: skip
        except BaseException as error:
            self.error = error

    def check(self) -> None:
        self.thread.join(timeout=600)
        if self.error is not None:
            raise self.error


def run_dag_captured(dag_id: str, conf: dict[str, Any] | None = None) -> tuple[DagRunResult, str]:
    """:func:`run_dag`, plus everything the run logged or printed: under dag.test() the task logs,
    the inline trigger's logs and Airflow's own go to stdout/stderr, through structlog and logging.

    Captured here rather than with pytest's capture: Airflow binds its logging handlers to the
    stdout of the moment, which pytest swaps (and closes) from test to test. The text is echoed
    afterwards, so a failing test shows it.
    """
    buffer = io.StringIO()
    handlers = [
        h
        for h in logging.getLogger().handlers
        if type(h) is logging.StreamHandler  # Airflow's "default" handler, not pytest's or files
    ]
    streams = [h.setStream(buffer) for h in handlers]
    try:
        with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
            result = run_dag(dag_id, conf)
    finally:
        for handler, stream in zip(handlers, streams, strict=True):
            handler.setStream(stream)  # type: ignore[arg-type]
        for handler in logging.getLogger().handlers:
            if type(handler) is logging.StreamHandler and handler.stream is buffer:
                handler.setStream(sys.stdout)  # one that dictConfig bound while we redirected
    output = buffer.getvalue()
    print(output)
    return result, output


def env_without_airflow_conns() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}


def iter_strings(value: Any) -> Iterator[str]:
    """Every string inside a JSON-like value (for scanning XComs and rendered fields)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from iter_strings(v)
    elif isinstance(value, (list, tuple, set)):
        for v in value:
            yield from iter_strings(v)
    elif value is not None:
        yield str(value)


# -- fixtures (each suite's conftest.py imports them) ------------------------------------------------------
_services: dict[int, Service] = {}


def _sqs_service(moto: MotoSQS) -> SQSService:
    return _services.setdefault(id(moto), SQSService(moto))  # type: ignore[return-value]


def _azure_service(azurite: AzuriteQueue) -> AzureService:
    return _services.setdefault(id(azurite), AzureService(azurite))  # type: ignore[return-value]


@pytest.fixture(scope="session")
def airflow_env(airflow_db: Path, moto: MotoSQS, azurite: AzuriteQueue) -> Iterator[None]:
    """A migrated Airflow plus the connections the example DAGs use (``fluke_sqs``, ``fluke_azure``)."""
    saved = {name: os.environ.get(name) for name in (conn_env(SQS_CONN), conn_env(AZURE_CONN))}
    os.environ[conn_env(SQS_CONN)] = json.dumps(sqs_connection(moto))
    os.environ[conn_env(AZURE_CONN)] = json.dumps(azure_connection(azurite))
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture
def sqs(moto: MotoSQS) -> SQSService:
    return _sqs_service(moto)


@pytest.fixture
def azure(azurite: AzuriteQueue) -> AzureService:
    return _azure_service(azurite)


@pytest.fixture(params=["sqs", "azure"])
def service(request: pytest.FixtureRequest) -> Service:
    """Each test that takes ``service`` runs once on SQS (moto) and once on Azure (Azurite)."""
    return request.getfixturevalue(request.param)  # type: ignore[no-any-return]


@pytest.fixture
def queue(service: Service) -> Iterator[str]:
    """A fresh, empty queue on ``service``."""
    name = fresh_name()
    service.create(name)
    yield name
    service.delete_queue(name)


# -- the triggerer's supervisor, as a trigger sees it --------------------------------------------------------
class TriggererSupervisor:
    """What a trigger in Airflow 3.3's triggerer talks to (``task_runner.SUPERVISOR_COMMS``), with
    the send semantics of ``TriggerCommsDecoder``: ``asend`` awaits the answer; a blocking ``send``
    from a worker thread hands the request to the event loop; a blocking ``send`` on the loop's own
    thread suspends the caller with greenback. It answers DAG-run counts (the test plays the
    scheduler with :meth:`start_run`; ``busy`` holds the queued or running runs of a DAG), the
    existence check of a DAG (every DAG exists but those in ``missing``, with the API server's two
    404 answers), and keeps an asset state store and Variables; anything else gets None."""

    def __init__(self, loop: Any, delay: float = 0.0) -> None:
        import threading

        self.loop = loop
        self.loop_thread = threading.get_ident()
        self.delay = delay
        self.requests: list[str] = []
        self.run_count_requests: collections.Counter[str] = collections.Counter()
        """``GetDRCount`` requests by DAG id: how often a trigger looked for a consumer's new run."""
        self.runs: dict[str, int] = {}
        self.busy: dict[str, int] = {}
        self.missing: set[str] = set()
        self.store: dict[tuple[str, str], Any] = {}
        self.variables: dict[str, Any] = {}
        self.run_states: dict[tuple[str, str], str] = {}
        """(dag id, run id) -> state: what ``GetDagRunState`` answers (a missing run: an error)."""
        self.task_states: dict[tuple[str, str], dict[str, str | None]] = {}
        """(dag id, run id) -> ``GetTaskStates``' answer for that run (mapped: ``task_i``)."""

    def start_run(self, dag_id: str) -> None:
        """What the scheduler does when it creates a run of ``dag_id``."""
        self.runs[dag_id] = self.runs.get(dag_id, 0) + 1

    async def asend(self, msg: Any) -> Any:
        import asyncio

        from airflow.sdk.execution_time import comms

        self.requests.append(type(msg).__name__)
        if self.delay:
            await asyncio.sleep(self.delay)  # the supervisor takes a moment to answer
        if isinstance(msg, comms.GetDRCount):
            if msg.run_ids is not None:  # the runs among these in one of these states
                states = [self.run_states.get((msg.dag_id, run)) for run in msg.run_ids]
                wanted = [s for s in states if s is not None and (not msg.states or s in msg.states)]
                return comms.DRCount(count=len(wanted))
            if not msg.states:
                self.run_count_requests[msg.dag_id] += 1
            counted = self.busy if msg.states else self.runs
            return comms.DRCount(count=counted.get(msg.dag_id, 0))
        if isinstance(msg, comms.GetTaskStates) and msg.task_group_id:
            raise self._not_found(msg.dag_id, msg.task_group_id)
        # The asset state store's messages exist from Airflow 3.3 on.
        if isinstance(msg, getattr(comms, "GetAssetStateStoreByName", ())):
            key = (msg.name, msg.key)
            if key not in self.store:
                from airflow.sdk.exceptions import ErrorType

                return comms.ErrorResponse(error=ErrorType.ASSET_STORE_NOT_FOUND)
            return comms.AssetStateStoreResult(value=self.store[key])
        if isinstance(msg, getattr(comms, "SetAssetStateStoreByName", ())):
            self.store[(msg.name, msg.key)] = msg.value
        if isinstance(msg, getattr(comms, "DeleteAssetStateStoreByName", ())):
            self.store.pop((msg.name, msg.key), None)
        if isinstance(msg, comms.GetDagRunState):
            state = self.run_states.get((msg.dag_id, msg.run_id))
            if state is None:
                from airflow.sdk.exceptions import ErrorType

                return comms.ErrorResponse(error=ErrorType.GENERIC_ERROR, detail={"status_code": 404})
            return comms.DagRunStateResult(state=state)
        if isinstance(msg, comms.GetTaskStates):
            found = {run: states for (dag, run), states in self.task_states.items()
                     if dag == msg.dag_id and (msg.run_ids is None or run in msg.run_ids)}  # fmt: skip
            wanted = {run: {k: v for k, v in states.items() if not msg.task_ids or k.rsplit("_", 1)[0] in
                            msg.task_ids or k in msg.task_ids} for run, states in found.items()}  # fmt: skip
            return comms.TaskStatesResult(task_states=wanted)
        if isinstance(msg, comms.GetVariable):
            if msg.key not in self.variables:
                from airflow.sdk.exceptions import ErrorType

                return comms.ErrorResponse(error=ErrorType.VARIABLE_NOT_FOUND)
            return comms.VariableResult(key=msg.key, value=self.variables[msg.key])
        if isinstance(msg, comms.PutVariable):
            self.variables[msg.key] = msg.value
        return None

    def _not_found(self, dag_id: str, group: str) -> Exception:
        """What Airflow 3.3's supervisor answers a task-group look-up with: the API server's 404
        (``_get_group_tasks``) as an error frame, which ``TriggerCommsDecoder.asend`` raises."""
        from airflow.sdk.exceptions import AirflowRuntimeError, ErrorType
        from airflow.sdk.execution_time.comms import ErrorResponse

        if dag_id in self.missing:
            message = f"The Dag with ID: `{dag_id}` was not found"
        else:
            message = f"Task group {group} not found in DAG {dag_id}"
        detail = {"reason": "not_found", "message": message}
        error = {"status_code": 404, "message": "Server returned error", "detail": {"detail": detail}}
        return AirflowRuntimeError(ErrorResponse(error=ErrorType.API_SERVER_ERROR, detail=error))

    def send(self, msg: Any) -> Any:
        import asyncio
        import threading

        from fluke_airflow import _airflow

        if not _airflow.has_thread_safe_comms():
            return self._send_through_asgiref(msg)

        import greenback

        if threading.get_ident() == self.loop_thread:
            return greenback.await_(self.asend(msg))
        return asyncio.run_coroutine_threadsafe(self.asend(msg), self.loop).result()

    def _send_through_asgiref(self, msg: Any) -> Any:
        """Airflow 3.0 and 3.1: ``TriggerCommsDecoder.send`` is ``async_to_sync(self.asend)``. It
        raises on the loop's thread; from a thread asgiref did not start it would run the request
        on a loop of its own, where the real decoder's stream is not: refused here the same way."""
        import asyncio

        from asgiref.sync import async_to_sync

        async def on_the_triggerers_loop() -> Any:
            if asyncio.get_running_loop() is not self.loop:
                raise RuntimeError(
                    f"a blocking {type(msg).__name__} request from a thread asgiref did not start: "
                    "Airflow 3.0/3.1's triggerer cannot answer it"
                )
            return await self.asend(msg)

        return async_to_sync(on_the_triggerers_loop)()


async def run_count_checks(supervisor: TriggererSupervisor, dag_id: str, more: int = 2) -> None:
    """Return once the trigger has asked for ``dag_id``'s run count ``more`` more times: past an event it
    is holding (it asked, found no new run, and asked again), seen in what it did rather than timed."""
    target = supervisor.run_count_requests[dag_id] + more
    await wait_until_async(
        lambda: supervisor.run_count_requests[dag_id] >= target,
        what=f"{more} more run-count request(s) for DAG {dag_id!r}",
        timeout=60,
    )


@contextlib.contextmanager
def supervised(loop: Any, delay: float = 0.0) -> Iterator[TriggererSupervisor]:
    """Install a :class:`TriggererSupervisor` for triggers on ``loop`` (restored afterwards)."""
    from airflow.sdk.execution_time import task_runner

    missing = object()
    previous = getattr(task_runner, "SUPERVISOR_COMMS", missing)
    supervisor = task_runner.SUPERVISOR_COMMS = TriggererSupervisor(loop, delay)  # type: ignore[attr-defined]
    try:
        yield supervisor
    finally:
        if previous is missing:  # Airflow 3.0 looks for the attribute itself, not for a value
            del task_runner.SUPERVISOR_COMMS
        else:
            task_runner.SUPERVISOR_COMMS = previous  # type: ignore[attr-defined]
