"""QueueRedriveOperator in dag.test() runs (issue 10): dead letters back to their queue, from the
dead-letter queue each service's users expect by default, with a result per message."""

from __future__ import annotations

import json

import pytest
from airflow_support import run_dag_captured, set_connection, sqs_connection

from devtools.admin import AzureService, SQSService
from devtools.emulators import MotoSQS
from devtools.proxy import EntryFailure, Proxy
from devtools.support import fresh_name

pytestmark = pytest.mark.usefixtures("airflow_env")


def drain(service: SQSService | AzureService, name: str) -> list[str]:
    taken: list[str] = []
    while batch := service.receive(name):
        for body, handle in batch:
            taken.append(body)
            service.delete(name, handle)
    return sorted(taken)


@pytest.mark.compat
def test_azure_redrives_from_the_poison_queue(azure: AzureService) -> None:
    queue = fresh_name("redrive")
    azure.create(queue)
    azure.create(f"{queue}-poison")
    bodies = [f"poisoned-{i}" for i in range(4)]
    azure.send(f"{queue}-poison", bodies)
    result, _ = run_dag_captured("fluke_test_redrive", {"conn_id": azure.conn_id, "queue": queue})
    assert result.task_states() == {"redrive": "success"}
    results = result.xcom("redrive")
    assert len(results) == 4 and all(r["moved"] and r["deleted"] and r["new_id"] for r in results)
    assert drain(azure, queue) == bodies and azure.total(f"{queue}-poison") == 0


@pytest.mark.compat
def test_sqs_redrives_from_the_dead_letter_queue_of_its_redrive_policy(sqs: SQSService) -> None:
    dlq, queue = fresh_name("dlq"), fresh_name("redrive")
    dlq_arn = sqs.client.get_queue_attributes(QueueUrl=sqs.create(dlq), AttributeNames=["QueueArn"])
    policy = {"deadLetterTargetArn": dlq_arn["Attributes"]["QueueArn"], "maxReceiveCount": "5"}
    sqs.create(queue, RedrivePolicy=json.dumps(policy))
    sqs.send(dlq, [f"dead-{i:02d}" for i in range(12)])
    result, _ = run_dag_captured("fluke_test_redrive", {"conn_id": sqs.conn_id, "queue": queue, "limit": 10})
    assert result.task_states() == {"redrive": "success"}
    assert len(result.xcom("redrive")) == 10
    assert len(drain(sqs, queue)) == 10 and sqs.total(dlq) == 2  # at most max_messages


def test_sqs_without_a_redrive_policy_needs_the_dead_letter_queue_named(sqs: SQSService) -> None:
    queue = fresh_name("redrive")
    sqs.create(queue)
    result, output = run_dag_captured("fluke_test_redrive", {"conn_id": sqs.conn_id, "queue": queue})
    assert result.task_states() == {"redrive": "failed"}
    assert "has no RedrivePolicy naming its dead-letter queue: give dead_letter_queue" in output


def test_messages_the_source_refuses_stay_dead_letters_and_fail_the_task(
    moto: MotoSQS, sqs: SQSService, monkeypatch: pytest.MonkeyPatch
) -> None:
    dlq, queue = fresh_name("dlq"), fresh_name("redrive")
    dlq_arn = sqs.client.get_queue_attributes(QueueUrl=sqs.create(dlq), AttributeNames=["QueueArn"])
    sqs.create(queue, RedrivePolicy=json.dumps({"deadLetterTargetArn": dlq_arn["Attributes"]["QueueArn"],
                                                "maxReceiveCount": "5"}))  # fmt: skip
    sqs.send(dlq, [f"dead-{i:02d}" for i in range(15)])
    with Proxy(moto.endpoint_url) as proxy:
        conn_id = set_connection(monkeypatch, "fluke_sqs_redrive", sqs_connection(moto, endpoint_url=proxy.url))
        proxy.inject(EntryFailure(operation="SendMessageBatch", first=1))  # the first batch is refused
        result, output = run_dag_captured("fluke_test_redrive", {"conn_id": conn_id, "queue": queue})
    assert result.task_states() == {"redrive": "failed"}
    results = result.xcom("redrive")
    assert len(results) == 15
    refused = sum(not r["moved"] for r in results)  # as many as the first receive returned (1 to 10)
    assert 1 <= refused <= 10
    assert all(r["deleted"] == r["moved"] for r in results)
    assert f"{refused} of 15 message(s) could not be sent back" in output
    assert len(drain(sqs, queue)) == 15 - refused and sqs.total(dlq) == refused
