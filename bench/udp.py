"""UDP bursts: 1,000 trackers reporting at the same moment, at two receive-buffer sizes.

    .venv/bin/python bench/udp.py [--senders 1000] [--rounds 10]

The listener runs in a process of its own: with the kernel's default receive buffer (Debian:
net.core.rmem_default = 212,992 bytes; the listener asks for nothing), with what an
unprivileged process gets under Debian's net.core.rmem_max of 212,992 (the request is capped
there, and the kernel doubles it), and asking for `UDP_RECEIVE_BUFFER` (granted in full where
rmem_max allows it, or to a process with CAP_NET_ADMIN through SO_RCVBUFFORCE). The load, in
another process, is `senders` UDP sockets, each a JT808 tracker: in every round all of them
send one location report at once, then wait for the acks.
Figures: the buffer size the kernel granted (getsockopt), reports whose ack never came, and the
datagrams the kernel dropped at the listener's socket (/proc/net/udp, the `drops` column).
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime, timedelta
import json
import os
from pathlib import Path
import select
import socket
import subprocess
import sys
import time

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import free_port  # noqa: E402
from simulator import frames  # noqa: E402
from simulator.frames import Fix  # noqa: E402

FIX = Fix(time=datetime(2026, 11, 24, tzinfo=UTC), latitude=52.52, longitude=13.405)


async def serve(receive_buffer: int) -> None:
    """Run the listener on a free port; print `ready PORT GRANTED`, stop on `quit`."""
    from custom_components.tk970.listener import Listener, ListenerLimits  # noqa: PLC0415

    port = free_port()
    listener = Listener(
        port,
        on_messages=lambda link, messages: None,
        hosts=["127.0.0.1"],
        limits=ListenerLimits(udp_receive_buffer=receive_buffer),
    )
    await listener.start()
    assert listener.figures is not None
    sys.stdout.write(f"ready {port} {listener.figures.udp_receive_buffer}\n")
    sys.stdout.flush()
    done = asyncio.Event()
    asyncio.get_running_loop().add_reader(sys.stdin.fileno(), done.set)
    await done.wait()
    await listener.stop()


def load(port: int, senders: int, rounds: int) -> None:
    """Bursts of one report per sender; print the acks missing per round as JSON."""
    socks = []
    reports = []
    for number in range(senders):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        socks.append(sock)
        terminal = f"{13000000000 + number:012d}"
        reports.append(frames.jt808_location(terminal, 1, FIX, timedelta(hours=8)))
    poll = select.epoll()
    by_fd = {sock.fileno(): sock for sock in socks}
    for fd in by_fd:
        poll.register(fd, select.EPOLLIN)
    missing = []
    for _ in range(rounds):
        waiting = set(by_fd)
        for sock, report in zip(socks, reports, strict=True):
            sock.sendto(report, ("127.0.0.1", port))
        deadline = time.monotonic() + 3.0
        while waiting and time.monotonic() < deadline:
            for fd, _ in poll.poll(0.1):
                try:
                    while by_fd[fd].recv(2048):
                        waiting.discard(fd)
                except BlockingIOError:
                    pass
        missing.append(len(waiting))
        time.sleep(0.5)
    sys.stdout.write(json.dumps({"missing": missing}) + "\n")
    for sock in socks:
        sock.close()


def kernel_drops(port: int) -> int:
    """Datagrams the kernel dropped at the socket bound to `port` (its receive queue was full)."""
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port:
            return int(fields[-1])
    return -1


def run(receive_buffer: int, senders: int, rounds: int) -> dict[str, object]:
    """One listener, one load; the figures."""
    server = subprocess.Popen(
        [sys.executable, __file__, "serve", "--receive-buffer", str(receive_buffer)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert server.stdin is not None
    assert server.stdout is not None
    try:
        _, port_text, granted = server.stdout.readline().split()
        port = int(port_text)
        result = subprocess.run(
            [sys.executable, __file__, "load", "--port", port_text, "--senders", str(senders),
             "--rounds", str(rounds)],
            capture_output=True, text=True, check=True, timeout=600,
        )  # fmt: skip
        drops = kernel_drops(port)
    finally:
        server.stdin.write("quit\n")
        server.stdin.close()
        server.wait(timeout=30)
    missing = json.loads(result.stdout)["missing"]
    return {"granted": int(granted), "missing": missing, "kernel_drops": drops}


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command")
    serve_parser = sub.add_parser("serve")
    serve_parser.add_argument("--receive-buffer", type=int, required=True)
    load_parser = sub.add_parser("load")
    load_parser.add_argument("--port", type=int, required=True)
    load_parser.add_argument("--senders", type=int, default=1000)
    load_parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--senders", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    if args.command == "serve":
        asyncio.run(serve(args.receive_buffer))
        return
    if args.command == "load":
        load(args.port, args.senders, args.rounds)
        return
    from custom_components.tk970.limits import UDP_RECEIVE_BUFFER  # noqa: PLC0415

    print(f"{args.senders} senders, {args.rounds} bursts each of one report per sender")
    print("| receive buffer asked | granted by the kernel | reports lost | kernel drops |")
    print("|---|---|---|---|")
    sizes = (
        (0, "nothing (Debian's rmem_default)"),
        # What an unprivileged process asking for more gets under Debian's rmem_max (212,992):
        # the kernel caps the request there, then doubles it.
        (212_992, "212,992 bytes (Debian's rmem_max cap)"),
        (UDP_RECEIVE_BUFFER, None),
    )
    for asked, label in sizes:
        figures = run(asked, args.senders, args.rounds)
        missing = figures["missing"]
        assert isinstance(missing, list)
        total = args.senders * args.rounds
        print(
            f"| {label or f'{asked:,} bytes'} | {figures['granted']:,} bytes | "
            f"{sum(missing)} of {total} (worst burst {max(missing)}) | "
            f"{figures['kernel_drops']} |"
        )


if __name__ == "__main__":
    main()
