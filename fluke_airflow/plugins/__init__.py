"""This provider's Airflow plugin: the listener that tells ``delete_on_dag_success`` watchers which
DAG run took which of their deliveries (:mod:`fluke_airflow.plugins.runs`).

Airflow 3.3.2 loads it through the ``airflow.plugins`` entry point, in every component, whatever
its configuration; ``airflow plugins`` lists it as ``fluke_airflow``. It is not in
``provider.yaml``'s ``plugins``: Airflow reads those only with ``[core] lazy_discover_providers =
False``, and then finds the plugin twice and reports the second as an import error. Importing it is
cheap: the listener imports what it needs when a run changes state.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from fluke_airflow.plugins import runs


class FlukeAirflowPlugin(AirflowPlugin):
    name = "fluke_airflow"
    listeners = [runs]
