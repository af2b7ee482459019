"""The Airflow version matrix: lock one constraint file per supported Airflow minor, and run the
compatibility tier (``pytest -m compat``) in each minor's virtualenv.

    python -m devtools.compat lock [3.0 3.1 ...]   # rewrite compat/constraints-<minor>.txt
    python -m devtools.compat run [3.0 3.1 ...]    # what `make test-compat` runs once the venvs exist

Airflow publishes its constraint files only on GitHub. In their place each minor's file is the
resolution of this package's ``test`` extra with the latest patch of that minor, everything as it
was on PyPI the day after that patch came out (uv's ``--exclude-newer``), as Airflow's own
constraints of that release were: so the providers are the ones released alongside it, and so
are the SDKs and the test harness (pytest, moto). The newest minor uses the pins of
``constraints.txt``, the ones ``make test`` runs with.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMPAT = ROOT / "compat"
VENVS = ROOT / ".work" / "compat"

MINORS: dict[str, tuple[str, str | None]] = {
    # minor: (latest patch, snapshot date: the day after that patch's upload to PyPI)
    "3.0": ("3.0.6", "2025-08-30T23:59:59Z"),
    "3.1": ("3.1.8", "2026-03-12T23:59:59Z"),
    "3.2": ("3.2.2", "2026-05-30T23:59:59Z"),
    "3.3": ("3.3.2", None),  # the suite's own pins (constraints.txt)
}


NEWER_THAN_SNAPSHOT = ("apache-airflow-providers-common-messaging",)
"""The ``fluke`` scheme needs common-messaging 2.0 (schemes), released after Airflow 3.0.6."""


def constraint_file(minor: str) -> Path:
    return COMPAT / f"constraints-{minor}.txt"


def lock(minor: str) -> None:
    patch, snapshot = MINORS[minor]
    uv = str(Path(sys.executable).parent / "uv")
    with tempfile.TemporaryDirectory() as tmp:
        wanted = Path(tmp) / "airflow.in"
        wanted.write_text(f"apache-airflow=={patch}\n")
        command = [uv, "pip", "compile", "--quiet", "--python", sys.executable, "--no-annotate",
                   "--custom-compile-command", f"python -m devtools.compat lock {minor}",
                   "pyproject.toml", str(wanted), "--extra", "test", "-o", str(constraint_file(minor))]  # fmt: skip
        if snapshot is None:
            command += ["-c", "constraints.txt"]
        else:
            command += ["--exclude-newer", snapshot]
            # What this package's own extras require beyond the snapshot comes from later releases.
            command += [f"--exclude-newer-package={name}=2100-01-01T00:00:00Z" for name in NEWER_THAN_SNAPSHOT]
        subprocess.run(command, cwd=ROOT, check=True)
    print(f"wrote {constraint_file(minor).relative_to(ROOT)}")


def run(minors: list[str]) -> int:
    """Run the compatibility tier in each minor's venv, one after the other; a summary at the end."""
    results: list[tuple[str, int, float]] = []
    for minor in minors:
        python = VENVS / minor / "bin" / "python"
        print(f"\n===== Airflow {MINORS[minor][0]} ({python.relative_to(ROOT)})", flush=True)
        started = time.monotonic()
        args = [str(python), "-m", "pytest", "-m", "compat", "-p", "no:cacheprovider"]
        args += os.environ.get("PYTEST_ARGS", "").split()
        done = subprocess.run(args, cwd=ROOT)
        results.append((minor, done.returncode, time.monotonic() - started))
    print("\n===== compatibility matrix")
    for minor, code, seconds in results:
        print(f"Airflow {MINORS[minor][0]}: {'passed' if code == 0 else f'FAILED (exit {code})'} in {seconds:.0f}s")
    return 0 if all(code == 0 for _, code, _ in results) else 1


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("lock", "run"):
        print(__doc__)
        return 2
    minors = argv[1:] or list(MINORS)
    unknown = [m for m in minors if m not in MINORS]
    if unknown:
        print(f"unknown Airflow minor(s) {unknown}; supported: {', '.join(MINORS)}")
        return 2
    if argv[0] == "lock":
        for minor in minors:
            lock(minor)
        return 0
    return run(minors)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
