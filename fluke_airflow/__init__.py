"""fluke-airflow: push, peek and poll Amazon SQS and Azure Queue Storage from Airflow.

Kept import-light: DAG files import our operators, and the scheduler parses DAG files often.
"""

from __future__ import annotations

__version__ = "0.1.0"
