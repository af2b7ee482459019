"""What a queue is created with, checked before anything is sent (fluke_airflow.queues.management).

The services' rules, from their API references: SQS ``CreateQueue`` (the ``Attributes`` ranges, the
FIFO-only attributes, "the dead-letter queue of a FIFO queue must also be a FIFO queue", "Only one
server-side encryption option is supported per queue", FifoThroughputLimit ``perMessageGroupId`` "is
allowed only when the value for DeduplicationScope is messageGroup"), SQS's tag quotas, and Azure's
``Create Queue`` ("metadata names must adhere to the naming rules for C# identifiers"; metadata
travel as ``x-ms-meta-name:value`` headers).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from fluke_airflow.exceptions import QueueError, QueueSettingsConflict
from fluke_airflow.queues import management
from fluke_airflow.queues.management import Difference

pytestmark = pytest.mark.unit

DLQ_ARN = "arn:aws:sqs:eu-west-1:123456789012:orders-dlq"


def test_sqs_attributes_become_the_text_sqs_takes() -> None:
    attributes = management.sqs_attributes(
        "orders",
        {
            "VisibilityTimeout": 120,
            "MessageRetentionPeriod": "86400",  # Jinja renders numbers as text
            "SqsManagedSseEnabled": True,
            "RedrivePolicy": {"deadLetterTargetArn": DLQ_ARN, "maxReceiveCount": "5"},
        },
    )
    assert attributes == {
        "VisibilityTimeout": "120",
        "MessageRetentionPeriod": "86400",
        "SqsManagedSseEnabled": "true",
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": DLQ_ARN, "maxReceiveCount": 5}, separators=(",", ":")),
    }


def test_a_fifo_name_makes_a_fifo_queue_and_a_standard_name_sends_no_fifo_attribute() -> None:
    assert management.sqs_attributes("orders.fifo", {"ContentBasedDeduplication": "True"}) == {
        "ContentBasedDeduplication": "true",
        "FifoQueue": "true",
    }
    assert management.sqs_attributes("orders", None) == {}
    assert management.sqs_attributes("orders", {"FifoQueue": False}) == {}


@pytest.mark.parametrize(
    ("queue", "attributes", "expected"),
    [
        ("orders", {"visibility_timeout": 5}, "not an Amazon SQS queue attribute .did you mean 'VisibilityTimeout'"),
        ("orders", {"VisibilityTimeot": 5}, "did you mean 'VisibilityTimeout'"),
        ("orders", {"Bogus": 5}, "allowed: ContentBasedDeduplication, "),
        (
            "orders",
            {"VisibilityTimeout": 43_201},
            r"attributes\['VisibilityTimeout'\] must be an integer from 0 to 43200",
        ),
        ("orders", {"DelaySeconds": -1}, "from 0 to 900"),
        ("orders", {"MaximumMessageSize": 1023}, "from 1024 to 1048576"),
        ("orders", {"MessageRetentionPeriod": 59}, "from 60 to 1209600"),
        ("orders", {"ReceiveMessageWaitTimeSeconds": 21}, "from 0 to 20"),
        ("orders", {"VisibilityTimeout": True}, "must be an integer"),
        ("orders", {"VisibilityTimeout": 1.5}, "must be an integer"),
        ("orders", {"SqsManagedSseEnabled": "yes"}, "must be True or False"),
        ("orders", {"FifoQueue": True}, "lacks the .fifo that FIFO queue names need"),
        ("orders.fifo", {"FifoQueue": False}, "ends in .fifo, which only FIFO queue names do"),
        ("orders", {"ContentBasedDeduplication": True}, "apply to FIFO queues only"),
        ("orders.fifo", {"DeduplicationScope": "group"}, "must be one of messageGroup, queue"),
        ("orders.fifo", {"FifoThroughputLimit": "perMessageGroupId"}, "needs attributes\\['DeduplicationScope'\\]"),
        ("orders", {"SqsManagedSseEnabled": True, "KmsMasterKeyId": "alias/aws/sqs"}, "two server-side encryption"),
        ("orders", {"KmsMasterKeyId": ""}, "must be a non-empty string"),
        ("orders", {"Policy": "not json"}, "must be a dict or a JSON object"),
        ("orders", {"RedrivePolicy": {"deadLetterTargetArn": DLQ_ARN}}, "exactly the keys"),
        ("orders", {"RedrivePolicy": {"deadLetterTargetArn": "orders-dlq", "maxReceiveCount": 5}}, "an SQS queue ARN"),
        ("orders", {"RedrivePolicy": {"deadLetterTargetArn": DLQ_ARN, "maxReceiveCount": 0}}, "from 1 to 1000"),
        ("orders.fifo", {"RedrivePolicy": {"deadLetterTargetArn": DLQ_ARN, "maxReceiveCount": 3}}, "must be a FIFO"),
        ("orders!", None, "not a valid Amazon SQS queue name"),
        ("o" * 81, None, "not a valid Amazon SQS queue name"),
        ("orders", ["VisibilityTimeout"], "attributes must be a dict"),
    ],
)
def test_what_sqs_would_refuse_is_refused_before_sending(queue: str, attributes: Any, expected: str) -> None:
    with pytest.raises((ValueError, TypeError), match=expected):
        management.sqs_attributes(queue, attributes)


def test_only_the_requested_attributes_are_compared_and_json_by_its_data() -> None:
    existing = {
        "VisibilityTimeout": "30",
        "DelaySeconds": "0",
        "RedrivePolicy": json.dumps({"maxReceiveCount": 5, "deadLetterTargetArn": DLQ_ARN}),  # other order, spacing
    }
    policy = {"deadLetterTargetArn": DLQ_ARN, "maxReceiveCount": 5}
    same = management.sqs_attributes("orders", {"RedrivePolicy": policy})
    assert management.sqs_differences(same, existing) == []
    assert management.sqs_differences({"VisibilityTimeout": "60", "DelaySeconds": "0"}, existing) == [
        Difference("VisibilityTimeout", "60", "30")
    ]
    # A standard queue reports no FifoQueue; a requested attribute the queue lacks differs from None.
    assert management.sqs_differences({"FifoQueue": "true"}, {}) == [Difference("FifoQueue", "true", "false")]
    assert management.sqs_differences({"KmsMasterKeyId": "alias/x"}, {}) == [
        Difference("KmsMasterKeyId", "alias/x", None)
    ]


def test_tags_are_checked_and_compared_as_a_subset() -> None:
    assert management.sqs_tags({"team": "data", "cost-center": "42 / eu"}) == {"team": "data", "cost-center": "42 / eu"}
    for tags, expected in (
        ({"aws:owner": "x"}, "AWS reserves"),
        ({"": "x"}, "must be 1-128"),
        ({"team": "a" * 257}, "up to 256"),
        ({"team": 5}, "must be a str"),
        ({"team": "data;drop"}, "letters, digits"),
    ):
        with pytest.raises(ValueError, match=expected):
            management.sqs_tags(tags)
    assert management.tag_differences({"team": "data"}, {"team": "data", "other": "x"}) == []
    assert management.tag_differences({"team": "data"}, {"team": "ops"}) == [Difference("tag 'team'", "data", "ops")]


def test_azure_metadata_names_are_identifiers_and_values_header_safe() -> None:
    assert management.azure_metadata(None) is None
    assert management.azure_metadata({"team": "data", "_Owner2": "a b"}) == {"team": "data", "_Owner2": "a b"}
    for metadata, expected in (
        ({"bad-name": "x"}, "C# identifiers"),
        ({"1st": "x"}, "C# identifiers"),
        ({"Team": "x", "team": "y"}, "one name to Azure Queue Storage, which ignores their case"),
        ({"team": " padded"}, "without leading or trailing spaces"),
        ({"team": "caf\u00e9"}, "printable ASCII"),
        ({"team": "two\nlines"}, "printable ASCII"),
        ({"team": 5}, "must be a str"),
    ):
        with pytest.raises(ValueError, match=expected):
            management.azure_metadata(metadata)
    with pytest.raises(TypeError, match="metadata must be a dict"):
        management.azure_metadata(["team"])  # type: ignore[arg-type]


def test_azure_metadata_is_compared_as_a_whole_with_names_in_any_case() -> None:
    assert management.azure_differences({"Team": "data"}, {"team": "data"}) == []
    assert management.azure_differences({"team": "data"}, {"team": "Data", "env": "prod"}) == [
        Difference("metadata 'env'", None, "prod"),
        Difference("metadata 'team'", "data", "Data"),
    ]


def test_a_conflict_names_every_setting_with_both_values() -> None:
    error = QueueSettingsConflict(
        "Amazon SQS",
        "orders",
        [Difference("VisibilityTimeout", "60", "30"), Difference("KmsMasterKeyId", "alias/x", None)],
        management.SQS_REMEDY,
    )
    assert isinstance(error, QueueError) and isinstance(error, ValueError)
    assert str(error).startswith(
        "Amazon SQS queue 'orders' already exists with other settings (VisibilityTimeout: '30' on the queue, '60' "
        "asked for; KmsMasterKeyId: none on the queue, 'alias/x' asked for). CreateQueue never changes"
    )


@pytest.mark.parametrize("name", ["orders", "Orders_2", "o" * 80, "o" * 75 + ".fifo"])
def test_sqs_names(name: str) -> None:
    assert management.sqs_queue_name(name) == name


@pytest.mark.parametrize("name", ["ab", "Orders", "a--b", "-ab", "ab-", "a" * 64, "a_b"])
def test_azure_names_refused(name: str) -> None:
    with pytest.raises(ValueError, match="not a valid Azure Queue Storage queue name"):
        management.azure_queue_name(name)
