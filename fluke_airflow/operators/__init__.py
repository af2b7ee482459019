"""Operators for queue tasks: :class:`QueuePushOperator` and :class:`QueuePeekOperator`.

Cheap to import (DAG files import it on every parse): no cloud SDK is loaded until a task runs.
"""

from fluke_airflow.operators.peek import QueuePeekOperator
from fluke_airflow.operators.push import QueuePushOperator

__all__ = ["QueuePeekOperator", "QueuePushOperator"]
