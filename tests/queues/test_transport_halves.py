"""The sans-IO halves of the transports on their own: ``_SQSRequests`` (queues/sqs.py) and
``_AzureRequests`` (queues/azure.py). No emulator, no network.

The answers they read are made by the SDKs from the wire format of the services' API references:
botocore's own parser turns an SQS JSON answer into the dict a client returns (Binary attributes
decoded to bytes), and azure-storage-queue's own client, over a transport that answers from memory,
turns a Queue Storage answer into its ``QueueMessage`` objects (decoding base64 where the half asks
for it). The requests they build are checked against botocore's model of the operation, or sent
through the Azure SDK to see what it puts on the wire. What the emulators run end to end
(test_semantics.py, test_sqs_direct.py, test_operating.py...) is not repeated here.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qs, urlsplit
from xml.etree import ElementTree

import botocore.session
import pytest
import requests
from azure.core.pipeline.transport import HttpTransport, RequestsTransportResponse
from azure.storage.queue import QueueClient, QueueMessage
from botocore.parsers import create_parser
from botocore.validate import validate_parameters

from fluke_airflow.queues import limits
from fluke_airflow.queues.attributes import DEAD_LETTER_ATTRIBUTES
from fluke_airflow.queues.azure import Encoding, _AzureRequests
from fluke_airflow.queues.message import SQS_SYSTEM_ATTRIBUTES, Message
from fluke_airflow.queues.sqs import _SQSRequests

pytestmark = pytest.mark.unit

# -- SQS: answers as botocore returns them, requests as botocore's model takes them --------------------
SQS_MODEL = botocore.session.get_session().get_service_model("sqs")
ACCOUNT = "https://sqs.eu-west-1.amazonaws.com/123456789012"


def sqs_answer(operation: str, wire: dict[str, Any]) -> dict[str, Any]:
    """What a botocore client returns when SQS answers ``operation`` with the JSON body ``wire``."""
    http = {"status_code": 200, "headers": {"x-amzn-requestid": "request-1"}, "body": json.dumps(wire).encode()}
    parsed: dict[str, Any] = create_parser(SQS_MODEL.protocol).parse(
        http, SQS_MODEL.operation_model(operation).output_shape
    )
    return parsed


def sent_as(operation: str, params: dict[str, Any]) -> dict[str, Any]:
    """``params``, once botocore's own input check for ``operation`` passed them (it raises otherwise)."""
    validate_parameters(params, SQS_MODEL.operation_model(operation).input_shape)
    return params


def sqs_queue(name: str = "orders", **attributes: str) -> _SQSRequests:
    """The half of a queue opened by URL, with the GetQueueAttributes answer that opening reads."""
    half = _SQSRequests(f"{ACCOUNT}/{name}")
    half._apply_attributes(sqs_answer("GetQueueAttributes", {"Attributes": attributes}))
    return half


def fifo_queue(name: str = "orders.fifo", content_based: bool = False) -> _SQSRequests:
    return sqs_queue(name, FifoQueue="true", ContentBasedDeduplication=str(content_based).lower())


def s(value: str) -> dict[str, str]:
    return {"DataType": "String", "StringValue": value}


# The example answer of the ReceiveMessage API reference, with what a FIFO queue and attributes add.
RECEIVED = {
    "Messages": [
        {
            "MessageId": "219f8380-5770-4cc2-8c3e-5c715e145f5e",
            "ReceiptHandle": "AQEBaZ+j5qUoOAoxlmrCQPkBm9njMWXqemmIG6shMHCO6fV20JrQYg==",
            "MD5OfBody": "fafb00f5732ab283681e124bf8747ed1",
            "Body": "This is a test message",
            "Attributes": {
                "SenderId": "AIDASSYFHUBOBT7F4XT75",
                "ApproximateFirstReceiveTimestamp": "1677112433437",
                "ApproximateReceiveCount": "3",
                "SentTimestamp": "1677112427387",
                "MessageGroupId": "group-7",
                "MessageDeduplicationId": "dedup-7",
                "SequenceNumber": "18849496460467696128",
                "AWSTraceHeader": "Root=1-5759e988-bd862e3fe1be46a994272793",
                "DeadLetterQueueSourceArn": "arn:aws:sqs:eu-west-1:123456789012:orders.fifo",
            },
            "MD5OfMessageAttributes": "0a7ff5b0d9ccb1b0e0a5d4e7f7a0c4b1",
            "MessageAttributes": {
                "blob": {"DataType": "Binary", "BinaryValue": base64.b64encode(b"\x00\x01\xfe").decode()},
                "kind": {"DataType": "String", "StringValue": "probe", "StringListValues": [], "BinaryListValues": []},
                "n": {"DataType": "Number.int", "StringValue": "42"},
            },
        },
        {
            "MessageId": "5fea7756-0ea4-451a-a703-a558b933e274",
            "ReceiptHandle": "AQEBzWwaftRI0KuVm4tP+/7q1rGgNqicHq==",
            "MD5OfBody": "2c3a9ef5e9bd6d4e1ecf0a4aa0f3a1c7",
            "Body": "second",
            "Attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1677112427400"},
        },
    ]
}


