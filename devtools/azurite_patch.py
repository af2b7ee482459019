"""Azurite's queue service decodes each chunk of a request body on its own: fixed in place.

Azurite 3.37's ``readRequestIntoText`` (``dist/src/queue/generated/utils/serializer.js``)
collects the request stream's Buffers and joins them with ``segments.join("")``, which decodes
every chunk to a string separately. A multibyte UTF-8 character split between two chunks becomes
two U+FFFD replacement characters (3 bytes each): the message is stored corrupted, and a body at
Azure's 64 KiB limit grows past it and is refused with ``RequestBodyTooLarge``. Where the split
falls depends on how Node's 64 KiB socket reads cut the request (the header length, so the
queue name's, and whether headers and body arrive in one read), so a test fails for one queue
name and passes for another. Reported upstream as Azure/Azurite#2670 (the same code in the
table service; open). The real service counts the message's UTF-8 bytes (Put Message: "A
message must be in a format that can be included in an XML request with UTF-8 encoding. The
encoded message can be up to 64 KiB in size").

The fix is the one that issue proposes: concatenate the Buffers, then decode once.
:func:`ensure_patched` applies it (idempotent, atomic) each time an Azurite is created, so a
``node_modules`` from any ``npm ci`` gets it; an Azurite whose code is neither the known bug nor
the fix stops the suite with a message instead of running unpatched.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERIALIZER = ROOT / "node_modules" / "azurite" / "dist" / "src" / "queue" / "generated" / "utils" / "serializer.js"

BROKEN = 'const joined = segments.join("");'
FIXED = (
    'const joined = Buffer.concat(segments.map(s => (typeof s === "string" ? Buffer.from(s) : s)))'
    '.toString("utf8"); // fluke-airflow: devtools/azurite_patch.py (Azure/Azurite#2670)'
)


def ensure_patched(path: Path = SERIALIZER) -> bool:
    """Make Azurite's queue service decode a request body once, whole; True if this call changed it."""
    text = path.read_text(encoding="utf-8")
    if FIXED in text:
        return False
    if text.count(BROKEN) != 1:
        raise RuntimeError(
            f"{path} does not read request bodies the way Azurite 3.37 does (Azure/Azurite#2670): check whether "
            "this Azurite still decodes each chunk on its own, then update or drop devtools/azurite_patch.py"
        )
    partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # xdist workers may patch at the same time
    partial.write_text(text.replace(BROKEN, FIXED), encoding="utf-8")
    os.replace(partial, path)
    return True


if __name__ == "__main__":
    changed = ensure_patched()
    print(f"{SERIALIZER.relative_to(ROOT)}: {'patched' if changed else 'already patched'}", file=sys.stderr)
