"""Fault injection with accounting of message ids (issue 5), on SQS (moto) and Azure (Azurite).

Each scenario pushes ``FLUKE_CHAOS_MESSAGES`` numbered messages and consumes them through a
proxy that injects faults into the receive and delete requests, then prints one line of
accounting (pushed / processed / duplicates / lost) and checks the delivery guarantee:

* post-delivery delete (the default): every message processed at least once, none lost;
* pre-delivery delete: no message processed twice, and none lost except where a delete reached
  the service and its answer was lost (at most once allows that; both counts are printed).

The SDKs retry (botocore: standard mode, 5 retries; azure-storage: 3 retries); what fails
after that reaches the consumer as a ``QueueError`` from ``poll`` (a receive) or as a message
that comes back after its visibility timeout (a delete), and the consumer polls again.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from devtools.proxy import EntryFailure, ErrorStatus, Fault, Latency, Reset, Throttle, Timeout

from .support import Consumption, Ledger, ProxiedService, aconsume, apush_all, consume, push_all, settle

Plan = Callable[[ProxiedService], tuple[Fault, ...]]


def transient(s: ProxiedService, *, failing_receive: bool = True) -> tuple[Fault, ...]:
    """Every kind of fault before the request reaches the service, on receives and deletes. Most
    are absorbed by the SDK's retries; some outlast them: deletes that fail for good (those
    messages come back) and, with ``failing_receive``, a receive that fails on every attempt
    (``poll`` raises; on SQS that costs ~15 s of botocore backoff, so only one scenario has it)."""
    ops = (s.receive, s.delete)
    retries = s.max_attempts - 1
    faults: list[Fault] = [
        Latency(operation=ops, probability=0.15, seconds=0.05),
        Reset(operation=ops, probability=0.03),
        Timeout(operation=ops, probability=0.01, seconds=0.5),
        ErrorStatus(operation=ops, probability=0.015, status=500),
        ErrorStatus(operation=ops, probability=0.015, status=503),
        Throttle(operation=ops, probability=0.015),
    ]
    if s.name == "sqs":
        # entries reported failed: botocore does not retry them (no backoff to wait out)
        faults.append(EntryFailure(operation=s.delete, skip=2, first=2))
    else:
        faults.append(ErrorStatus(operation=s.delete, skip=20, first=3, retries=retries, status=503))
    if failing_receive:
        faults.append(Reset(operation=s.receive, skip=3, first=1, retries=retries))
    return tuple(faults)


def lost_responses(s: ProxiedService) -> tuple[Fault, ...]:
    """The service did the work and the answer never arrived: deletes carried out upstream whose
    response is reset, replaced by a 500 or held; receives whose messages went invisible unseen."""
    return (
        Latency(operation=s.delete, after=True, probability=0.2, seconds=0.05),
        Reset(operation=s.delete, after=True, probability=0.08),
        ErrorStatus(operation=s.delete, after=True, probability=0.03, status=500),
        Timeout(operation=s.delete, after=True, probability=0.015, seconds=0.5),
        Reset(operation=s.receive, after=True, probability=0.06),
        ErrorStatus(operation=s.receive, after=True, probability=0.03, status=503),
    )


def mixed(s: ProxiedService) -> tuple[Fault, ...]:
    """Both of the above at once, without a receive that fails for good."""
    return transient(s, failing_receive=False) + lost_responses(s)


SCENARIOS: dict[str, tuple[Plan, bool]] = {
    # name: (faults, pre_delivery)
    "transient": (transient, False),
    "lost-responses": (lost_responses, False),
    "pre-transient": (lambda s: transient(s, failing_receive=s.name != "sqs"), True),
    "pre-lost-responses": (lost_responses, True),
    "pre-mixed": (mixed, True),
}


@pytest.mark.parametrize("scenario", ["transient", "lost-responses", "pre-transient", "pre-lost-responses"])
def test_faults(service: ProxiedService, scenario: str) -> None:
    faults, pre_delivery = SCENARIOS[scenario]
    ledger = Ledger(f"{scenario} {service.name}", service.delete)
    with service.open(service.new_queue()) as queue:
        push_all(queue, ledger)
        service.proxy.reset()
        consume(queue, Consumption(service, pre_delivery, faults(service)), ledger)
        assert queue.count() == 0
    settle(ledger, service.proxy, pre_delivery=pre_delivery)


@pytest.mark.parametrize("scenario", ["pre-mixed"])
async def test_faults_async(service: ProxiedService, scenario: str) -> None:
    faults, pre_delivery = SCENARIOS[scenario]
    ledger = Ledger(f"{scenario} {service.name} async", service.delete)
    async with service.open_async(service.new_queue()) as queue:
        await apush_all(queue, ledger)
        service.proxy.reset()
        await aconsume(queue, Consumption(service, pre_delivery, faults(service)), ledger)
        assert await queue.count() == 0
    settle(ledger, service.proxy, pre_delivery=pre_delivery)


def test_batch_outlasting_its_visibility_timeout(service: ProxiedService) -> None:
    """Slow receives: the first messages of a batch become visible again while the batch is still
    filling, and the service hands them out a second time within the same poll. Pre-delivery
    delete must still deliver each message once (one copy per batch, the newest receipt)."""
    ledger = Ledger(f"slow-batch {service.name}", service.delete)
    batch_size = 100 if service.name == "sqs" else 96  # 10 receives / 3 receives per batch
    receives = batch_size // (10 if service.name == "sqs" else 32)
    # only the first batch is slow: long enough for its first messages to come back during it
    slow = Latency(operation=service.receive, first=receives + 2, seconds=0.35 if service.name == "sqs" else 0.6)
    with service.open(service.new_queue()) as queue:
        push_all(queue, ledger)
        service.proxy.reset()
        consume(queue, Consumption(service, True, (slow,), visibility_timeout=1, batch_size=batch_size), ledger)
        assert queue.count() == 0
    settle(ledger, service.proxy, pre_delivery=True)
