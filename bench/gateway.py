"""Gateway throughput: reports/s through the gateway to a real Mosquitto, against the listener.

    .venv/bin/python bench/gateway.py [--seconds 10] [--counts 1000,5000]

In one run, on one broker, each in its own process (the load generator in another one):

1. the listener alone (decode and acknowledge, nothing else): its ingest ceiling;
2. one gateway instance with 1,000 and with 5,000 connected trackers;
3. two gateway instances on the same broker, the trackers split between them.

Each tracker is a TCP connection sending JT808 location reports in a closed loop: the next one
as soon as the previous one was acknowledged (the gateway acknowledges a report only once it
took it for publishing; a report it had no room for is sent again after 2 s, as trackers
retransmit). The paced phases send one report per tracker every `--interval` seconds instead.
Each report has its own serial and counts as acknowledged only by the `0x8001` that answers that
serial. Throughput is the reports the broker confirmed per second (the gateways' own counter of
report publications, read on their stats topics; the listener alone: reports acknowledged), as
a ratio to the listener alone; in a closed loop the gateway acknowledges faster than it
publishes until its buffer is full, then only as fast. Reports acknowledged at the trackers and
all publications confirmed (with discovery, ownership, availability) are shown beside it.
Every report sent in the window is timed from its first send to its acknowledgement, also when
that comes after the window (p50, p99; reports still unanswered 30 s after the window are
counted).
Memory per tracker is the growth of the gateway process's resident set from idle to all
trackers connected, each having sent one report (so the gateway holds its session, its state
and its discovery), divided by their number; RSS after the closed loop is shown too (it holds
what the buffer grew to under saturation). Figures are printed as ratios to the
listener alone, measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
import itertools
import json
import os
from pathlib import Path
import random
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
HOLD_SECONDS = 15.0
#: Every tracker connected and known to the gateway, nothing else happening: memory is read.
CONNECTED_SECONDS = 4.0
#: Loopback addresses the trackers connect from (127.0.0.2 and up): a real fleet comes from many
#: addresses, and the listener holds at most 128 unidentified connections per address.
SOURCES = 16
#: A simulated tracker sends its report again after this long without an acknowledgement.
RETRANSMIT_SECONDS = 2.0
#: Reports a simulated tracker cycles through, serials 1 to this, built before the load starts:
#: an acknowledgement that comes very late is still told apart from the current report's.
SERIALS = 64
#: After the window, how long the trackers may take to get the answers to what they sent in it.
DRAIN_SECONDS = 30.0


def _lift_limits() -> None:
    """Raise this process's open-file limit to the hard limit (for the load's many sockets).

    The listener raises its own limit and caps connections at 5,000 (`limits.py`).
    """
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


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
            "--stats-interval", "0.5",
            # Fallback positioning as by default (learning), its table in a throw-away folder.
            "--data-dir", tempfile.mkdtemp(prefix="tk970-bench-gateway-"),
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


class _Counts:
    """What the trackers of one load process saw."""

    def __init__(self) -> None:
        self.acked = 0  #: reports acknowledged
        self.connected = 0  #: trackers whose first report was acknowledged
        self.retransmitted = 0  #: reports sent again for want of an acknowledgement
        self.waiting = 0  #: reports sent in the window, not acknowledged yet
        self.measuring = False  #: inside the measuring window
        self.latencies: list[float] = []  #: seconds from a window report's first send to its ack


class _Link:
    """One simulated tracker's connection: sends a report, waits for the ack of its serial."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, counts: _Counts
    ) -> None:
        self.reader, self.writer, self.counts = reader, writer, counts
        self.buffer = b""

    async def send(self, report: bytes, serial: int) -> bool:
        """Send `report`; True once the `0x8001` for `serial` came (re-sent while none does)."""
        self.writer.write(report)
        while True:
            answers, self.buffer = frames.jt808_split(self.buffer)
            for answer in answers:
                message_id, _, body = frames.jt808_unframe(answer)
                if message_id == 0x8001 and int.from_bytes(body[:2]) == serial:
                    return True
            try:
                data = await asyncio.wait_for(self.reader.read(256), RETRANSMIT_SECONDS)
            except TimeoutError:
                self.writer.write(report)
                self.counts.retransmitted += 1
                continue
            if not data:
                return False
            self.buffer += data


