"""QueuePeekOperator: look at messages without consuming them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from fluke_airflow import _args

if TYPE_CHECKING:
    from airflow.sdk import Context


class QueuePeekOperator(BaseOperator):
    """Return (as XCom) up to ``max_messages`` bodies from ``queue``, deleting nothing.

    Azure peeks natively. SQS has no peek: the messages are received and made visible
    again at once, which raises their receive count (a queue with a redrive policy counts
    peeks towards ``maxReceiveCount``).

    :param conn_id: Airflow connection id (``aws``, ``azure_storage_queue`` or ``wasb``).
    :param queue_name: the message queue's name (SQS: a name or queue URL). Templated. (``queue``
        is Airflow's: the executor queue.)
    :param max_messages: 1 to 10.
    """

    template_fields: Sequence[str] = ("conn_id", "queue_name", "max_messages")
    ui_color = "#deebf7"

    def __init__(self, *, conn_id: str, queue_name: str, max_messages: int = 10, **kwargs: Any) -> None:
        _args.reject_misspelt(type(self), kwargs)
        super().__init__(**kwargs)
        _args.optional_int("max_messages", max_messages, minimum=1, maximum=10)
        self.conn_id = conn_id
        self.queue_name = queue_name
        self.max_messages = max_messages

    def execute(self, context: Context) -> list[str]:
        from fluke_airflow.hooks import get_queue_hook

        hook = get_queue_hook(self.conn_id)
        with hook.get_queue(self.queue_name, suppress_output=True) as queue:
            bodies = queue.peek(max_messages=_args.as_int("max_messages", self.max_messages, minimum=1, maximum=10))
        self.log.info("Peeked at %d message(s) in %s queue %r", len(bodies), hook.service, self.queue_name)
        return bodies
