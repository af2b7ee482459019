"""Operators for queue tasks: :class:`QueuePushOperator`, :class:`QueuePeekOperator`,
:class:`QueueRedriveOperator`, and the queue lifecycle: :class:`QueueCreateOperator`,
:class:`QueueDeleteOperator` and :class:`QueuePurgeOperator`.

Cheap to import (DAG files import it on every parse): no cloud SDK is loaded until a task runs.
"""

from fluke_airflow.operators.manage import QueueCreateOperator, QueueDeleteOperator, QueuePurgeOperator
from fluke_airflow.operators.peek import QueuePeekOperator
from fluke_airflow.operators.push import QueuePushOperator
from fluke_airflow.operators.redrive import QueueRedriveOperator

__all__ = [
    "QueueCreateOperator",
    "QueueDeleteOperator",
    "QueuePeekOperator",
    "QueuePurgeOperator",
    "QueuePushOperator",
    "QueueRedriveOperator",
]
