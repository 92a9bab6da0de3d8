"""Hostile clients for the hardening tests: what a stranger on the internet sends to port 8888.

Run in a process of its own, so the load does not share Home Assistant's event loop:

    python -m simulator.hostile ATTACK --port 8888 [--count N] [--duration S] [--sources K]

Each attack prints one JSON line when it ends: what it sent and what the server did to it
(connections refused or closed, acks received). Source addresses are taken from 127.0.0.2
upwards (the whole 127/8 block is loopback on Linux), so a test can tell the stranger from the
tracker it keeps reporting from 127.0.0.1.

Attacks: `udp-identities` (one UDP address, a new ID per datagram), `tcp-identities` (the same
over one connection), `no-read` (logs in and floods, never reading), `idle` (connections that
never speak), `slowloris` (one byte a second), `unknown-imeis` (log in with IMEIs nobody
configured), `udp-random` (random datagrams), `garbage` (random bytes, and 10 MB streams that
never end a frame, before and after logging in).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable, Coroutine
import contextlib
from datetime import UTC, datetime
import json
import random
import socket
import sys
import time
from typing import Any

from . import frames
from .__main__ import imeis
from .frames import Fix

_FIX = Fix(time=datetime(2026, 1, 1, tzinfo=UTC), latitude=52.5, longitude=13.4)
#: Enough bytes that a server which buffered them would show it (10 MB).
ENDLESS_BYTES = 10 * 1024 * 1024

type Report = dict[str, Any]


def source(args: argparse.Namespace, number: int) -> str:
    """The loopback address for the `number`th connection: 127.0.0.2 and up, round robin."""
    return f"127.0.0.{2 + number % args.sources}"


async def open_tcp(
    args: argparse.Namespace, number: int
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection to the server from this attack's `number`th source address."""
    return await asyncio.open_connection(
        args.host, args.port, local_addr=(source(args, number), 0), limit=1 << 20
    )


async def closed_by_server(reader: asyncio.StreamReader, within: float) -> bool:
    """Read and discard until the server hangs up (True) or `within` seconds pass (False)."""
    try:
        async with asyncio.timeout(within):
            while await reader.read(65536):
                pass
    except TimeoutError:
        return False
    except (ConnectionError, OSError):
        return True
    return True


async def send_datagrams(sock: socket.socket, address: tuple[str, int], data: bytes) -> None:
    """Send one datagram, waiting while the local socket buffer is full."""
    while True:
        try:
            sock.sendto(data, address)
        except BlockingIOError:
            await asyncio.sleep(0.001)
        else:
            return


async def udp_identities(args: argparse.Namespace) -> Report:
    """One address, `count` H02 heartbeats, each naming another device."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    sock.bind((source(args, 0), 0))
    try:
        for number in range(args.count):
            heartbeat = frames.h02_heartbeat(f"{7100000000 + number}", 50)
            await send_datagrams(sock, (args.host, args.port), heartbeat)
            if number % 100 == 0:
                await asyncio.sleep(0)
    finally:
        sock.close()
    return {"datagrams": args.count}


async def tcp_identities(args: argparse.Namespace) -> Report:
    """One connection, `count` H02 heartbeats, each naming another device."""
    reader, writer = await open_tcp(args, 0)
    sent = 0
    with contextlib.suppress(ConnectionError, OSError):
        for start in range(0, args.count, 100):
            writer.write(
                b"".join(
                    frames.h02_heartbeat(f"{7200000000 + number}", 50)
                    for number in range(start, min(start + 100, args.count))
                )
            )
            await writer.drain()
            sent = min(start + 100, args.count)
    closed = await closed_by_server(reader, args.duration)
    writer.close()
    return {"frames_sent": sent, "closed_by_server": closed}


async def no_read(args: argparse.Namespace) -> Report:
    """Log in over GT06, then send heartbeats as fast as possible, never reading a reply."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # small: replies back up fast
    sock.bind((source(args, 0), 0))
    sock.setblocking(False)
    await loop.sock_connect(sock, (args.host, args.port))
    imei = imeis("86000000000000", 1)[0]
    burst = b"".join(frames.gt06_heartbeat(_FIX, serial) for serial in range(200))
    sent = 0
    closed = False
    deadline = time.monotonic() + args.duration
    try:
        await loop.sock_sendall(sock, frames.gt06_login(imei, 1))
        while time.monotonic() < deadline:
            try:
                async with asyncio.timeout(0.5):
                    await loop.sock_sendall(sock, burst)
                sent += len(burst)
            except TimeoutError:
                continue  # the server stopped reading us: keep trying until it gives up
    except (ConnectionError, OSError):
        closed = True
    finally:
        sock.close()
    return {"bytes_sent": sent, "closed_by_server": closed}


async def _hold(
    args: argparse.Namespace,
    number: int,
    gate: asyncio.Semaphore,
    speak: Callable[[asyncio.StreamWriter], Coroutine[Any, Any, None]],
) -> str:
    """Open a connection, run `speak`, and tell how it ended: refused, closed or held."""
    try:
        async with gate:  # a bounded number of connects in flight
            reader, writer = await open_tcp(args, number)
    except OSError:
        return "refused"
    talking = asyncio.create_task(speak(writer))
    closed = await closed_by_server(reader, args.duration)
    talking.cancel()
    with contextlib.suppress(asyncio.CancelledError, ConnectionError, OSError):
        await talking
    writer.close()
    return "closed" if closed else "held"