def received(wire: dict[str, Any] = RECEIVED, at: float = 0.0) -> list[Message]:
    return _SQSRequests._parse_receive(sqs_answer("ReceiveMessage", wire), at)


def msg(i: int, **fields: Any) -> Message:
    return Message(id=f"message-{i}", body=f"body {i}", receipt=f"receipt-handle-{i}", **fields)


@pytest.mark.parametrize(("asked", "sent"), [(1, 1), (10, 10), (25, 10)])
def test_a_receive_asks_for_at_most_10_the_wait_the_visibility_and_the_attributes_a_message_keeps(
    asked: int, sent: int
) -> None:
    """ReceiveMessage: MaxNumberOfMessages "Valid values: 1 to 10"; WaitTimeSeconds is the long poll
    (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_ReceiveMessage.html)."""
    params = sent_as("ReceiveMessage", sqs_queue()._receive_params(asked, 45, 20))

    assert params == {
        "QueueUrl": f"{ACCOUNT}/orders",
        "MaxNumberOfMessages": sent,
        "VisibilityTimeout": 45,
        "WaitTimeSeconds": 20,
        "MessageSystemAttributeNames": list(SQS_SYSTEM_ATTRIBUTES),
        "MessageAttributeNames": ["All"],
    }
    assert set(SQS_SYSTEM_ATTRIBUTES) <= set(SQS_MODEL.shape_for("MessageSystemAttributeName").enum)


def test_an_answer_becomes_messages_with_their_system_attributes_message_attributes_and_receive_count() -> None:
    first, second = received(at=1_700_000_000.5)

    assert (first.id, first.body, first.receipt) == (
        "219f8380-5770-4cc2-8c3e-5c715e145f5e",
        "This is a test message",
        "AQEBaZ+j5qUoOAoxlmrCQPkBm9njMWXqemmIG6shMHCO6fV20JrQYg==",
    )
    assert (first.receive_count, second.receive_count) == (3, 1)
    system = RECEIVED["Messages"][0]["Attributes"]
    assert dict(first.metadata) == {name: system[name] for name in SQS_SYSTEM_ATTRIBUTES}  # no SenderId, no DLQ ARN
    assert first.message_attributes == {
        "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01\xfe"},
        "kind": s("probe"),
        "n": {"DataType": "Number.int", "StringValue": "42"},
    }
    assert first.sent_at == datetime.fromtimestamp(1677112427.387, tz=timezone.utc)
    assert second.message_attributes == {} and dict(second.metadata) == RECEIVED["Messages"][1]["Attributes"]
    assert first.received_at == second.received_at == 1_700_000_000.5
    assert received({}) == []  # an empty receive has no "Messages" at all


