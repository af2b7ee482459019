"""moto's SQS server, made thread-safe the way SQS is.

``python -m devtools.moto_server -H 127.0.0.1 -p PORT`` is ``moto_server`` with one patch.
moto 5.2.5 serves requests on threads but mutates a queue without a lock:

* two receives that run at once both hand out the same message (each marks it received on
  its own snapshot of the queue), so two consumers hold one message;
* ``Queue.delete_message`` rebuilds the message list, so a delete beside another delete or a
  send puts deleted messages back or drops sent ones.

Real SQS does neither, and tests that run several consumers on one queue (deferred sensors in
one triggerer) would fail at random on moto's races, not ours. Here the operations that read
and change a queue's messages run one at a time; a long poll lets go of the lock while it
waits, so one waiting receive does not hold up the others.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


class _Serial:
    """One lock for every queue's messages, re-entrant per thread, that a waiter can let go of."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._local = threading.local()

    @contextmanager
    def held(self) -> Iterator[None]:
        depth = getattr(self._local, "depth", 0)
        if not depth:
            self._lock.acquire()
        self._local.depth = depth + 1
        try:
            yield
        finally:
            self._local.depth = depth
            if not depth:
                self._lock.release()

    @contextmanager
    def released(self) -> Iterator[None]:
        depth = getattr(self._local, "depth", 0)
        if depth:
            self._local.depth = 0
            self._lock.release()
        try:
            yield
        finally:
            if depth:
                self._lock.acquire()
                self._local.depth = depth


SERIAL = _Serial()


def _serialised(method: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with SERIAL.held():
            return method(*args, **kwargs)

    wrapper.__name__ = getattr(method, "__name__", "wrapper")
    wrapper.__doc__ = method.__doc__
    return wrapper


def patch_thread_safety() -> None:
    """Serialise moto's SQS queue mutations (idempotent)."""
    import moto.sqs.models as sqs_models

    queue_cls, backend_cls = sqs_models.Queue, sqs_models.SQSBackend
    if getattr(queue_cls, "_fluke_serialised", False):
        return
    for name in ("add_message", "delete_message"):
        setattr(queue_cls, name, _serialised(getattr(queue_cls, name)))
    for name in (
        "receive_message",
        "change_message_visibility",
        "change_message_visibility_batch",
        "purge_queue",
        "get_queue_attributes",
    ):
        setattr(backend_cls, name, _serialised(getattr(backend_cls, name)))

    wait_for_messages = queue_cls.wait_for_messages

    def wait_unlocked(queue: Any, timeout: int) -> None:
        with SERIAL.released():
            wait_for_messages(queue, timeout)

    queue_cls.wait_for_messages = wait_unlocked  # type: ignore[method-assign]
    queue_cls._fluke_serialised = True  # type: ignore[attr-defined]


def main() -> None:
    patch_thread_safety()
    from moto.server import main as moto_main

    moto_main(sys.argv[1:])


if __name__ == "__main__":
    main()
