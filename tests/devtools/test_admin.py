"""devtools/admin.py: the emulators through clients independent of our code, as the tests, the chaos
scenarios, the e2e stacks, the benchmarks and the demo use them (the same calls on both services)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devtools.admin import AzureService, Service, SQSService
from devtools.emulators import AzuriteQueue, MotoSQS
from devtools.support import WaitTimeout


@pytest.fixture(params=["sqs", "azure"])
def admin(request: pytest.FixtureRequest) -> Iterator[Service]:
    if request.param == "sqs":
        opened: Service = SQSService(request.getfixturevalue("moto"))
    else:
        opened = AzureService(request.getfixturevalue("azurite"))
    with opened:
        yield opened


def test_send_receive_release_and_delete(admin: Service) -> None:
    name = admin.new_queue(prefix="admin")
    assert admin.seed(name, 3) == ["m-000", "m-001", "m-002"]
    assert (admin.total(name), admin.visible(name)) == (3, 3)

    received = admin.receive(name)
    assert sorted(body for body, _ in received) == ["m-000", "m-001", "m-002"]
    assert (admin.total(name), admin.visible(name)) == (3, 0)  # hidden for the visibility timeout
    body, handle = received[0]
    admin.release(name, handle)
    assert admin.visible(name) == 1
    for _, other in received[1:]:
        admin.delete(name, other)
    assert admin.drain(name) == [body]
    assert admin.total(name) == 0
    admin.delete_queue(name)
    admin.delete_queue(name)  # gone already: no error


def test_create_makes_a_fixed_name_new_and_empty(admin: Service) -> None:
    name = admin.new_queue(prefix="fixed")
    admin.send(name, ["left over"])
    admin.create(name)
    assert admin.total(name) == 0


def test_a_delayed_message_counts_in_the_total_but_is_not_visible(admin: Service) -> None:
    name = admin.new_queue(prefix="delay")
    admin.send(name, ["later"], delay=600)
    assert (admin.total(name), admin.visible(name), admin.drain(name)) == (1, 0, [])
    if isinstance(admin, SQSService):
        assert admin.counts(name) == {"visible": 0, "in_flight": 0, "delayed": 1}


def test_threaded_sends_send_everything(admin: Service) -> None:
    name = admin.new_queue(prefix="threads")
    bodies = [f"b-{i:02d}" for i in range(25)]
    admin.send(name, bodies, threads=4)
    assert sorted(admin.collect(name, 25, timeout=60)) == bodies


def test_collect_says_how_far_it_got(admin: Service) -> None:
    name = admin.new_queue(prefix="collect")
    admin.send(name, ["only one"])
    with pytest.raises(WaitTimeout, match=r"waiting for 2 message\(s\) in '.+'; .*; collected 1: \['only one'\]"):
        admin.collect(name, 2, timeout=0)


def test_the_largest_body_each_service_takes(moto: MotoSQS, azurite: AzuriteQueue) -> None:
    with SQSService(moto) as sqs, AzureService(azurite) as azure:
        assert sqs.max_body_bytes(sqs.new_queue(MaximumMessageSize=1024)) == 1024
        assert azure.max_body_bytes(azure.new_queue()) == 65_536


def test_azure_bodies_in_base64(azurite: AzuriteQueue) -> None:
    with AzureService(azurite) as azure:
        name = azure.new_queue()
        azure.send(name, ["ünïcødé \x00"], base64=True)
        (raw,) = azure.queue_client(name).peek_messages()
        assert raw.content == "w7xuw69jw7hkw6kgAA=="
        assert azure.drain(name, base64=True) == ["ünïcødé \x00"]
