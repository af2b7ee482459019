"""A migrated SQLite metadata database, made once per installed Airflow and copied where one is needed.

``airflow db migrate`` on a fresh SQLite file takes tens of seconds of CPU. The suite needs one per
pytest worker and one per e2e stack, and they used to start together: on a busy 2-core machine
five migrations at once outlasted the 300 s a test (its fixtures included) may take. Now the first
caller migrates a template, under a lock; everyone else waits for it and copies the file, which
takes milliseconds. The template is kept under ``.work/airflow-db``, keyed by the interpreter and
every installed distribution's version, so a changed Airflow (or another virtualenv, such as
``make test-compat``'s) gets a template of its own; the three newest are kept.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / ".work" / "airflow-db"


def _key() -> str:
    """The interpreter and the versions of every installed distribution, hashed."""
    installed = sorted(f"{d.metadata['Name']}=={d.version}" for d in metadata.distributions())
    return hashlib.sha256("\n".join([sys.prefix, *installed]).encode()).hexdigest()[:16]


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    TEMPLATES.mkdir(parents=True, exist_ok=True)
    with open(TEMPLATES / ".lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def template(env: Mapping[str, str] | None = None, log: Path | None = None) -> Path:
    """The migrated template for this virtualenv (migrated now if there is none yet, while every
    other caller waits on the lock). ``env``: the environment ``airflow db migrate`` runs in
    (its ``AIRFLOW_HOME`` and database URL are replaced); ``log``: where its output goes."""
    with _locked():
        return _template(env, log)


def _template(env: Mapping[str, str] | None, log: Path | None) -> Path:
    path = TEMPLATES / f"{_key()}.db"
    if path.exists():
        return path
    for old in sorted(TEMPLATES.glob("*.db"), key=lambda p: p.stat().st_mtime)[:-3]:  # keep a few virtualenvs'
        old.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(dir=TEMPLATES) as home:
        database = Path(home) / "airflow.db"
        run_env = {
            **(env if env is not None else os.environ),
            "AIRFLOW_HOME": home,
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{database}",
        }
        airflow = Path(sys.executable).parent / "airflow"
        with open(log or os.devnull, "ab") as out:
            result = subprocess.run(
                [str(airflow), "db", "migrate"],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=run_env,
                cwd=home,
                timeout=900,
            )
        if result.returncode:
            where = f"; see {log}" if log else ""
            raise RuntimeError(f"`airflow db migrate` failed with code {result.returncode}{where}")
        os.replace(database, path)
    return path


def migrated(database: Path, env: Mapping[str, str] | None = None, log: Path | None = None) -> None:
    """Put a migrated metadata database at ``database`` (a SQLite file path that does not exist yet)."""
    if database.exists():
        raise FileExistsError(f"{database} exists; migrate it with `airflow db migrate` instead")
    database.parent.mkdir(parents=True, exist_ok=True)
    partial = database.with_suffix(".partial")
    with _locked():  # a template is only ever removed under the lock
        shutil.copyfile(_template(env, log), partial)
    os.replace(partial, database)
