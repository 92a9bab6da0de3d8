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
from dataclasses import dataclass, field
import json
import os
from pathlib import Path
import shutil
import socket
import subprocess
from typing import Any

import aiomqtt
import pytest

from gateway.app import Gateway, Settings
from gateway.broker import BrokerSettings
from gateway.topics import Topics
from tests.common import free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]


def mosquitto_binary() -> str:
    """Debian's mosquitto: installed, or unpacked by scripts/setup into .mosquitto/."""
    for candidate in (
        shutil.which("mosquitto"),
        "/usr/sbin/mosquitto",
        str(ROOT / ".mosquitto" / "usr" / "sbin" / "mosquitto"),
    ):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail("mosquitto is not installed: run scripts/setup (it installs Debian's mosquitto)")


@dataclass
class Mosquitto:
    """One broker process on 127.0.0.1."""

    folder: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        """Write the throw-away configuration."""
        self.folder.mkdir(parents=True, exist_ok=True)
        lines = [
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            "persistence true",
            f"persistence_location {self.folder}/",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "max_queued_messages 100000",
        ]
        if os.geteuid() == 0:
            lines.append("user root")  # keep root: the folder belongs to root
        self.config = self.folder / "mosquitto.conf"
        self.config.write_text("\n".join(lines) + "\n")

    async def start(self) -> None:
        """Start the broker and wait until it accepts connections."""
        environment = dict(os.environ)
        unpacked = [
            str(folder)
            for base in (ROOT / ".mosquitto" / "lib", ROOT / ".mosquitto" / "usr" / "lib")
            for folder in base.glob("*-linux-gnu")
        ]
        if unpacked:  # scripts/setup unpacked the package without root
            environment["LD_LIBRARY_PATH"] = ":".join(unpacked)
        self.process = subprocess.Popen(  # noqa: ASYNC220 - a long-running child, not waited on
            [mosquitto_binary(), "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=(self.folder / "mosquitto.log").open("ab"),
            env=environment,
        )

        def accepting() -> bool:
            with socket.socket() as probe:
                probe.settimeout(0.5)
                return probe.connect_ex(("127.0.0.1", self.port)) == 0

        await wait_for(accepting, within=20)

    async def stop(self) -> None:
        """Stop the broker (SIGTERM: it saves its persistence file) and wait for it."""
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        for _ in range(200):
            if process.poll() is not None:
                return
            await asyncio.sleep(0.05)
        process.kill()
        process.wait()


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

    def __init__(self, port: int, filters: list[str], name: str = "observer") -> None:
        self.port = port
        self.filters = filters
        self.name = name
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
                    "127.0.0.1", self.port, identifier=self.name, clean_session=False
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
