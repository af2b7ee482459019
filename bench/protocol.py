"""How the benchmark talks to its worker processes.

Every contender runs in a process of its own (the counting proxies run on threads of the
benchmark's process, and must not share a GIL with a contender). A worker reads its spec
as one JSON line on stdin and reports JSON events on stdout, each line prefixed with
:data:`MARK`; everything else it prints (SDK and Airflow logging, fluke-api's prints)
goes to a log file. ``bench/fluke_api_runner.py`` speaks the same protocol without
importing this module (it runs in fluke-api's own virtualenv).
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO

MARK = "@@bench@@ "
ROOT = Path(__file__).resolve().parent.parent


# -- worker side -------------------------------------------------------------------------------------
def emit(event: str, **fields: Any) -> None:
    sys.stdout.write(MARK + json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


def read_message(stream: TextIO = sys.stdin) -> dict[str, Any]:
    line = stream.readline()
    if not line:
        raise SystemExit("the benchmark closed the worker's stdin")
    return json.loads(line)  # type: ignore[no-any-return]


# -- benchmark side ----------------------------------------------------------------------------------
class WorkerError(RuntimeError):
    pass


class Worker:
    """A worker process: send it JSON lines, wait for its events."""

    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path, name: str) -> None:
        self.name = name
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._log.write(f"\n===== {name}: {' '.join(argv[:3])} ...\n")
        self._log.flush()
        self.process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env=env,
            cwd=ROOT,
            bufsize=1,
        )
        self._events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, name=f"bench-read-{name}", daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.process.pid

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith(MARK):
                self._events.put(json.loads(line[len(MARK) :]))
            else:
                self._log.write(line)
        self._events.put(None)

    def send(self, **message: Any) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message) + "\n")
        self.process.stdin.flush()

    def expect(self, event: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.kill()
                raise WorkerError(f"{self.name}: no {event!r} event within {timeout:.0f}s (log: {self.log_path})")
            try:
                message = self._events.get(timeout=remaining)
            except queue.Empty:
                continue
            if message is None:
                code = self.process.wait()
                raise WorkerError(f"{self.name} exited with code {code} before {event!r} (log: {self.log_path})")
            if message.get("event") == "error":
                self.kill()
                raise WorkerError(f"{self.name} failed: {message.get('message')} (log: {self.log_path})")
            if message.get("event") == event:
                return message
            self._log.write(f"(unexpected event {message})\n")

    def finish(self, timeout: float = 60.0) -> int:
        if self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self.process.wait()
        self._reader.join(timeout=10)
        self._log.close()
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def worker_env(extra: dict[str, str], airflow_home: Path) -> dict[str, str]:
    """The environment of a worker: no AWS config of the machine's user, a private AIRFLOW_HOME."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AIRFLOW_CONN_", "AZURE_"))}
    airflow_home.mkdir(parents=True, exist_ok=True)
    env.update(
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
        AIRFLOW_HOME=str(airflow_home),
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env