@pytest.mark.parametrize("operation", ["DeleteMessageBatch", "ChangeMessageVisibilityBatch"])
def test_a_batch_s_partial_failures_are_false_in_order_by_id(operation: str, caplog: pytest.LogCaptureFixture) -> None:
    """DeleteMessageBatch / ChangeMessageVisibilityBatch: "Because the batch request can result in a
    combination of successful and unsuccessful actions, you should check for batch errors even when
    the call returns an HTTP status code of 200" (the SQS API reference); entries answer by Id, in
    any order."""
    half, chunk = sqs_queue(), [msg(i) for i in range(5)]
    if operation == "DeleteMessageBatch":
        params = sent_as(operation, half._delete_params(chunk))
        assert params["Entries"] == [{"Id": str(i), "ReceiptHandle": f"receipt-handle-{i}"} for i in range(5)]
    else:
        params = sent_as(operation, half._visibility_params(chunk, 60))
        assert params["Entries"] == [
            {"Id": str(i), "ReceiptHandle": f"receipt-handle-{i}", "VisibilityTimeout": 60} for i in range(5)
        ]
    assert params["QueueUrl"] == f"{ACCOUNT}/orders"
    answer = sqs_answer(
        operation,
        {
            "Successful": [{"Id": "4"}, {"Id": "0"}, {"Id": "1"}],
            "Failed": [
                {"Id": "3", "SenderFault": True, "Code": "ReceiptHandleIsInvalid", "Message": "The receipt is invalid"},
                {"Id": "2", "SenderFault": False, "Code": "InternalError", "Message": "Try again"},
            ],
        },
    )
    with caplog.at_level(logging.WARNING, "fluke_airflow.queues"):
        outcome = half._batch_outcome("delete", answer, [m.id for m in chunk])

    assert outcome == [True, True, False, False, True]
    assert half._kept(chunk, outcome) == [chunk[0], chunk[1], None, None, chunk[4]]
    assert "message-3" in caplog.text and "ReceiptHandleIsInvalid" in caplog.text
    assert "message-2" in caplog.text and "InternalError" in caplog.text
    assert "message-1" not in caplog.text and "receipt-handle" not in caplog.text  # ids, never delete tokens


def test_a_send_s_message_ids_come_back_in_order_and_a_refused_entry_is_none(caplog: pytest.LogCaptureFixture) -> None:
    half = sqs_queue()
    chunks = half.send_chunks(half.prepare([f"body {i}" for i in range(13)], {}))
    second = chunks[1]
    params = sent_as("SendMessageBatch", half._send_params(second))
    assert [e["Id"] for e in params["Entries"]] == ["0", "1", "2"]  # numbered within its request
    md5 = "d41d8cd98f00b204e9800998ecf8427e"
    answer = sqs_answer(
        "SendMessageBatch",
        {
            "Successful": [
                {"Id": "2", "MessageId": "id-12", "MD5OfMessageBody": md5},
                {"Id": "0", "MessageId": "id-10", "MD5OfMessageBody": md5},
            ],
            "Failed": [{"Id": "1", "SenderFault": True, "Code": "InvalidParameterValue", "Message": "bad"}],
        },
    )
    with caplog.at_level(logging.WARNING, "fluke_airflow.queues"):
        assert half._sent(answer, second) == ["id-10", None, "id-12"]
    assert "#11" in caplog.text and "InvalidParameterValue" in caplog.text  # its place in the push
    assert "body 11" not in caplog.text


def test_bodies_are_measured_in_utf8_bytes_against_the_queue_s_maximum_message_size() -> None:
    """SendMessage: the queue's MaximumMessageSize bounds the message, its attributes included."""
    half = sqs_queue(MaximumMessageSize="1024")
    assert half.max_message_bytes == 1024
    assert half.prepare(["é" * 512], {}) == [{"Id": "0", "MessageBody": "é" * 512}]  # 512 characters, 1024 bytes
    with pytest.raises(ValueError, match=r"messages\[0\] is 1025 bytes as sent; .* at most 1024 bytes"):
        half.prepare(["é" * 512 + "a"], {})
    kind = {"kind": s("v" * 20)}  # 4 + 6 + 20 bytes
    assert half.prepare(["é" * 497], {"message_attributes": kind})[0]["MessageAttributes"] == kind  # 994 + 30
    with pytest.raises(ValueError, match=r"messages\[0\] and its message_attributes are 1025 bytes as sent"):
        half.prepare(["é" * 497 + "a"], {"message_attributes": kind})
    assert sqs_queue().max_message_bytes == limits.SQS_MAX_MESSAGE_BYTES  # not reported: SQS's own limit


