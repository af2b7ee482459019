"""Start moto's SQS server and Azurite's queue service on free loopback ports.

Used by the test suite, ``make demo`` and ``make bench``, so all three run against the
same local services. Each emulator gets fresh, random credentials: a secret that shows
up in a log can then be traced to exactly one run.
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from devtools import azurite_patch
from devtools.support import wait_until

ROOT = Path(__file__).resolve().parent.parent

ISSUED_SECRETS: list[str] = []
"""Every secret handed to an emulator in this process: the test suite scans its logs for them."""
AZURITE_QUEUE = ROOT / "node_modules" / ".bin" / "azurite-queue"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], name: str, timeout: float = 30.0) -> None:
    def listening() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with code {process.returncode} before listening on port {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            return False

    what = f"{name} to listen on 127.0.0.1:{port}"
    wait_until(listening, what=what, timeout=timeout, interval=0.1, failure=RuntimeError)


@dataclass
class _Process:
    name: str
    port: int
    command: list[str]
    env: dict[str, str] = field(default_factory=dict, repr=False)  # Azurite's account key is in it
    log_path: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            self.command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **self.env}, start_new_session=True
        )
        wait_for_port(self.port, self.process, self.name)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()


@dataclass
class MotoSQS(_Process):
    """moto in server mode: a real HTTP endpoint speaking the SQS API."""

    access_key_id: str = ""
    secret_access_key: str = field(default="", repr=False)  # a failed test's traceback shows the fixture
    region: str = "us-east-1"

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def create(cls, port: int | None = None, log_path: Path | None = None) -> MotoSQS:
        port = port or free_port()
        secret = secrets.token_urlsafe(30)
        ISSUED_SECRETS.append(secret)
        return cls(
            name="moto_server",
            port=port,
            # moto_server, made thread-safe (see devtools/moto_server.py)
            command=[sys.executable, str(ROOT / "devtools" / "moto_server.py"), "-H", "127.0.0.1", "-p", str(port)],
            log_path=log_path,
            access_key_id="AKIA" + secrets.token_hex(8).upper(),
            secret_access_key=secret,
        )


@dataclass
class AzuriteQueue(_Process):
    """Azurite's queue service with a fresh account and key."""

    account: str = ""
    key: str = field(default="", repr=False)
    workdir: Path | None = None

    @property
    def account_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{self.account}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={self.account};AccountKey={self.key};"
            f"QueueEndpoint={self.account_url};"
        )

    @classmethod
    def create(cls, port: int | None = None, log_path: Path | None = None) -> AzuriteQueue:
        if not AZURITE_QUEUE.exists():
            raise RuntimeError(f"{AZURITE_QUEUE} is missing; run `npm ci` (make does this for you)")
        azurite_patch.ensure_patched()  # multibyte characters split between two reads (Azure/Azurite#2670)
        port = port or free_port()
        account = "fluke" + secrets.token_hex(4)
        key = base64.b64encode(secrets.token_bytes(64)).decode()
        ISSUED_SECRETS.append(key)
        workdir = Path(tempfile.mkdtemp(prefix="azurite-"))
        return cls(
            name="azurite-queue",
            port=port,
            command=[
                str(AZURITE_QUEUE),
                "--queueHost",
                "127.0.0.1",
                "--queuePort",
                str(port),
                "--location",
                str(workdir),
                "--skipApiVersionCheck",
                "--disableTelemetry",
                "--loose",
            ],
            env={"AZURITE_ACCOUNTS": f"{account}:{key}"},
            log_path=log_path,
            account=account,
            key=key,
            workdir=workdir,
        )

    def stop(self) -> None:
        super().stop()

    def remove(self) -> None:
        """Stop and delete the data folder (a restart keeps the data, as a real service would)."""
        self.stop()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
