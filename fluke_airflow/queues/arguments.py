"""Every delivery argument, declared once: name, type, default in each context, bounds and doc.

Three contexts take them: ``poll()`` in a task (:data:`POLL`), the
:class:`~fluke_airflow.sensors.QueuePollSensor` (:data:`SENSOR`) and the
:class:`~fluke_airflow.triggers.QueuePollTrigger` (:data:`TRIGGER`). Each argument is one field of
one of the dataclasses below, with :func:`argument` metadata: its default in each context that
takes it, its check, and its doc. Everything else derives from that: what each context accepts
and fills in (:func:`check`), the sensor's and the trigger's signatures (generated into their
modules by ``python -m devtools.signatures``, which ``make lint`` runs with ``--check``), their
templated fields, and the reference docs' argument tables.

Free of I/O and cheap to import: the sensor checks its arguments while a DAG file is parsed.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from fluke_airflow.queues import limits
from fluke_airflow.queues import validation as v

POLL = "poll"
SENSOR = "sensor"
TRIGGER = "trigger"
CONTEXTS = (POLL, SENSOR, TRIGGER)

Check = Callable[[str, Any], Any]
"""Takes the argument's name and value; returns the checked value or raises naming the argument."""


class _Absent:
    def __repr__(self) -> str:
        return "<not taken>"


ABSENT: Any = _Absent()
REQUIRED: Any = type("Required", (), {"__repr__": lambda self: "<required>"})()


@dataclass(frozen=True)
class Spec:
    """What :func:`argument` records about one argument (``dataclasses.Field.metadata['argument']``)."""

    doc: str
    defaults: Mapping[str, Any]
    check: Check | None = None
    templated: bool = False
    """The sensor renders it (one of its ``template_fields``); checked after rendering if still a template."""
    number: bool = False
    """Jinja renders numbers as text: once rendered, ``"10"`` is taken as 10."""
    source: str = ""
    """The default as a signature shows it, where it is an expression (``conf.getboolean(...)``)."""
    accepts: str = ""
    """What a signature accepts, where that is more than the checked type (a timedelta for seconds)."""
    annotation: str = ""


def argument(
    doc: str,
    *,
    check: Check | None = None,
    poll: Any = ABSENT,
    sensor: Any = ABSENT,
    trigger: Any = ABSENT,
    templated: bool = False,
    source: str = "",
    accepts: str = "",
) -> Any:
    """A dataclass field declaring one argument: its default in each context that takes it."""
    defaults = {c: d for c, d in ((POLL, poll), (SENSOR, sensor), (TRIGGER, trigger)) if d is not ABSENT}
    first = next(iter(defaults.values()))
    spec = Spec(doc, defaults, check, templated, getattr(check, "number", False), source, accepts)
    if first is REQUIRED:
        return field(metadata={"argument": spec})
    if isinstance(first, (list, dict)):
        return field(default_factory=lambda: type(first)(first), metadata={"argument": spec})
    return field(default=first, metadata={"argument": spec})


# -- checks ---------------------------------------------------------------------------------------------
def ints(minimum: int, maximum: int | None = None, *, none: bool = False) -> Check:
    """A whole number from ``minimum`` to ``maximum``; rendered from a template, ``"10"`` counts as 10."""

    def checked(name: str, value: Any) -> Any:
        return v.integer(name, value, minimum=minimum, maximum=maximum, allow_none=none)

    checked.number = True  # type: ignore[attr-defined]
    return checked


def durations(maximum: float | None = None, *, none: bool = False) -> Check:
    return lambda name, value: v.seconds(name, value, maximum=maximum, allow_none=none)


def flag(name: str, value: Any) -> bool:
    return v.boolean(name, value)


def text(*, none: bool = False) -> Check:
    return lambda name, value: None if value is None and none else v.non_empty_str(name, value)


def choice(*allowed: Any) -> Check:
    def checked(name: str, value: Any) -> Any:
        if value not in allowed:
            raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}, got {value!r}")
        return value

    return checked