async def _tracker(
    source: str,
    port: int,
    terminal: str,
    start: asyncio.Event,
    stop: asyncio.Event,
    counts: _Counts,
    interval: float,
) -> None:
    fix = frames.Fix(time=datetime.now(UTC), latitude=52.52, longitude=13.405, speed_kmh=30.0)
    reports = [
        frames.jt808_location(terminal, serial, fix, timedelta(hours=8))
        for serial in range(1, SERIALS + 1)
    ]
    for _ in range(50):
        try:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, local_addr=(source, 0)
            )
            break
        except OSError:
            await asyncio.sleep(0.2)
    else:
        return
    link = _Link(reader, writer, counts)
    try:
        if not await link.send(reports[0], 1):  # one report: the gateway now holds this tracker
            return
        counts.connected += 1
        await start.wait()
        loop = asyncio.get_running_loop()
        if interval:
            await asyncio.sleep(random.uniform(0, interval))
        number = 1
        while not stop.is_set():
            number += 1
            serial = (number - 1) % SERIALS + 1
            sent, timed = loop.time(), counts.measuring
            counts.waiting += timed
            if not await link.send(reports[serial - 1], serial):
                return
            counts.acked += 1
            if timed:
                counts.waiting -= 1
                counts.latencies.append(loop.time() - sent)
            if interval:
                await asyncio.sleep(max(0.0, interval - (loop.time() - sent)))
        await asyncio.sleep(HOLD_SECONDS)
    except (ConnectionError, OSError):
        return
    finally:
        writer.close()


