"""Push, peek and poll an Azure Storage queue (connection ``fluke_azure`` of type ``azure_storage_queue``)."""

# [START howto_dag_queue_azure]
from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, task

from fluke_airflow.operators import QueuePeekOperator, QueuePushOperator
from fluke_airflow.sensors import QueuePollSensor

with DAG(
    dag_id="example_queue_azure",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"queue": "fluke-invoices"},
    tags=["example", "fluke", "azure"],
) as dag:
    # [END howto_dag_queue_azure]
    # [START howto_operator_queue_push_azure]
    push = QueuePushOperator(
        task_id="push",
        conn_id="fluke_azure",
        queue_name="{{ params.queue }}",
        message=[f"invoice-{{{{ dag_run.run_after | ds_nodash }}}}-{i}" for i in range(40)],
    )
    # [END howto_operator_queue_push_azure]

    peek = QueuePeekOperator(task_id="peek", conn_id="fluke_azure", queue_name="{{ params.queue }}")

    # [START howto_sensor_queue_poll_pre_delivery]
    wait = QueuePollSensor(
        task_id="take_invoices",
        conn_id="fluke_azure",
        queue_name="{{ params.queue }}",
        num_messages=40,
        pre_delivery_delete=True,  # at most once: deleted before they reach XCom
        poke_interval=2,
        timeout=300,
    )
    # [END howto_sensor_queue_poll_pre_delivery]

    @task
    def count(bodies: list[str]) -> int:
        print(f"received {len(bodies)} invoices")
        return len(bodies)

    push >> peek >> wait
    count(wait.output)
