"""Which of the package's extras are installed, and the error that names the one to install.

The base package installs neither cloud provider's tree (``pip install fluke-airflow``): SQS
needs ``[amazon]`` (the amazon provider for the ``aws`` connection, boto3, aiobotocore), Azure
Queue Storage ``[azure]`` (azure-storage-queue, azure-identity, aiohttp).
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
        service = EXTRAS[extra][0]
        raise MissingExtraError(
            f"{what} needs {service}, which the fluke-airflow extra {extra!r} installs: "
            f"pip install 'fluke-airflow[{extra}]' (or '[all]') wherever Airflow runs "
            f"(missing: {', '.join(absent)})"
        )
