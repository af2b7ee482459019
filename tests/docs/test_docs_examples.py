"""Every example in the docs (docs/**/*.rst and README.md) runs, against moto's SQS server and Azurite.

The how-to pages include their code from ``example_dags/`` (``literalinclude``), which
tests/airflow/test_example_dags.py runs. What the pages and the README still write inline is run
here, page by page, the blocks of a page in order in one namespace (as a reader types them):

* ``python`` blocks are executed. The credentials and endpoints in them are the docs' placeholders;
  the run points them at the emulators the way a user would point the same code at a local
  endpoint: ``AWS_ENDPOINT_URL_SQS``/``_STS`` and moto's keys in the environment (botocore's own
  settings), an AWS config file with the profiles the docs name, every Azure connection string
  replaced with Azurite's, and ``http://127.0.0.1:<port>`` endpoints with the emulators'. The queues
  a block names (``queue="..."``) exist and hold three messages when it starts. ``process`` and
  ``handle`` are the guide's placeholders for the reader's code: here they record what they get.
  A block whose point is ``raise Exception()`` must raise exactly that; a block that polls forever
  (``polling_frequency``) is stopped by ``process`` once it has the three messages.
* A block that is a dict literal describes a payload: its keys must be those of the real payload.
* ``pycon`` blocks run as doctests (``...`` matches anything).
* A ``python`` block with a DAG (the README's) is loaded as a DAG file: no import error, every
  DAG it names is there with its tasks (``dag.test()`` runs only DAGs of a configured bundle).
* ``AIRFLOW_CONN_...`` exports in ``bash`` blocks must be valid connections; the emulator ones are
  tested with ``airflow connections test`` against the emulators.

Shell commands other than connection exports (``make``, ``pip``, ``aws``, ``az``) are not run.
"""

from __future__ import annotations

import ast
import contextlib
import doctest
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from azure.core.exceptions import ResourceExistsError

from devtools.admin import AzureService, SQSService
from devtools.emulators import AzuriteQueue, MotoSQS

pytestmark = pytest.mark.usefixtures("airflow_env")

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").rglob("*.rst") if "_build" not in p.parts)
PAGES.append("README.md")
SEEDED = ["m-0", "m-1", "m-2"]
REGIONS = ("us-east-1", "eu-west-1")
AZURE_NAME = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}")


@dataclass
class Block:
    page: str
    line: int
    language: str
    code: str

    def __str__(self) -> str:
        return f"{self.page}:{self.line} ({self.language})"


def blocks(page: str) -> list[Block]:
    """The code blocks of a page, in order: reST ``code-block`` directives and Markdown fences."""
    lines = (ROOT / page).read_text().splitlines()
    found: list[Block] = []
    if page.endswith(".md"):
        i = 0
        while i < len(lines):
            if lines[i].startswith("```") and lines[i][3:].strip():
                start, language = i, lines[i][3:].split()[0]
                i += 1
                body = []
                while not lines[i].startswith("```"):
                    body.append(lines[i])
                    i += 1
                found.append(Block(page, start + 1, language, "\n".join(body)))
            i += 1
        return found
    for i, line in enumerate(lines):
        m = re.match(r"(\s*)\.\. code-block:: (\w+)", line)
        if not m:
            continue
        indent = len(m.group(1))
        j = i + 1
        while j < len(lines) and lines[j].strip().startswith(":"):  # options
            j += 1
        body = []
        while j < len(lines) and (not lines[j].strip() or len(lines[j]) - len(lines[j].lstrip()) > indent):
            body.append(lines[j])
            j += 1
        text = "\n".join(body).strip("\n")
        width = min(len(x) - len(x.lstrip()) for x in body if x.strip())
        found.append(Block(page, i + 1, m.group(2), "\n".join(x[width:] for x in text.splitlines())))
    return found


def test_every_page_with_code_is_run_here() -> None:
    counted = {page: len(blocks(page)) for page in PAGES}
    assert counted["docs/queues.rst"] >= 16 and counted["README.md"] >= 5, counted
    for page in PAGES:
        for block in blocks(page):
            assert block.language in ("python", "pycon", "bash", "console", "text"), block


def test_no_code_line_is_wider_than_120_columns() -> None:
    """The pages fit 120-column code (tests/e2e checks that in a browser); ruff keeps example_dags/ there."""
    wide = [
        f"{block}: {len(line)} columns"
        for page in PAGES
        if page != "README.md"
        for block in blocks(page)
        for line in block.code.splitlines()
        if len(line) > 120
    ]
    assert wide == []


# -- what the blocks run against --------------------------------------------------------------------------
class _Enough(Exception):
    """Raised by ``process`` to stop a block that polls forever."""


class _Rewrite(ast.NodeTransformer):
    """Point the docs' placeholder credentials and endpoints at the emulators."""

    def __init__(self, moto: MotoSQS, azurite: AzuriteQueue) -> None:
        self.moto, self.azurite = moto, azurite

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        value = node.value
        if isinstance(value, str):
            if value.startswith("DefaultEndpointsProtocol="):
                return ast.copy_location(ast.Constant(self.azurite.connection_string), node)
            if value == "http://127.0.0.1:10001/devstoreaccount1":
                return ast.copy_location(ast.Constant(self.azurite.account_url), node)
            if re.fullmatch(r"http://127\.0\.0\.1:\d+", value):
                return ast.copy_location(ast.Constant(self.moto.endpoint_url), node)
        return node


