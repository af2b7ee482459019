"""Write the sensor's and the trigger's argument lists from their one declaration.

Every delivery argument is declared once, in :mod:`fluke_airflow.queues.arguments`. The sensor's
and the trigger's ``__init__`` keep real, explicit keyword parameters (what an IDE completes,
what Airflow's ``default_args`` apply to, what the reference docs show with their real defaults),
and their docstrings a ``:param:`` line for each. Both are generated here, between marker
comments, from the declarations::

    python -m devtools.signatures          # rewrite the generated blocks
    python -m devtools.signatures --check  # fail if they differ from the declarations (make lint)

Adding an argument: declare it in ``queues/arguments.py``, run this, use it where it matters.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from fluke_airflow.queues import arguments

ROOT = Path(__file__).resolve().parent.parent
TARGETS = {
    arguments.SENSOR: ROOT / "fluke_airflow" / "sensors" / "poll.py",
    arguments.TRIGGER: ROOT / "fluke_airflow" / "triggers" / "poll.py",
}


def _block(kind: str) -> re.Pattern[str]:
    return re.compile(rf"(?P<indent>[ ]*)# -- generated {kind}: (?P<context>\w+) --\n.*?(?P=indent)# -- end --\n", re.S)


PARAMS = _block("arguments")
ATTRIBUTES = _block("attributes")


def parameters(context: str, indent: str) -> str:
    """The keyword parameters of ``context`` that have a default (the required ones are written by hand)."""
    lines = [f"{indent}# -- generated arguments: {context} --"]
    for name, spec in arguments.specs():
        if context in spec.defaults and spec.defaults[context] is not arguments.REQUIRED:
            lines.append(f"{indent}{name}: {spec.annotation} = {arguments.default_source(spec, context)},")
    return "\n".join([*lines, f"{indent}# -- end --"]) + "\n"


def attributes(context: str, indent: str) -> str:
    """The operator attributes that hold ``context``'s arguments, typed for mypy."""
    lines = [f"{indent}# -- generated attributes: {context} --"]
    for name, spec in arguments.specs():
        if context in spec.defaults:
            lines.append(f"{indent}{arguments.shown_name(context, name)}: {spec.annotation}")
    return "\n".join([*lines, f"{indent}# -- end --"]) + "\n"


def generated(source: str) -> str:
    source = PARAMS.sub(lambda m: parameters(m["context"], m["indent"]), source)
    return ATTRIBUTES.sub(lambda m: attributes(m["context"], m["indent"]), source)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a generated block is out of date")
    check = parser.parse_args(argv).check
    stale = []
    for path in TARGETS.values():
        source = path.read_text()
        if not PARAMS.search(source):
            print(f"{path}: no generated-arguments markers", file=sys.stderr)
            return 2
        wanted = generated(source)
        if wanted != source:
            stale.append(path)
            if not check:
                path.write_text(wanted)
    if check and stale:
        names = ", ".join(str(p.relative_to(ROOT)) for p in stale)
        print(f"out of date with fluke_airflow/queues/arguments.py: {names}; run python -m devtools.signatures")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
