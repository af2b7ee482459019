"""The settings of one delivery (what a sensor poke, a trigger or a watcher receives), checked once.

The sensor checks its arguments when the DAG file is parsed, skipping those that are still
templates, and again once they are rendered; the trigger checks them when it is built. Both go
through :func:`check_arguments`, so an argument is allowed or refused the same way everywhere,
with the same message. The limits are the services' (:mod:`fluke_airflow.queues.limits`): before
the connection is known, the larger of the two; the queue checks its own once it is open.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from fluke_airflow import _args
from fluke_airflow.queues import limits
from fluke_airflow.queues import validation as check

ENCODINGS = (None, "text", "base64")
DEFAULT_MAX_DELIVERY_BYTES = 1_048_576
"""The sensor's default: what XCom should carry at most in one value."""
DEFAULT_MAX_EVENT_BYTES = 1_048_576
"""A watcher's default cap on the bodies of one asset event (Airflow stores the payload in its
metadata database); a larger batch is cut there and the rest waits for the next event."""

DEFAULT_RETRY_DELAY = 30.0
DEFAULT_MAX_RETRY_DELAY = 900.0
"""A trigger's messages that failed to reach Airflow come back after 30 s, then 60 s, 120 s... up to
15 minutes: a failing hand-off is not retried in a tight loop (a sensor uses its task's retry settings)."""

FILTERS = (
    "message_filtering",
    "message_filtering_match_values",
    "message_filtering_config",
    "message_filtering_attributes",
)
"""The amazon provider's filter arguments (and attribute filters): see :mod:`fluke_airflow.queues.filters`."""

INTEGERS: dict[str, tuple[int, int | None, bool]] = {
    # name: (minimum, maximum, None allowed)
    "batch_size": (1, None, False),
    "num_messages": (1, None, True),
    "visibility_timeout": (0, limits.MAX_VISIBILITY, False),
    "wait_time_seconds": (0, limits.MAX_WAIT, False),
    "max_delivery_bytes": (1, None, True),
    "max_receive_count": (1, None, True),
}


def check_arguments(
    values: Mapping[str, Any], *, templates_allowed: bool = False, rendered: bool = False
) -> dict[str, Any]:
    """The delivery arguments in ``values`` checked, with a clear error naming the first bad one.

    ``templates_allowed`` (an operator's arguments at parse time): a value that is still a
    template is passed through, to be checked after rendering. ``rendered`` (those arguments
    after rendering): Jinja renders numbers as text, so ``"10"`` is taken as 10; elsewhere (a
    trigger's arguments) text is refused.
    """

    def pending(name: str) -> bool:
        return templates_allowed and _args.is_template(values.get(name))

    checked = dict(values)
    for name, (minimum, maximum, allow_none) in INTEGERS.items():
        if name in values and not pending(name):
            read = _args.as_int if rendered or templates_allowed else check.integer
            checked[name] = read(name, values[name], minimum=minimum, maximum=maximum, allow_none=allow_none)
    if "pre_delivery_delete" in values:
        check.boolean("pre_delivery_delete", values["pre_delivery_delete"])
    if "poke_interval" in values and not pending("poke_interval"):
        checked["poke_interval"] = check.non_negative_number("poke_interval", values["poke_interval"])
    for name in ("retry_delay", "max_retry_delay"):
        if name in values:
            checked[name] = check.seconds(name, values[name], maximum=limits.MAX_VISIBILITY,
                                          allow_none=name == "max_retry_delay")  # fmt: skip
    if "retry_exponential_backoff" in values:
        checked["retry_exponential_backoff"] = check.backoff_multiplier(
            "retry_exponential_backoff", values["retry_exponential_backoff"]
        )
    if values.get("message_encoding") not in ENCODINGS and not pending("message_encoding"):
        raise ValueError(f"message_encoding must be 'text', 'base64' or None, got {values['message_encoding']!r}")
    unmatched = values.get("unmatched", "leave")
    if not pending("unmatched"):
        _args.check_dead_letter_args(values.get("max_receive_count"), values.get("dead_letter_queue"), unmatched)
    if not pending("unmatched"):
        from fluke_airflow.queues.filters import check_unmatched

        check_unmatched(unmatched, values.get("dead_letter_queue"))
    if any(values.get(name) is not None for name in FILTERS) and not any(map(pending, FILTERS)):
        from fluke_airflow.queues.filters import MessageFilter

        MessageFilter.build(*(values.get(name) for name in FILTERS))
        if values.get("message_filtering_match_values") is not None:
            checked["message_filtering_match_values"] = list(values["message_filtering_match_values"])
    return checked


@dataclass(frozen=True)
class DeliverySettings:
    """Everything that decides what one delivery receives; the trigger's serialised kwargs hold
    exactly these (and a shared stream's key is made of them)."""

    conn_id: str
    queue: str
    batch_size: int = 10
    num_messages: int | None = None
    pre_delivery_delete: bool = False
    visibility_timeout: int = 600  # longer than the triggerer's default shared-stream ack timeout (300 s)
    poke_interval: float = 5.0
    wait_time_seconds: int = 20
    message_encoding: str | None = None
    max_delivery_bytes: int | None = None
    max_receive_count: int | None = None
    dead_letter_queue: str | None = None
    message_filtering: str | None = None
    message_filtering_match_values: list[Any] | None = None
    message_filtering_config: Any = None
    message_filtering_attributes: dict[str, Any] | None = None
    unmatched: str = "leave"
    retry_delay: float = DEFAULT_RETRY_DELAY
    retry_exponential_backoff: float = 2.0
    max_retry_delay: float | None = DEFAULT_MAX_RETRY_DELAY

    @classmethod
    def checked(cls, *, rendered: bool = False, **values: Any) -> DeliverySettings:
        """Settings from arguments, each checked (``rendered``: see :func:`check_arguments`)."""
        unknown = set(values) - set(cls.names())
        if unknown:
            raise TypeError(f"unknown delivery setting(s) {sorted(unknown)}; allowed: {', '.join(cls.names())}")
        check.non_empty_str("conn_id", values.get("conn_id"))
        check.non_empty_str("queue", values.get("queue"))
        values = check_arguments(values, rendered=rendered)
        if "poke_interval" in values:
            values["poke_interval"] = float(values["poke_interval"])
        return cls(**values)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def pick(cls, kwargs: Mapping[str, Any]) -> DeliverySettings:
        """The settings among a trigger's serialised kwargs (they hold other arguments too)."""
        return cls(**{name: kwargs[name] for name in cls.names() if name in kwargs})

    @property
    def per_delivery(self) -> int:
        return self.num_messages or self.batch_size

    def as_kwargs(self) -> dict[str, Any]:
        return asdict(self)

    def retry_args(self) -> tuple[float, float, float | None]:
        """For :meth:`~fluke_airflow.queues.base.QueueBase.retry_policy`."""
        return self.retry_delay, self.retry_exponential_backoff, self.max_retry_delay

    def filters(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in FILTERS}

    def unfiltered(self) -> DeliverySettings:
        """These settings without the filters: what a shared poll loop receives for all its watchers."""
        return replace(
            self,
            message_filtering=None,
            message_filtering_match_values=None,
            message_filtering_config=None,
            message_filtering_attributes=None,
        )

    def stream_key(self) -> tuple[Any, ...]:
        """What must be equal for watchers to share one poll loop: everything but the filters,
        which each watcher applies to the shared deliveries itself."""
        return ("fluke_airflow.queue", *asdict(self.unfiltered()).values())
