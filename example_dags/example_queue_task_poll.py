"""Poll inside a task with the guide's API: each batch is deleted only after it was processed."""

# [START howto_hook_queue_poll_in_task]
from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, task

with DAG(
    dag_id="example_queue_task_poll",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"queue": "fluke-events"},
    tags=["example", "fluke"],
) as dag:
    @task
    def drain(params: dict | None = None) -> int:
        from fluke_airflow.hooks import get_queue_hook

        processed = 0
        hook = get_queue_hook("fluke_azure")
        with hook.get_queue(params["queue"]) as queue:
            # Post-delivery delete (the default): a batch is deleted when the next one is
            # requested. If this task fails mid-batch, that batch stays in the queue.
            for batch in queue.poll(batch_size=32, visibility_timeout=120):
                for body in batch:
                    processed += len(body) > 0
        return processed

    # [END howto_hook_queue_poll_in_task]

    drain()
