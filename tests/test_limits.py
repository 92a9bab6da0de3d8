"""The listener's bounds, one at a time, over real sockets on the loopback (no Home Assistant).

Each test shortens the one limit it checks through `ListenerLimits`, sends what a hostile or
broken peer would, and checks both sides: what the listener keeps (connections, links, peers)
and what a well-behaved tracker on the same port still gets.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
import logging
import socket
import subprocess
import sys
import textwrap

import pytest

from custom_components.tk970 import limits as limits_module, listener as listener_module
from custom_components.tk970.listener import Link, Listener, ListenerLimits, NotConnectedError
from custom_components.tk970.protocol import Command, CommandKind, Message
from custom_components.tk970.ratelog import MAX_REASONS, RateLimitedLog
from simulator import Fix, SimulatedTracker, frames
from simulator.hostile import closed_by_server

from .common import IMEI, IMEI_2, free_port, wait_for

pytestmark = pytest.mark.usefixtures("socket_enabled")

CUT = Command(kind=CommandKind.RELAY_CUT)
FIX = Fix(time=datetime(2026, 1, 1, tzinfo=UTC), latitude=52.5, longitude=13.4)


class Recorder:
    """What the listener reported, in order."""

    def __init__(self) -> None:
        self.messages: list[tuple[Link, Message]] = []
        self.links: list[tuple[str, bool, Link]] = []
        self.duplicates: list[tuple[str, int]] = []

    def message(self, link: Link, messages: list[Message]) -> None:
        self.messages.extend((link, message) for message in messages)

    def link(self, link: Link, connected: bool) -> None:
        self.links.append((link.identity, connected, link))

    def duplicate(self, identity: str, links: list[Link]) -> None:
        self.duplicates.append((identity, len(links)))


type Start = Callable[..., asyncio.Future[tuple[Listener, Recorder]]]


@pytest.fixture
async def start() -> AsyncIterator[Callable[..., object]]:
    """Start listeners on 127.0.0.1 with the given limits; all are stopped at the end."""
    started: list[Listener] = []

    async def _start(**limits: float) -> tuple[Listener, Recorder]:
        recorder = Recorder()
        listener = Listener(
            free_port(),
            on_messages=recorder.message,
            on_link=recorder.link,
            on_duplicate=recorder.duplicate,
            hosts=["127.0.0.1"],
            limits=ListenerLimits(**limits),  # type: ignore[arg-type]
        )
        await listener.start()
        started.append(listener)
        return listener, recorder

    yield _start
    for listener in started:
        await listener.stop()


async def connect(
    port: int, source: str = "127.0.0.1"
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw TCP client, from a chosen loopback address."""
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))


async def gt06_tracker(port: int, identity: str = IMEI) -> SimulatedTracker:
    """A logged-in GT06 tracker (its login names it at once)."""
    device = SimulatedTracker(identity, protocol="gt06", port=port)
    await device.connect()
    await device.login()
    return device


def acks(device: SimulatedTracker) -> int:
    """How many acks the server sent the simulated tracker."""
    return sum(1 for item in device.received if item.kind == "ack")


# -- connections that do not identify ----------------------------------------------------------


async def test_unidentified_connections_are_closed_after_the_identify_limit(start) -> None:
    """Silent or babbling peers are closed when the limit passes; a tracker that logged in stays."""
    listener, _ = await start(identify_timeout=0.5)
    silent_reader, silent = await connect(listener.port)
    babbler_reader, babbler = await connect(listener.port)
    babbler.write(b"GET / HTTP/1.1\r\n")  # bytes, but no frame that names a device
    device = await gt06_tracker(listener.port)
    assert await closed_by_server(silent_reader, 10)
    assert await closed_by_server(babbler_reader, 10)
    assert listener.connection_count == 1
    assert listener.unidentified_count == 0
    assert listener.stats.closed["did not identify"] == 2
    await device.heartbeat()  # the tracker is still served
    await wait_for(lambda: acks(device) == 2)
    for writer in (silent, babbler):
        writer.close()
    await device.close()


