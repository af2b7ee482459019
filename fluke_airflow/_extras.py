"""Which of the package's extras are installed, and the error that names the one to install.

The base package installs neither cloud provider's tree: SQS needs the extra ``amazon`` (the
amazon provider for the ``aws`` connection, boto3, aiobotocore), Azure Queue Storage the extra
``azure`` (azure-storage-queue, azure-identity, aiohttp).
"""

from __future__ import annotations

import importlib.util
from functools import cache

from fluke_airflow.exceptions import MissingExtraError

AWS_SDK = ("boto3", "botocore", "aiobotocore")
AZURE_SDK = ("azure.storage.queue", "azure.identity", "aiohttp")
EXTRAS: dict[str, tuple[str, tuple[str, ...]]] = {
    "amazon": ("Amazon SQS", ("airflow.providers.amazon", *AWS_SDK)),
    "azure": ("Azure Queue Storage", AZURE_SDK),
}
"""extra: (the service it serves, the modules it installs)."""

REQUIREMENTS: dict[str, tuple[str, ...]] = {
    "amazon": ("apache-airflow-providers-amazon>=9.12.0", "boto3>=1.39", "aiobotocore>=2.24"),
    "azure": ("azure-storage-queue>=12.13", "azure-identity>=1.24", "aiohttp>=3.12"),
}
"""extra: what it installs, as pyproject.toml lists it (tests/test_extras.py keeps the two equal).

The error names these packages rather than ``fluke-airflow[amazon]``: fluke-airflow is not on
PyPI (it is installed from a wheel or a git URL, whose location the error cannot know), and
Airflow's CLI prints the message through rich, whose markup takes ``[amazon]`` for a style tag
and drops it. No square brackets, then."""


def _found(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


@cache
def missing(extra: str) -> tuple[str, ...]:
    """The modules of ``extra`` that cannot be imported (none: the extra is installed)."""
    return tuple(m for m in EXTRAS[extra][1] if not _found(m))


def installed(extra: str) -> bool:
    return not missing(extra)


def require(extra: str, what: str, modules: tuple[str, ...] | None = None) -> None:
    """Raise :class:`MissingExtraError` naming ``extra`` unless it is installed (or, given ``modules``,
    those of its modules); ``what`` says who needs it."""
    absent = tuple(m for m in missing(extra) if modules is None or m in modules)
    if absent:
        raise MissingExtraError(install_hint(extra, what, absent))


def install_hint(extra: str, what: str, absent: tuple[str, ...]) -> str:
    """The message of :class:`MissingExtraError`: a pip command that works wherever fluke-airflow
    came from, without square brackets (see :data:`REQUIREMENTS`)."""
    packages = " ".join(f"'{requirement}'" for requirement in REQUIREMENTS[extra])
    return (
        f"{what} needs {EXTRAS[extra][0]}, which is not installed (missing: {', '.join(absent)}). "
        f"Wherever Airflow runs, install it: pip install {packages} "
        f"(what fluke-airflow's extra {extra!r} installs; or reinstall fluke-airflow from its wheel "
        f"or git URL with the extra {extra!r} or 'all', as the installation docs show)"
    )
