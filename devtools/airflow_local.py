"""A real local Airflow on loopback: scheduler, triggerer, DAG processor and API server.

Used by the end-to-end tests and ``make demo``. Each component is its own process (group),
so a test can SIGKILL the triggerer and start it again. Everything lives under one
``AIRFLOW_HOME`` in ``.work/``: the SQLite database, the configuration given through the
environment, and one log file per component (``<home>/logs/<component>.log``); task logs go to
``<home>/logs/dag_id=...``.

    with LocalAirflow.create("demo", connections={...}) as airflow:
        api = airflow.client()
        api.unpause("example_queue_sqs")
        run = api.trigger("example_queue_sqs")
        api.wait_for_run("example_queue_sqs", run["dag_run_id"])

SQLite with the LocalExecutor runs one task at a time (``parallelism=1``); that is enough for
the example DAGs: a deferred sensor frees its slot while it waits in the triggerer. Given a
``database_url`` (a PostgreSQL cluster: devtools/postgres.py), the installation can run more
than one scheduler (:meth:`LocalAirflow.add_scheduler`) and triggerer (:meth:`~LocalAirflow.add_triggerer`),
as a production deployment does; each scheduler runs one task at a time.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from devtools.emulators import ROOT, AzuriteQueue, MotoSQS, free_port
from devtools.support import wait_until

WORK = ROOT / ".work"
EXAMPLE_DAGS = ROOT / "example_dags"
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
USERNAME = "admin"
FINISHED = ("success", "failed")

T = TypeVar("T")


class AirflowError(RuntimeError):
    """A component did not come up, or a wait ran out; the message says which and where the logs are."""


def airflow_bin() -> str:
    found = shutil.which("airflow", path=str(Path(sys.executable).parent))
    if not found:
        raise AirflowError(f"no `airflow` next to {sys.executable}; run `make setup`")
    return found


AIRFLOW_HICCUPS = (httpx.HTTPError, OSError)
"""What a request to a running stack can fail with on the way (the API server restarting, a refused
connection): a probe that fails so means "not yet"."""


def wait_for_airflow(probe: Callable[[], T | None], *, what: str, timeout: float, interval: float = 0.5) -> T:
    """:func:`devtools.support.wait_until` on a running Airflow stack: a probe that fails with
    :data:`AIRFLOW_HICCUPS` is asked again, and running out of time is an :class:`AirflowError`,
    like the stack's other failures (callers catch those to add what they know)."""
    return wait_until(
        probe, what=what, timeout=timeout, interval=interval, retry_on=AIRFLOW_HICCUPS, failure=AirflowError
    )


@dataclass
class Component:
    name: str
    command: list[str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)
    """What this component's environment adds to the installation's."""
    _cpu_logged: bool = False

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, env: Mapping[str, str], cwd: Path) -> None:
        if self.running:
            return
        self._cpu_logged = False
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== {time.strftime('%H:%M:%S')} starting {' '.join(self.command)}\n".encode())
            log.flush()
            # Own session: the component and its children (executor workers, the trigger runner)
            # form one process group that stop()/kill() reach as a whole.
            self.process = subprocess.Popen(
                self.command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=dict(env),
                cwd=cwd,
                start_new_session=True,
            )

    def _signal_group(self, sig: signal.Signals) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)

    def terminate(self) -> None:
        """Ask the component to stop (SIGTERM to its process group) without waiting."""
        if self.running:
            self._log_cpu("stopping")
            self._signal_group(signal.SIGTERM)

    def cpu_seconds(self) -> float | None:
        """CPU the component has used so far: its process, the children it reaped (task runs,
        parsing processes) and those still alive. ``None`` once it is gone."""
        import psutil

        if not self.running:
            return None
        assert self.process is not None
        try:
            main = psutil.Process(self.process.pid)
            processes = [main, *main.children(recursive=True)]
        except psutil.Error:
            return None
        total = 0.0
        for process in processes:
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                total += times.user + times.system + times.children_user + times.children_system
        return total

    def _log_cpu(self, how: str) -> None:
        """One line in the component's log: what it cost (how make test finds its CPU-hungry parts)."""
        cpu = None if self._cpu_logged else self.cpu_seconds()
        self._cpu_logged = True
        if cpu is not None:
            with open(self.log_path, "ab") as log:
                log.write(f"\n===== {time.strftime('%H:%M:%S')} {how}; CPU used: {cpu:.1f} s\n".encode())

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM the component's process group, SIGKILL it if it is still there after ``timeout``."""
        if self.process is None:
            return
        self._log_cpu("stopping")
        if self.process.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self.process.wait()
        # Children that outlived their parent (executor workers, the trigger runner).
        self._signal_group(signal.SIGKILL)
        self.process = None

    def kill(self) -> None:
        """SIGKILL the whole component at once: no cleanup, as a crashed machine would."""
        if self.process is None:
            return
        self._log_cpu("killing")
        self._signal_group(signal.SIGKILL)
        self.process.wait()
        self.process = None