def test_a_fifo_queue_needs_a_group_and_takes_deduplication_ids_per_message() -> None:
    """SendMessageBatchRequestEntry: MessageGroupId "is required for FIFO queues"; without
    ContentBasedDeduplication each message needs a MessageDeduplicationId (the SQS API reference)."""
    half = fifo_queue()
    assert half.fifo and half.ordered_sends and half.needs_deduplication_ids
    with pytest.raises(ValueError, match="message_group_id is required for the FIFO queue"):
        half.prepare(["a"], {})
    entries = half.prepare(["a", "b"], {"message_group_id": "g", "message_deduplication_ids": ["d1", "d2"]})
    sent_as("SendMessageBatch", half._send_params(entries))
    assert [(e["MessageGroupId"], e["MessageDeduplicationId"]) for e in entries] == [("g", "d1"), ("g", "d2")]
    one = half.prepare(["a"], {"message_group_id": "g", "message_deduplication_id": "d"}, single_message=True)
    assert one == [{"Id": "0", "MessageBody": "a", "MessageGroupId": "g", "MessageDeduplicationId": "d"}]
    with pytest.raises(ValueError, match="message_deduplication_id is for push"):
        half.prepare(["a", "b"], {"message_group_id": "g", "message_deduplication_id": "d"})
    with pytest.raises(ValueError, match=r"one entry per message \(2\), got 1"):
        half.prepare(["a", "b"], {"message_group_id": "g", "message_deduplication_ids": ["d1"]})
    with pytest.raises(ValueError, match="message_group_id must be a non-empty string"):
        half.prepare(["a"], {"message_group_id": " "})
    with pytest.raises(ValueError, match="message_deduplication_id must be a non-empty string"):
        half.prepare(["a"], {"message_group_id": "g", "message_deduplication_id": ""}, single_message=True)

    assert not fifo_queue(content_based=True).needs_deduplication_ids
    standard = sqs_queue()
    assert not (standard.fifo or standard.ordered_sends or standard.needs_deduplication_ids)
    assert standard.prepare(["a"], {}) == [{"Id": "0", "MessageBody": "a"}]  # no group, no deduplication id


@pytest.mark.parametrize(
    ("delay", "error"),
    [(0, None), (900, None), (None, None), (901, ValueError), (-1, ValueError), ("5", TypeError), (True, TypeError)],
)
def test_a_delay_is_0_to_900_seconds(delay: Any, error: type[Exception] | None) -> None:
    """SendMessage: DelaySeconds "Valid values: 0 to 900. Maximum: 15 minutes" (the SQS API reference)."""
    half = sqs_queue()
    if error is not None:
        with pytest.raises(error, match="delay_seconds must be an integer >= 0 and at most 900"):
            half.prepare(["a"], {"delay_seconds": delay})
        return
    (entry,) = half.prepare(["a"], {"delay_seconds": delay})
    assert entry.get("DelaySeconds") == delay and ("DelaySeconds" in entry) == (delay is not None)


def test_attributes_go_to_every_message_or_one_each_and_are_checked_first() -> None:
    half = sqs_queue()
    every = half.prepare(["a", "b"], {"message_attributes": {"k": s("x")}})
    assert [e["MessageAttributes"] for e in every] == [{"k": s("x")}, {"k": s("x")}]
    entries = half.prepare(["a", "b"], {"message_attributes": [{"k": s("1")}, {}]})
    assert entries[0]["MessageAttributes"] == {"k": s("1")} and "MessageAttributes" not in entries[1]
    sent_as("SendMessageBatch", half._send_params(entries))
    with pytest.raises(ValueError, match=r"message_attributes\[1\]: attribute name 'AWS.x' must not start with"):
        half.prepare(["a", "b"], {"message_attributes": [{}, {"AWS.x": s("1")}]})
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['group'\] for Amazon SQS; allowed: delay_seconds"):
        half.prepare(["a"], {"group": "g"})


def test_a_send_request_holds_at_most_10_entries() -> None:
    """SendMessageBatch: "You can use SendMessageBatch to send up to 10 messages" (the SQS API reference)."""
    half = sqs_queue()
    entries = half.prepare([f"body {i}" for i in range(25)], {})
    chunks = half.send_chunks(entries)
    assert [len(c) for c in chunks] == [10, 10, 5]
    assert [e for c in chunks for e in c] == entries  # in order, none lost
    for chunk in chunks:
        sent_as("SendMessageBatch", half._send_params(chunk))
    assert half.delete_chunk_size == half.visibility_chunk_size == half.receive_chunk_size == 10


@pytest.mark.parametrize(
    ("bodies", "sizes"),
    [
        (["é" * 131_072] * 6, [4, 2]),  # 262,144 bytes (131,072 characters) each: four are 1 MiB exactly
        (["é" * 131_072 + "a"] + ["é" * 131_072] * 5, [3, 3]),  # one byte more and the fourth waits
    ],
)
def test_a_send_request_holds_at_most_1_mib_of_utf8_bodies(bodies: list[str], sizes: list[int]) -> None:
    """SendMessageBatch: "the maximum total payload size (the sum of the individual lengths of all of
    the batched messages) are both 1 MiB 1,048,576 bytes" (the SQS API reference)."""
    half = sqs_queue()
    chunks = half.send_chunks(half.prepare(bodies, {}))
    assert [len(c) for c in chunks] == sizes
    assert [e["MessageBody"] for c in chunks for e in c] == bodies


