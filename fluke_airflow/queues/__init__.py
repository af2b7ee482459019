"""Push, peek and poll on Amazon SQS and Azure Queue Storage (the Fluke queue API).

The classes load their cloud SDK when a queue opens, not when this module is imported.
"""

from fluke_airflow.queues.azure import AsyncAzureStorageQueue, AzureStorageQueue
from fluke_airflow.queues.message import Message
from fluke_airflow.queues.sqs import AmazonSQSQueue, AsyncAmazonSQSQueue

__all__ = ["AmazonSQSQueue", "AsyncAmazonSQSQueue", "AsyncAzureStorageQueue", "AzureStorageQueue", "Message"]