def seconds_up_to(maximum: float) -> Check:
    def checked(name: str, value: Any) -> float:
        window = v.non_negative_number(name, value)
        if window > maximum:
            raise ValueError(f"{name} must be a number of seconds from 0 to {maximum:g}, got {value!r}")
        return window

    return checked


def backoff(name: str, value: Any) -> float:
    return v.backoff_multiplier(name, value)


def _mapping(name: str, value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        example = "{'retries': {'max_attempts': 3}}"
        raise TypeError(f"{name} must be a dict (e.g. {example}), got {type(value).__name__}")
    return dict(value)


def dag_id_list(name: str, value: Any) -> tuple[str, ...] | None:
    """DAG ids: one as a str, or a non-empty list of them (None: not given)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value:
        raise TypeError(f"{name} must be a non-empty list of DAG ids, got {type(value).__name__} {value!r}")
    return tuple(v.non_empty_str(f"{name}[{i}]", item) for i, item in enumerate(value))


UNMATCHED = ("leave", "delete", "dead_letter")
ENCODINGS = (None, "text", "base64")
MAX_BATCHING_WINDOW = 300
"""Lambda's limit for its batching window, and the triggerer's default ack timeout."""
DEFAULT_MAX_DELIVERY_BYTES = 1_048_576
"""The sensor's default: what XCom should carry at most in one value."""
DEFAULT_MAX_EVENT_BYTES = 1_048_576
"""A watcher's default cap on the bodies of one asset event (Airflow stores the payload in its
metadata database); a larger batch is cut there and the rest waits for the next event."""
DEFAULT_RETRY_DELAY = 30.0
DEFAULT_MAX_RETRY_DELAY = 900.0
"""A trigger's messages that failed to reach Airflow come back after 30 s, then 60 s, 120 s... up to
15 minutes: a failing hand-off is not retried in a tight loop (a sensor uses its task's retry settings)."""


# -- the declarations -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DeliverySettings:
    """What decides one delivery (a sensor's poke, a trigger's event, a watcher's batch): a trigger's
    serialised kwargs hold exactly these, and a shared stream's key is made of them."""

    conn_id: str = argument(
        "The Airflow connection: ``aws`` (Amazon SQS), ``azure_storage_queue`` or ``wasb`` (Azure Queue Storage).",
        check=text(), sensor=REQUIRED, trigger=REQUIRED, templated=True,
    )  # fmt: skip
    queue: str = argument(
        "The queue's name (SQS: a name or a queue URL).",
        check=text(), sensor=REQUIRED, trigger=REQUIRED, templated=True,
    )  # fmt: skip
    batch_size: int = argument(
        "Messages per batch (more than one request's worth is received with several requests). "
        "The sensor and the trigger deliver this many when ``num_messages`` is not set; a watcher "
        "defaults to 100, so that a burst becomes few runs.",
        check=ints(1), poll=10, sensor=10, trigger=100, templated=True,
    )  # fmt: skip
    num_messages: int | None = argument(
        "``poll``: how many messages in all (default: until the queue is empty). Sensor and trigger: "
        "messages per delivery (fewer if fewer are visible).",
        check=ints(1, none=True), poll=None, sensor=None, trigger=None, templated=True,
    )  # fmt: skip
    pre_delivery_delete: bool = argument(
        "Delete before delivering (at most once). Default: after the hand-over (at least once): when the "
        "loop asks for the next batch, once the XCom or the asset event is stored.",
        check=flag, poll=False, sensor=False, trigger=False,
    )  # fmt: skip
    visibility_timeout: int = argument(
        "Seconds received messages stay hidden from other consumers until they are deleted or released. "
        "The sensor's must cover the hand-off from the triggerer to a worker; a watcher's, Airflow storing "
        "the event (it is renewed while held).",
        check=ints(0, limits.MAX_VISIBILITY), poll=30, sensor=300, trigger=600, templated=True,
    )  # fmt: skip
    poke_interval: float = argument(
        "Seconds between polls of an empty queue where the service has no long polling (Azure); SQS waits at "
        "the service instead. (The sensor's is ``BaseSensorOperator``'s.)",
        check=durations(), trigger=5.0,
    )  # fmt: skip
    wait_time_seconds: int = argument(
        "SQS long-poll wait per receive, 0 to 20 s (accepted and ignored on Azure): an idle trigger costs one "
        "request per wait.",
        check=ints(0, limits.MAX_WAIT), poll=1, sensor=20, trigger=20,
    )  # fmt: skip
    message_encoding: str | None = argument(
        "Azure only: ``'text'`` or ``'base64'`` (default: the connection's).",
        check=choice(*ENCODINGS), sensor=None, trigger=None,
    )  # fmt: skip
    max_delivery_bytes: int | None = argument(
        "Sensor (and a deferred sensor's trigger): refuse, before deleting anything, a delivery whose bodies "
        "add up to more (its messages are released). Watcher: the most bytes of bodies in one asset event "
        "(default 1 MiB); the rest waits for the next event.",
        check=ints(1, none=True), sensor=DEFAULT_MAX_DELIVERY_BYTES, trigger=None,
    )  # fmt: skip
    max_batching_window: float = argument(
        "After the first message of a delivery, keep gathering for up to this many seconds (0 to 300) while it "
        "is not full (Lambda's batching window). Must be shorter than ``visibility_timeout``.",
        check=seconds_up_to(MAX_BATCHING_WINDOW), sensor=0.0, trigger=0.0,
    )  # fmt: skip
    max_receive_count: int | None = argument(
        "Move messages received more often than this (a poison message that keeps failing the pipeline) to "
        "``dead_letter_queue`` (on Azure, without one, to ``<queue>-poison``, created if missing), logged by "
        "id, instead of delivering them.",
        check=ints(1, none=True), poll=None, sensor=None, trigger=None,
    )  # fmt: skip
    dead_letter_queue: str | None = argument(
        "The queue (same connection) that takes poison messages, and with ``unmatched='dead_letter'`` the "
        "messages no filter takes.",
        check=text(none=True), poll=None, sensor=None, trigger=None,
    )  # fmt: skip
    message_filtering: str | None = argument(
        "Take only the messages that match, as the amazon provider's ``SqsSensor``: ``'literal'``, "
        "``'jsonpath'`` or ``'jsonpath-ext'``.",
        poll=None, sensor=None, trigger=None,
    )  # fmt: skip
    message_filtering_match_values: list[Any] | None = argument(
        "The values to match: the bodies (literal), or values the JSONPath expression must find.",
        poll=None, sensor=None, trigger=None, accepts="Any",
    )  # fmt: skip
    message_filtering_config: Any = argument(
        "The JSONPath expression of the jsonpath filters.", poll=None, sensor=None, trigger=None, templated=True
    )
    message_filtering_attributes: dict[str, Any] | None = argument(
        "SQS message attributes that must hold one of the given values, ``{'name': 'value'}`` or "
        "``{'name': ['value', ...]}``.",
        poll=None, sensor=None, trigger=None,
    )  # fmt: skip
    unmatched: str = argument(
        "What becomes of a message no filter takes: ``'leave'`` it in the queue (visible again to other "
        "consumers after ``visibility_timeout``), ``'delete'`` it, or move it to the dead-letter queue "
        "(``'dead_letter'``). Watchers sharing one poll loop must agree on it.",
        check=choice(*UNMATCHED), poll="leave", sensor="leave", trigger="leave",
    )  # fmt: skip
    region_name: str | None = argument(
        "SQS only: the AWS region, instead of the aws connection's (the amazon provider's hooks take it too).",
        check=text(none=True), sensor=None, trigger=None,
    )  # fmt: skip
    verify: bool | str | None = argument(
        "SQS only: TLS certificate verification, ``False`` or the path of a CA bundle, instead of the aws "
        "connection's (as the amazon provider's hooks take it).",
        check=lambda n, x: x if x is None or isinstance(x, (bool, str)) else v.boolean(n, x), sensor=None, trigger=None,
    )  # fmt: skip
    botocore_config: dict[str, Any] | None = argument(
        "SQS only: botocore ``Config`` options as a dict (retries, timeouts, proxies), merged over the aws "
        "connection's ``config_kwargs`` (as the amazon provider's hooks take it).",
        check=lambda n, x: _mapping(n, x), sensor=None, trigger=None,
    )  # fmt: skip
    retry_delay: float = argument(
        "Messages the consumer did not finish (the loop raised, an event was not stored in time) stay hidden "
        "this long, in seconds or a timedelta, before they come back. (A sensor's messages come back with its "
        "task's own ``retry_delay``.)",
        check=durations(limits.MAX_VISIBILITY), poll=0.0, trigger=DEFAULT_RETRY_DELAY, accepts="float | timedelta",
    )  # fmt: skip
    retry_exponential_backoff: float = argument(
        "``True`` doubles ``retry_delay`` for each earlier receive of a message, a number >= 1 multiplies it, "
        "``False`` keeps it.",
        check=backoff, poll=False, trigger=True, accepts="bool | float",
    )  # fmt: skip
    delete_on_dag_success: bool = argument(
        "Keep the messages (hidden) until the DAG run ends, then delete them if it succeeded and release them "
        "for redelivery (after ``retry_delay``) if not. Sensor: adds a teardown task ``<task_id>_settle`` that "
        "renews their visibility meanwhile (SQS; on Azure set ``visibility_timeout`` to cover the run), and the "
        "run decides once every other task is done. Watcher: each event's messages stay hidden until the runs "
        "of every DAG of ``dag_ids`` that took the event have ended; ``message_task_id`` lets a mapped task "
        "decide per message (Airflow 3.3+, with this provider's plugin loaded in the scheduler).",
        check=flag, sensor=False, trigger=False,
    )  # fmt: skip
    max_retry_delay: float | None = argument(
        "The longest such delay (default: the service's longest visibility timeout for ``poll``, 15 minutes "
        "for a trigger).",
        check=durations(limits.MAX_VISIBILITY, none=True), poll=None, trigger=DEFAULT_MAX_RETRY_DELAY,
        accepts="float | timedelta | None",
    )  # fmt: skip

    @property
    def per_delivery(self) -> int:
        return self.num_messages or self.batch_size

    def as_kwargs(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def retry_args(self) -> tuple[float, float, float | None]:
        """For :meth:`~fluke_airflow.queues.base.QueueBase.retry_policy`."""
        return self.retry_delay, self.retry_exponential_backoff, self.max_retry_delay

    def filters(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in FILTERS}

    def unfiltered(self) -> DeliverySettings:
        """These settings without the filters: what a shared poll loop receives for all its watchers."""
        return dataclasses.replace(self, **dict.fromkeys(FILTERS))  # type: ignore[arg-type]

    def stream_key(self) -> tuple[Any, ...]:
        """What must be equal for watchers to share one poll loop: everything but the filters,
        which each watcher applies to the shared deliveries itself."""
        return ("fluke_airflow.queue", *dataclasses.asdict(self.unfiltered()).values())

    @classmethod
    def checked(cls, context: str, values: Mapping[str, Any], *, rendered: bool = False) -> DeliverySettings:
        """Settings from a sensor's or trigger's arguments, each checked (unknown names refused)."""
        return cls(**check(context, values, rendered=rendered, only=cls))


@dataclass(frozen=True)
class PollArguments:
    """``poll``'s own arguments, besides the delivery's."""

    polling_frequency: float | None = argument(
        "Poll forever, this many seconds apart (default: once).",
        check=lambda n, x: v.non_negative_number(n, x, allow_none=True), poll=None,
    )  # fmt: skip
    heartbeat: bool = argument(
        "Renew a batch's visibility while the loop works on it, so that a long batch is not handed to "
        "another consumer.",
        check=flag, poll=True,
    )  # fmt: skip
    suppress_output: bool = argument("Log at DEBUG instead of INFO.", check=flag, poll=False)


@dataclass(frozen=True)
class WatchArguments:
    """What a watcher (a trigger in an ``AssetWatcher``) adds to a delivery's settings."""

    dag_ids: tuple[str, ...] | None = argument(
        "The DAG(s) scheduled on the watcher's asset. The watcher takes the next messages only once each of "
        "them has started a run for the last event, so that every message reaches a run and a backlog waits in "
        "the queue. Required on Airflow before 3.4.",
        check=lambda n, x: dag_id_list(n, x), trigger=None, accepts="list[str] | tuple[str, ...] | None",
    )  # fmt: skip
    event_per_message: bool = argument(
        "One asset event, and so one DAG run, per message (in the queue's order), instead of one per batch.",
        check=flag, trigger=False,
    )  # fmt: skip
    message_task_id: str | None = argument(
        "With ``delete_on_dag_success``: the task of the consumer DAG that decides per message, mapped over "
        "``queue_messages(triggering_asset_events)``: map index *i* is the run's message *i*; a message is "
        "deleted if its task instance succeeded (or was skipped) and released if not, as Lambda's "
        "``ReportBatchItemFailures``. Without it, or in a run without such a mapped task, the whole run decides.",
        check=text(none=True), trigger=None,
    )  # fmt: skip
    single_event: bool = argument(
        "Stop after the first event (set by the sensor; automatic for deferred tasks).", check=flag, trigger=False
    )


@dataclass(frozen=True)
class SensorArguments:
    """The sensor's own arguments, besides the delivery's."""

    deferrable: bool = argument(
        "Wait in the triggerer and free the worker slot (default: ``[operators] default_deferrable``).",
        check=flag, sensor=False, source='conf.getboolean("operators", "default_deferrable", fallback=False)',
    )  # fmt: skip
    include_metadata: bool = argument(
        "The XCom is a list of message dicts (id, body, receive count, the service's metadata and SQS message "
        "attributes; never the receipt) instead of the bodies.",
        check=flag, sensor=False,
    )  # fmt: skip


@dataclass(frozen=True)
class AmazonArguments:
    """The amazon provider's ``SqsSensor`` arguments, taken as they are written there (see the
    porting page); each becomes one of ours."""

    sqs_queue: str | None = argument("The amazon provider's name for ``queue_name``.", check=text(none=True),
                                     sensor=None)  # fmt: skip
    aws_conn_id: str | None = argument(
        "The amazon provider's name for ``conn_id`` (given alone, ``sqs_queue`` means ``'aws_default'``, as there).",
        check=text(none=True), sensor=None,
    )  # fmt: skip
    max_messages: int | None = argument(
        "The amazon provider's messages per batch (default 5 there): ``num_messages`` is ``max_messages`` times "
        "``num_batches``.",
        check=ints(1, none=True), sensor=None,
    )  # fmt: skip
    num_batches: int | None = argument("The amazon provider's batches per poke (default 1 there).",
                                       check=ints(1, none=True), sensor=None)  # fmt: skip
    delete_message_on_reception: bool | None = argument(
        "The amazon provider's: ``True`` is ``pre_delivery_delete=True``; ``False`` leaves the messages in the "
        "queue. Left out: deleted once the XCom is stored (at least once).",
        check=lambda n, x: None if x is None else v.boolean(n, x), sensor=None,
    )  # fmt: skip
    region: str | None = argument(
        "The amazon provider's deprecated name for ``region_name`` (taken, with a DeprecationWarning, as there).",
        check=text(none=True), sensor=None,
    )  # fmt: skip
    waiter_delay: float | None = argument(
        "The amazon provider's pause between polls when deferred (60 s there). Taken as ``poke_interval``, with "
        "a DeprecationWarning: SQS is long-polled here (``wait_time_seconds``), so no pause is needed on SQS.",
        check=durations(none=True), sensor=None,
    )  # fmt: skip


FILTERS = (
    "message_filtering",
    "message_filtering_match_values",
    "message_filtering_config",
    "message_filtering_attributes",
)
"""The amazon provider's filter arguments (and attribute filters): see :mod:`fluke_airflow.queues.filters`."""
DECLARATIONS = (DeliverySettings, PollArguments, WatchArguments, SensorArguments, AmazonArguments)


def specs(of: type | None = None) -> Iterator[tuple[str, Spec]]:
    """(name, spec) of every argument, in declaration order (of one dataclass, or all)."""
    for declared in (of,) if of is not None else DECLARATIONS:
        for f in dataclasses.fields(declared):
            spec = f.metadata["argument"]
            yield f.name, dataclasses.replace(spec, annotation=spec.accepts or str(f.type))


def names(of: type | None = None, context: str | None = None) -> tuple[str, ...]:
    """The arguments (of one dataclass, or all) that ``context`` takes (or all)."""
    return tuple(name for name, spec in specs(of) if context is None or context in spec.defaults)


def defaults(context: str) -> dict[str, Any]:
    """Each argument ``context`` takes, with its default there (:data:`REQUIRED` where it has none)."""
    return {name: spec.defaults[context] for name, spec in specs() if context in spec.defaults}


def templated(context: str) -> tuple[str, ...]:
    return tuple(name for name, spec in specs() if context in spec.defaults and spec.templated)


RENAMED: dict[str, dict[str, str]] = {SENSOR: {"queue": "queue_name"}}
"""Arguments an operator takes under another name: ``BaseOperator.queue`` is the executor queue
(Celery's, which ``default_args`` often set), so the sensor's message queue is ``queue_name``."""


def shown_name(context: str, name: str) -> str:
    """The name ``context``'s class takes the argument ``name`` under."""
    return RENAMED.get(context, {}).get(name, name)


def default_source(spec: Spec, context: str) -> str:
    """The default as Python source, as a signature shows it."""
    value = spec.defaults[context]
    if spec.source:
        return spec.source
    return '"' + value.replace('"', '\\"') + '"' if isinstance(value, str) else repr(value)


def param_docs(context: str, indent: str = "    ") -> str:
    """``:param:`` lines for every argument of ``context``, with its default: the sensor's and the
    trigger's docstrings end with these, so the reference docs show the declarations."""
    import textwrap

    lines = [""]
    for name, spec in specs():
        if context not in spec.defaults:
            continue
        default = spec.defaults[context]
        shown = "Required." if default is REQUIRED else f"Default ``{default_source(spec, context)}``."
        templated = " Templated." if context == SENSOR and spec.templated else ""
        text = f":param {shown_name(context, name)}: {spec.doc} {shown}{templated}"
        lines += textwrap.wrap(text, 112, initial_indent=indent, subsequent_indent=indent + "    ")
    return "\n".join([*lines, ""])


def is_template(value: Any) -> bool:
    """True for a value Airflow will resolve later: Jinja text or an XComArg-like object."""
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    return hasattr(value, "resolve") and hasattr(value, "iter_references")


def check(
    context: str,
    values: Mapping[str, Any],
    *,
    templates_allowed: bool = False,
    rendered: bool = False,
    only: type | None = None,
) -> dict[str, Any]:
    """``values`` checked as ``context``'s arguments, its defaults filled in for those not given.

    An error names the first bad argument and what is allowed. ``templates_allowed`` (a sensor's
    arguments when its DAG file is parsed): a value that is still a template passes, to be checked
    once rendered. ``rendered`` (those arguments after rendering): Jinja renders numbers as text,
    so ``"10"`` is taken as 10; elsewhere text is refused where a number is wanted.
    """
    declared = {name: spec for name, spec in specs(only) if context in spec.defaults}
    unknown = sorted(set(values) - set(declared))
    if unknown:
        guesses = [f"{name!r} (did you mean {close[0]!r}?)" for name in unknown
                   if (close := difflib.get_close_matches(name, declared, n=1))]  # fmt: skip
        hint = f" {'; '.join(guesses)};" if guesses else ""
        raise TypeError(f"unknown argument(s) {unknown};{hint} allowed: {', '.join(declared)}")
    checked: dict[str, Any] = {}
    pending: set[str] = set()
    for name, spec in declared.items():
        value = values.get(name, spec.defaults[context])
        if value is REQUIRED:
            raise TypeError(f"{name} is required: {spec.doc}")
        if templates_allowed and is_template(value):
            pending.add(name)
        elif spec.check is not None:
            if spec.number and (rendered or templates_allowed) and isinstance(value, str):
                value = _number(value)
            value = spec.check(name, value)
        checked[name] = value
    for rule in RULES:
        rule(checked, pending)
    return checked


def _number(value: str) -> Any:
    stripped = value.strip()
    return int(stripped) if stripped.lstrip("-").isdigit() else value


# -- rules between arguments ---------------------------------------------------------------------------
DEAD_LETTER_RULES = (
    "max_receive_count moves messages received more often than that to dead_letter_queue (on Azure, "
    "without dead_letter_queue, to the queue's '<queue>-poison' queue, created if missing); dead_letter_queue "
    "alone is for unmatched='dead_letter'"
)


def _dead_letters(values: dict[str, Any], pending: set[str]) -> None:
    if pending & {"unmatched", "dead_letter_queue", "max_receive_count"} or "unmatched" not in values:
        return
    alone = values.get("dead_letter_queue") is not None and values.get("max_receive_count") is None
    if alone and values["unmatched"] != "dead_letter":
        raise ValueError(f"dead_letter_queue needs max_receive_count (or unmatched='dead_letter'): {DEAD_LETTER_RULES}")
    if values["unmatched"] == "dead_letter" and not values.get("dead_letter_queue"):
        raise ValueError("unmatched='dead_letter' needs dead_letter_queue: the queue (same connection) that takes them")


def _filters(values: dict[str, Any], pending: set[str]) -> None:
    if pending & set(FILTERS) or all(values.get(name) is None for name in FILTERS):
        return
    from fluke_airflow.queues.filters import MessageFilter  # a DAG that filters pays for it, others not

    MessageFilter.build(*(values.get(name) for name in FILTERS))
    if values.get("message_filtering_match_values") is not None:
        values["message_filtering_match_values"] = list(values["message_filtering_match_values"])


def _window(values: dict[str, Any], pending: set[str]) -> None:
    window = values.get("max_batching_window")
    if not window or pending & {"max_batching_window", "visibility_timeout"}:
        return
    if window >= values["visibility_timeout"]:
        raise ValueError(
            f"max_batching_window ({window:g} s) must be shorter than visibility_timeout "
            f"({values['visibility_timeout']} s): the first messages of a batch stay hidden while it gathers"
        )


def _settle_mode(values: dict[str, Any], pending: set[str]) -> None:
    if values.get("delete_on_dag_success") and values.get("pre_delivery_delete") is True:
        raise ValueError(
            "delete_on_dag_success=True keeps messages until the DAG run ends; it cannot be combined with "
            "pre_delivery_delete=True, which deletes them before delivery"
        )


RULES: tuple[Callable[[dict[str, Any], set[str]], None], ...] = (_dead_letters, _filters, _window, _settle_mode)
"""The checks that look at several arguments at once, each declared once."""

MAX_SETTLED_DELIVERY = 1000
"""The most messages in one event of a ``delete_on_dag_success`` watcher: their ids are kept in the
asset state store until the runs end, and Airflow caps a value there at 64 KiB
(``[state_store] max_value_storage_bytes``)."""


def check_watch(settings: DeliverySettings, watch: WatchArguments) -> None:
    """The rules between a watcher's delivery settings and its watch arguments (a trigger in an
    ``AssetWatcher``; a deferred sensor's trigger sets ``single_event`` and skips them)."""
    if watch.message_task_id is not None and not settings.delete_on_dag_success:
        raise ValueError(
            "message_task_id names the task that decides per message whether it is deleted; it needs "
            "delete_on_dag_success=True (without it a watcher deletes messages once their events are stored)"
        )
    if not settings.delete_on_dag_success or watch.single_event:
        return
    if not watch.dag_ids:
        raise ValueError(
            "delete_on_dag_success=True needs dag_ids: the DAG(s) scheduled on the watcher's asset, whose runs "
            "decide whether the messages of an event are deleted (all succeeded) or released, e.g. "
            "dag_ids=['process_orders']"
        )
    if settings.per_delivery > MAX_SETTLED_DELIVERY:
        raise ValueError(
            f"delete_on_dag_success=True takes at most {MAX_SETTLED_DELIVERY} messages per event (batch_size/"
            f"num_messages is {settings.per_delivery}): their ids stay in Airflow's asset state store until the "
            "runs end, where a value is capped at 64 KiB"
        )
