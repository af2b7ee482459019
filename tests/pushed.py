"""What ``push_many`` answered, as the tests check it: accepted (a message id) or refused (``None``)."""

from __future__ import annotations

from collections.abc import Sequence


def accepted(results: Sequence[str | None]) -> list[bool]:
    """True where the service gave the message an id; the ids must be distinct non-empty strings."""
    ids = [r for r in results if r is not None]
    assert all(isinstance(r, str) and r for r in ids), results
    assert len(set(ids)) == len(ids), f"repeated message ids: {results}"
    return [r is not None for r in results]
