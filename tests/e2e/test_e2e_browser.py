"""The Airflow UI in headless Chromium: add an ``azure_storage_queue`` connection through the form,
see this provider's fields and their defaults, and get an answer from the Test button; and the
built docs, served over HTTP, fitting a 1400 px window (``docs_pages.mjs``).

Driven by ``tests/e2e/browser/connection_form.mjs`` and ``docs_pages.mjs`` (npm's ``playwright-core`` with Debian's
``/usr/bin/chromium``, installed by ``devtools/install_chromium.sh`` when missing). Screenshots go to
``.work/test-logs/e2e/``; with ``FLUKE_UPDATE_SCREENSHOT=1`` the form's one also replaces
``docs/images/connection-form.png`` (the docs show it: retake it when the form changes).
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from devtools.airflow_local import USERNAME

if TYPE_CHECKING:
    from conftest import Stack

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).resolve().parent / "browser" / "connection_form.mjs"
DOCS_SCRIPT = Path(__file__).resolve().parent / "browser" / "docs_pages.mjs"
SHOTS = ROOT / ".work" / "test-logs" / "e2e"
DOCS_SCREENSHOT = ROOT / "docs" / "images" / "connection-form.png"

STANDARD_FIELDS = ["Account name or account URL", "Client ID (service principal)", "Account key or client secret"]
EXTRA_FIELDS = [
    "Connection string",
    "SAS token",
    "Tenant ID (service principal)",
    "Managed identity client ID",
    "Queue endpoint",
    "Message encoding",
]
EXTRA_FIELD_NAMES = [
    "connection_string", "sas_token", "tenant_id", "managed_identity_client_id", "queue_endpoint", "message_encoding",
]  # fmt: skip


def _ensure_chromium() -> None:
    if not Path("/usr/bin/chromium").exists():
        subprocess.run(["sh", str(ROOT / "devtools" / "install_chromium.sh")], check=True, timeout=900)
    if not (ROOT / "node_modules" / "playwright-core").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=ROOT, check=True, timeout=900)


@pytest.mark.timeout(900)  # Chromium against the API server's UI: slow steps on a busy machine
def test_azure_connection_form_and_test_button(stack: Stack) -> None:
    _ensure_chromium()
    SHOTS.mkdir(parents=True, exist_ok=True)
    conn_id = "fluke_azure_ui"
    env = {
        **os.environ,
        "AIRFLOW_URL": stack.airflow.url,
        "AIRFLOW_USERNAME": USERNAME,
        "AIRFLOW_PASSWORD": stack.airflow.password,
        "AZURE_CONNECTION_STRING": stack.azurite.connection_string,
        "CONN_ID": conn_id,
        "SCREENSHOT_FORM": str(SHOTS / "connection-form.png"),
        "SCREENSHOT_RESULT": str(SHOTS / "connection-test.png"),
    }
    done = subprocess.run(
        ["node", str(SCRIPT)], env=env, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False
    )
    lines = done.stdout.strip().splitlines()
    assert lines, f"the browser script printed nothing (exit {done.returncode}):\n{done.stderr[-3000:]}"
    result = json.loads(lines[-1])
    assert done.returncode == 0 and "error" not in result, f"{result.get('error')}\n{done.stderr[-3000:]}"

    # The form shows this provider's fields for the connection type.
    assert all(f in result["fields"]["standard"] for f in STANDARD_FIELDS), result["fields"]
    assert all(f in result["fields"]["extra"] for f in EXTRA_FIELDS), result["fields"]
    assert result["fields"]["connection_string_input_type"] == "password", "the connection string is a secret"
    # The defaults the form starts with: `text` for the message encoding (not `null`), every
    # other extra field empty.
    defaults = result["fields"]["defaults"]
    assert set(defaults) >= set(EXTRA_FIELD_NAMES), defaults
    assert defaults["message_encoding"] == "text", defaults
    assert all(defaults[name] == "" for name in EXTRA_FIELD_NAMES if name != "message_encoding"), defaults

    # The Test button answered, and it is our hook's test_connection that succeeded.
    final = result["tests"][-1]
    assert final["http_status"] == 200, result["tests"]
    assert final["body"]["status"] is True, final
    assert final["body"]["message"] == f"Connected to the queue service at {stack.azurite.account_url}"
    assert final["toast"].startswith("Test Connection Successful"), final
    if result.get("ui_port_bug"):
        # Airflow 3.3.2's UI bug (port 0 sent for a connection without a port); the first press
        # got Airflow's own refusal, not an error from this provider.
        first = result["tests"][0]
        assert first["http_status"] == 400 and first["sent_port"] == 0, first
        print("note: worked around Airflow's UI sending port=0 on Test:", first["body"]["detail"])

    # The saved connection is in Airflow, with the connection string masked by the API.
    saved = stack.api.request("GET", f"/connections/{conn_id}")
    assert saved["conn_type"] == "azure_storage_queue"
    assert json.loads(saved["extra"])["connection_string"] == "***"
    assert stack.azurite.key not in json.dumps(saved)

    if os.environ.get("FLUKE_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(SHOTS / "connection-form.png", DOCS_SCREENSHOT)


DOCS_PAGES = ["connections/azure_storage_queue.html", "installation.html"]
"""The connection form's field table and the five-column Airflow version table: the widest."""


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def _serve(directory: Path) -> tuple[str, Callable[[], None]]:
    """A loopback HTTP server for the built docs, on a free port, in a thread."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()

    return f"http://127.0.0.1:{server.server_address[1]}", stop


@pytest.mark.timeout(900)  # a Sphinx build with -W: minutes of CPU on a busy machine
def test_docs_pages_fit_at_1400_px(tmp_path: Path) -> None:
    """The docs built as ``make docs`` builds them (``-W``), served over HTTP, in Chromium at 1400 px:
    the widest table and code blocks fit the content column without a scrollbar, and the theme
    shows its search, the page's table of contents and the version (issue 23: the alabaster theme's
    fixed width ran them off the page)."""
    from fluke_airflow import __version__

    _ensure_chromium()
    SHOTS.mkdir(parents=True, exist_ok=True)
    html = tmp_path / "html"
    sphinx = str(Path(sys.executable).parent / "sphinx-build")
    build = subprocess.run(
        [sphinx, "-W", "--keep-going", "-q", "-b", "html", "docs", str(html)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert build.returncode == 0, f"sphinx-build -W failed:\n{build.stdout[-3000:]}\n{build.stderr[-3000:]}"
    url, stop = _serve(html)
    try:
        env = {**os.environ, "DOCS_URL": url, "PAGES": ",".join(DOCS_PAGES), "SHOT_DIR": str(SHOTS), "WIDTH": "1400"}
        done = subprocess.run(
            ["node", str(DOCS_SCRIPT)], env=env, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False
        )
    finally:
        stop()
    lines = done.stdout.strip().splitlines()
    assert lines, f"the browser script printed nothing (exit {done.returncode}):\n{done.stderr[-3000:]}"
    result = json.loads(lines[-1])
    assert done.returncode == 0 and "error" not in result, f"{result.get('error')}\n{done.stderr[-3000:]}"

    for path in DOCS_PAGES:
        page = result["pages"][path]
        assert Path(page["screenshot"]).is_file()
        assert page["tables"] >= 1 and page["code_blocks"] >= 1, page
        assert page["overflowing"] == [], f"{path}: wider than their box at 1400 px: {page['overflowing']}"
        assert page["page_scroll_width"] <= page["page_client_width"], f"{path} scrolls sideways: {page}"
        assert page["article"]["clientWidth"] >= 1000, f"{path}: the content column is narrow: {page['article']}"
        assert page["has_search"] and page["has_page_toc"], page
        assert page["version_shown"] == __version__, page
    # The connection form's field table is there, and it is the one measured.
    assert "Azure Queue Storage" in result["pages"]["connections/azure_storage_queue.html"]["title"]
