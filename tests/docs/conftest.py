"""The docs' tests use the Airflow-level fixtures (emulators, connections): see tests/airflow_support.py."""

from airflow_support import airflow_env, azure, sqs

__all__ = ["airflow_env", "azure", "sqs"]