def test_attributes_count_towards_a_send_request_s_bytes() -> None:
    half = sqs_queue()
    bodies = ["a" * 262_100] * 4  # 176 bytes short of 1 MiB together
    assert [len(c) for c in half.send_chunks(half.prepare(bodies, {}))] == [4]
    large = {"k": s("v" * 200)}  # 1 + 6 + 200 bytes
    with_one = half.prepare(bodies, {"message_attributes": [{}, {}, {}, large]})
    assert [len(c) for c in half.send_chunks(with_one)] == [3, 1]


DLQ = "arn:aws:sqs:eu-west-1:123456789012:orders-dlq"


@pytest.mark.parametrize(
    ("policy", "redrive"),
    [
        (json.dumps({"deadLetterTargetArn": DLQ, "maxReceiveCount": 5}), ("orders-dlq", 5)),
        (json.dumps({"deadLetterTargetArn": DLQ, "maxReceiveCount": "5"}), ("orders-dlq", 5)),
        (None, None),
    ],
)
def test_the_queue_s_redrive_policy_names_its_dead_letter_queue_and_max_receive_count(
    policy: str | None, redrive: tuple[str, int] | None
) -> None:
    """SetQueueAttributes: RedrivePolicy is "a JSON object" with deadLetterTargetArn (the dead-letter
    queue's ARN) and maxReceiveCount (the SQS API reference); SDKs and consoles write the count as a
    number or as a string."""
    params = sent_as("GetQueueAttributes", _SQSRequests(f"{ACCOUNT}/orders")._attributes_params())
    assert "RedrivePolicy" in params["AttributeNames"] and "MaximumMessageSize" in params["AttributeNames"]
    assert sqs_queue(**({"RedrivePolicy": policy} if policy else {})).redrive == redrive


@pytest.mark.parametrize(
    "policy",
    ["not json", json.dumps({"maxReceiveCount": 5}), json.dumps({"deadLetterTargetArn": DLQ, "maxReceiveCount": "x"})],
)
def test_an_unreadable_redrive_policy_is_none_and_said(policy: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "fluke_airflow.queues"):
        assert sqs_queue(RedrivePolicy=policy).redrive is None
    assert "could not read the RedrivePolicy" in caplog.text


def test_a_dead_letter_keeps_its_body_and_attributes_and_says_why_where_from_and_after_how_many_receives() -> None:
    messages = received()
    half = sqs_queue("orders-dlq")
    options = half.dead_letter_options(messages, reason="max_receive_count=3", source="orders")
    entries = half.prepare([m.body for m in messages], options)
    sent_as("SendMessageBatch", half._send_params(entries))

    reason, source, count = DEAD_LETTER_ATTRIBUTES
    assert [e["MessageBody"] for e in entries] == [m.body for m in messages]
    assert entries[0]["MessageAttributes"] == {
        **messages[0].message_attributes,
        reason: s("max_receive_count=3"),
        source: s("orders"),
        count: {"DataType": "Number", "StringValue": "3"},
    }
    assert entries[1]["MessageAttributes"][count] == {"DataType": "Number", "StringValue": "1"}
    assert all("MessageGroupId" not in e for e in entries)
    assert half.dead_letter_options(messages)["message_attributes"][0] == messages[0].message_attributes  # no reason
    full = msg(0, message_attributes={f"a{i}": s("x") for i in range(8)})  # 8 + 3 > SQS's 10 attributes
    assert half.dead_letter_options([full], reason="unmatched")["message_attributes"] == [full.message_attributes]


def test_a_dead_letter_to_a_fifo_queue_goes_to_one_group_deduplicated_by_its_original_id() -> None:
    messages = received()
    half = fifo_queue("orders-dlq.fifo")
    entries = half.prepare([m.body for m in messages], half.dead_letter_options(messages, reason="unmatched"))
    sent_as("SendMessageBatch", half._send_params(entries))
    assert [(e["MessageGroupId"], e["MessageDeduplicationId"]) for e in entries] == [
        ("fluke-dead-letters", m.id) for m in messages
    ]


