"""Gateway throughput: reports/s through the gateway to a real Mosquitto, against the listener.

    .venv/bin/python bench/gateway.py [--seconds 10] [--counts 1000,5000]

In one run, on one broker, each in its own process (the load generator in another one):

1. the listener alone (decode and acknowledge, nothing else): its ingest ceiling;
2. one gateway instance with 1,000 and with 5,000 connected trackers;
3. two gateway instances on the same broker, the trackers split between them.

Each tracker is a TCP connection sending JT808 location reports in a closed loop: the next one
as soon as the previous one was acknowledged (the gateway acknowledges a report only once it
took it for publishing). Reports/s is counted twice: acknowledged at the trackers, and received
by an MQTT subscriber on the state topics (what reached Home Assistant's side of the broker).
Memory per tracker is the growth of the gateway process's resident set from idle to all
trackers connected and reporting, divided by their number. Figures are printed as ratios to the
listener alone, measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
import json
import os
from pathlib import Path
import resource
import sys
import tempfile
import time
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiomqtt  # noqa: E402

from simulator import frames  # noqa: E402
from simulator.__main__ import imeis  # noqa: E402

FIRST_IMEI = "359586015800000"
#: After the window the trackers stay connected this long: the gateway publishes what it buffered,
#: then its memory is read with every tracker connected and nothing in flight.
HOLD_SECONDS = 8.0


def _lift_limits() -> None:
    """Raise the open-file limit to the hard limit, and the listener's connection cap with it.

    The listener on main caps connections at 1,024; the hardening branch raises the default to
    5,000 and lifts RLIMIT_NOFILE itself. Until then the benchmark lifts both for its processes.
    """
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    from custom_components.tk970 import listener  # noqa: PLC0415

    listener.MAX_CONNECTIONS = max(listener.MAX_CONNECTIONS, min(hard - 200, 20_000))


# -- the processes under test ---------------------------------------------------------------


async def _serve_listener(port: int) -> None:
    """The listener alone: decode, acknowledge, deliver to a consumer that does nothing."""
    from custom_components.tk970.listener import Listener  # noqa: PLC0415

    listener = Listener(port, on_messages=lambda _link, _messages: None, hosts=["127.0.0.1"])
    await listener.start()
    await asyncio.Event().wait()


async def _serve_gateway(port: int, broker_port: int, instance: str) -> None:
    from gateway.__main__ import build_parser, settings_from  # noqa: PLC0415
    from gateway.app import Gateway  # noqa: PLC0415

    args = build_parser().parse_args(
        [
            "--mqtt", f"mqtt://127.0.0.1:{broker_port}",
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--accept-all",
            "--instance", instance,
            "--max-trackers", "20000",
        ]
    )  # fmt: skip
    gateway = Gateway(settings_from(args))
    await gateway.start()
    await asyncio.Event().wait()


def serve(role: str, port: int, broker_port: int, instance: str) -> None:
    """Run a listener or a gateway until killed (a child process of the benchmark)."""
    _lift_limits()
    if role == "listener":
        asyncio.run(_serve_listener(port))
    else:
        asyncio.run(_serve_gateway(port, broker_port, instance))


# -- the load generator (another process) ---------------------------------------------------


async def _tracker(
    port: int, terminal: str, start: asyncio.Event, stop: asyncio.Event, counts: list[int]
) -> None:
    fix = frames.Fix(time=datetime.now(UTC), latitude=52.52, longitude=13.405, speed_kmh=30.0)
    report = frames.jt808_location(terminal, 1, fix, timedelta(hours=8))
    for _ in range(50):
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            break
        except OSError:
            await asyncio.sleep(0.2)
    else:
        return
    await start.wait()
    try:
        while not stop.is_set():
            writer.write(report)
            flags = 0
            while flags < 2:  # one acknowledgement: 7E ... 7E
                data = await reader.read(256)
                if not data:
                    return
                flags += data.count(0x7E)
            counts[0] += 1
        await asyncio.sleep(HOLD_SECONDS)
    except (ConnectionError, OSError):
        return
    finally:
        writer.close()


async def _load(ports: list[int], count: int, warmup: float, seconds: float) -> dict[str, float]:
    start, stop = asyncio.Event(), asyncio.Event()
    counts = [0]
    terminals = [imei[-11:].rjust(12, "0") for imei in imeis(FIRST_IMEI, count)]
    tasks = []
    for index, terminal in enumerate(terminals):
        port = ports[index % len(ports)]
        tasks.append(asyncio.create_task(_tracker(port, terminal, start, stop, counts)))
        if index % 200 == 199:
            await asyncio.sleep(0.05)  # a connection storm is another test (listener hardening)
    await asyncio.sleep(1.0)
    start.set()
    await asyncio.sleep(warmup)
    begin_count, begin = counts[0], time.perf_counter()
    print(json.dumps({"window": "start"}), flush=True)
    await asyncio.sleep(seconds)
    acked, elapsed = counts[0] - begin_count, time.perf_counter() - begin
    stop.set()  # the trackers stay connected, silent, while the benchmark reads the memory
    print(json.dumps({"window": "end", "acked_per_s": acked / elapsed}), flush=True)
    await asyncio.sleep(HOLD_SECONDS)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {"acked_per_s": acked / elapsed}


def load(ports: list[int], count: int, warmup: float, seconds: float) -> None:
    """Drive `count` trackers against `ports` (round robin) and print the acknowledged rate."""
    _lift_limits()
    asyncio.run(_load(ports, count, warmup, seconds))


# -- the benchmark --------------------------------------------------------------------------


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def _child(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, __file__, *args, stdout=asyncio.subprocess.PIPE
    )


async def _wait_port(port: int) -> None:
    for _ in range(1200):  # a child imports the whole protocol package first
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


class StateCounter:
    """Counts state publications arriving at the broker's other side."""

    def __init__(self, broker_port: int) -> None:
        self.port = broker_port
        self.count = 0
        self.ready = asyncio.Event()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async with aiomqtt.Client("127.0.0.1", self.port, identifier="bench-counter") as client:
            await client.subscribe("tk970/+/state", qos=0)
            self.ready.set()
            async for _ in client.messages:
                self.count += 1

    async def close(self) -> None:
        """Stop counting."""
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