async def test_unidentified_connections_are_capped_per_address_and_in_all(start) -> None:
    """A stranger's silent sockets are capped per address; other addresses still get in."""
    listener, _ = await start(max_unidentified_per_host=3, max_unidentified=5)
    held = [await connect(listener.port, "127.0.0.2") for _ in range(4)]
    assert await closed_by_server(held[3][0], 10)  # the fourth from that address
    await wait_for(lambda: listener.unidentified_count == 3)
    others = [await connect(listener.port, f"127.0.0.{n}") for n in (3, 3, 4)]
    assert await closed_by_server(others[2][0], 10)  # five unidentified in all: sixth refused
    assert listener.stats.closed == {
        "unidentified connections per address": 1,
        "unidentified connection limit": 1,
    }
    # A tracker that identifies frees its slot: identified trackers are not capped per address.
    for _, writer in held[:3]:
        writer.close()
    await wait_for(lambda: listener.unidentified_count == 2)
    devices = [await gt06_tracker(listener.port, identity) for identity in (IMEI, IMEI_2)]
    await wait_for(lambda: listener.unidentified_count == 2 and listener.connection_count == 4)
    for device in devices:
        await device.close()
    for _, writer in others:
        writer.close()


# -- identities ---------------------------------------------------------------------------------


async def test_identity_flood_over_one_connection_closes_it(start) -> None:
    """A TCP peer naming more identities than a tracker has is closed; links stay bounded."""
    listener, recorder = await start(max_identities_per_peer=4)
    reader, writer = await connect(listener.port)
    writer.write(b"".join(frames.h02_heartbeat(f"41{n:08d}", 50) for n in range(1000)))
    assert await closed_by_server(reader, 10)
    await wait_for(lambda: not listener.links)
    assert {identity for identity, connected, _ in recorder.links if connected} == {
        f"41{n:08d}" for n in range(4)
    }
    assert listener.stats.closed == {"too many identities": 1}
    writer.close()


async def test_identity_flood_over_udp_keeps_a_few_links(start) -> None:
    """20,000 made-up IDs from one UDP address: only the first few are linked."""
    listener, _ = await start(max_identities_per_peer=4, message_burst=100_000)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.setblocking(False)
    try:
        for number in range(20_000):
            data = frames.h02_heartbeat(f"42{number:08d}", 50)
            while True:
                try:
                    sender.sendto(data, ("127.0.0.1", listener.port))
                    break
                except BlockingIOError:
                    await asyncio.sleep(0.001)
            if number % 200 == 0:
                await asyncio.sleep(0)  # let the listener read
        await wait_for(lambda: listener.stats.identities_refused > 100)
    finally:
        sender.close()
    assert len(listener.links) == 4
    assert listener.udp_peer_count == 1


async def test_stranger_datagrams_are_not_remembered(start) -> None:
    """Datagrams that name no device leave nothing behind, so they cannot push trackers out."""
    listener, _ = await start(max_udp_peers=2)
    device = SimulatedTracker(IMEI, protocol="h02", transport="udp", port=listener.port)
    await device.connect()
    await device.report()
    await wait_for(lambda: IMEI in listener.links)
    senders = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(20)]
    for sender in senders:
        sender.sendto(b"\x00garbage\xff" * 10, ("127.0.0.1", listener.port))
    await wait_for(lambda: listener.stats.datagrams >= 21)
    assert listener.udp_peer_count == 1
    assert IMEI in listener.links
    for sender in senders:
        sender.close()
    await device.close()


async def test_udp_tracker_on_a_new_address_moves_its_link(start) -> None:
    """A NAT that changes the tracker's UDP port is a move, not a duplicate."""
    listener, recorder = await start()
    first = SimulatedTracker(IMEI, protocol="h02", transport="udp", port=listener.port)
    await first.connect()
    await first.report()
    await wait_for(lambda: IMEI in listener.links)
    old = listener.link(IMEI)
    second = SimulatedTracker(IMEI, protocol="h02", transport="udp", port=listener.port)
    await second.connect()
    await second.report()
    await wait_for(lambda: listener.link(IMEI) is not old)
    assert len(listener.claims(IMEI)) == 1
    assert listener.udp_peer_count == 1
    assert not recorder.duplicates
    assert (IMEI, False) not in [(identity, up) for identity, up, _ in recorder.links]
    await first.close()
    await second.close()


