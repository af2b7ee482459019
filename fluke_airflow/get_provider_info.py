"""Airflow's entry point into this provider: the contents of ``provider.yaml``."""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Any


@cache
def _info() -> dict[str, Any]:
    import yaml

    data: dict[str, Any] = yaml.safe_load(files("fluke_airflow").joinpath("provider.yaml").read_text("utf-8"))
    return data


def get_provider_info() -> dict[str, Any]:
    return dict(_info())


def connection_type_info(conn_type: str) -> dict[str, Any]:
    for entry in _info()["connection-types"]:
        if entry["connection-type"] == conn_type:
            return dict(entry)
    raise KeyError(conn_type)
