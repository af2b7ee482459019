"""What each service allows, in one place and free of imports.

The queue classes enforce these; the sensor and the trigger check their arguments against them
when a DAG file is parsed, before they know which service a connection points at (so there they
take the larger of the two services' limits, and the queue checks its own when it opens).
"""

from __future__ import annotations

# Amazon SQS
SQS_BATCH_ENTRIES = 10
"""Entries per SendMessageBatch / DeleteMessageBatch / ChangeMessageVisibilityBatch, messages per ReceiveMessage."""
SQS_BATCH_BYTES = 1_048_576
"""Total payload of one SendMessageBatch."""
SQS_MAX_MESSAGE_BYTES = 1_048_576
"""The largest message (a queue's MaximumMessageSize may be smaller; the queue reads it when it opens)."""
SQS_MAX_VISIBILITY = 43_200
"""12 hours: the longest visibility timeout, and the longest a received message may stay hidden in all."""
SQS_MAX_WAIT = 20
"""The longest long poll."""
SQS_MAX_DELAY = 900

# Azure Queue Storage
AZURE_RECEIVE_LIMIT = 32
AZURE_MAX_MESSAGE_BYTES = 65_536
AZURE_MAX_VISIBILITY = 7 * 24 * 3600
AZURE_MIN_RECEIVE_VISIBILITY = 1
"""A receive may not hide messages for 0 s on Azure."""

# Either service: what arguments are checked against before the service is known.
MAX_VISIBILITY = max(SQS_MAX_VISIBILITY, AZURE_MAX_VISIBILITY)
MAX_WAIT = SQS_MAX_WAIT
"""``wait_time_seconds`` is SQS's long poll; Azure accepts it and has nothing to wait with."""
PEEK_LIMIT = 10