def _queue_names(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        named = isinstance(node, ast.keyword) and node.arg in ("queue", "queue_name", "sqs_queue")
        if named and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            names.add(node.value.value)
    return names


@dataclass
class Emulators:
    moto: MotoSQS
    azurite: AzuriteQueue
    sqs: SQSService
    azure: AzureService

    def clients(self) -> Iterator[Any]:
        for region in REGIONS:
            yield boto3.client(
                "sqs",
                region_name=region,
                endpoint_url=self.moto.endpoint_url,
                aws_access_key_id=self.moto.access_key_id,
                aws_secret_access_key=self.moto.secret_access_key,
            )

    def prepare(self, names: set[str]) -> None:
        """Each queue exists on both services (where its name is valid), and SEEDED was just sent to
        it (not purged first: SQS, and the suite's moto, allow one purge a minute)."""
        for name in names:
            for client in self.clients():
                fifo = {"FifoQueue": "true", "ContentBasedDeduplication": "true"}
                attributes = fifo if name.endswith(".fifo") else {}
                url = client.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
                if not name.endswith(".fifo"):
                    entries = [{"Id": str(i), "MessageBody": body} for i, body in enumerate(SEEDED)]
                    client.send_message_batch(QueueUrl=url, Entries=entries)
            if AZURE_NAME.fullmatch(name):
                client = self.azure.client.get_queue_client(name)
                with contextlib.suppress(ResourceExistsError):
                    client.create_queue()
                for body in SEEDED:
                    client.send_message(body)


@pytest.fixture
def emulators(moto: MotoSQS, azurite: AzuriteQueue, sqs: SQSService, azure: AzureService, tmp_path: Path,
              monkeypatch: pytest.MonkeyPatch) -> Emulators:  # fmt: skip
    config = tmp_path / "aws-config"
    profile = (
        f"region = us-east-1\naws_access_key_id = {moto.access_key_id}\n"
        f"aws_secret_access_key = {moto.secret_access_key}\n"
    )
    config.write_text(f"[default]\n{profile}[profile analytics]\n{profile}[profile base]\n{profile}")
    (tmp_path / "aws-credentials").write_text("")
    for name, value in {
        "AWS_CONFIG_FILE": str(config),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "aws-credentials"),
        "AWS_ACCESS_KEY_ID": moto.access_key_id,
        "AWS_SECRET_ACCESS_KEY": moto.secret_access_key,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_SQS": moto.endpoint_url,
        "AWS_ENDPOINT_URL_STS": moto.endpoint_url,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return Emulators(moto, azurite, sqs, azure)


# -- the pages ---------------------------------------------------------------------------------------------
def _standins(processed: list[Any], forever: bool) -> dict[str, Any]:
    def process(item: Any) -> None:
        processed.extend(item if isinstance(item, list) else [item])
        if forever and len(processed) >= len(SEEDED):
            raise _Enough

    async def handle(item: Any) -> None:
        processed.append(item)

    return {"process": process, "handle": handle, "__name__": "__docs__"}


def _shape(tree: ast.Module) -> dict[str, Any] | None:
    if len(tree.body) == 1 and isinstance(tree.body[0], ast.Expr) and isinstance(tree.body[0].value, ast.Dict):
        return ast.literal_eval(tree.body[0].value)  # type: ignore[no-any-return]
    return None


def _check_shape(block: Block, documented: dict[str, Any], emulators: Emulators) -> None:
    """The keys a payload block shows are the real payload's."""
    from fluke_airflow.auth import AWSAuth
    from fluke_airflow.delivery import payloads
    from fluke_airflow.queues import AmazonSQSQueue

    emulators.prepare({"docs-shape"})
    auth = AWSAuth(region="us-east-1")
    with AmazonSQSQueue(auth=auth, queue="docs-shape") as queue:
        queue.push("with attributes", message_attributes={"kind": {"DataType": "String", "StringValue": "x"}})
        messages = [m for batch in queue.poll_messages(batch_size=10) for m in batch]
    public = messages[-1].public()
    if "status" in documented:
        real = payloads.task_success("docs-shape", "Amazon SQS", False, messages)
        nested = messages[0].to_dict()
    elif "messages" in documented:
        raw = payloads.delivery("docs-shape", "Amazon SQS", messages)
        (real,) = payloads.watch_events(raw, messages, event_per_message=False)
        nested = public
    else:
        real, nested = public, None
    if nested is None:
        assert set(documented) <= set(real), f"{block}: {set(documented) - set(real)} are not in a real message dict"
        return
    assert set(documented) == set(real), f"{block} shows keys {sorted(documented)}, the payload has {sorted(real)}"
    shown = documented["messages"][0]
    assert set(shown) <= set(nested), f"{block}: {set(shown) - set(nested)} are not in a real message"


def _import_dag_block(block: Block, tmp_path: Path, emulators: Emulators) -> None:
    from airflow_support import dagbag

    emulators.prepare(_queue_names(ast.parse(block.code)))
    folder = tmp_path / "dags"
    folder.mkdir(exist_ok=True)
    (folder / "docs_block.py").write_text(block.code)
    bag = dagbag(folder)
    assert bag.import_errors == {}, f"{block}: {bag.import_errors}"
    # Imported, not run: dag.test() only runs DAGs of a configured bundle (example_dags/ here).
    dag_ids = re.findall(r'DAG\(dag_id="([^"]+)"', block.code)
    assert dag_ids and set(dag_ids) <= set(bag.dags), f"{block}: {dag_ids} vs {sorted(bag.dags)}"
    for dag_id in dag_ids:
        assert bag.dags[dag_id].tasks, f"{block}: {dag_id} has no task"


AZURITE_WELL_KNOWN_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
"""Azurite's published key of its default account; the suite's Azurite has an account of its own."""


def _run_connections(block: Block, emulators: Emulators, tmp_path: Path) -> int:
    """The ``export AIRFLOW_CONN_X='{...}'`` of a bash block: valid; the emulator ones pass the CLI's test."""
    from airflow.models.connection import Connection

    tested = 0
    for conn_id, text in re.findall(r"export AIRFLOW_CONN_(\w+)='(.*?)'", block.code, re.S):
        conn = Connection(conn_id=conn_id.lower(), **json.loads(text))
        assert conn.conn_type in ("aws", "azure_storage_queue", "wasb"), block
        if "127.0.0.1" not in text:
            continue
        text = re.sub(r"http://127\.0\.0\.1:10001/devstoreaccount1", emulators.azurite.account_url, text)
        text = re.sub(r"http://127\.0\.0\.1:\d+(?![\d/])", emulators.moto.endpoint_url, text)
        text = text.replace('"<account key>"', json.dumps(emulators.azurite.key))
        text = text.replace(json.dumps(AZURITE_WELL_KNOWN_KEY), json.dumps(emulators.azurite.key))  # devstoreaccount1's
        text = text.replace('"password": "test"', json.dumps({"password": emulators.moto.secret_access_key})[1:-1])
        text = text.replace('"login": "test"', json.dumps({"login": emulators.moto.access_key_id})[1:-1])
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
            f"AIRFLOW_CONN_{conn_id}": text,
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
        }
        airflow = str(Path(sys.executable).parent / "airflow")
        done = subprocess.run(
            [airflow, "connections", "test", conn_id.lower()], env=env, cwd=tmp_path, capture_output=True, text=True,
            timeout=300, check=False,
        )  # fmt: skip
        assert "Connection success!" in done.stdout, f"{block}: airflow connections test failed:\n{done.stdout[-2000:]}"
        tested += 1
    return tested


