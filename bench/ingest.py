"""Ingest through the listener alone: 1,000 TCP trackers in a closed loop, against a bare server.

    .venv/bin/python bench/ingest.py [--connections 1000] [--seconds 10] [--rounds 3] [--ref main]

Each server runs in a process of its own, and the load in another: 1,000 connections that log
in over GT06 and then send a location report, wait for its ack, and send the next one, as fast
as the server answers. Servers:

- `bare`: an asyncio server that only frames GT06 and sends each frame's ack (the baseline);
- `listener`: the integration's `Listener` with its default limits (budgets, caps, timers all
  on), decoding every frame fully and handing the messages to a consumer that drops them;
- `listener@REF` (with `--ref`): the same from another git revision, to show what the
  hardening costs.

Figures, per server, over the measured window (after a warm-up): acks/s seen by the load, the
server process's CPU time per message, and the ack round trip. Servers run in turns, `rounds`
times, server and load pinned to different cores; the best round of each counts (other
processes share the machine), the median is shown too, and the ratios are to `bare` in the
same run. "bare's CPU / this" is the throughput a saturated core would give, relative to bare.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
import json
import os
from pathlib import Path
import select
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = Path(__file__).resolve().parents[1]
# Appended, not prepended: a server run for another revision finds that revision's package
# first, through PYTHONPATH.
sys.path.append(str(ROOT))

from bench.common import free_port  # noqa: E402
from simulator import frames  # noqa: E402
from simulator.__main__ import imeis  # noqa: E402
from simulator.frames import Fix  # noqa: E402

FIX = Fix(time=datetime(2026, 11, 24, tzinfo=UTC), latitude=52.52, longitude=13.405)
ACK_SIZE = 10  #: a GT06 ack: 7878 05 <number> <serial> <crc> 0d0a
SOURCES = 16  #: source addresses the load spreads its connections over

# -- the bare baseline server -------------------------------------------------------------------

_CRC_TABLE = []
for _byte in range(256):
    _crc = _byte
    for _ in range(8):
        _crc = (_crc >> 1) ^ 0x8408 if _crc & 1 else _crc >> 1
    _CRC_TABLE.append(_crc)


def _crc_itu(data: bytes) -> int:
    crc = 0xFFFF
    for byte in data:
        crc = (crc >> 8) ^ _CRC_TABLE[(crc ^ byte) & 0xFF]
    return crc ^ 0xFFFF


class BareServer(asyncio.Protocol):
    """Frames GT06 by its length byte and answers each frame; nothing else."""

    messages = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # noqa: D102
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:  # noqa: D102
        buffer = self.buffer + data if self.buffer else data
        acks = []
        while len(buffer) >= 5:
            size = buffer[2] + 5
            if len(buffer) < size:
                break
            body = b"\x05" + buffer[3:4] + buffer[size - 6 : size - 4]
            acks.append(b"\x78\x78" + body + _crc_itu(body).to_bytes(2, "big") + b"\r\n")
            buffer = buffer[size:]
        self.buffer = buffer
        if acks:
            BareServer.messages += len(acks)
            self.transport.write(b"".join(acks))


# -- server process -----------------------------------------------------------------------------


async def serve(kind: str) -> None:
    """Run one server on a free port; print `ready PORT`, then figures on each `mark` line."""
    loop = asyncio.get_running_loop()
    count: object
    if kind == "bare":
        server = await loop.create_server(BareServer, "127.0.0.1", 0, backlog=1024)
        port = server.sockets[0].getsockname()[1]

        def count() -> int:
            return BareServer.messages

    else:
        from custom_components.tk970.listener import Listener  # noqa: PLC0415

        port = free_port()
        listener = Listener(port, on_messages=lambda link, messages: None, hosts=["127.0.0.1"])
        await listener.start()

        def count() -> int:
            return listener.stats.messages

    done = asyncio.Event()

    def on_line() -> None:
        line = sys.stdin.readline()
        if not line or line.strip() == "quit":
            done.set()
            return
        figures = {"cpu": time.process_time(), "wall": time.perf_counter(), "messages": count()}
        sys.stdout.write(json.dumps(figures) + "\n")
        sys.stdout.flush()

    loop.add_reader(sys.stdin.fileno(), on_line)
    if kind != "bare":
        from custom_components.tk970 import listener as module  # noqa: PLC0415

        sys.stderr.write(f"serving {module.__file__}\n")
    sys.stdout.write(f"ready {port}\n")
    sys.stdout.flush()
    await done.wait()


# -- load process -------------------------------------------------------------------------------


def load(port: int, connections: int, warmup: float, seconds: float) -> None:
    """Closed loop over `connections` sockets; prints `start`, `stop`, then the figures."""
    identities = imeis("35000000000000", connections)
    report = frames.gt06_location(FIX, 7)
    poll = select.epoll()
    socks: dict[int, socket.socket] = {}
    pending: dict[int, int] = {}  #: bytes of ack still expected
    sent_at: dict[int, float] = {}
    for number, identity in enumerate(identities):
        # Trackers come from many addresses: spread over 127.0.0.2 and up (all loopback).
        source = f"127.0.0.{2 + number % SOURCES}"
        sock = socket.create_connection(("127.0.0.1", port), source_address=(source, 0))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(frames.gt06_login(identity, 1))
        sock.setblocking(False)
        socks[sock.fileno()] = sock
        pending[sock.fileno()] = ACK_SIZE
        sent_at[sock.fileno()] = time.perf_counter()
        poll.register(sock.fileno(), select.EPOLLIN)
    acks = 0
    rtts: list[float] = []
    measuring = False
    started = time.perf_counter()
    phase_end = started + warmup
    while True:
        now = time.perf_counter()
        if now >= phase_end:
            if measuring:
                sys.stdout.write("stop\n")
                sys.stdout.flush()
                break
            measuring = True
            acks, rtts = 0, []
            phase_end = now + seconds
            window_start = now
            sys.stdout.write("start\n")
            sys.stdout.flush()
        for fd, _ in poll.poll(0.1):
            sock = socks[fd]
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                continue
            if not data:
                raise SystemExit("the server closed a connection")
            pending[fd] -= len(data)
            if pending[fd] <= 0:
                now = time.perf_counter()
                acks += 1
                if measuring:
                    rtts.append(now - sent_at[fd])
                pending[fd] += ACK_SIZE
                sent_at[fd] = now
                sock.send(report)
    elapsed = time.perf_counter() - window_start
    rtts.sort()
    figures = {
        "acks_per_s": acks / elapsed,
        "p50_ms": rtts[len(rtts) // 2] * 1000 if rtts else None,
        "p99_ms": rtts[int(len(rtts) * 0.99)] * 1000 if rtts else None,
    }
    sys.stdout.write(json.dumps(figures) + "\n")
    sys.stdout.flush()
    for sock in socks.values():
        sock.close()


# -- orchestration ------------------------------------------------------------------------------


@dataclass
class Result:
    """One round of one server."""

    acks_per_s: float
    cpu_per_message_us: float
    messages_per_s: float
    p50_ms: float
    p99_ms: float


def run_round(
    kind: str, pythonpath: str, connections: int, warmup: float, seconds: float
) -> Result:
    """Start the server and the load, mark the server around the window, collect figures."""
    env = {**os.environ, "PYTHONPATH": pythonpath}
    server = subprocess.Popen(
        [sys.executable, __file__, "serve", "--kind", kind],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=_pin(0),  # noqa: PLW1509 - no threads in this process
    )
    assert server.stdin is not None
    assert server.stdout is not None
    try:
        port = int(server.stdout.readline().split()[1])
        loader = subprocess.Popen(
            [sys.executable, __file__, "load", "--port", str(port),
             "--connections", str(connections), "--warmup", str(warmup),
             "--seconds", str(seconds)],
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=_pin(1),  # noqa: PLW1509 - no threads in this process
        )  # fmt: skip
        assert loader.stdout is not None
        marks = []
        for expected in ("start", "stop"):
            line = loader.stdout.readline().strip()
            if line != expected:
                raise SystemExit(f"load: expected {expected!r}, got {line!r}")
            server.stdin.write("mark\n")
            server.stdin.flush()
            marks.append(json.loads(server.stdout.readline()))
        figures = json.loads(loader.stdout.readline())
        loader.wait(timeout=60)
    finally:
        if server.stdin and not server.stdin.closed:
            server.stdin.write("quit\n")
            server.stdin.close()
        server.wait(timeout=30)
    messages = marks[1]["messages"] - marks[0]["messages"]
    wall = marks[1]["wall"] - marks[0]["wall"]
    cpu = marks[1]["cpu"] - marks[0]["cpu"]
    return Result(
        acks_per_s=figures["acks_per_s"],
        cpu_per_message_us=cpu / max(messages, 1) * 1e6,
        messages_per_s=messages / wall,
        p50_ms=figures["p50_ms"],
        p99_ms=figures["p99_ms"],
    )


def _pin(index: int) -> Callable[[], None] | None:
    """Keep the server and the load on different cores (where there are two)."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return None
    core = cores[index % len(cores)]
    return lambda: os.sched_setaffinity(0, {core})


