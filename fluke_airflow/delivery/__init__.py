"""What the sensor, the settle sensor, the trigger and the shared-stream producer share: the
Airflow side of a delivery (its arguments are declared in :mod:`fluke_airflow.queues.arguments`,
its rules are :mod:`fluke_airflow.queues.flows` and :mod:`fluke_airflow.queues.lifecycle`).

* :mod:`~fluke_airflow.delivery.open`: opening the queue of a connection, blocking or asyncio,
  ready for deliveries;
* :mod:`~fluke_airflow.delivery.deliveries`: a delivery's options and flow, and the trigger's
  endless sequence of deliveries with its backoff;
* :mod:`~fluke_airflow.delivery.payloads`: the shape of trigger events and asset-event payloads;
* :mod:`~fluke_airflow.delivery.health`: a trigger's periodic health line.
"""