@dataclass
class LocalAirflow:
    """One Airflow installation under ``home``; a context manager that starts and stops it."""

    home: Path
    dag_folders: list[Path]
    connections: dict[str, dict[str, Any]]
    port: int
    password: str
    extra_env: dict[str, str] = field(default_factory=dict)
    components: dict[str, Component] = field(default_factory=dict)
    database_url: str | None = None
    """The metadata database's SQLAlchemy URL (None: SQLite in ``home``)."""

    @classmethod
    def create(
        cls,
        name: str,
        *,
        connections: Mapping[str, Mapping[str, Any]] | None = None,
        dag_folders: Sequence[Path] = (EXAMPLE_DAGS,),
        extra_env: Mapping[str, str] | None = None,
        port: int | None = None,
        database_url: str | None = None,
    ) -> LocalAirflow:
        """A fresh installation in ``.work/airflow-<name>`` (an old one there is removed), on
        ``database_url`` (an empty database) or a SQLite file of its own."""
        home = WORK / f"airflow-{name}"
        if home.exists():
            shutil.rmtree(home)
        (home / "logs").mkdir(parents=True)
        return cls(
            home=home,
            dag_folders=[Path(p).resolve() for p in dag_folders],
            connections={k: dict(v) for k, v in (connections or {}).items()},
            port=port or free_port(),
            password=secrets.token_urlsafe(12),
            extra_env=dict(extra_env or {}),
            database_url=database_url,
        )

    # -- configuration -------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    def log_path(self, component: str) -> Path:
        return self.logs / f"{component}.log"

    def env(self) -> dict[str, str]:
        """The process environment every component (and the CLI) runs with."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_"))}
        bundles = [
            {
                "name": "fluke-examples" if folder == EXAMPLE_DAGS.resolve() else f"{folder.parent.name}-{folder.name}",
                "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                "kwargs": {"path": str(folder)},
            }
            for folder in self.dag_folders
        ]
        settings = self._settings()
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "PYTHONUNBUFFERED": "1",
                "NO_COLOR": "1",
                "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(bundles),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dag_folders[0]),
                **{f"AIRFLOW__{section.upper()}__{key.upper()}": str(value) for (section, key), value in settings},
                **{f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(conn) for conn_id, conn in self.connections.items()},
                **self.extra_env,
            }
        )
        return env

    def _settings(self) -> list[tuple[tuple[str, str], Any]]:
        secret_file = self.home / "secrets.json"
        if not secret_file.exists():
            from cryptography.fernet import Fernet

            secret_file.write_text(
                json.dumps(
                    {
                        "fernet": Fernet.generate_key().decode(),
                        "jwt": secrets.token_urlsafe(32),
                        "api": secrets.token_urlsafe(32),
                    }
                )
            )
        keys = json.loads(secret_file.read_text())
        return [
            (("database", "sql_alchemy_conn"), self.database_url or f"sqlite:///{self.home / 'airflow.db'}"),
            (("core", "executor"), "LocalExecutor"),
            (("core", "parallelism"), 1),
            (("core", "load_examples"), "False"),
            (("core", "fernet_key"), keys["fernet"]),
            (("core", "execution_api_server_url"), f"{self.url}/execution/"),
            (
                ("core", "auth_manager"),
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
            ),
            (("core", "simple_auth_manager_users"), f"{USERNAME}:admin"),
            (("core", "simple_auth_manager_passwords_file"), self.home / "passwords.json"),
            (("core", "test_connection"), "Enabled"),
            (("core", "dags_are_paused_at_creation"), "True"),
            (("api", "host"), "127.0.0.1"),
            (("api", "port"), self.port),
            (("api", "base_url"), self.url),
            (("api", "workers"), 1),
            (("api", "secret_key"), keys["api"]),
            (("api", "expose_config"), "True"),
            (("api_auth", "jwt_secret"), keys["jwt"]),
            (("logging", "base_log_folder"), self.logs),
            (("logging", "dag_processor_child_process_log_directory"), self.logs / "dag_processor"),
            (("logging", "worker_log_server_port"), free_port()),
            (("logging", "trigger_log_server_port"), free_port()),
            (("logging", "colored_console_log"), "False"),
            (("dag_processor", "parsing_processes"), 1),
            (("dag_processor", "refresh_interval"), 5),
            (("dag_processor", "min_file_process_interval"), 30),
            (("triggerer", "job_heartbeat_sec"), 2),
            (("triggerer", "triggerer_health_check_threshold"), 10),
            (("scheduler", "task_instance_heartbeat_sec"), 5),
            # A task's supervisor gives up on an Execution API call after 5 s by default and retries
            # it; on a busy machine the first call can still succeed late, and the retry's 409/400
            # fails the task ("Workload execution failed"). Airflow's own advice: raise it under load.
            (("workers", "execution_api_timeout"), 120),
        ]

    # -- lifecycle -----------------------------------------------------------------------------------
    def migrate(self) -> None:
        (self.home / "passwords.json").write_text(json.dumps({USERNAME: self.password}) + "\n")
        log = self.log_path("db-migrate")
        database = self.home / "airflow.db"
        if self.database_url is None and not database.exists():
            from devtools.airflow_db import migrated

            migrated(database, env=self.env(), log=log)  # a copy of this virtualenv's migrated template
            return
        with open(log, "ab") as out:
            result = subprocess.run(
                [airflow_bin(), "db", "migrate"],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env(),
                cwd=self.home,
                timeout=600,
            )
        if result.returncode:
            raise AirflowError(f"`airflow db migrate` failed with code {result.returncode}; see {log}")

    def _component(self, name: str) -> Component:
        if name not in self.components:
            if name not in COMPONENTS:
                raise ValueError(f"unknown component {name!r}; one of {COMPONENTS}")
            command = [airflow_bin(), name]
            if name == "api-server":
                command += ["--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]
            self.components[name] = Component(name, command, self.log_path(name))
        return self.components[name]

    def start_component(self, name: str) -> None:
        component = self._component(name)
        component.start({**self.env(), **component.env}, self.home)

    def add_triggerer(self, name: str, *, capacity: int | None = None) -> str:
        """Configure a triggerer (``triggerer`` itself, or another one such as ``triggerer-2``) with
        ``--capacity`` (at most that many triggers: how a test forces Airflow's placement). Another
        triggerer gets a log-server port of its own. Takes effect when it is (re)started."""
        if name != "triggerer" and not name.startswith("triggerer-"):
            raise ValueError(f"a triggerer's name is 'triggerer' or 'triggerer-<n>', got {name!r}")
        command = [airflow_bin(), "triggerer"] + (["--capacity", str(capacity)] if capacity is not None else [])
        old = self.components.get(name)
        if old is not None and old.running:
            raise AirflowError(f"stop the {name} before changing its configuration")
        env = {} if name == "triggerer" else {"AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port())}
        self.components[name] = Component(name, command, self.log_path(name), env=env)
        return name

    def add_scheduler(self, name: str) -> str:
        """Configure another scheduler (``scheduler-<n>``; the database must be PostgreSQL), with a
        log-server port of its own (its LocalExecutor serves task logs). Started by :meth:`start`
        if added before it, else by :meth:`start_component`."""
        if not name.startswith("scheduler-"):
            raise ValueError(f"another scheduler's name is 'scheduler-<n>', got {name!r}")
        if self.database_url is None:
            raise AirflowError("SQLite cannot run two schedulers: create the installation with a database_url")
        env = {"AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port())}
        self.components[name] = Component(name, [airflow_bin(), "scheduler"], self.log_path(name), env=env)
        return name

    def stop_component(self, name: str) -> None:
        self._component(name).stop()

    def kill_component(self, name: str) -> None:
        """SIGKILL a component and all its processes (for crash tests)."""
        self._component(name).kill()

    def signal_component(self, name: str, sig: signal.Signals) -> None:
        """Send ``sig`` to all of the component's processes (e.g. SIGSTOP a whole triggerer, as a
        paused machine would, and SIGCONT it again)."""
        component = self._component(name)
        if not component.running:
            raise AirflowError(f"the {name} is not running")
        component._signal_group(sig)

    def signal_main_process(self, name: str, sig: signal.Signals) -> None:
        """Send ``sig`` to the component's main process only (e.g. SIGSTOP the triggerer's supervisor)."""
        component = self._component(name)
        if not component.running:
            raise AirflowError(f"the {name} is not running")
        assert component.process is not None
        os.kill(component.process.pid, sig)

    def process_states(self, name: str) -> list[str]:
        """``pid name status`` of the component's processes, for failure messages."""
        component = self._component(name)
        if not component.running:
            return []
        assert component.process is not None
        import psutil

        try:
            main = psutil.Process(component.process.pid)
            return [f"{p.pid} {p.name()} {p.status()}" for p in [main, *main.children(recursive=True)]]
        except psutil.Error as error:
            return [f"unavailable: {error}"]

    def start(self, timeout: float = 240.0) -> None:
        self.migrate()
        for name in (*COMPONENTS, *self.others()):
            self.start_component(name)
        self.wait_healthy(timeout)

    def others(self) -> tuple[str, ...]:
        """The schedulers and triggerers added besides the first of each."""
        return tuple(n for n in self.components if n.startswith(("scheduler-", "triggerer-")))

    def stop(self) -> None:
        # The API server last: tasks still running report to it. The others stop side by side.
        others = self.others()
        for group in (("scheduler", "triggerer", "dag-processor", *others), ("api-server",)):
            running = [self.components[name] for name in group if name in self.components]
            for component in running:
                component.terminate()
            for component in running:
                component.stop()

    def __enter__(self) -> LocalAirflow:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def check_running(self) -> None:
        for name, component in self.components.items():
            if component.process is not None and component.process.poll() is not None:
                raise AirflowError(
                    f"the {name} exited with code {component.process.returncode}; see {component.log_path}"
                )

    def health(self) -> dict[str, Any]:
        response = httpx.get(f"{self.url}/api/v2/monitor/health", timeout=5)
        response.raise_for_status()
        return dict(response.json())

    def wait_healthy(
        self, timeout: float = 240.0, components: Sequence[str] = ("scheduler", "triggerer", "dag_processor")
    ) -> None:
        def probe() -> bool:
            self.check_running()
            health = self.health()
            return all((health.get(name) or {}).get("status") == "healthy" for name in ("metadatabase", *components))

        wait_for_airflow(
            probe, what=f"Airflow's components to report healthy (logs in {self.logs})", timeout=timeout, interval=1.0
        )

    def client(self) -> AirflowClient:
        return AirflowClient(self.url, USERNAME, self.password)


