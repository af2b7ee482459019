"""The chaos suite (issue 5): faults injected between our queues and the emulators, with an
accounting of message ids per scenario (printed, and summed up at the end of the run).

The SQS scenarios run with the real SQS's receipt semantics in front of moto
(``Proxy(sqs_receipts=True)``: a delete with an expired or superseded receipt handle answers success
and deletes nothing), so a delete the client trusts too late shows up as a duplicate.

Part of ``make test`` with ``FLUKE_CHAOS_MESSAGES`` messages per scenario (100 by default).
A soak reuses the same scenarios with more messages and without the per-test timeout::

    FLUKE_CHAOS_MESSAGES=5000 .venv/bin/python -m pytest tests/chaos -o timeout=0

``FLUKE_CHAOS_SDK_BACKOFF=1`` keeps azure-storage's own retry pauses (15-24 s; by default the
Azure scenarios shorten them to ~0.5 s, see ``support.FastRetryAzureAuth``), and
``FLUKE_CHAOS_DEBUG=1`` prints every request the proxy saw, with its faults.
"""
