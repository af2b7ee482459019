"""devtools/cpu_hog.py (make test-busy): the busy loops run while the command does, and not after."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from devtools import cpu_hog

# Exits 3 if every hog named in HOG_PIDS is alive (not a zombie), 1 otherwise.
ALL_ALIVE = """
import os, sys
states = [open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] for pid in os.environ["HOG_PIDS"].split()]
sys.exit(3 if states and "Z" not in states else 1)
"""


def test_the_hogs_run_beside_the_command_and_stop_with_it(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[subprocess.Popen[bytes]] = []
    original = cpu_hog.start_hogs

    def recording(count: int) -> list[subprocess.Popen[bytes]]:
        started.extend(original(count))
        os.environ["HOG_PIDS"] = " ".join(str(p.pid) for p in started)  # the command inherits it
        return started

    monkeypatch.setattr(cpu_hog, "start_hogs", recording)
    monkeypatch.setenv("HOG_PIDS", "")
    assert cpu_hog.run([sys.executable, "-c", ALL_ALIVE], 2) == 3  # the command's status is the runner's
    assert len(started) == 2 and all(p.poll() is not None for p in started)


def test_a_command_is_required() -> None:
    with pytest.raises(SystemExit):
        cpu_hog.main(["--processes", "1"])
