"""Credentials for the queues: :class:`AWSAuth` (Amazon SQS) and :class:`AzureAuth` (Azure Queue Storage).

Importing this module loads no cloud SDK; that happens when a queue opens.
"""

from fluke_airflow.auth.aws import AWSAuth
from fluke_airflow.auth.azure import AzureAuth

__all__ = ["AWSAuth", "AzureAuth"]
