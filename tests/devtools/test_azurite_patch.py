"""devtools/azurite_patch.py: Azurite's queue service decodes a request body once, whole."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from devtools import azurite_patch


def test_the_installed_azurite_is_patched() -> None:
    azurite_patch.ensure_patched()
    assert azurite_patch.FIXED in azurite_patch.SERIALIZER.read_text(encoding="utf-8")


def test_the_patch_is_applied_once_and_refuses_code_it_does_not_know(tmp_path: Path) -> None:
    copy = tmp_path / "serializer.js"
    copy.write_text(f"function readRequestIntoText(req) {{\n    {azurite_patch.BROKEN}\n}}\n", encoding="utf-8")
    assert azurite_patch.ensure_patched(copy) is True
    assert azurite_patch.ensure_patched(copy) is False
    assert azurite_patch.BROKEN not in copy.read_text(encoding="utf-8")
    copy.write_text("function readRequestIntoText(req) { return something_else(); }\n", encoding="utf-8")
    with pytest.raises(RuntimeError, match=r"Azure/Azurite#2670"):
        azurite_patch.ensure_patched(copy)


def test_the_fixed_line_joins_a_character_split_between_two_chunks() -> None:
    """The two lines in Node: the broken join decodes each half of an "é" to U+FFFD."""
    script = (
        "const segments = [Buffer.from([0x61, 0xc3]), Buffer.from([0xa9, 0x62])];"
        f"{{ {azurite_patch.BROKEN} console.log(JSON.stringify(joined)); }}"
        f"{{ {azurite_patch.FIXED}\n console.log(JSON.stringify(joined)); }}"
    )
    out = subprocess.run(["node", "-e", script], capture_output=True, text=True, check=True).stdout.split()
    assert out == ['"a\ufffd\ufffdb"', '"aéb"']