async def test_sessions_per_identity_are_capped_quietest_closed(start) -> None:
    """A further claim closes the session whose last valid frame is the oldest."""
    listener, _ = await start(max_sessions_per_identity=2)
    first = await gt06_tracker(listener.port)
    second = await gt06_tracker(listener.port)
    await second.heartbeat()
    await wait_for(lambda: acks(second) == 2)
    third = await gt06_tracker(listener.port)
    assert first._task is not None
    await asyncio.wait_for(first._task, 10)  # the server hung up on the quietest
    await wait_for(lambda: len(listener.claims(IMEI)) == 2)
    assert listener.stats.closed == {"too many sessions for one identity": 1}
    for device in (first, second, third):
        await device.close()


# -- commands and duplicates --------------------------------------------------------------------


async def test_only_the_session_a_command_went_over_can_confirm_it(start) -> None:
    """A second session's relay status updates nothing pending; the first one's answer does."""
    listener, recorder = await start()
    real = await gt06_tracker(listener.port)
    real.answer_commands = False
    command = asyncio.create_task(listener.send_command(IMEI, CUT, answer_timeout=30))
    await real.wait_for(lambda d: d.kind == "command")
    # The spoofer logs in with the same IMEI and reports the relay cut, then answers.
    spoofer = await gt06_tracker(listener.port)
    await spoofer.report(relay=True)
    await spoofer.send(frames.gt06_command_reply(0, "Cut off the fuel supply: Success!", 9))
    await wait_for(lambda: any(m.relay for link, m in recorder.messages if m.relay is not None))
    await asyncio.sleep(0.2)
    assert not command.done()
    assert listener.link(IMEI) is listener.claims(IMEI)[1]  # it sent a valid frame last
    # The real tracker talks again: both talk, so it is a duplicate; it takes commands back.
    await real.heartbeat()
    await wait_for(lambda: (IMEI, 2) in recorder.duplicates)
    assert listener.link(IMEI) is listener.claims(IMEI)[0]
    await real.send(frames.gt06_command_reply(0, "Cut off the fuel supply: Success!", 10))
    outcome = await asyncio.wait_for(command, 10)
    assert outcome is not None
    assert outcome.relay is True
    # The spoofer hangs up: one session left, the duplicate is over, the tracker stays linked.
    await spoofer.close()
    await wait_for(lambda: recorder.duplicates[-1] == (IMEI, 1))
    assert IMEI in listener.links
    assert (IMEI, False) not in [(identity, up) for identity, up, _ in recorder.links]
    await real.close()


async def test_a_stale_session_is_not_a_duplicate(start) -> None:
    """A tracker reconnecting while its old connection lingers (no FIN) raises no alarm."""
    listener, recorder = await start()
    old = await gt06_tracker(listener.port)
    new = await gt06_tracker(listener.port)
    for _ in range(3):
        await new.heartbeat()
    await wait_for(lambda: acks(new) == 4)
    assert len(listener.claims(IMEI)) == 2
    assert listener.link(IMEI) is listener.claims(IMEI)[1]
    assert not recorder.duplicates
    # Commands go to the new session; the old one closing changes nothing.
    await old.close()
    await wait_for(lambda: len(listener.claims(IMEI)) == 1)
    assert (IMEI, False) not in [(identity, up) for identity, up, _ in recorder.links]
    await new.close()


async def test_a_pending_command_fails_when_its_session_closes(start) -> None:
    """Another session for the identity does not inherit the command: it fails at once."""
    listener, _ = await start()
    first = await gt06_tracker(listener.port)
    first.answer_commands = False
    command = asyncio.create_task(listener.send_command(IMEI, CUT, answer_timeout=30))
    await first.wait_for(lambda d: d.kind == "command")
    second = await gt06_tracker(listener.port)
    await first.close()
    with pytest.raises(NotConnectedError):
        await asyncio.wait_for(command, 10)
    await second.close()


