"""Fixtures of the Airflow-level suites: see tests/airflow_support.py."""

from airflow_support import airflow_env, azure, queue, service, sqs

__all__ = ["airflow_env", "azure", "queue", "service", "sqs"]