@pytest.mark.timeout(600)
def _runnable(page: str) -> bool:
    return any(b.language in ("python", "pycon") or "AIRFLOW_CONN_" in b.code for b in blocks(page))


@pytest.mark.parametrize("page", [p for p in PAGES if _runnable(p)])
def test_the_pages_examples_run(page: str, emulators: Emulators, tmp_path: Path) -> None:
    namespace: dict[str, Any] = {}
    ran = 0
    for block in blocks(page):
        if block.language == "bash":
            ran += _run_connections(block, emulators, tmp_path)
            continue
        if block.language == "pycon":
            emulators.prepare({m for m in re.findall(r'queue="([^"]+)"', block.code)})
            namespace.update(_standins([], forever=False))
            test = doctest.DocTestParser().get_doctest(block.code, namespace, str(block), block.page, block.line)
            runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
            out: list[str] = []
            results = runner.run(test, out=out.append)
            assert results.failed == 0, f"{block}:\n{''.join(out)}"
            namespace.update(test.globs)
            ran += 1
            continue
        if block.language != "python":
            continue
        tree = ast.parse(block.code)
        shape = _shape(tree)
        if shape is not None:
            _check_shape(block, shape, emulators)
            ran += 1
            continue
        if "with DAG(" in block.code:
            _import_dag_block(block, tmp_path, emulators)
            ran += 1
            continue
        emulators.prepare(_queue_names(tree))
        processed: list[Any] = []
        forever = "polling_frequency" in block.code
        namespace.update(_standins(processed, forever))
        rewritten = ast.fix_missing_locations(_Rewrite(emulators.moto, emulators.azurite).visit(tree))
        code = compile(rewritten, str(block), "exec")
        expects_raise = "raise Exception()" in block.code
        try:
            exec(code, namespace)
        except _Enough:
            assert forever, f"{block} was stopped, but it does not poll forever"
        except Exception as error:
            if not (expects_raise and type(error) is Exception):
                raise AssertionError(f"{block} raised {error!r}") from error
        else:
            assert not expects_raise, f"{block} should have raised its Exception(): the queue had {SEEDED}"
            assert not forever, f"{block} polls forever but ended"
        ran += 1
    assert ran, f"{page}: no block was run"