async def _many(
    args: argparse.Namespace, speak: Callable[[asyncio.StreamWriter], Coroutine[Any, Any, None]]
) -> Report:
    gate = asyncio.Semaphore(200)
    outcomes = await asyncio.gather(
        *(_hold(args, number, gate, speak) for number in range(args.count))
    )
    return {outcome: outcomes.count(outcome) for outcome in ("refused", "closed", "held")}


async def idle(args: argparse.Namespace) -> Report:
    """`count` connections that never send a byte."""

    async def silent(writer: asyncio.StreamWriter) -> None:
        await asyncio.Event().wait()

    return await _many(args, silent)


async def slowloris(args: argparse.Namespace) -> Report:
    """`count` connections sending a GT06 login one byte a second (it never completes in time)."""
    login = frames.gt06_login(imeis("86100000000000", 1)[0], 1)

    async def trickle(writer: asyncio.StreamWriter) -> None:
        for byte in login:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(1.0)
        await asyncio.Event().wait()

    return await _many(args, trickle)


async def unknown_imeis(args: argparse.Namespace) -> Report:
    """`count` connections logging in with IMEIs nobody configured, then heartbeating."""
    identities = imeis("86200000000000", args.count)
    acked = 0

    async def one(number: int) -> str:
        nonlocal acked
        try:
            reader, writer = await open_tcp(args, number)
        except OSError:
            return "refused"
        try:
            writer.write(frames.gt06_login(identities[number], 1))
            await writer.drain()
            async with asyncio.timeout(args.duration):
                await reader.readexactly(10)  # the login ack
                acked += 1
                for serial in range(2, 5):
                    writer.write(frames.gt06_heartbeat(_FIX, serial))
                    await writer.drain()
                    await reader.readexactly(10)
                    acked += 1
                await asyncio.sleep(args.hold)
        except (TimeoutError, ConnectionError, OSError, asyncio.IncompleteReadError):
            return "closed"
        finally:
            writer.close()
        return "held"

    outcomes = await asyncio.gather(*(one(number) for number in range(args.count)))
    report: Report = {o: outcomes.count(o) for o in ("refused", "closed", "held")}
    report["acks"] = acked
    return report


async def udp_random(args: argparse.Namespace) -> Report:
    """Random datagrams of 1 to 512 bytes from `sources` addresses for `duration` seconds."""
    rng = random.Random(9)  # noqa: S311 - noise, not secrets
    sockets = []
    for number in range(args.sources):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sock.bind((source(args, number), 0))
        sockets.append(sock)
    sent = 0
    deadline = time.monotonic() + args.duration
    try:
        while time.monotonic() < deadline:
            for sock in sockets:
                data = rng.randbytes(rng.randint(1, 512))
                await send_datagrams(sock, (args.host, args.port), data)
                sent += 1
            if sent % 64 < len(sockets):
                await asyncio.sleep(0)
    finally:
        for sock in sockets:
            sock.close()
    return {"datagrams": sent}


async def garbage(args: argparse.Namespace) -> Report:
    """Random bytes; a JT808 frame start with 10 MB and no end; the same after a GT06 login."""
    rng = random.Random(7)  # noqa: S311 - noise, not secrets
    chunk = 64 * 1024

    async def stream(number: int, head: bytes, body: Callable[[], bytes]) -> Report:
        reader, writer = await open_tcp(args, number)
        sent = 0
        deadline = time.monotonic() + args.duration
        result = {"bytes_sent": 0, "closed_by_server": False}
        try:
            writer.write(head)
            while sent < ENDLESS_BYTES and time.monotonic() < deadline:
                writer.write(body())
                async with asyncio.timeout(max(0.1, deadline - time.monotonic())):
                    await writer.drain()
                sent += chunk
        except TimeoutError:
            pass  # the server reads us slowly (it throttles garbage) or not at all any more
        except (ConnectionError, OSError):
            result["closed_by_server"] = True
        result["bytes_sent"] = sent
        if not result["closed_by_server"]:
            result["closed_by_server"] = await closed_by_server(reader, 1.0)
        writer.close()
        return result

    no_frame_end = bytes(chunk)  # zeros: no 0x7E flag, so the JT808 frame never ends
    noise, endless, after_login = await asyncio.gather(
        stream(0, b"", lambda: rng.randbytes(chunk)),
        stream(1, b"\x7e", lambda: no_frame_end),
        stream(
            2,
            frames.gt06_login(imeis("86300000000000", 1)[0], 1),
            lambda: no_frame_end,
        ),
    )
    return {"noise": noise, "endless": endless, "endless_after_login": after_login}


ATTACKS: dict[str, Callable[[argparse.Namespace], Coroutine[Any, Any, Report]]] = {
    "udp-identities": udp_identities,
    "tcp-identities": tcp_identities,
    "no-read": no_read,
    "idle": idle,
    "slowloris": slowloris,
    "unknown-imeis": unknown_imeis,
    "udp-random": udp_random,
    "garbage": garbage,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command line."""
    parser = argparse.ArgumentParser(prog="python -m simulator.hostile", description=__doc__)
    parser.add_argument("attack", choices=sorted(ATTACKS))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8888)
    parser.add_argument("--count", type=int, default=100, help="connections, datagrams or IDs")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds, at most")
    parser.add_argument("--sources", type=int, default=1, help="source addresses 127.0.0.2+")
    parser.add_argument("--hold", type=float, default=1.0, help="unknown-imeis: stay this long")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Run one attack and print its report as one JSON line."""
    args = parse_args(argv)
    started = time.monotonic()
    report = asyncio.run(ATTACKS[args.attack](args))
    report["seconds"] = round(time.monotonic() - started, 2)
    sys.stdout.write(json.dumps(report) + "\n")


if __name__ == "__main__":
    main()
