"""QueueRedriveOperator: move dead letters back to their queue once the downstream is fixed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from fluke_airflow import _args

if TYPE_CHECKING:
    from airflow.sdk import Context


class QueueRedriveOperator(BaseOperator):
    """Move up to ``max_messages`` (default: all) messages from a dead-letter or poison queue back
    to ``queue_name``, the queue they came from.

    Each message is sent to ``queue`` first and deleted from the dead-letter queue only once
    ``queue`` accepted it (at least once: a message whose delete failed is moved again by the next
    redrive). It goes back as it was: the same body, and on SQS its own message attributes (without
    the ``fluke.dead_letter.*`` reason this package added) and, to a FIFO queue, its message group.
    The XCom return value holds one entry per message: ``{"id", "new_id", "moved", "deleted"}``.
    The task fails, after storing that XCom, if any message could not be moved.

    :param conn_id: Airflow connection id (``aws``, ``azure_storage_queue`` or ``wasb``).
    :param queue_name: the queue the messages go back to (SQS: a name or queue URL). Templated.
        (``queue`` is Airflow's: the executor queue.)
    :param dead_letter_queue: where they are now. Default: on Azure ``<queue>-poison`` (where
        ``max_receive_count`` moves them, as Azure Functions does); on SQS the dead-letter queue of
        ``queue``'s RedrivePolicy. Templated.
    :param max_messages: move at most this many (default: until the dead-letter queue is empty). Templated.
    :param visibility_timeout: seconds a message being moved stays hidden in the dead-letter queue.
    :param message_encoding: Azure only, ``"text"`` or ``"base64"`` (default: the connection's).
    """

    template_fields: Sequence[str] = ("conn_id", "queue_name", "dead_letter_queue", "max_messages")
    ui_color = "#fce5cd"

    def __init__(
        self,
        *,
        conn_id: str,
        queue_name: str,
        dead_letter_queue: str | None = None,
        max_messages: int | None = None,
        visibility_timeout: int = 60,
        message_encoding: str | None = None,
        **kwargs: Any,
    ) -> None:
        _args.reject_misspelt(type(self), kwargs)
        super().__init__(**kwargs)
        _args.optional_int("max_messages", max_messages, minimum=1)
        _args.optional_int("visibility_timeout", visibility_timeout, minimum=1)
        if message_encoding not in (None, "text", "base64"):
            raise ValueError(f"message_encoding must be 'text', 'base64' or None, got {message_encoding!r}")
        self.conn_id = conn_id
        self.queue_name = queue_name
        self.dead_letter_queue = dead_letter_queue
        self.max_messages = max_messages
        self.visibility_timeout = visibility_timeout
        self.message_encoding = message_encoding

    def execute(self, context: Context) -> list[dict[str, Any]]:
        from fluke_airflow._airflow import AirflowException
        from fluke_airflow.delivery.open import open_queue

        limit = _args.as_int("max_messages", self.max_messages, minimum=1, allow_none=True)
        with open_queue(self.conn_id, self.queue_name, self.message_encoding) as source:
            dead_letters = self.dead_letter_queue or _default_dead_letter_queue(source)
        with open_queue(self.conn_id, dead_letters, self.message_encoding) as queue:
            redriven = queue.redrive(self.queue_name, max_messages=limit, visibility_timeout=self.visibility_timeout)
        results = [{"id": r.message.id, "new_id": r.new_id, "moved": bool(r.new_id), "deleted": r.deleted}
                   for r in redriven]  # fmt: skip
        moved = sum(1 for r in results if r["moved"])
        self.log.info("Moved %d of %d message(s) from %r back to %r", moved, len(results), dead_letters,
                      self.queue_name)  # fmt: skip
        undeleted = [r["id"] for r in results if r["moved"] and not r["deleted"]]
        if undeleted:
            self.log.warning("%d moved message(s) could not be deleted from %r and will be moved again by the next "
                             "redrive: %s", len(undeleted), dead_letters, ", ".join(undeleted[:20]))  # fmt: skip
        failed = [r["id"] for r in results if not r["moved"]]
        if failed:
            context["ti"].xcom_push(key="return_value", value=results)
            raise AirflowException(
                f"{len(failed)} of {len(results)} message(s) could not be sent back to {self.queue_name!r} and "
                f"stay in {dead_letters!r}: {', '.join(failed[:20])}"
            )
        return results


def _default_dead_letter_queue(source: Any) -> str:
    poison: str | None = source.poison_queue()
    if poison:
        return poison
    redrive = source.redrive_policy()
    if redrive is not None:
        return str(redrive[0])
    raise ValueError(
        f"{source.service} queue {source.get_name()!r} has no RedrivePolicy naming its dead-letter queue: "
        "give dead_letter_queue"
    )
