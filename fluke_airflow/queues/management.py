"""Creating and deleting queues: names, the settings a queue is created with, and how they
compare with an existing queue's.

Free of cloud SDKs (``json`` and ``re`` only): operators check their arguments here when a DAG
file is parsed, before anything is sent. The requests are the transports' (``sqs.py``,
``azure.py``); the services' rules come from their API references:

* SQS ``CreateQueue``: "If you specify the name of an existing queue and provide the exact same
  names and values for all its attributes, the CreateQueue action will return the URL of the
  existing queue"; different values are the error ``QueueNameExists``. Only the attributes a
  request names are compared.
* Azure ``Create Queue``: an existing queue with identical metadata answers 204, other metadata
  409 ``QueueAlreadyExists``. The metadata is compared as a whole; names are case-insensitive.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fluke_airflow.queues.limits import SQS_MAX_DELAY, SQS_MAX_MESSAGE_BYTES, SQS_MAX_VISIBILITY, SQS_MAX_WAIT

SQS = "Amazon SQS"
AZURE = "Azure Queue Storage"

_SQS_NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}$|^[A-Za-z0-9_-]{1,75}\.fifo$")
_AZURE_NAME = re.compile(r"^(?=.{3,63}$)[a-z0-9](?:[a-z0-9]|-(?!-))*[a-z0-9]$")


def sqs_queue_name(queue: str) -> str:
    """``queue`` if SQS accepts it as a queue name, else an error saying what it accepts."""
    if not _SQS_NAME.match(queue):
        raise ValueError(
            f"queue {queue!r} is not a valid {SQS} queue name or URL: use 1-80 letters, digits, "
            "hyphens or underscores (FIFO names end in .fifo), or the queue's https:// URL"
        )
    return queue


def azure_queue_name(queue: str) -> str:
    """``queue`` if Azure accepts it as a queue name, else an error saying what it accepts."""
    if not _AZURE_NAME.match(queue):
        raise ValueError(
            f"queue {queue!r} is not a valid {AZURE} queue name: use 3-63 lowercase letters, digits "
            "and single hyphens, starting and ending with a letter or digit"
        )
    return queue


def is_queue_url(queue: str) -> bool:
    return queue.startswith(("http://", "https://"))


@dataclass(frozen=True)
class QueueCreated:
    """What a create did: ``queue`` is what the other operators take as ``queue`` (SQS: the
    queue's URL; Azure: its name, since an Azure queue URL may carry a SAS token)."""

    queue: str
    created: bool
    """False: the queue existed already, with the settings asked for."""


@dataclass(frozen=True)
class Difference:
    """One setting the existing queue has otherwise than asked for (None: not set)."""

    setting: str
    requested: str | None
    existing: str | None


# -- Amazon SQS attributes ---------------------------------------------------------------------------------
_INTEGER = {
    "DelaySeconds": (0, SQS_MAX_DELAY),
    "MaximumMessageSize": (1024, SQS_MAX_MESSAGE_BYTES),
    "MessageRetentionPeriod": (60, 1_209_600),
    "ReceiveMessageWaitTimeSeconds": (0, SQS_MAX_WAIT),
    "VisibilityTimeout": (0, SQS_MAX_VISIBILITY),
    "KmsDataKeyReusePeriodSeconds": (60, 86_400),
}
_BOOLEAN = ("FifoQueue", "ContentBasedDeduplication", "SqsManagedSseEnabled")
_CHOICE = {
    "DeduplicationScope": ("messageGroup", "queue"),
    "FifoThroughputLimit": ("perQueue", "perMessageGroupId"),
}
_JSON = ("Policy", "RedrivePolicy", "RedriveAllowPolicy")
_TEXT = ("KmsMasterKeyId",)
_FIFO_ONLY = ("ContentBasedDeduplication", "DeduplicationScope", "FifoThroughputLimit")
SQS_ATTRIBUTES: tuple[str, ...] = tuple(sorted([*_INTEGER, *_BOOLEAN, *_CHOICE, *_JSON, *_TEXT]))
"""The attributes CreateQueue takes (the SQS API reference, CreateQueue ``Attributes``)."""
_MAX_RECEIVE_COUNT = 1000
_SQS_ARN = re.compile(r"^arn:aws[a-z-]*:sqs:[a-z0-9-]+:\d{12}:(?P<name>[A-Za-z0-9_.-]+)$")


def _suggest(name: str, allowed: tuple[str, ...]) -> str:
    import difflib  # only for a misspelt name: DAG files import this module on every parse

    folded = {a.lower(): a for a in allowed}
    close = folded.get(name.replace("_", "").lower()) or next(iter(difflib.get_close_matches(name, allowed, 1)), None)
    return f" (did you mean {close!r}?)" if close else ""


def _sqs_integer(name: str, value: Any) -> str:
    low, high = _INTEGER[name]
    number = value
    if isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    if isinstance(number, bool) or not isinstance(number, int) or not low <= number <= high:
        raise ValueError(f"attributes[{name!r}] must be an integer from {low} to {high}, got {value!r}")
    return str(number)


def _sqs_boolean(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower()
    raise ValueError(f"attributes[{name!r}] must be True or False (or 'true'/'false'), got {value!r}")


def _sqs_json(name: str, value: Any) -> dict[str, Any]:
    data = value
    if isinstance(value, str):
        try:
            data = json.loads(value)
        except ValueError:
            data = None
    if not isinstance(data, dict):
        raise ValueError(f"attributes[{name!r}] must be a dict or a JSON object (as text), got {value!r}")
    return data


def _redrive_policy(queue: str, value: Any) -> dict[str, Any]:
    policy = _sqs_json("RedrivePolicy", value)
    what = "attributes['RedrivePolicy']"
    if set(policy) != {"deadLetterTargetArn", "maxReceiveCount"}:
        raise ValueError(
            f"{what} must have exactly the keys 'deadLetterTargetArn' (the dead-letter queue's ARN) and "
            f"'maxReceiveCount' (1 to {_MAX_RECEIVE_COUNT}), got {sorted(policy)}"
        )
    arn = _SQS_ARN.match(str(policy["deadLetterTargetArn"]))
    if not arn:
        raise ValueError(
            f"{what}['deadLetterTargetArn'] must be an SQS queue ARN (arn:aws:sqs:<region>:<account>:<name>; "
            f"its QueueArn attribute), got {policy['deadLetterTargetArn']!r}"
        )
    if arn.group("name").endswith(".fifo") != queue.endswith(".fifo"):
        raise ValueError(
            f"{what}: the dead-letter queue of a FIFO queue must be a FIFO queue, and of a standard queue a "
            f"standard queue; {queue!r} and {arn.group('name')!r} differ"
        )
    count = policy["maxReceiveCount"]
    if isinstance(count, str) and count.strip().isdigit():
        count = int(count)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= _MAX_RECEIVE_COUNT:
        raise ValueError(f"{what}['maxReceiveCount'] must be an integer from 1 to {_MAX_RECEIVE_COUNT}, "
                         f"got {policy['maxReceiveCount']!r}")  # fmt: skip
    return {"deadLetterTargetArn": arn.group(0), "maxReceiveCount": count}


def check_sqs_attribute_names(attributes: Mapping[str, Any]) -> None:
    """Names only (what a parse-time check can do while the values are still templates)."""
    for name in attributes:
        if name not in SQS_ATTRIBUTES:
            raise ValueError(
                f"attributes has {name!r}, which is not an {SQS} queue attribute{_suggest(str(name), SQS_ATTRIBUTES)}; "
                f"allowed: {', '.join(SQS_ATTRIBUTES)}"
            )


def sqs_attributes(queue: str, attributes: Mapping[str, Any] | None) -> dict[str, str]:
    """The ``Attributes`` of a CreateQueue of ``queue`` (a name), every value as SQS takes it (text),
    ``FifoQueue`` set for a ``.fifo`` name; a clear error for anything SQS would refuse."""
    sqs_queue_name(queue)
    if attributes is None:
        attributes = {}
    if not isinstance(attributes, Mapping):
        raise TypeError(f"attributes must be a dict of {SQS} queue attributes, got {type(attributes).__name__}")
    check_sqs_attribute_names(attributes)
    fifo = queue.endswith(".fifo")
    result: dict[str, str] = {}
    for name, value in attributes.items():
        if name in _INTEGER:
            result[name] = _sqs_integer(name, value)
        elif name in _BOOLEAN:
            result[name] = _sqs_boolean(name, value)
        elif name in _CHOICE:
            if value not in _CHOICE[name]:
                raise ValueError(f"attributes[{name!r}] must be one of {', '.join(_CHOICE[name])}, got {value!r}")
            result[name] = value
        elif name == "RedrivePolicy":
            result[name] = json.dumps(_redrive_policy(queue, value), separators=(",", ":"))
        elif name in _JSON:
            result[name] = json.dumps(_sqs_json(name, value), separators=(",", ":"))
        elif not isinstance(value, str) or not value.strip():
            raise ValueError(f"attributes[{name!r}] must be a non-empty string, got {value!r}")
        else:
            result[name] = value
    asked_fifo = result.setdefault("FifoQueue", "true" if fifo else "false") == "true"
    if asked_fifo != fifo:
        why = "ends in .fifo, which only FIFO queue names do" if fifo else "lacks the .fifo that FIFO queue names need"
        raise ValueError(f"attributes['FifoQueue'] is {result['FifoQueue']!r} but the queue name {queue!r} {why}")
    if not fifo:
        del result["FifoQueue"]  # a standard queue is what SQS creates without it
        given = [name for name in _FIFO_ONLY if name in result]
        if given:
            raise ValueError(f"attributes {given} apply to FIFO queues only; {queue!r} is a standard queue "
                             "(FIFO queue names end in .fifo)")  # fmt: skip
    if result.get("FifoThroughputLimit") == "perMessageGroupId" and result.get("DeduplicationScope") != "messageGroup":
        raise ValueError(
            "attributes['FifoThroughputLimit'] = 'perMessageGroupId' needs attributes['DeduplicationScope'] = "
            "'messageGroup' (SQS allows it only then; the default scope is 'queue')"
        )
    if result.get("SqsManagedSseEnabled") == "true" and "KmsMasterKeyId" in result:
        raise ValueError(
            "attributes SqsManagedSseEnabled=true and KmsMasterKeyId are two server-side encryption options; "
            "a queue has one: give KmsMasterKeyId (SSE-KMS) or SqsManagedSseEnabled (SSE-SQS)"
        )
    return result


_TAG_TEXT = re.compile(r"^[\w\s.:/=+\-@]*$")


def sqs_tags(tags: Mapping[str, Any] | None) -> dict[str, str]:
    """Cost allocation tags for CreateQueue, checked as SQS's tag quotas say: keys of 1-128
    characters, not starting with ``aws:``; values of up to 256; letters, digits, spaces and
    ``_ . : / = + - @``."""
    if tags is None:
        return {}
    if not isinstance(tags, Mapping):
        raise TypeError(f"tags must be a dict of str to str, got {type(tags).__name__}")
    for key, value in tags.items():
        if not isinstance(key, str) or not 1 <= len(key) <= 128 or not _TAG_TEXT.match(key):
            raise ValueError(f"tags: the key {key!r} must be 1-128 letters, digits, spaces or _ . : / = + - @")
        if key.lower().startswith("aws:"):
            raise ValueError(f"tags: the key {key!r} starts with 'aws:', which AWS reserves for its own tags")
        if not isinstance(value, str) or len(value) > 256 or not _TAG_TEXT.match(value):
            raise ValueError(
                f"tags[{key!r}] must be a str of up to 256 letters, digits, spaces or _ . : / = + - @, got {value!r}"
            )
    return dict(tags)


def _comparable(name: str, value: str | None) -> Any:
    """A value as SQS means it: JSON attributes as data (with numbers as text), booleans in lowercase."""
    if value is None:
        return None
    if name in _JSON:
        try:
            return json.loads(value, parse_int=str, parse_float=str)
        except ValueError:
            return value
    if name in _BOOLEAN:
        return value.lower()
    return value


def sqs_differences(requested: Mapping[str, str], existing: Mapping[str, str]) -> list[Difference]:
    """The requested attributes the existing queue has otherwise (the others are not compared,
    as SQS compares them). A standard queue reports no ``FifoQueue``: that is ``false``."""
    found = []
    for name, value in requested.items():
        current = existing.get(name, "false" if name == "FifoQueue" else None)
        if _comparable(name, value) != _comparable(name, current):
            found.append(Difference(name, value, current))
    return found


def tag_differences(requested: Mapping[str, str], existing: Mapping[str, str]) -> list[Difference]:
    """The requested tags the queue lacks or has with another value (other tags may be there)."""
    return [Difference(f"tag {k!r}", v, existing.get(k)) for k, v in requested.items() if existing.get(k) != v]


SQS_REMEDY = (
    "CreateQueue never changes an existing queue: make the task's attributes match the queue, or change the queue "
    "(SetQueueAttributes, TagQueue or the console; FifoQueue cannot change: create a queue under another name)"
)


# -- Azure metadata ------------------------------------------------------------------------------------------
_METADATA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_METADATA_VALUE = re.compile(r"^[\x20-\x7e]*$")


def azure_metadata(metadata: Mapping[str, Any] | None) -> dict[str, str] | None:
    """Queue metadata for Create Queue, checked as Azure takes it: names are C# identifiers
    (unique regardless of case), values travel as HTTP headers (``x-ms-meta-<name>``), so they
    are printable ASCII without leading or trailing spaces (which headers drop)."""
    if metadata is None:
        return None
    if not isinstance(metadata, Mapping):
        raise TypeError(f"metadata must be a dict of str to str, got {type(metadata).__name__}")
    seen: dict[str, str] = {}
    for name, value in metadata.items():
        if not isinstance(name, str) or not _METADATA_NAME.match(name):
            raise ValueError(
                f"metadata: the name {name!r} is not allowed: {AZURE} metadata names are C# identifiers "
                "(letters, digits and underscores, not starting with a digit)"
            )
        if name.lower() in seen:
            raise ValueError(f"metadata names {seen[name.lower()]!r} and {name!r} are one name to {AZURE}, "
                             "which ignores their case")  # fmt: skip
        seen[name.lower()] = name
        if not isinstance(value, str) or not _METADATA_VALUE.match(value) or value != value.strip():
            raise ValueError(
                f"metadata[{name!r}] must be a str of printable ASCII characters without leading or trailing "
                f"spaces (metadata travel as HTTP headers), got {value!r}"
            )
    return dict(metadata)


def azure_differences(requested: Mapping[str, str], existing: Mapping[str, str]) -> list[Difference]:
    """How the existing queue's metadata differs from the requested (as a whole, names without case)."""
    asked = {k.lower(): (k, v) for k, v in requested.items()}
    there = {k.lower(): (k, v) for k, v in existing.items()}
    found = []
    for key in sorted(set(asked) | set(there)):
        name = (asked.get(key) or there[key])[0]
        want, have = asked.get(key, (None, None))[1], there.get(key, (None, None))[1]
        if want != have:
            found.append(Difference(f"metadata {name!r}", want, have))
    return found


AZURE_REMEDY = (
    "Create Queue never changes an existing queue's metadata: make the task's metadata match it (or give none "
    "to leave it unchecked), or change it (Set Queue Metadata, the portal or az storage queue metadata update)"
)
