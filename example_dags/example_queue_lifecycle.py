"""Create, fill, purge and delete queues: Amazon SQS (connection ``fluke_sqs``, type ``aws``) and
Azure Queue Storage (connection ``fluke_azure``, type ``azure_storage_queue``).

The queues live for one run: they are created by setup tasks and deleted by teardown tasks, which
Airflow runs even when a task between them fails.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from fluke_airflow.operators import QueueCreateOperator, QueueDeleteOperator, QueuePurgeOperator, QueuePushOperator

with DAG(
    dag_id="example_queue_lifecycle",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={
        "queue": "fluke-lifecycle-orders",
        "dead_letter_queue": "fluke-lifecycle-orders-dlq",
        # The dead-letter queue's QueueArn: arn:aws:sqs:<region>:<account id>:<name>.
        "dead_letter_arn": "arn:aws:sqs:us-east-1:123456789012:fluke-lifecycle-orders-dlq",
        "azure_queue": "fluke-lifecycle-invoices",
    },
    tags=["example", "fluke", "sqs", "azure"],
) as dag:
    # [START howto_operator_queue_create_sqs]
    create_dead_letters = QueueCreateOperator(
        task_id="create_dead_letter_queue",
        conn_id="fluke_sqs",
        queue_name="{{ params.dead_letter_queue }}",
        attributes={"MessageRetentionPeriod": 14 * 24 * 3600},  # keep dead letters 14 days, SQS's longest
    )
    create_orders = QueueCreateOperator(
        task_id="create_orders",
        conn_id="fluke_sqs",
        queue_name="{{ params.queue }}",
        attributes={
            "VisibilityTimeout": 120,
            "ReceiveMessageWaitTimeSeconds": 20,
            "RedrivePolicy": {"deadLetterTargetArn": "{{ params.dead_letter_arn }}", "maxReceiveCount": 5},
        },
        tags={"team": "data"},
    )
    # [END howto_operator_queue_create_sqs]

    # [START howto_operator_queue_push_to_created]
    push_orders = QueuePushOperator(
        task_id="push_orders",
        conn_id="fluke_sqs",
        queue_name=create_orders.output,  # the queue URL the create returned
        message=["order-1", "order-2", "order-3"],
    )
    # [END howto_operator_queue_push_to_created]

    # [START howto_operator_queue_purge]
    purge_orders = QueuePurgeOperator(task_id="purge_orders", conn_id="fluke_sqs", queue_name="{{ params.queue }}")
    # [END howto_operator_queue_purge]

    # [START howto_operator_queue_delete]
    delete_orders = QueueDeleteOperator(
        task_id="delete_orders", conn_id="fluke_sqs", queue_name="{{ params.queue }}"
    ).as_teardown(setups=create_orders)
    delete_dead_letters = QueueDeleteOperator(
        task_id="delete_dead_letter_queue", conn_id="fluke_sqs", queue_name="{{ params.dead_letter_queue }}"
    ).as_teardown(setups=create_dead_letters)
    # [END howto_operator_queue_delete]

    create_dead_letters >> create_orders >> push_orders >> purge_orders >> delete_orders >> delete_dead_letters

    # [START howto_operator_queue_create_azure]
    create_invoices = QueueCreateOperator(
        task_id="create_invoices",
        conn_id="fluke_azure",
        queue_name="{{ params.azure_queue }}",
        metadata={"team": "data", "source": "billing"},
    )
    # [END howto_operator_queue_create_azure]

    push_invoices = QueuePushOperator(
        task_id="push_invoices", conn_id="fluke_azure", queue_name=create_invoices.output, message=["inv-1", "inv-2"]
    )

    # [START howto_operator_queue_push_create_if_missing]
    push_audit = QueuePushOperator(
        task_id="push_audit",
        conn_id="fluke_azure",
        queue_name="{{ params.azure_queue }}-audit",
        message="invoices pushed in {{ run_id }}",
        create_if_missing=True,  # logged at WARNING when it creates the queue
    )
    # [END howto_operator_queue_push_create_if_missing]

    purge_invoices = QueuePurgeOperator(
        task_id="purge_invoices", conn_id="fluke_azure", queue_name="{{ params.azure_queue }}"
    )
    delete_invoices = QueueDeleteOperator(
        task_id="delete_invoices", conn_id="fluke_azure", queue_name="{{ params.azure_queue }}"
    ).as_teardown(setups=create_invoices)
    delete_audit = QueueDeleteOperator(
        task_id="delete_audit", conn_id="fluke_azure", queue_name="{{ params.azure_queue }}-audit"
    ).as_teardown()

    create_invoices >> push_invoices >> push_audit >> purge_invoices >> [delete_invoices, delete_audit]