def test_a_redrive_sends_each_message_back_without_our_dead_letter_attributes() -> None:
    own = {"kind": s("probe")}
    marked = {**own, DEAD_LETTER_ATTRIBUTES[0]: s("unmatched"), DEAD_LETTER_ATTRIBUTES[1]: s("orders")}
    messages = [msg(0, message_attributes=marked), msg(1, message_attributes={DEAD_LETTER_ATTRIBUTES[0]: s("x")})]
    half = sqs_queue()
    entries = half.redrive_entries(messages)
    assert entries[0]["MessageAttributes"] == own and "MessageAttributes" not in entries[1]
    assert [e["MessageBody"] for e in entries] == ["body 0", "body 1"]
    assert all("MessageGroupId" not in e and "MessageDeduplicationId" not in e for e in entries)
    (chunk,) = half.send_chunks(entries)  # each prepared alone, as Id "0"; SQS refuses repeated Ids in a request
    assert [e["Id"] for e in sent_as("SendMessageBatch", half._send_params(chunk))["Entries"]] == ["0", "1"]


def test_a_fifo_redrive_keeps_each_message_s_group_and_deduplicates_a_repeated_redrive() -> None:
    messages = [msg(0, metadata={"MessageGroupId": "group-7"}), msg(1)]
    entries = fifo_queue().redrive_entries(messages)
    assert [(e["MessageGroupId"], e["MessageDeduplicationId"]) for e in entries] == [
        ("group-7", "redrive-message-0"),
        ("fluke-redriven", "redrive-message-1"),
    ]


# -- Azure: answers as azure-storage-queue returns them, requests as it sends them ----------------------
class Answers(HttpTransport):
    """An azure-core transport that answers each request from a list, and keeps the requests."""

    def __init__(self, *answers: tuple[int, dict[str, str], str]) -> None:
        self.answers = list(answers)
        self.requests: list[Any] = []

    def __enter__(self) -> Answers:
        return self

    def __exit__(self, *args: Any) -> None:
        pass

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def send(self, request: Any, **kwargs: Any) -> RequestsTransportResponse:
        self.requests.append(request)
        status, headers, body = self.answers.pop(0)
        response = requests.Response()
        response.status_code, response.reason, response.url = status, "OK", request.url
        response.headers.update({"Content-Type": "application/xml", **headers})
        response._content = body.encode()
        return RequestsTransportResponse(request, response)


def sdk_client(half: _AzureRequests, *answers: tuple[int, dict[str, str], str]) -> tuple[QueueClient, Answers]:
    """The SDK's client as the transports build it (the half's encoding policies), over ``answers``."""
    transport = Answers(*answers)
    client = QueueClient(
        "https://account.queue.core.windows.net",
        half.queue,
        credential="sv=2025-01-05&sig=unsigned",
        transport=transport,
        **half._client_kwargs(),
    )
    return client, transport


def get_messages(text: str) -> tuple[int, dict[str, str], str]:
    """A Get Messages answer, as in its API reference (https://learn.microsoft.com/rest/api/storageservices/get-messages)."""
    return 200, {}, (
        '<?xml version="1.0" encoding="utf-8"?><QueueMessagesList><QueueMessage>'
        "<MessageId>5974b586-0df3-4e2d-ad0c-18e3892bfca2</MessageId>"
        "<InsertionTime>Fri, 09 Oct 2009 21:04:30 GMT</InsertionTime>"
        "<ExpirationTime>Fri, 16 Oct 2009 21:04:30 GMT</ExpirationTime>"
        "<PopReceipt>YzQ4Yzg1MDItYTc0Ny00OWNjLTkxYTUtZGM0MDFiZDAwYzEw</PopReceipt>"
        "<TimeNextVisible>Fri, 09 Oct 2009 23:29:20 GMT</TimeNextVisible>"
        f"<DequeueCount>3</DequeueCount><MessageText>{text}</MessageText>"
        "</QueueMessage></QueueMessagesList>"
    )  # fmt: skip


PUT_MESSAGE = (
    201,
    {},
    '<?xml version="1.0" encoding="utf-8"?><QueueMessagesList><QueueMessage>'
    "<MessageId>new-id</MessageId><InsertionTime>Fri, 09 Oct 2009 21:04:30 GMT</InsertionTime>"
    "<ExpirationTime>Fri, 16 Oct 2009 21:04:30 GMT</ExpirationTime><PopReceipt>receipt</PopReceipt>"
    "<TimeNextVisible>Fri, 09 Oct 2009 21:04:30 GMT</TimeNextVisible></QueueMessage></QueueMessagesList>",
)


