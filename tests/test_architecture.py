"""The measures of docs/architecture.rst, kept: short functions, few parameters in the core, no
import cycle, and imports that only go down the layers. Read from the source (no import)."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "fluke_airflow"

LAYERS: list[tuple[str, ...]] = [
    # the foundation: what every layer may use
    ("", "exceptions", "_airflow", "_extras", "get_provider_info", "queues.limits", "queues.validation",
     "queues.message"),
    ("auth",),
    # the queue rules, free of I/O
    ("queues.filters", "queues.steps", "queues.options", "queues.metrics", "queues.arguments", "queues.management",
     "queues.attributes", "queues.lifecycle", "queues.flows"),
    # requests and the queue classes
    ("queues",),
    ("hooks",),
    # what the sensor, the settle sensor and the trigger share; checks of operator arguments
    ("delivery", "_args"),
    # Airflow's side
    ("operators", "sensors", "triggers", "messaging", "plugins"),
]
"""Each module belongs to the first entry that is it or a package above it; layers in order, lowest first."""


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def layer(module: str) -> int:
    best: tuple[int, int] | None = None  # (layer, length of the matching name): the longest match wins
    for number, names in enumerate(LAYERS):
        for name in names:
            matches = module == name or module.startswith(name + ".")
            if matches and (best is None or len(name) > best[1]):
                best = (number, len(name))
    if best is None:
        raise AssertionError(f"fluke_airflow.{module} is in no layer of tests/test_architecture.py's LAYERS")
    return best[0]


def imports(path: Path) -> set[str]:
    """The package modules ``path`` imports at run time (not the ones only type checkers see)."""
    tree = ast.parse(path.read_text())
    typing_only = {
        id(child)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for child in ast.walk(node)
    }
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("fluke_airflow"):
            base = node.module.removeprefix("fluke_airflow").lstrip(".")
            subs = [f"{base}.{a.name}".lstrip(".") for a in node.names if f"{base}.{a.name}".lstrip(".") in MODULES]
            found.update(subs if len(subs) == len(node.names) else [base, *subs])
        elif isinstance(node, ast.Import):
            found.update(a.name.removeprefix("fluke_airflow").lstrip(".") for a in node.names
                         if a.name.startswith("fluke_airflow"))  # fmt: skip
    return {m for m in found if m in MODULES} - {module_name(path)}


GRAPH = {name: imports(path) for name, path in MODULES.items()}


def functions(path: Path) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    return [n for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]


def test_no_function_is_longer_than_80_lines() -> None:
    long = [f"{name}.{f.name}: {f.end_lineno - f.lineno + 1}" for name, path in MODULES.items()
            for f in functions(path) if (f.end_lineno or 0) - f.lineno + 1 > 80]  # fmt: skip
    assert not long, long


def test_no_function_of_the_core_takes_more_than_8_parameters() -> None:
    def count(f: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
        names = [a.arg for a in (*f.args.posonlyargs, *f.args.args, *f.args.kwonlyargs)]
        return len([n for n in names if n not in ("self", "cls")])

    core = {name: path for name, path in MODULES.items() if name.startswith(("queues", "delivery"))}
    many = [f"{name}.{f.name}: {count(f)}" for name, path in core.items() for f in functions(path) if count(f) > 8]
    assert not many, many


def test_there_is_no_import_cycle() -> None:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in GRAPH[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for name in GRAPH:
        if name not in index:
            visit(name)
    assert not cycles, cycles


def test_imports_only_go_down_the_layers() -> None:
    upward: dict[str, list[str]] = defaultdict(list)
    for name, targets in GRAPH.items():
        for target in targets:
            if layer(target) > layer(name) and not (name == "" or target.startswith(name)):
                upward[name].append(target)
    assert not upward, dict(upward)


# -- one test-support layer (issue 22): each helper defined once across tests/, bench/ and devtools/ ----------
SUPPORT_HOMES = {
    "fresh_name": "devtools/support.py",
    "wait_until": "devtools/support.py",
    "wait_until_async": "devtools/support.py",
    "Service": "devtools/admin.py",
    "SQSService": "devtools/admin.py",
    "AzureService": "devtools/admin.py",
}
"""The shared helpers and where each is defined: tests, chaos, e2e, bench and devtools import them."""
ONCE = {
    *("unique_name", "wait_for", "until"),
    *("SQSAdmin", "AzureAdmin", "Backend", "SQSBackend", "AzureBackend"),
    *("Services", "ProxiedService", "Stack"),
}
"""Names the helpers had when they were copied (a second definition would be a copy again), and the
facades over devtools/admin.py (the queue suite's backends, bench's services, chaos's proxied
services, the e2e stack): at most one definition each."""


def support_definitions() -> dict[str, list[str]]:
    """Where each function or class of :data:`SUPPORT_HOMES` or :data:`ONCE` is defined, at any depth."""
    found: dict[str, list[str]] = defaultdict(list)
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    for folder in ("tests", "bench", "devtools"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, kinds) and (node.name in SUPPORT_HOMES or node.name in ONCE):
                    found[node.name].append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_each_test_helper_is_defined_once_in_its_home() -> None:
    found = support_definitions()
    misplaced = {
        name: found[name]
        for name, home in SUPPORT_HOMES.items()
        if [where.split(":")[0] for where in found[name]] != [home]
    }
    copied = {name: places for name, places in found.items() if name in ONCE and len(places) > 1}
    assert not misplaced, f"defined elsewhere than in their home (import them from there): {misplaced}"
    assert not copied, f"defined more than once (use devtools/support.py and devtools/admin.py): {copied}"
