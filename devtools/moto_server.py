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
waits, so one waiting receive does not hold up the others. This is the one place moto is made
thread-safe: bench/moto_server.py only adds cost patches and then runs this one over them.
"""

from __future__ import annotations

import functools
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


_QUEUE_METHODS = ("add_message", "delete_message")
_BACKEND_METHODS = (
    "receive_message",
    "change_message_visibility",
    "change_message_visibility_batch",
    "purge_queue",
    "get_queue_attributes",
)
_MARK = "_fluke_serialised"
"""Set on the methods this module installed, so that a second patch wraps only what changed since."""


def _serialised(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with SERIAL.held():
            return method(*args, **kwargs)

    setattr(wrapper, _MARK, True)
    return wrapper


def patch_thread_safety() -> None:
    """Serialise moto's SQS queue mutations (idempotent).

    Method by method, so that it can run again after other patches (bench/moto_server.py's cost
    patches) replaced some of these methods: it wraps the replacements and leaves the rest alone.
    """
    import moto.sqs.models as sqs_models

    queue_cls = sqs_models.Queue
    for cls, names in ((queue_cls, _QUEUE_METHODS), (sqs_models.SQSBackend, _BACKEND_METHODS)):
        for name in names:
            method = getattr(cls, name)
            if not getattr(method, _MARK, False):
                setattr(cls, name, _serialised(method))

    wait_for_messages = queue_cls.wait_for_messages
    if getattr(wait_for_messages, _MARK, False):
        return

    @functools.wraps(wait_for_messages)
    def wait_unlocked(queue: Any, timeout: int) -> None:
        with SERIAL.released():
            wait_for_messages(queue, timeout)

    setattr(wait_unlocked, _MARK, True)
    queue_cls.wait_for_messages = wait_unlocked  # type: ignore[method-assign,assignment]


def main() -> None:
    patch_thread_safety()
    from moto.server import main as moto_main

    moto_main(sys.argv[1:])


if __name__ == "__main__":
    main()