async def _phase(
    label: str, role: str, count: int, instances: int, broker: Any, args: argparse.Namespace
) -> dict[str, float | str | int]:
    from tests.common import free_port  # noqa: PLC0415 - the children need none of this

    ports = [free_port() for _ in range(instances)]
    servers = [
        await _child("--serve", role, str(port), str(broker.port), f"bench{index}")
        for index, port in enumerate(ports)
    ]
    counter = StateCounter(broker.port)
    try:
        for port in ports:
            await _wait_port(port)
        await counter.ready.wait()
        await asyncio.sleep(1.0)
        idle = sum(_rss_kib(server.pid) for server in servers)
        generator = await _child(
            "--load", ",".join(map(str, ports)), str(count), str(args.warmup), str(args.seconds)
        )
        assert generator.stdout is not None
        line = json.loads(await generator.stdout.readline())
        assert line["window"] == "start"
        begin_count, begin = counter.count, time.perf_counter()
        line = json.loads(await generator.stdout.readline())
        published = (counter.count - begin_count) / (time.perf_counter() - begin)
        await asyncio.sleep(HOLD_SECONDS / 2)
        busy = sum(_rss_kib(server.pid) for server in servers)
        await generator.wait()
    finally:
        for server in servers:
            server.kill()
            await server.wait()
        await counter.close()
    result: dict[str, float | str | int] = {
        "label": label,
        "trackers": count,
        "acked_per_s": line["acked_per_s"],
        "published_per_s": published if role == "gateway" else 0.0,
        "kib_per_tracker": (busy - idle) / count,
        "rss_mib": busy / 1024,
    }
    print(
        f"  {label:<34} {result['acked_per_s']:>9.0f} acked/s  {published:>9.0f} published/s  "
        f"{result['kib_per_tracker']:>6.1f} KiB/tracker  RSS {result['rss_mib']:.0f} MiB",
        flush=True,
    )
    return result


async def bench(args: argparse.Namespace) -> None:
    """Run every phase on one broker and print the table."""
    from tests.gateway.mosquitto import Mosquitto  # noqa: PLC0415

    counts = [int(c) for c in args.counts.split(",")]
    with tempfile.TemporaryDirectory() as folder:
        broker = Mosquitto(Path(folder))
        await broker.start()
        try:
            results = []
            for count in counts:
                for label, role, instances in (
                    ("listener alone", "listener", 1),
                    ("gateway, 1 instance", "gateway", 1),
                    ("gateway, 2 instances", "gateway", 2),
                ):
                    phase = f"{label}, {count}"
                    results.append(await _phase(phase, role, count, instances, broker, args))
        finally:
            await broker.stop()
    print(
        "\n| phase | trackers | reports/s acknowledged | reports/s at the broker "
        "| vs listener alone | KiB per tracker |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    baseline: dict[int, float] = {}
    for result in results:
        trackers = int(result["trackers"])
        acked = float(result["acked_per_s"])
        if str(result["label"]).startswith("listener"):
            baseline[trackers] = acked
        ratio = float(result["published_per_s"] or acked) / baseline[trackers]
        print(
            f"| {str(result['label']).rsplit(',', 1)[0]} | {trackers} | {acked:.0f} | "
            f"{float(result['published_per_s']):.0f} | {ratio:.2f}x | "
            f"{float(result['kib_per_tracker']):.1f} |"
        )


def main() -> None:
    """Command line (also the entry point of the child processes)."""
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        role, port, broker_port, instance = sys.argv[2:6]
        serve(role, int(port), int(broker_port), instance)
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--load":
        ports, count, warmup, seconds = sys.argv[2:6]
        load([int(p) for p in ports.split(",")], int(count), float(warmup), float(seconds))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measuring window")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--counts", default="1000,5000", help="connected trackers per phase")
    args = parser.parse_args()
    os.nice(0)
    asyncio.run(bench(args))


if __name__ == "__main__":
    main()
