"""Create the queues a DAG uses, from its connections (idempotent), before anything uses them."""

# [START howto_create_queues]
from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, task

with DAG(
    dag_id="example_queue_create",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"sqs_queue": "fluke-created", "azure_queue": "fluke-created"},
    tags=["example", "fluke"],
) as dag:

    @task
    def create_sqs_queue(params: dict | None = None) -> str:
        from airflow.providers.amazon.aws.hooks.sqs import SqsHook

        # CreateQueue returns the existing queue's URL when one with the same attributes exists.
        return SqsHook(aws_conn_id="fluke_sqs").create_queue(queue_name=params["sqs_queue"])["QueueUrl"]

    @task
    def create_azure_queue(params: dict | None = None) -> bool:
        from azure.core.exceptions import ResourceExistsError

        from fluke_airflow.hooks import AzureStorageQueueHook

        auth = AzureStorageQueueHook(azure_storage_queue_conn_id="fluke_azure").get_auth()
        client, credential = auth.create_queue_client(params["azure_queue"])
        try:
            client.create_queue()
            return True
        except ResourceExistsError:
            return False  # it was there already
        finally:
            client.close()
            if credential is not None:
                credential.close()

    create_sqs_queue()
    create_azure_queue()
# [END howto_create_queues]
