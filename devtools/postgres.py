"""A throw-away PostgreSQL cluster on loopback, for an Airflow metadata database that several
schedulers can share (SQLite cannot run two).

Debian's server binaries (``make postgresql``, devtools/install_postgresql.sh) in a temporary
directory of its own: the data, the log and the Unix socket all live there, and :meth:`remove`
deletes it. initdb refuses to run as root, so under root the cluster runs as the ``postgres``
user Debian's package creates. Durability is off (``fsync``, ``synchronous_commit``,
``full_page_writes``): the cluster lives as long as the test session, and a crash only loses it.

    with PostgresCluster.create(log_path=...) as pg:
        url = pg.url  # postgresql+psycopg2://airflow@127.0.0.1:<port>/airflow
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devtools.emulators import free_port

USER = "airflow"
DATABASE = "airflow"
SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "max_connections": "400",  # two schedulers, two triggerers and the rest: a pool each, and their task processes
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}


class PostgresError(RuntimeError):
    """The cluster could not be made or started; the message says where its log is."""


def server_bin() -> Path:
    """The newest installed server's ``bin`` directory (``/usr/lib/postgresql/<version>/bin``)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    raise PostgresError("no PostgreSQL server is installed: run `make postgresql` (apt-get install postgresql)")


@dataclass
class PostgresCluster:
    root: Path
    port: int
    log_path: Path
    bin: Path
    started: bool = False

    @classmethod
    def create(cls, *, log_path: Path) -> PostgresCluster:
        root = Path(tempfile.mkdtemp(prefix="fluke-pg-"))
        return cls(root=root, port=free_port(), log_path=Path(log_path), bin=server_bin())

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def url(self) -> str:
        """The SQLAlchemy URL Airflow takes (trust authentication on loopback: no password)."""
        return f"postgresql+psycopg2://{USER}@127.0.0.1:{self.port}/{DATABASE}"

    def _run(self, *command: str, timeout: float = 120) -> None:
        """Run a server binary as the cluster's owner; its output goes to the log."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== {time.strftime('%H:%M:%S')} {' '.join(command)}\n".encode())
            log.flush()
            result = subprocess.run(
                [str(self.bin / command[0]), *command[1:]],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.root,
                timeout=timeout,
                **_as_owner(),
            )
        if result.returncode:
            raise PostgresError(f"{command[0]} failed with code {result.returncode}; see {self.log_path}")

    def start(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", USER, "--auth=trust", "--encoding=UTF8", "--no-sync")
        options = " ".join([f"-p {self.port}", f"-k {self.root}", *(f"-c {k}={v}" for k, v in SETTINGS.items())])
        server_log = self.root / "server.log"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(server_log), "-o", options, "-w", "-t", "120", "start")
        self.started = True
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, DATABASE)

    def stop(self) -> None:
        """Stop the server at once (``-m immediate``: nothing of it is kept) and copy its log."""
        if self.started:
            try:
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
            finally:
                self.started = False
                server_log = self.root / "server.log"
                if server_log.exists():
                    with open(self.log_path, "ab") as log:
                        log.write(server_log.read_bytes())

    def remove(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresCluster:
        try:
            self.start()
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def _as_owner() -> dict[str, Any]:
    """``subprocess`` arguments that run a server binary as ``postgres`` when we are root."""
    if os.geteuid() != 0:
        return {}
    return {"user": "postgres", "group": "postgres", "extra_groups": [], "env": {**os.environ, "HOME": "/tmp"}}
