"""The listener's `hold_acks` option: a report is acknowledged only once its consumer took it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from custom_components.tk970.listener import Link, Listener
from custom_components.tk970.protocol import Message
from simulator import SimulatedTracker
from tests.common import IMEI, free_port, wait_for

pytestmark = pytest.mark.usefixtures("socket_enabled")


class Consumer:
    """Takes reports while `accepting`; counts what it saw."""

    def __init__(self) -> None:
        self.accepting = True
        self.seen = 0
        self.fail = False

    def __call__(self, link: Link, messages: list[Message]) -> bool:
        self.seen += len(messages)
        if self.fail:
            raise RuntimeError("consumer bug")
        return self.accepting


@pytest.fixture
async def held() -> AsyncIterator[tuple[Listener, Consumer]]:
    consumer = Consumer()
    listener = Listener(free_port(), on_messages=consumer, hosts=["127.0.0.1"], hold_acks=True)
    await listener.start()
    yield listener, consumer
    await listener.stop()


def acks(tracker: SimulatedTracker, start: int) -> int:
    return len([d for d in tracker.received[start:] if d.detail == "8001"])


async def test_acknowledged_only_when_taken(held: tuple[Listener, Consumer]) -> None:
    """Refused or failed reports get no reply; taken ones do; the connection stays."""
    listener, consumer = held
    tracker = SimulatedTracker(IMEI, protocol="jt808", port=listener.port)
    await tracker.connect()
    try:
        await tracker.login()  # registration and authentication are answered (taken)
        before = len(tracker.received)
        seen = consumer.seen
        consumer.accepting = False
        await tracker.report()
        await wait_for(lambda: consumer.seen > seen)
        consumer.fail = True
        await tracker.report()
        await wait_for(lambda: consumer.seen > seen + 1)
        assert acks(tracker, before) == 0
        consumer.fail, consumer.accepting = False, True
        await tracker.report()
        await tracker.wait_for(lambda d: d.detail == "8001", start=before)
        assert acks(tracker, before) == 1
        assert listener.connection_count == 1
    finally:
        await tracker.close()


async def test_default_acknowledges_at_once() -> None:
    """Without the option the reply goes out whatever the consumer returns (as before)."""
    consumer = Consumer()
    consumer.accepting = False
    listener = Listener(free_port(), on_messages=consumer, hosts=["127.0.0.1"])
    await listener.start()
    tracker = SimulatedTracker(IMEI, protocol="jt808", port=listener.port)
    try:
        await tracker.connect()
        await tracker.login()
        before = len(tracker.received)
        await tracker.report()
        await tracker.wait_for(lambda d: d.detail == "8001", start=before)
    finally:
        await tracker.close()
        await listener.stop()
