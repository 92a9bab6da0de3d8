"""The transport alone (no Home Assistant): limits, sweeps, UDP peers and command outcomes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import logging

import pytest

from custom_components.tk970.listener import (
    CommandEncodeError,
    CommandRejectedError,
    CommandTimeoutError,
    Link,
    Listener,
    ListenerLimits,
    NotConnectedError,
)
from custom_components.tk970.protocol import (
    Command,
    CommandKind,
    CommandResult,
    Message,
)
from simulator import SimulatedTracker, frames

from .common import IMEI, free_port, wait_for

pytestmark = pytest.mark.usefixtures("socket_enabled")

CUT = Command(kind=CommandKind.RELAY_CUT)


class Recorder:
    """Collects what the listener reports."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.links: list[tuple[str, bool]] = []

    def message(self, link: Link, messages: list[Message]) -> None:
        self.messages.extend(messages)

    def link(self, link: Link, connected: bool) -> None:
        self.links.append((link.identity, connected))


@pytest.fixture
async def running() -> AsyncIterator[tuple[Listener, Recorder]]:
    """A listener on 127.0.0.1 and what it reported."""
    recorder = Recorder()
    listener = Listener(
        free_port(), on_messages=recorder.message, on_link=recorder.link, hosts=["127.0.0.1"]
    )
    await listener.start()
    yield listener, recorder
    await listener.stop()


async def tracker(
    listener: Listener, protocol: str = "jt808", **kwargs: object
) -> SimulatedTracker:
    """A connected, logged-in simulated tracker."""
    device = SimulatedTracker(IMEI, protocol=protocol, port=listener.port, **kwargs)  # type: ignore[arg-type]
    await device.connect()
    await device.login()
    return device


async def test_command_outcomes(running: tuple[Listener, Recorder]) -> None:
    """Success returns the outcome; unsupported and refused raise with the device's answer."""
    listener, recorder = running
    device = await tracker(listener)
    identity = recorder.messages[0].device_id
    assert identity is not None
    outcome = await listener.send_command(identity, CUT)
    assert outcome is not None
    assert outcome.result is CommandResult.SUCCESS
    assert device.relay is True

    async def answer(result: int) -> None:
        command = await device.wait_for(lambda d: d.detail == "8105", start=len(device.received))
        _, serial, _ = frames.jt808_unframe(command.raw)
        await device.send(frames.jt808_general_response(device.terminal, 9, serial, 0x8105, result))

    device.answer_commands = False
    for result, expected in ((3, CommandResult.UNSUPPORTED), (1, CommandResult.FAILURE)):
        answering = asyncio.create_task(answer(result))
        with pytest.raises(CommandRejectedError) as err:
            await listener.send_command(identity, CUT)
        await answering
        assert err.value.outcome.result is expected
    await device.close()


async def test_command_errors(running: tuple[Listener, Recorder]) -> None:
    """No link, a command the family cannot express, no answer, a hang-up while waiting."""
    listener, recorder = running
    with pytest.raises(NotConnectedError):
        await listener.send_command("000000000000000", CUT)
    watch = SimulatedTracker(IMEI, protocol="h02", port=listener.port, answer_commands=False)
    await watch.connect()
    await watch.report()
    await wait_for(lambda: bool(recorder.messages))
    with pytest.raises(CommandTimeoutError):
        await listener.send_command(IMEI, CUT, answer_timeout=0.2)
    with pytest.raises(CommandEncodeError):
        await listener.send_command(IMEI, Command(kind=CommandKind.RAW, text="ÄÖ"))
    waiting = asyncio.create_task(listener.send_command(IMEI, CUT))
    await asyncio.sleep(0.05)
    await watch.close()
    with pytest.raises(NotConnectedError):
        await waiting


async def test_gps103_command_is_not_awaited(running: tuple[Listener, Recorder]) -> None:
    """GPS103 has no confirmation: the command is sent and None comes back at once."""
    listener, _ = running
    device = await tracker(listener, "gps103")
    assert await listener.send_command(IMEI, CUT) is None
    await wait_for(lambda: device.relay is True)
    await device.close()


async def test_connection_limit() -> None:
    """Past the connection cap a new connection is closed at once; the others stay."""
    listener = Listener(
        free_port(),
        on_messages=lambda *_: None,
        hosts=["127.0.0.1"],
        limits=ListenerLimits(max_connections=2),
    )
    await listener.start()
    opened = [await asyncio.open_connection("127.0.0.1", listener.port) for _ in range(3)]
    reader, _ = opened[2]
    async with asyncio.timeout(5):
        assert await reader.read() == b""
    assert listener.connection_count == 2
    assert listener.stats.connections_refused == 1
    assert listener.stats.closed == {"connection limit": 1}
    for _, writer in opened:
        writer.close()
    await listener.stop()


async def test_idle_connections_are_swept(running: tuple[Listener, Recorder]) -> None:
    """A connection silent past TCP_IDLE_TIMEOUT is closed by the periodic sweep."""
    listener, _ = running
    device = await tracker(listener)
    listener.limits = ListenerLimits(tcp_idle_timeout=0.0)
    listener._sweep()
    await wait_for(lambda: listener.connection_count == 0)
    assert device._task is not None
    await asyncio.wait_for(device._task, 5)
    await device.close()


async def test_udp_peers_are_bounded(running: tuple[Listener, Recorder]) -> None:
    """Past MAX_UDP_PEERS the least recent peer is forgotten, and so is its link."""
    listener, recorder = running
    listener.limits = ListenerLimits(max_udp_peers=2)
    devices = []
    for number in range(3):
        device = SimulatedTracker(
            f"41000000{number:02d}", protocol="h02", transport="udp", port=listener.port
        )
        await device.connect()
        await device.report()
        devices.append(device)
        await wait_for(lambda number=number: len(recorder.messages) == number + 1)
    assert set(listener.links) == {"4100000001", "4100000002"}
    assert ("4100000000", False) in recorder.links
    listener.limits = ListenerLimits(udp_peer_timeout=0.0)
    listener._sweep()
    assert listener.links == {}
    for device in devices:
        await device.close()


async def test_a_failing_consumer_does_not_break_the_listener(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An exception in on_messages is logged once; the tracker still gets its replies."""

    def broken(link: Link, messages: list[Message]) -> None:
        raise RuntimeError("consumer bug")

    listener = Listener(free_port(), on_messages=broken, hosts=["127.0.0.1"])
    await listener.start()
    device = await tracker(listener, "gt06")  # the login ack arrived despite the bug
    with caplog.at_level(logging.ERROR):
        for _ in range(20):
            await device.report()
        await wait_for(lambda: listener.stats.replies == 21)
        await wait_for(lambda: "consumer bug" in caplog.text)
    # Logged once (with the traceback), not once per message: a peer keeps sending.
    assert len([r for r in caplog.records if "error handling messages" in r.getMessage()]) == 1
    await device.close()
    await listener.stop()


async def test_port_in_use_raises_and_releases(running: tuple[Listener, Recorder]) -> None:
    """A second listener on a taken port fails with OSError and leaves nothing bound."""
    listener, _ = running
    second = Listener(listener.port, on_messages=lambda *_: None, hosts=["127.0.0.1"])
    with pytest.raises(OSError, match="address already in use"):
        await second.start()
    await second.stop()
