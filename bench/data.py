"""The messages every contender sends: unique ASCII bodies of ~200 bytes."""

from __future__ import annotations

BODY_BYTES = 200


def bodies(count: int, tag: str = "m", size: int = BODY_BYTES) -> list[str]:
    """``count`` unique bodies of exactly ``size`` bytes (``tag`` keeps batches apart)."""
    return [f"{tag}{i:07d}|".ljust(size, "x") for i in range(count)]