# -- budgets and backpressure -------------------------------------------------------------------


async def test_a_fast_sender_is_slowed_down_not_cut_off(start) -> None:
    """Over its budget a TCP peer is read more slowly; every frame is still answered."""
    listener, _ = await start(message_rate=200.0, message_burst=20.0)
    device = await gt06_tracker(listener.port)
    await device.send(b"".join(frames.gt06_heartbeat(FIX, n) for n in range(200)))
    await wait_for(lambda: acks(device) == 201, within=30)
    assert listener.stats.throttled > 0
    assert listener.connection_count == 1
    await device.close()


async def test_a_sender_that_never_stops_is_closed(start) -> None:
    """A peer over its budget for longer than the abuse limit is closed, and logged once."""
    listener, _ = await start(message_rate=100.0, message_burst=10.0, abuse_timeout=1.0)
    reader, writer = await connect(listener.port)
    writer.write(frames.gt06_login(IMEI, 1))
    heartbeats = b"".join(frames.gt06_heartbeat(FIX, n) for n in range(100))

    async def flood() -> None:
        try:
            while True:
                writer.write(heartbeats)
                await writer.drain()
                await asyncio.sleep(0)
        except ConnectionError:
            return  # the server hung up

    flooding = asyncio.create_task(flood())
    assert await closed_by_server(reader, within=30)
    await asyncio.wait_for(flooding, 10)
    assert listener.stats.closed == {"over the message budget": 1}
    writer.close()


async def test_a_peer_that_does_not_read_is_paused_then_closed(start) -> None:
    """Replies pile up for a peer that never reads: reading it pauses, then it is closed."""
    listener, _ = await start(
        write_buffer_high=256, write_buffer_low=64, write_stall_timeout=1.0, message_burst=1e9
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # fills fast: never read
    sock.connect(("127.0.0.1", listener.port))
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_sendall(sock, frames.gt06_login(IMEI, 1))
    heartbeats = b"".join(frames.gt06_heartbeat(FIX, n) for n in range(200))
    closed = False
    async with asyncio.timeout(30):
        while not closed:
            try:
                await asyncio.wait_for(loop.sock_sendall(sock, heartbeats), 0.5)
            except TimeoutError:
                pass  # our kernel buffers are full: the listener stopped reading us
            except ConnectionError:
                closed = True
            closed = closed or listener.stats.closed.get("does not read", 0) == 1
    await wait_for(lambda: listener.connection_count == 0)
    sock.close()


async def test_udp_peer_over_budget_is_dropped_then_heard_again(start) -> None:
    """A UDP peer over its budget loses datagrams until the budget refills."""
    listener, recorder = await start(message_rate=5.0, message_burst=5.0)
    device = SimulatedTracker(IMEI, protocol="h02", transport="udp", port=listener.port)
    await device.connect()
    for _ in range(30):
        await device.report()
    await wait_for(lambda: listener.stats.datagrams == 30)
    assert listener.stats.datagrams_dropped > 0
    received = len(recorder.messages)
    await asyncio.sleep(1.5)  # the budget refills at 5 a second
    await device.report()
    await wait_for(lambda: len(recorder.messages) == received + 1)
    await device.close()


# -- sockets and resources ----------------------------------------------------------------------


async def test_udp_sockets_are_released_when_a_later_endpoint_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Binding succeeded for every socket but the event loop refused the second one."""
    port = free_port()
    listener = Listener(port, on_messages=lambda *_: None, hosts=["127.0.0.1", "::1"])
    loop = asyncio.get_running_loop()
    real = loop.create_datagram_endpoint
    calls = 0

    async def failing(*args: object, **kwargs: object) -> object:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise OSError("endpoint failed")
        return await real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(loop, "create_datagram_endpoint", failing)
    try:
        # The error is kept: its traceback holds start()'s frame, so the garbage collector
        # cannot close a socket that start() forgot; only an explicit close frees the port.
        with pytest.raises(OSError, match="endpoint failed") as failed:
            await listener.start()
    except OSError as err:  # no IPv6 on this machine: nothing to leak
        pytest.skip(f"no IPv6 loopback: {err}")
    monkeypatch.undo()

    def free(family: socket.AddressFamily, host: str) -> bool:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind((host, port))
            except OSError:
                return False
            return True

    # A closed transport lets go of its socket on the next loop turns; a leaked one never does.
    await wait_for(lambda: free(socket.AF_INET, "127.0.0.1"))
    await wait_for(lambda: free(socket.AF_INET6, "::1"), within=2)
    assert failed.value.args == ("endpoint failed",)


def test_open_files_limit_is_raised_and_the_cap_clamped_below_it() -> None:
    """In a process whose soft limit is low: raised up to the hard limit, cap kept below."""
    script = textwrap.dedent(
        """
        import asyncio, json, resource
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 1024))
        from custom_components.tk970.listener import Listener

        async def main():
            listener = Listener(0, on_messages=lambda *_: None, hosts=["127.0.0.1"])
            await listener.start()
            figures = listener.figures
            await listener.stop()
            soft_now = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
            print(json.dumps([figures.open_files_soft_before, figures.open_files_soft,
                              figures.open_files_hard, figures.open_files_in_use,
                              figures.max_connections, soft_now]))

        asyncio.run(main())
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    before, soft, hard, in_use, cap, actual = __import__("json").loads(result.stdout)
    assert (before, soft, hard, actual) == (256, 1024, 1024, 1024)
    assert cap == 1024 - in_use - limits_module.FD_HEADROOM
    assert cap < soft


