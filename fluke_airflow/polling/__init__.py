"""What the sensor, the settle sensor, the trigger and the shared-stream producer share.

* :mod:`~fluke_airflow.polling.settings`: the delivery settings, checked in one place against the
  services' limits (at DAG-parse time where a value is not templated);
* :mod:`~fluke_airflow.polling.open`: opening the queue of a connection, blocking or asyncio;
* :mod:`~fluke_airflow.polling.deliveries`: the delivery flow, and the trigger's endless
  sequence of deliveries with its backoff;
* :mod:`~fluke_airflow.polling.payloads`: the shape of trigger events and asset-event payloads.

Kept import-light: the sensor imports the settings when a DAG file is parsed.
"""
