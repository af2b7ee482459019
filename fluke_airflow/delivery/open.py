"""Open the queue of a connection for deliveries: blocking (sensors, in a worker) or asyncio
(triggers and watchers, in the triggerer)."""

from __future__ import annotations

import asyncio
import importlib
import sys
from typing import Any

from fluke_airflow.delivery.deliveries import delivery_options
from fluke_airflow.queues.arguments import DeliverySettings
from fluke_airflow.queues.options import DeliveryOptions

_SDK_MODULES = {
    "amazon": ("fluke_airflow.hooks.sqs", "aiobotocore.session"),
    "azure": ("fluke_airflow.hooks.azure", "azure.storage.queue.aio"),
}
"""What a trigger imports before its first queue, per extra: only installed extras are imported."""
_sdk_import: asyncio.Future[None] | None = None


def _queue_options(message_encoding: str | None) -> dict[str, Any]:
    options: dict[str, Any] = {"suppress_output": True}  # the sensor and the trigger log for themselves
    if message_encoding:
        options["message_encoding"] = message_encoding
    return options


def connection_overrides(settings: DeliverySettings) -> dict[str, Any]:
    """What the settings change of the connection (SQS: the amazon provider's hook arguments)."""
    found = {"region_name": settings.region_name, "verify": settings.verify, "config": settings.botocore_config}
    return {name: value for name, value in found.items() if value is not None}


def open_queue(
    conn_id: str, queue: str, message_encoding: str | None = None, *, deadline: Any = None, **overrides: Any
) -> Any:
    """The blocking queue ``queue`` of ``conn_id``, open (use it as a context manager);
    ``overrides``: :func:`connection_overrides`; ``deadline``
    (:func:`~fluke_airflow.hooks.deadline.task_deadline`) bounds the SDK's retries."""
    from fluke_airflow.hooks import get_queue_hook

    hook = get_queue_hook(conn_id, **overrides)
    return hook.get_queue(queue, deadline=deadline, **_queue_options(message_encoding))


def ready_for_delivery(queue: Any, settings: DeliverySettings) -> DeliveryOptions:
    """The settings checked against this service's limits (and its own redrive policy), as options;
    the dead-letter queue opened."""
    options = delivery_options(queue, settings)
    queue.check_redrive(options.max_receive_count)
    if options.dead_letter_queue:
        queue.attach_dead_letter_queue(options.dead_letter_queue)
    return options


DEFAULT_STALL_GRACE = 60.0


def stall_grace() -> float | None:
    """``[fluke_airflow] receive_stall_grace``: seconds past a receive's own wait after which a
    trigger gives up on it and rebuilds its client (0 turns the watchdog off)."""
    try:
        from fluke_airflow._airflow import conf

        grace = conf.getfloat("fluke_airflow", "receive_stall_grace", fallback=DEFAULT_STALL_GRACE)
    except Exception:
        grace = DEFAULT_STALL_GRACE
    return grace if grace > 0 else None


def _sdk_modules() -> list[str]:
    from fluke_airflow._extras import installed

    return [module for extra, modules in _SDK_MODULES.items() if installed(extra) for module in modules]


def _import_sdks() -> None:
    for module in _sdk_modules():
        importlib.import_module(module)


async def sdks_imported() -> None:
    """Import the hooks and async SDKs (1-2 s) once per process, in a worker thread; every trigger
    awaits that one import.

    Imported on the triggerer's event loop, they would stall every trigger there; imported by a
    thread per trigger, a restarted triggerer's triggers would race each other's imports.
    """
    global _sdk_import
    if all(name in sys.modules for name in _sdk_modules()):
        return
    if _sdk_import is None or _sdk_import.get_loop() is not asyncio.get_running_loop() or _sdk_import.cancelled():
        _sdk_import = asyncio.ensure_future(asyncio.to_thread(_import_sdks))
    await asyncio.shield(_sdk_import)


async def aopen_queue(settings: DeliverySettings, *, watch: bool = False) -> tuple[Any, DeliveryOptions]:
    """The asyncio queue of ``settings``, open and ready for deliveries, on the client that every
    queue of the connection shares in this event loop (memory grows with clients); and the options
    of its deliveries (``watch``: a watcher's)."""
    from fluke_airflow.hooks import aget_queue_hook

    await sdks_imported()
    hook = await aget_queue_hook(settings.conn_id, **connection_overrides(settings))
    queue = await hook.aget_queue(
        settings.queue, share_client=True, stall_grace=stall_grace(), **_queue_options(settings.message_encoding)
    )
    options = delivery_options(queue, settings, watch=watch)
    await queue.open()
    queue.check_redrive(options.max_receive_count)
    if options.dead_letter_queue:
        await queue.attach_dead_letter_queue(options.dead_letter_queue)
    return queue, options