async def _load(
    ports: list[int], count: int, warmup: float, seconds: float, interval: float
) -> None:
    start, stop = asyncio.Event(), asyncio.Event()
    counts = _Counts()
    terminals = [imei[-11:].rjust(12, "0") for imei in imeis(FIRST_IMEI, count)]
    tasks = []
    for index, terminal in enumerate(terminals):
        port, source = ports[index % len(ports)], f"127.0.0.{2 + index % SOURCES}"
        tasks.append(
            asyncio.create_task(_tracker(source, port, terminal, start, stop, counts, interval))
        )
        if index % 200 == 199:
            await asyncio.sleep(0.05)  # a connection storm is another test (listener hardening)
    for _ in range(600):
        if counts.connected >= count:
            break
        await asyncio.sleep(0.1)
    print(json.dumps({"connected": counts.connected}), flush=True)
    await asyncio.sleep(CONNECTED_SECONDS)  # the benchmark reads the memory now
    start.set()
    await asyncio.sleep(warmup)
    begin_count, begin_retransmitted = counts.acked, counts.retransmitted
    begin = time.perf_counter()
    counts.measuring = True
    print(json.dumps({"window": "start"}), flush=True)
    await asyncio.sleep(seconds)
    counts.measuring = False
    acked, elapsed = counts.acked - begin_count, time.perf_counter() - begin
    retransmitted = counts.retransmitted - begin_retransmitted
    stop.set()  # the trackers stay connected, silent, while the benchmark reads the memory
    end = {"window": "end", "acked_per_s": acked / elapsed, "retransmitted": retransmitted}
    print(json.dumps(end), flush=True)
    for _ in range(int(DRAIN_SECONDS * 10)):  # the answers to what was sent in the window
        if not counts.waiting:
            break
        await asyncio.sleep(0.1)
    latencies = sorted(counts.latencies) or [float("nan")]
    timing = {
        "ack_p50_ms": 1000 * latencies[len(latencies) // 2],
        "ack_p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "unanswered": counts.waiting,
    }
    print(json.dumps(timing), flush=True)
    await asyncio.sleep(HOLD_SECONDS)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def load(ports: list[int], count: int, warmup: float, seconds: float, interval: float) -> None:
    """Drive `count` trackers against `ports` (round robin) and print the acknowledged rate.

    `interval` 0: closed loop (the next report as soon as the last one was acknowledged);
    otherwise each tracker reports every `interval` seconds, as real ones do.
    """
    _lift_limits()
    asyncio.run(_load(ports, count, warmup, seconds, interval))


# -- the benchmark --------------------------------------------------------------------------


def _cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far (from /proc: holds on a loaded machine)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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


_PHASES = itertools.count()


class StatsReader:
    """Reads the gateways' own counters: publications the broker confirmed, reports buffered."""

    def __init__(self, broker_port: int, instances: list[str]) -> None:
        self.port = broker_port
        #: this phase's instances: an earlier phase's gateways left their stats retained
        self.topics = {f"tk970/_gateway/{instance}/stats" for instance in instances}
        self.stats: dict[str, dict[str, int]] = {}
        self.ready = asyncio.Event()
        self.task = asyncio.create_task(self._run())

    @property
    def published(self) -> int:
        """Publications confirmed by the broker, all instances."""
        return sum(s.get("published", 0) for s in self.stats.values())

    @property
    def reports_published(self) -> int:
        """Of those, reports (the states and alarms that trackers' reports made)."""
        return sum(s.get("reports_published", 0) for s in self.stats.values())

    @property
    def buffered(self) -> int:
        """Reports waiting to be published, all instances."""
        return sum(s.get("buffered", 0) for s in self.stats.values())

    async def _run(self) -> None:
        async with aiomqtt.Client("127.0.0.1", self.port, identifier="bench-stats") as client:
            await client.subscribe("tk970/_gateway/+/stats", qos=0)
            self.ready.set()
            async for message in client.messages:
                if isinstance(message.payload, bytes) and str(message.topic) in self.topics:
                    self.stats[str(message.topic)] = json.loads(message.payload)

    async def close(self) -> None:
        """Stop counting."""
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


async def _phase(
    label: str,
    role: str,
    count: int,
    instances: int,
    interval: float,
    broker: Any,
    args: argparse.Namespace,
) -> dict[str, float | str | int]:
    from tests.common import free_port  # noqa: PLC0415 - the children need none of this

    ports = [free_port() for _ in range(instances)]
    # Names of this phase only: an earlier phase's gateways left their stats retained.
    names = [f"bench{next(_PHASES)}" for _ in ports]
    servers = [
        await _child("--serve", role, str(port), str(broker.port), name)
        for port, name in zip(ports, names, strict=True)
    ]
    counter = StatsReader(broker.port, names if role == "gateway" else [])
    try:
        for port in ports:
            await _wait_port(port)
        await counter.ready.wait()
        await asyncio.sleep(1.0)
        idle = sum(_rss_kib(server.pid) for server in servers)
        seconds = args.paced_seconds if interval else args.seconds
        generator = await _child(
            "--load",
            ",".join(map(str, ports)),
            str(count),
            str(interval or args.warmup),
            str(seconds),
            str(interval),
        )
        assert generator.stdout is not None
        connected = json.loads(await generator.stdout.readline())["connected"]
        await asyncio.sleep(CONNECTED_SECONDS / 2)
        held = sum(_rss_kib(server.pid) for server in servers)
        line = json.loads(await generator.stdout.readline())
        assert line["window"] == "start"
        begin_count, begin = counter.published, time.perf_counter()
        begin_reports = counter.reports_published
        cpu_begin = sum(_cpu_seconds(server.pid) for server in servers)
        line = json.loads(await generator.stdout.readline())
        elapsed = time.perf_counter() - begin
        cpu = (sum(_cpu_seconds(server.pid) for server in servers) - cpu_begin) / elapsed
        published = (counter.published - begin_count) / elapsed
        reports = (counter.reports_published - begin_reports) / elapsed
        await asyncio.sleep(1.0)
        buffered = counter.buffered  # reports still waiting when the window closed
        busy = sum(_rss_kib(server.pid) for server in servers)
        timing = json.loads(await generator.stdout.readline())
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
        "reports_published_per_s": reports if role == "gateway" else 0.0,
        "interval": interval,
        "cpu": cpu,
        "connected": connected,
        "kib_per_tracker": (held - idle) / connected,
        "rss_mib": busy / 1024,
        "buffered": buffered,
        "retransmitted": line["retransmitted"],
        "ack_p50_ms": timing["ack_p50_ms"],
        "ack_p99_ms": timing["ack_p99_ms"],
        "unanswered": timing["unanswered"],
    }
    print(
        f"  {label:<34} {result['acked_per_s']:>9.0f} acked/s  {reports:>9.0f} reports "
        f"published/s ({published:.0f} publications/s)  "
        f"{result['kib_per_tracker']:>6.1f} KiB/tracker  RSS {result['rss_mib']:.0f} MiB  "
        f"CPU {cpu:.0%}  ack p50 {timing['ack_p50_ms']:.1f} ms p99 {timing['ack_p99_ms']:.1f} ms  "
        f"({line['retransmitted']} retransmitted, {timing['unanswered']} unanswered, "
        f"{buffered} still buffered)",
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
            for interval in (0.0, args.interval):
                for count in counts:
                    for label, role, instances in (
                        ("listener alone", "listener", 1),
                        ("gateway, 1 instance", "gateway", 1),
                        ("gateway, 2 instances", "gateway", 2),
                    ):
                        pace = f"every {interval:g} s" if interval else "closed loop"
                        phase = f"{label}, {count}, {pace}"
                        results.append(
                            await _phase(phase, role, count, instances, interval, broker, args)
                        )
        finally:
            await broker.stop()
    print(
        "\n| phase | trackers | load | reports/s acknowledged | reports/s published "
        "| throughput vs listener alone | publications/s confirmed | CPU (% of a core) "
        "| CPU per report vs listener alone | ack p50 / p99 (ms) | retransmitted | unanswered "
        "| KiB per tracker |"
    )
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    baseline: dict[tuple[int, float], dict[str, float | str | int]] = {}
    for result in results:
        key = (int(result["trackers"]), float(result["interval"]))
        gateway = not str(result["label"]).startswith("listener")
        if not gateway:
            baseline[key] = result
        base = baseline[key]
        acked = float(result["acked_per_s"])
        # Through the gateway a report is done once the broker confirmed it; the listener alone
        # is done with a report once it acknowledged it.
        reports = float(result["reports_published_per_s"]) if gateway else acked
        base_rate = float(base["acked_per_s"])
        per_report = float(result["cpu"]) / max(reports, 1e-9)
        base_per_report = float(base["cpu"]) / max(base_rate, 1e-9)
        name = str(result["label"]).rsplit(", ", 2)[0]
        print(
            f"| {name} | {key[0]} | {str(result['label']).rsplit(', ', 1)[1]} | {acked:.0f} | "
            f"{reports if gateway else 0:.0f} | {reports / base_rate:.2f}x | "
            f"{float(result['published_per_s']):.0f} | "
            f"{float(result['cpu']):.0%} | {per_report / base_per_report:.1f}x | "
            f"{float(result['ack_p50_ms']):.1f} / {float(result['ack_p99_ms']):.1f} | "
            f"{result['retransmitted']} | {result['unanswered']} | "
            f"{float(result['kib_per_tracker']):.1f} |"
        )


def main() -> None:
    """Command line (also the entry point of the child processes)."""
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        role, port, broker_port, instance = sys.argv[2:6]
        serve(role, int(port), int(broker_port), instance)
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--load":
        ports, count, warmup, seconds, interval = sys.argv[2:7]
        load(
            [int(p) for p in ports.split(",")],
            int(count),
            float(warmup),
            float(seconds),
            float(interval),
        )
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measuring window")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--counts", default="1000,5000", help="connected trackers per phase")
    parser.add_argument(
        "--interval", type=float, default=10.0, help="report interval of the paced phases, s"
    )
    parser.add_argument("--paced-seconds", type=float, default=20.0, help="paced window, s")
    args = parser.parse_args()
    os.nice(0)
    asyncio.run(bench(args))


if __name__ == "__main__":
    main()