def checkout(ref: str) -> str:
    """Extract `ref`'s custom_components and simulator into a temporary directory."""
    target = tempfile.mkdtemp(prefix="tk970-ingest-")
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", ref, "custom_components", "simulator"],
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", target], input=archive, check=True)
    return target


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command")
    serve_parser = sub.add_parser("serve")
    serve_parser.add_argument("--kind", choices=("bare", "listener"), required=True)
    load_parser = sub.add_parser("load")
    load_parser.add_argument("--port", type=int, required=True)
    load_parser.add_argument("--connections", type=int, default=1000)
    load_parser.add_argument("--warmup", type=float, default=3.0)
    load_parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ref", help="also run the listener of this git revision")
    args = parser.parse_args()
    if args.command == "serve":
        asyncio.run(serve(args.kind))
        return
    if args.command == "load":
        load(args.port, args.connections, args.warmup, args.seconds)
        return
    variants = [("bare", "bare", str(ROOT)), ("listener", "listener", str(ROOT))]
    if args.ref:
        variants.append((f"listener@{args.ref}", "listener", checkout(args.ref)))
    results: dict[str, list[Result]] = {name: [] for name, _, _ in variants}
    for round_number in range(args.rounds):
        for name, kind, path in variants:
            result = run_round(kind, path, args.connections, args.warmup, args.seconds)
            print(
                f"round {round_number + 1} {name:>16}: {result.acks_per_s:8.0f} acks/s, "
                f"{result.cpu_per_message_us:6.1f} us CPU/message, "
                f"p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms",
                flush=True,
            )
            results[name].append(result)
    # Other processes share the machine: the best round of each server is the one least
    # disturbed, and the median shows the spread.
    summary = {
        name: (
            max(r.acks_per_s for r in rounds),
            statistics.median(r.acks_per_s for r in rounds),
            min(r.cpu_per_message_us for r in rounds),
            statistics.median(r.cpu_per_message_us for r in rounds),
            statistics.median(r.p99_ms for r in rounds),
        )
        for name, rounds in results.items()
    }
    bare_rate, bare_median, bare_cpu, bare_cpu_median, _ = summary["bare"]
    print(f"\n{args.rounds} rounds, {args.connections} connections, closed loop:")
    print(
        "| server | acks/s best (median) | vs bare | CPU per message best (median) "
        "| bare's CPU / this | ack p99, median |"
    )
    print("|---|---|---|---|---|---|")
    for name, (rate, median, cpu, cpu_median, p99) in summary.items():
        print(
            f"| {name} | {rate:.0f} ({median:.0f}) | {rate / bare_rate:.2f}x "
            f"({median / bare_median:.2f}x) | {cpu:.1f} us ({cpu_median:.1f} us) | "
            f"{bare_cpu / cpu:.2f}x ({bare_cpu_median / cpu_median:.2f}x) | {p99:.0f} ms |"
        )


if __name__ == "__main__":
    main()
