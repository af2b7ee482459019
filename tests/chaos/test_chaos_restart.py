"""The emulator restarts in the middle of a poll (issue 5), with accounting of message ids.

Azurite only: its ``restart()`` keeps the data folder, so the queue, its messages and their
pop receipts survive, as they would on a real service. (moto keeps its state in memory:
a restart would wipe the queue, which no real SQS does.) The emulator is a dedicated one,
so restarting it cannot disturb other tests; it runs with ``--disableTelemetry``, without
which Azurite lingers ~10 s after closing and ``stop()`` has to kill it.

The restart happens on a thread once the consumer has processed its second batch, so the
delete of that batch and the following receives meet a server that is going down, absent
(the proxy resets the connections it cannot forward) and back.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

import pytest

from devtools.emulators import AzuriteQueue
from devtools.proxy import Proxy

from .support import Consumption, Ledger, Restarter, azure_service, consume, push_all, settle


@pytest.fixture(scope="module")
def restartable_azurite() -> Iterator[AzuriteQueue]:
    server = AzuriteQueue.create()
    server.command.append("--disableTelemetry")
    server.start()
    yield server
    server.remove()


@pytest.mark.parametrize("pre_delivery", [False, True], ids=["post", "pre"])
def test_emulator_restart_mid_poll(restartable_azurite: AzuriteQueue, pre_delivery: bool) -> None:
    mode = "pre" if pre_delivery else "post"
    with Proxy(restartable_azurite.account_url, seed=zlib.crc32(mode.encode())) as proxy:
        service = azure_service(restartable_azurite, proxy)
        ledger = Ledger(f"restart-{mode} azure", service.delete)
        restarter = Restarter(restartable_azurite)

        def on_batch(ledger: Ledger) -> None:
            if ledger.batches == 2:
                restarter.trigger()

        with service.open(service.new_queue()) as queue:
            push_all(queue, ledger)
            proxy.reset()
            consume(queue, Consumption(service, pre_delivery, on_batch=on_batch), ledger)
            restarter.join()
            assert restarter.restarts == 1
            consume(queue, Consumption(service, pre_delivery), ledger)  # whatever came back after the restart
            assert queue.count() == 0
        # A delete that Azurite carried out just before it went down, and whose answer was lost,
        # is retried, answered 404 and not delivered: at most once allows that loss (settle()
        # counts such deletes among the unanswered ones).
        settle(ledger, proxy, pre_delivery=pre_delivery)
