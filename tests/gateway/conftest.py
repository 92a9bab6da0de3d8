"""Fixtures for the gateway: a real Mosquitto, an observing MQTT client, running gateways.

Mosquitto is Debian's (`scripts/setup` installs it when missing); each test gets its own on a
free loopback port with a throw-away configuration and persistence folder, and it is stopped
when the test ends. The broker can be stopped and started again on the same port (restart
tests); persistence keeps retained messages and the observer's session across a restart, as a
production broker keeps them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
import contextlib
from dataclasses import dataclass
import json
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from gateway.app import Gateway, Settings
from gateway.broker import BrokerSettings
from gateway.topics import Topics
from tests.common import free_port, wait_for
from tests.gateway.mosquitto import Mosquitto


@pytest.fixture
async def broker(tmp_path: Path, socket_enabled: None) -> AsyncIterator[Mosquitto]:
    """A running Mosquitto for this test."""
    mosquitto = Mosquitto(tmp_path / "mosquitto")
    await mosquitto.start()
    yield mosquitto
    await mosquitto.stop()


@dataclass
class Received:
    """One message the observer got."""

    topic: str
    payload: bytes
    retain: bool

    def json(self) -> Any:
        """The payload as JSON."""
        return json.loads(self.payload)


class Observer:
    """A client that records everything under the given filters, as Home Assistant would.

    Its session is persistent (clean_session off, QoS 1), so messages published while it is
    reconnecting after a broker restart are queued for it by the broker, not lost.
    """

    def __init__(self, port: int, filters: list[str], name: str = "observer", **login: Any) -> None:
        self.port = port
        self.filters = filters
        self.name = name
        self.login = login  # username, password, tls_context for aiomqtt
        self.received: list[Received] = []
        self.connected = asyncio.Event()
        self._client: aiomqtt.Client | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())
        async with asyncio.timeout(20):
            await self.connected.wait()

    async def _run(self) -> None:
        while True:
            try:
                async with aiomqtt.Client(
                    "127.0.0.1", self.port, identifier=self.name, clean_session=False, **self.login
                ) as client:
                    self._client = client
                    await client.subscribe([(topic, 1) for topic in self.filters])
                    self.connected.set()
                    async for message in client.messages:
                        payload = message.payload
                        assert isinstance(payload, bytes)
                        self.received.append(
                            Received(str(message.topic), payload, bool(message.retain))
                        )
            except aiomqtt.MqttError:
                self.connected.clear()
                self._client = None
                await asyncio.sleep(0.1)

    async def publish(self, topic: str, payload: bytes | str, *, retain: bool = False) -> None:
        await wait_for(lambda: self._client is not None, within=20)
        assert self._client is not None
        await self._client.publish(topic, payload, qos=1, retain=retain)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def on(self, topic: str) -> list[Received]:
        """Messages received on `topic`, in order."""
        return [m for m in self.received if m.topic == topic]

    def last(self, topic: str) -> Received | None:
        found = self.on(topic)
        return found[-1] if found else None

    async def wait(
        self, topic: str, check: Callable[[Received], bool] = lambda _m: True, within: float = 20
    ) -> Received:
        """Wait for a message on `topic` that passes `check`; return it."""

        def found() -> Received | None:
            return next((m for m in self.on(topic) if check(m)), None)

        await wait_for(lambda: found() is not None, within=within)
        result = found()
        assert result is not None
        return result


@pytest.fixture
async def observer(broker: Mosquitto) -> AsyncIterator[Observer]:
    """An MQTT client recording everything the gateways publish."""
    client = Observer(broker.port, ["tk970/#", "homeassistant/#"])
    await client.start()
    yield client
    await client.stop()


@pytest.fixture
async def gateways(broker: Mosquitto) -> AsyncIterator[Callable[..., Any]]:
    """Start gateways against the test broker: `await gateways(instance="a", allow={...})`."""
    started: list[Gateway] = []

    async def start(instance: str = "gw1", **overrides: Any) -> Gateway:
        settings = Settings(
            mqtt=BrokerSettings(
                "127.0.0.1",
                broker.port,
                client_id=f"tk970-gateway-{instance}",
                retry_min=0.1,
                retry_max=0.5,
            ),
            port=free_port(),
            hosts=["127.0.0.1"],
            topics=Topics(instance=instance),
            birth_delay=0.0,
            relay_timeout=5.0,
        )
        for key, value in overrides.items():
            setattr(settings, key, value)
        gateway = Gateway(settings)
        await gateway.start()
        started.append(gateway)
        await wait_for(lambda: gateway.broker.connected, within=20)
        return gateway

    yield start
    for gateway in started:
        await gateway.stop()