def receive(half: _AzureRequests, text: str, max_messages: int = 100) -> tuple[list[Message], Any]:
    """What the half makes of the SDK's messages for a Get Messages answer carrying ``text``; the request."""
    client, transport = sdk_client(half, get_messages(text))
    items: Iterator[QueueMessage] = next(client.receive_messages(**half._receive_params(max_messages, 45)).by_page())
    return [half._message(item, 1_700_000_000.5) for item in items], transport.requests[0]


def send(half: _AzureRequests, entry: tuple[str, dict[str, Any]]) -> tuple[str, dict[str, list[str]]]:
    """The MessageText and the query the SDK sends for one of the half's entries."""
    client, transport = sdk_client(half, PUT_MESSAGE)
    body, kwargs = entry
    client.send_message(body, **kwargs)
    request = transport.requests[0]
    text = ElementTree.fromstring(request.content).findtext("MessageText")
    return text or "", parse_qs(urlsplit(request.url).query)


def query(request: Any) -> dict[str, list[str]]:
    return parse_qs(urlsplit(request.url).query)


@pytest.mark.parametrize(("asked", "sent"), [(5, "5"), (32, "32"), (100, "32")])
def test_an_azure_message_keeps_its_dequeue_count_and_times(asked: int, sent: str) -> None:
    """Get Messages: numofmessages "up to a maximum of 32"; each message has its DequeueCount,
    InsertionTime, ExpirationTime and TimeNextVisible (the Queue Storage REST reference)."""
    (message,), request = receive(_AzureRequests("orders", "text"), "hello", asked)

    assert query(request)["numofmessages"] == [sent] and query(request)["visibilitytimeout"] == ["45"]
    assert (message.id, message.body, message.receipt) == (
        "5974b586-0df3-4e2d-ad0c-18e3892bfca2",
        "hello",
        "YzQ4Yzg1MDItYTc0Ny00OWNjLTkxYTUtZGM0MDFiZDAwYzEw",
    )
    assert message.receive_count == 3
    assert dict(message.metadata) == {
        "inserted_on": "2009-10-09T21:04:30+00:00",
        "expires_on": "2009-10-16T21:04:30+00:00",
        "next_visible_on": "2009-10-09T23:29:20+00:00",
        "dequeue_count": 3,
    }
    assert message.sent_at == datetime(2009, 10, 9, 21, 4, 30, tzinfo=timezone.utc)
    assert message.message_attributes == {} and message.received_at == 1_700_000_000.5


@pytest.mark.parametrize(
    ("encoding", "body", "wire"),
    [
        ("text", "héllo <b>", "héllo &lt;b&gt;"),
        ("base64", "héllo <b>\x01", base64.b64encode("héllo <b>\x01".encode()).decode()),
    ],
)
def test_a_body_is_read_and_sent_in_the_queue_s_encoding(encoding: Encoding, body: str, wire: str) -> None:
    """The text encoding sends a body as it is (XML-escaped by the SDK); base64 sends its UTF-8 bytes
    in base64, as Azure Functions reads and writes them, and may so carry any character."""
    half = _AzureRequests("orders", encoding)
    (message,), _ = receive(half, wire)
    assert message.body == body

    (entry,) = half.prepare([body], {"delay_seconds": 30, "time_to_live": -1})
    assert entry == (body, {"visibility_timeout": 30, "time_to_live": -1})
    text, sent_query = send(half, entry)
    assert text == (body if encoding == "text" else base64.b64encode(body.encode()).decode())
    assert sent_query["visibilitytimeout"] == ["30"] and sent_query["messagettl"] == ["-1"]


@pytest.mark.parametrize(
    ("encoding", "largest", "over"),
    [
        ("text", "a" * 65_536, 65_537),
        ("text", "é" * 32_768, 65_537),
        ("base64", "a" * 49_152, 65_540),
        ("base64", "é" * 24_576, 65_540),
    ],
)
def test_a_body_may_be_64_kib_as_sent(encoding: Encoding, largest: str, over: int) -> None:
    """Put Message: "the encoded message can be up to 64 KiB in size"
    (https://learn.microsoft.com/rest/api/storageservices/put-message): text counts UTF-8 bytes,
    base64 the encoded text, which is a third larger."""
    half = _AzureRequests("orders", encoding)
    (entry,) = half.prepare([largest], {})
    text, _ = send(half, entry)
    assert len(text.encode()) == limits.AZURE_MAX_MESSAGE_BYTES  # what the half counted is what goes out
    with pytest.raises(ValueError, match=rf"messages\[0\] is {over} bytes as sent; .* at most 65536 bytes"):
        half.prepare([largest + "a"], {})


