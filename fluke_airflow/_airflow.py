"""What the installed Airflow does, where this provider must behave differently because of it.

Each fact names the Airflow change it depends on; the docs' version table (docs/installation.rst)
is the same list, seen by users.
"""

from __future__ import annotations

from functools import cache


@cache
def version() -> tuple[int, int]:
    """The installed Airflow's (major, minor)."""
    from airflow import __version__

    major, minor, *_ = (int("".join(c for c in part if c.isdigit()) or 0) for part in __version__.split("."))
    return major, minor


def has_shared_streams() -> bool:
    """Airflow 3.3 added shared streams in ack mode: one poll per queue, deletes after the asset
    events are stored (``airflow.triggers.shared_stream``)."""
    return version() >= (3, 3)


def has_asset_state_store() -> bool:
    """Airflow 3.3 added the asset state store (AIP-103), which watchers can read and write."""
    return version() >= (3, 3)


def scheduler_strands_events() -> bool:
    """Whether an asset event stored while the consumer DAG already has one waiting, or is at
    ``max_active_runs``, waits for a later event before any run consumes it.

    Airflow 3.0 to 3.3 build an asset-triggered run from the events up to the moment the first
    queued one arrived (apache/airflow#56050); apache/airflow#70972, on Airflow's main branch and
    in no release yet, makes the run queue reference its events. Taken to hold for every release
    before 3.4 until a release shows otherwise.
    """
    return version() < (3, 4)
