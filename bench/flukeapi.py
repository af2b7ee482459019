"""fluke-api 0.5.0 in a virtualenv of its own under ``.work/bench/fluke-api-venv``.

Its exact pins (``boto3==1.28.0``, ``azure-identity==1.13.0``, ``azure-storage-queue==12.6.0``,
...) conflict with Airflow's, so it cannot be installed beside fluke-airflow. The virtualenv
is made with the project's ``uv`` from the interpreter that runs the benchmark (Python 3.11
installs every pin from wheels), falling back to ``python3.10`` if that fails, and is reused
while its marker file names the same requirement.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REQUIREMENT = "fluke-api==0.5.0"
ROOT = Path(__file__).resolve().parent.parent


def _uv() -> str:
    uv = Path(sys.executable).parent / "uv"
    if uv.exists():
        return str(uv)
    found = shutil.which("uv")
    if not found:
        raise RuntimeError("uv is missing from the project's virtualenv; run `make setup`")
    return found


def _create(venv: Path, python: str, log: Path) -> None:
    shutil.rmtree(venv, ignore_errors=True)
    with open(log, "a", encoding="utf-8") as out:
        subprocess.run([_uv(), "venv", "--quiet", "--python", python, str(venv)], check=True, stdout=out, stderr=out)
        subprocess.run(
            [_uv(), "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), REQUIREMENT],
            check=True,
            stdout=out,
            stderr=out,
        )


def ensure_venv(work: Path) -> Path:
    """The python of a virtualenv with fluke-api 0.5.0 (created on first use)."""
    venv = work / "fluke-api-venv"
    marker = venv / ".bench-installed"
    python = venv / "bin" / "python"
    if marker.exists() and marker.read_text().strip() == REQUIREMENT and python.exists():
        return python
    work.mkdir(parents=True, exist_ok=True)
    log = work / "fluke-api-install.log"
    errors = []
    for interpreter in (sys.executable, "python3.10"):
        try:
            _create(venv, interpreter, log)
        except (subprocess.CalledProcessError, OSError) as error:
            errors.append(f"{interpreter}: {error}")
            continue
        marker.write_text(REQUIREMENT + "\n")
        return python
    raise RuntimeError(f"could not install {REQUIREMENT} into {venv}: {errors} (see {log})")