async def test_start_logs_the_figures_once(caplog: pytest.LogCaptureFixture) -> None:
    """One line at start names the cap, the open-files limit and the UDP buffer granted."""
    listener = Listener(free_port(), on_messages=lambda *_: None, hosts=["127.0.0.1"])
    with caplog.at_level(logging.INFO, logger=listener_module.__name__):
        await listener.start()
    await listener.stop()
    lines = [r.getMessage() for r in caplog.records if "Listening for trackers" in r.getMessage()]
    assert len(lines) == 1
    assert listener.figures is not None
    assert f"up to {listener.figures.max_connections} TCP connections" in lines[0]
    assert listener.figures.udp_receive_buffer is not None
    assert f"UDP receive buffer {listener.figures.udp_receive_buffer} bytes" in lines[0]


# -- log lines ----------------------------------------------------------------------------------


def test_rate_limited_log_counts_and_bounds(caplog: pytest.LogCaptureFixture) -> None:
    """One line per reason per interval, the held-back count on the next; reasons bounded."""
    now = [1000.0]
    limited = RateLimitedLog(logging.getLogger("tk970.test"), 300.0, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="tk970.test"):
        for _ in range(50):
            limited.warning("junk", "junk from %s", "a")
        for number in range(MAX_REASONS * 3):
            limited.info(f"reason {number}", "line %d", number)
    lines = [record.getMessage() for record in caplog.records]
    assert lines.count("junk from a") == 1
    # The table is full at MAX_REASONS reasons ("junk" is one); later ones share one line.
    assert len(lines) == MAX_REASONS + 1
    caplog.clear()
    now[0] += 301
    with caplog.at_level(logging.INFO, logger="tk970.test"):
        limited.warning("junk", "junk from %s", "b")
        limited.info("a new reason", "room again")  # expired reasons made room
    assert [record.getMessage() for record in caplog.records] == [
        "junk from b (49 similar lines held back in the last 301 s)",
        "room again",
    ]


async def test_bad_bytes_from_many_peers_log_one_line_per_reason(
    start, caplog: pytest.LogCaptureFixture
) -> None:
    """Garbage from 50 connections is one warning, not 50."""
    listener, _ = await start()
    with caplog.at_level(logging.WARNING, logger=listener_module.__name__):
        clients = [await connect(listener.port) for _ in range(50)]
        for _, writer in clients:
            writer.write(b"\x00\xff" * 100)
        await wait_for(lambda: listener.stats.skipped >= 50)
        for _, writer in clients:
            writer.close()
    skipped = [r for r in caplog.records if "skipped" in r.getMessage()]
    assert len(skipped) == 1