def emulator_connections(moto: MotoSQS, azurite: AzuriteQueue) -> dict[str, dict[str, Any]]:
    """The example DAGs' connections ``fluke_sqs`` (aws) and ``fluke_azure`` (azure_storage_queue)."""
    return {
        "fluke_sqs": {
            "conn_type": "aws",
            "login": moto.access_key_id,
            "password": moto.secret_access_key,
            # The STS endpoint too: the amazon provider's connection test (UI button, `airflow
            # connections test`) calls STS, and never at the connection-wide endpoint_url.
            "extra": {
                "endpoint_url": moto.endpoint_url,
                "region_name": moto.region,
                "service_config": {"sts": {"endpoint_url": moto.endpoint_url}},
            },
        },
        "fluke_azure": {"conn_type": "azure_storage_queue", "extra": {"connection_string": azurite.connection_string}},
    }


class AirflowClient:
    """The few calls of Airflow 3's public REST API (``/api/v2``) the tests and the demo use."""

    def __init__(self, url: str, username: str, password: str, timeout: float = 30.0) -> None:
        self.url = url
        self.username = username
        self.password = password
        self._http = httpx.Client(base_url=f"{url}/api/v2", timeout=timeout)
        self._token: str | None = None

    # -- plumbing ------------------------------------------------------------------------------------
    def login(self) -> str:
        """A JWT from the simple auth manager's ``/auth/token``."""
        response = httpx.post(
            f"{self.url}/auth/token", json={"username": self.username, "password": self.password}, timeout=30
        )
        if response.status_code >= 400:
            raise AirflowError(f"login as {self.username!r} failed: {response.status_code} {response.text}")
        self._token = response.json()["access_token"]
        return self._token

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        for attempt in range(2):
            if self._token is None:
                self.login()
            response = self._http.request(method, path, headers={"Authorization": f"Bearer {self._token}"}, **kwargs)
            if response.status_code == 401 and attempt == 0:
                self._token = None  # expired: log in again
                continue
            if response.status_code >= 400:
                raise AirflowError(f"{method} {path} -> {response.status_code}: {response.text[:500]}")
            return response.json() if response.content else None
        raise AssertionError("unreachable")

    def close(self) -> None:
        self._http.close()

    # -- DAGs and runs -------------------------------------------------------------------------------
    def dag(self, dag_id: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/dags/{dag_id}"))

    def import_errors(self) -> list[dict[str, Any]]:
        return list(self.request("GET", "/importErrors")["import_errors"])

    def wait_for_dags(self, dag_ids: Sequence[str], timeout: float = 180.0) -> None:
        """Wait until the DAG processor has parsed ``dag_ids``; fail early on an import error."""

        def probe() -> bool:
            errors = self.import_errors()
            if errors:
                raise AirflowError(
                    "DAG import errors: " + "; ".join(f"{e['filename']}: {e['stack_trace'][-300:]}" for e in errors)
                )
            found = {d["dag_id"] for d in self.request("GET", "/dags", params={"limit": 100})["dags"]}
            return set(dag_ids) <= found

        wait_for_airflow(probe, what=f"the DAGs {list(dag_ids)} to be parsed", timeout=timeout, interval=1.0)

    def unpause(self, dag_id: str) -> None:
        self.request("PATCH", f"/dags/{dag_id}", json={"is_paused": False})

    def pause(self, dag_id: str) -> None:
        self.request("PATCH", f"/dags/{dag_id}", json={"is_paused": True})

    def trigger(self, dag_id: str, conf: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return dict(
            self.request("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": dict(conf or {})})
        )

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        """Every run of the DAG, oldest first (read 100 at a time: the API's pages)."""
        runs: list[dict[str, Any]] = []
        while True:
            params = {"order_by": "run_after", "limit": 100, "offset": len(runs)}
            page = self.request("GET", f"/dags/{dag_id}/dagRuns", params=params)["dag_runs"]
            runs += page
            if len(page) < 100:
                return runs

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/dags/{dag_id}/dagRuns/{run_id}"))

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        data = self.request("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 1000})
        return list(data["task_instances"])

    def task_instance(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"))

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
        data = self.request(
            "GET",
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}",
            params={"map_index": map_index, "deserialize": True, "stringify": False},
        )
        return data["value"]

    def upstream_asset_events(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return list(self.request("GET", f"/dags/{dag_id}/dagRuns/{run_id}/upstreamAssetEvents")["asset_events"])

    def wait_for_run(
        self, dag_id: str, run_id: str, timeout: float = 300.0, airflow: LocalAirflow | None = None
    ) -> dict[str, Any]:
        """Wait until the run is finished (success or failed) and return it."""

        def probe() -> dict[str, Any] | None:
            if airflow is not None:
                airflow.check_running()
            run = self.run(dag_id, run_id)
            return run if run["state"] in FINISHED else None

        return wait_for_airflow(probe, what=f"DAG run {dag_id}/{run_id} to finish", timeout=timeout, interval=1.0)

    def wait_for_task_state(
        self,
        dag_id: str,
        run_id: str,
        task_id: str,
        states: Sequence[str],
        timeout: float = 120.0,
        interval: float = 0.5,
    ) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            ti = self.task_instance(dag_id, run_id, task_id)
            if ti["state"] in states:
                return ti
            if ti["state"] in ("failed", "upstream_failed") and "failed" not in states:
                raise AirflowError(f"task {dag_id}/{run_id}/{task_id} is {ti['state']}, not one of {list(states)}")
            return None

        return wait_for_airflow(
            probe,
            what=f"task {dag_id}/{run_id}/{task_id} to be one of {list(states)}",
            timeout=timeout,
            interval=interval,
        )

    def summary(self, dag_id: str, run_id: str) -> str:
        """``task=state`` for every task instance (mapped ones as ``task[i]``)."""
        parts = []
        for ti in sorted(self.task_instances(dag_id, run_id), key=lambda t: (t["task_id"], t["map_index"])):
            name = ti["task_id"] if ti["map_index"] < 0 else f"{ti['task_id']}[{ti['map_index']}]"
            parts.append(f"{name}={ti['state']}")
        return ", ".join(parts)


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"<{path} unreadable>"


def iter_log_lines(path: Path) -> Iterator[str]:
    try:
        with open(path, errors="replace") as f:
            yield from f
    except OSError:
        return