def test_text_carries_xml_characters_only_and_base64_any() -> None:
    text, encoded = _AzureRequests("orders", "text"), _AzureRequests("orders", "base64")
    for bad in ("\x00", "\ufffe"):
        with pytest.raises(ValueError, match="cannot carry in a text message"):
            text.prepare([f"a{bad}"], {})
        assert encoded.prepare([f"a{bad}"], {}) == [(f"a{bad}", {})]
    with pytest.raises(ValueError, match="U\\+D800"):
        encoded.prepare(["\ud800"], {})  # a lone surrogate is no UTF-8 at all
    assert send(encoded, ("\x00", {}))[0] == "AA=="


@pytest.mark.parametrize(
    ("options", "error", "says"),
    [
        ({"delay_seconds": 604_801}, ValueError, "delay_seconds must be an integer >= 0 and at most 604800"),
        ({"time_to_live": 0}, ValueError, "time_to_live must be an integer >= 1"),
        ({"message_attributes": {"k": s("x")}}, ValueError, "message_attributes are an Amazon SQS feature"),
        ({"message_group_id": "g"}, TypeError, r"unknown option\(s\) \['message_group_id'\]"),
    ],
)
def test_azure_push_options_are_checked_before_sending(options: dict[str, Any], error: type, says: str) -> None:
    """Put Message: visibilitytimeout "cannot be larger than 7 days"; messagettl is -1 (never
    expires) or at least 1 second (the Queue Storage REST reference)."""
    with pytest.raises(error, match=says):
        _AzureRequests("orders", "text").prepare(["a"], options)


def test_azure_sends_without_a_delay_or_a_time_to_live_unless_asked() -> None:
    half = _AzureRequests("orders", "text")
    assert half.prepare(["a"], {"delay_seconds": 0}) == [("a", {})]
    _, sent_query = send(half, ("a", {}))
    assert "visibilitytimeout" not in sent_query and "messagettl" not in sent_query
    assert half.prepare(["a"], {"delay_seconds": 604_800, "time_to_live": 60}) == [
        ("a", {"visibility_timeout": 604_800, "time_to_live": 60})
    ]


def test_azure_sends_and_deletes_one_message_per_request() -> None:
    """Azure Queue Storage has no batch API: Put Message, Delete Message and Update Message take one
    message each; Get Messages up to 32."""
    half = _AzureRequests("orders", "text")
    entries = half.prepare(["a", "b", "c"], {})
    assert half.send_chunks(entries) == [[e] for e in entries]
    assert (half.delete_chunk_size, half.visibility_chunk_size, half.receive_chunk_size) == (1, 1, 32)
    assert not (half.ordered_sends or half.needs_deduplication_ids or half.late_delete_uncertain)
    assert half.redrive is None


def test_a_visibility_change_hands_back_the_message_under_its_new_pop_receipt() -> None:
    """Update Message answers with x-ms-popreceipt and x-ms-time-next-visible; the old pop receipt is
    void (https://learn.microsoft.com/rest/api/storageservices/update-message)."""
    half = _AzureRequests("orders", "text")
    (message,), _ = receive(half, "hello")
    headers = {"x-ms-popreceipt": "AgAAAAMAAAAAAAAA", "x-ms-time-next-visible": "Fri, 09 Oct 2009 23:30:20 GMT"}
    client, transport = sdk_client(half, (204, headers, ""))
    updated = client.update_message(message.id, message.receipt, visibility_timeout=60)

    renewed = half._renewed(message, updated)
    assert renewed.receipt == "AgAAAAMAAAAAAAAA" and message.receipt != renewed.receipt
    assert (renewed.id, renewed.body, renewed.receive_count) == (message.id, message.body, message.receive_count)
    assert query(transport.requests[0])["popreceipt"] == [message.receipt]


def test_an_azure_dead_letter_or_redrive_moves_the_body_exactly_as_it_was() -> None:
    messages: Sequence[Message] = [msg(0), msg(1)]
    half = _AzureRequests("orders-poison", "text")
    assert half.dead_letter_options(messages, reason="max_receive_count=3", source="orders") == {}
    assert half.redrive_entries(messages) == [("body 0", {}), ("body 1", {})]
