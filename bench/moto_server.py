"""moto's SQS server without the hot spots that make it quadratic in the queue's length.

``python -m bench.moto_server -H 127.0.0.1 -p PORT`` is ``moto_server`` with patches that
change no behaviour, only cost. moto 5.2.5, unpatched, measures itself rather than the
clients at the issue's 2,000 messages:

1. ``Queue.attributes`` computes *every* queue attribute, including three approximate message
   counts that each scan the whole queue with two datetimes per message. The send path reads
   it for ``ContentBasedDeduplication`` once per message, and the receive path three times per
   received message (``MessageRetentionPeriod``). Sending 2,000 messages took ~30 s and
   polling them ~100 s whatever the client did. While a send or a receive runs, ``attributes``
   here leaves out the three counts, which those paths never read.
2. ``moto.core.utils.unix_time()`` without an argument builds two datetimes to return what
   ``time.time()`` returns; it is called twice per message per queue scan.
3. ``Queue.delete_message`` scans the queue twice and rebuilds it for every receipt handle;
   here it stops at the message that has the handle and removes just that one.

A receive still scans the visible messages (O(n) per request), for every contender alike.
Thread safety is not patched here: :func:`patch_moto` ends with :mod:`devtools.moto_server`'s
patch, as in the test suite, which then also serialises the replaced ``delete_message``.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from devtools import moto_server


def patch_moto() -> None:
    """The cost patches, then devtools' thread-safety patch over them (it wraps what they replaced)."""
    import moto.core.utils as core_utils
    import moto.sqs.models as sqs_models
    from moto.sqs.exceptions import ReceiptHandleIsInvalid

    original_unix_time = core_utils.unix_time

    def unix_time(dt: Any = None) -> float:
        if dt is None:
            return time.time()
        return float(original_unix_time(dt))

    core_utils.unix_time = unix_time
    sqs_models.unix_time = unix_time  # type: ignore[attr-defined]

    Queue = sqs_models.Queue
    hot = threading.local()
    all_attributes = Queue.attributes.fget  # type: ignore[attr-defined]
    assert all_attributes is not None
    counts = {
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesDelayed",
        "ApproximateNumberOfMessagesNotVisible",
    }
    cheap_names = [name for name in Queue.BASE_ATTRIBUTES if name not in counts]
    underscored = {n: core_utils.camelcase_to_underscores(n) for n in [*Queue.BASE_ATTRIBUTES, *Queue.FIFO_ATTRIBUTES]}

    def attributes(queue: Any) -> dict[str, Any]:
        if not getattr(hot, "active", False):
            return all_attributes(queue)  # type: ignore[no-any-return]
        names = cheap_names + (list(Queue.FIFO_ATTRIBUTES) if queue.fifo_queue else [])
        result = {name: getattr(queue, underscored[name]) for name in names}
        if queue.redrive_policy:
            result["RedrivePolicy"] = json.dumps(queue.redrive_policy)
        return {k: str(v).lower() if isinstance(v, bool) else v for k, v in result.items()}

    Queue.attributes = property(attributes)  # type: ignore[assignment,method-assign]

    def without_counts(method: Any) -> Any:
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            hot.active = True
            try:
                return method(self, *args, **kwargs)
            finally:
                hot.active = False

        return wrapper

    backend = sqs_models.SQSBackend
    backend.send_message = without_counts(backend.send_message)  # type: ignore[method-assign]
    backend.receive_message = without_counts(backend.receive_message)  # type: ignore[method-assign]

    def delete_message(queue: Any, receipt_handle: str) -> None:
        if receipt_handle in queue.deleted_messages:
            return  # already deleted: SQS accepts that
        for index, message in enumerate(queue._messages):  # under devtools' lock: nothing else changes it
            if message.had_receipt_handle(receipt_handle):
                queue.pending_messages.discard(message)
                queue.deleted_messages.update(message.all_receipt_handles)
                del queue._messages[index]
                return
        raise ReceiptHandleIsInvalid()

    Queue.delete_message = delete_message  # type: ignore[method-assign,assignment]
    moto_server.patch_thread_safety()


def main() -> None:
    patch_moto()
    moto_server.main()  # devtools' entry point: its patch (in place already, so a no-op), then moto


if __name__ == "__main__":
    main()
