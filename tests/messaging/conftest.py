"""Fixtures of the Airflow-level suites: see tests/airflow_support.py."""

from airflow_support import airflow_env

__all__ = ["airflow_env"]
