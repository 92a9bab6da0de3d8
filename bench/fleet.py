"""A fleet in one real Home Assistant: its CPU, ack latency, lost acks and recorder growth.

    $TK970_VENV/bin/python bench/fleet.py [--trackers 1000] [--interval 10] [--seconds 120]
        [--rates 1,2,4] [--parked] [--keep] [--json results.json]

Starts Home Assistant (recorder on, SQLite, its default commit interval) from a throw-away
folder on free ports, onboards it, adds the trackers through the integration's config flow over
the REST API (as the UI does; timed), restarts it with them (timed), then runs the load generator
in another process: N simulated GT06 trackers over TCP, each logging in and then reporting one
location every `interval` seconds (driving: position and speed change with every report; or
`--parked`: the same place again and again), timing every acknowledgement. While it runs, the
Home Assistant process's CPU is read from /proc (utime + stime of all its threads), which holds
on a loaded machine better than wall time. At the end every tracker must be on the map, and the
recorder's database growth is divided by the reports.

`--rates 1,2,4` repeats the measurement with the same trackers reporting 1, 2 and 4 times as
often, and fits CPU = idle + cost x reports/s through the points: the tracker count at 50% of a
core at the nominal interval is the report rate at 50% times the interval (the connection count
stays that of the run: the listener's connection cap and Home Assistant's open-files limit bound
how many real sockets one run can open).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Iterator
import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
import json
import os
from pathlib import Path
import random
import resource
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from demo.__main__ import (  # noqa: E402
    add_tracker,
    onboard,
    start_home_assistant,
    stop_home_assistant,
    wait_until_up,
    websocket_call,
    write_config,
)
from simulator import frames  # noqa: E402
from simulator.__main__ import imeis  # noqa: E402

FIRST_IMEI = "353000000000000"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
#: An acknowledgement later than this is counted as lost.
ACK_TIMEOUT = 10.0
#: Entries added at once over the REST API (the UI adds one at a time; this only saves time).
ADD_CONCURRENCY = 4
#: Simultaneous TCP connects and logins of the load generator.
CONNECT_CONCURRENCY = 50

CONFIGURATION = """\
homeassistant:
  name: tk970 fleet benchmark
  latitude: 52.5145
  longitude: 13.3600
  elevation: 34
  unit_system: metric
  time_zone: Europe/Berlin
  country: DE
  currency: EUR
http:
  server_host: 127.0.0.1
  server_port: {http_port}
api:
config:
recorder:
logger:
  default: warning
"""


def free_port() -> int:
    """A port free for TCP and UDP on every interface."""
    while True:
        with socket.socket() as tcp:
            tcp.bind(("0.0.0.0", 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("0.0.0.0", port))
                except OSError:
                    continue
            return port


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def main_thread_cpu_seconds(pid: int) -> float:
    """utime + stime of the process's main thread (Home Assistant's event loop)."""
    fields = Path(f"/proc/{pid}/task/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_mib(pid: int) -> float:
    """Resident memory of a process, MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


# -- the load generator (its own process) -------------------------------------------------------


@dataclass
class _Tracker:
    imei: str
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    latitude: float
    longitude: float
    serial: int = 1
    #: serial -> perf_counter at send, for reports sent inside the measurement
    waiting: dict[int, float] = field(default_factory=dict)


@dataclass
class _LoadStats:
    sent: int = 0
    acked: int = 0
    rtts: list[float] = field(default_factory=list)
    connect_failures: int = 0


async def _login(imei: str, port: int, index: int, gate: asyncio.Semaphore) -> _Tracker | None:
    async with gate:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(frames.gt06_login(imei, 1))
            await writer.drain()
            async with asyncio.timeout(60):
                ack = await reader.readexactly(10)
        except (OSError, TimeoutError, asyncio.IncompleteReadError):
            return None
    if ack[3] != 0x01:
        return None
    # Spread over Berlin, one vehicle every few hundred metres.
    return _Tracker(imei, reader, writer, 52.40 + (index % 40) * 0.005, 13.20 + index // 40 * 0.005)


async def _read_acks(tracker: _Tracker, stats: _LoadStats) -> None:
    reader = tracker.reader
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        while True:
            ack = await reader.readexactly(10)
            now = time.perf_counter()
            sent = tracker.waiting.pop(int.from_bytes(ack[4:6], "big"), None)
            if sent is not None:
                stats.acked += 1
                stats.rtts.append(now - sent)


async def _drive(
    tracker: _Tracker,
    stats: _LoadStats,
    interval: float,
    start: float,
    measure_from: float,
    end: float,
    parked: bool,
) -> None:
    loop = asyncio.get_running_loop()
    step = 0
    # Each tracker keeps its own phase, as a real fleet does.
    when = start + random.uniform(0, interval)
    while when < end:
        await asyncio.sleep(max(0.0, when - loop.time()))
        step += 1
        if not parked:
            tracker.latitude += 0.0002
            tracker.longitude += 0.0001
        fix = frames.Fix(
            time=datetime.now(UTC),
            latitude=tracker.latitude,
            longitude=tracker.longitude,
            speed_kmh=0.0 if parked else 30.0 + step % 7 * 5,
            course=0.0 if parked else step * 13 % 360,
            ignition=not parked,
        )
        tracker.serial = (tracker.serial + 1) & 0xFFFF
        data = frames.gt06_location(fix, tracker.serial)
        if loop.time() >= measure_from:
            tracker.waiting[tracker.serial] = time.perf_counter()
            stats.sent += 1
        try:
            tracker.writer.write(data)
        except OSError:
            return
        when += interval


async def run_load(args: argparse.Namespace) -> None:
    """Connect and log in every tracker, say `ready`, report for `seconds`, print the figures."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    identities = imeis(args.first_imei, args.trackers)
    logged = await asyncio.gather(
        *(_login(imei, args.port, index, gate) for index, imei in enumerate(identities))
    )
    trackers = [tracker for tracker in logged if tracker is not None]
    stats = _LoadStats(connect_failures=len(logged) - len(trackers))
    readers = [asyncio.create_task(_read_acks(tracker, stats)) for tracker in trackers]
    print("ready", len(trackers), flush=True)
    loop = asyncio.get_running_loop()
    results = []
    for rate in args.rates:
        start = loop.time()
        measure_from = start + args.warmup
        end = measure_from + args.seconds
        stats.sent = stats.acked = 0
        stats.rtts = []
        for tracker in trackers:
            tracker.waiting.clear()
        print("phase", rate, flush=True)
        await asyncio.gather(
            *(
                _drive(tracker, stats, args.interval / rate, start, measure_from, end, args.parked)
                for tracker in trackers
            )
        )
        await asyncio.sleep(min(ACK_TIMEOUT, args.interval))  # the last acks
        rtts = sorted(stats.rtts)
        results.append(
            {
                "rate": rate,
                "sent": stats.sent,
                "acked": stats.acked,
                "lost": stats.sent - stats.acked,
                "ack_p50_ms": _percentile(rtts, 0.50) * 1000,
                "ack_p99_ms": _percentile(rtts, 0.99) * 1000,
                "ack_max_ms": (rtts[-1] if rtts else 0.0) * 1000,
            }
        )
        print("done", rate, flush=True)
    for task in readers:
        task.cancel()
    for tracker in trackers:
        tracker.writer.close()
    print(
        json.dumps(
            {
                "connected": len(trackers),
                "connect_failures": stats.connect_failures,
                "phases": results,
            }
        ),
        flush=True,
    )


def _percentile(values: list[float], share: float) -> float:
    if not values:
        return 0.0
    return values[min(len(values) - 1, int(share * len(values)))]


# -- the orchestrator ---------------------------------------------------------------------------


@dataclass
class HomeAssistantRun:
    """A Home Assistant process on a folder, and how to talk to it."""

    folder: Path
    url: str
    process: subprocess.Popen[bytes] | None = None
    token: str = ""

    @property
    def pid(self) -> int:
        """The Home Assistant process id."""
        assert self.process is not None
        return self.process.pid

    @property
    def headers(self) -> dict[str, str]:
        """Authorization for REST calls."""
        return {"Authorization": f"Bearer {self.token}"}

    async def start(self, session: aiohttp.ClientSession) -> None:
        """Start Home Assistant and wait for its API (onboarding, or the API once onboarded)."""
        self.process = start_home_assistant(self.folder)
        if not self.token:
            await wait_until_up(session, self.process, self.url)
            return
        while True:
            if self.process.poll() is not None:
                raise SystemExit(f"fleet: Home Assistant exited with {self.process.returncode}")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(
                    f"{self.url}/api/", headers=self.headers, timeout=aiohttp.ClientTimeout(2)
                ) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.2)

    def stop(self) -> None:
        """Stop Home Assistant (SIGTERM)."""
        if self.process is not None:
            stop_home_assistant(self.process)

    async def get(self, session: aiohttp.ClientSession, path: str) -> Any:
        """GET a REST path, return its JSON."""
        async with session.get(f"{self.url}{path}", headers=self.headers) as response:
            response.raise_for_status()
            return await response.json()

    async def loaded_entries(self, session: aiohttp.ClientSession) -> int:
        """tk970 config entries in state `loaded`."""
        entries = await self.get(session, "/api/config/config_entries/entry?domain=tk970")
        return sum(1 for entry in entries if entry.get("state") == "loaded")

    async def trackers_on_map(self, session: aiohttp.ClientSession) -> int:
        """device_tracker entities with a position."""
        states = await self.get(session, "/api/states")
        return sum(
            1
            for state in states
            if state["entity_id"].startswith("device_tracker.")
            and state["attributes"].get("latitude") is not None
        )


async def wait_until(predicate: Any, within: float, what: str) -> None:
    """Poll an async predicate until it holds."""
    deadline = time.monotonic() + within
    while not await predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"fleet: timed out waiting for {what}")
        await asyncio.sleep(0.5)


def database_bytes(folder: Path) -> tuple[int, int]:
    """The recorder database's used bytes (after a passive WAL checkpoint) and its state rows."""
    path = folder / "home-assistant_v2.db"
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=30)) as db:
        db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        free = db.execute("PRAGMA freelist_count").fetchone()[0]
        rows = db.execute("SELECT COUNT(*) FROM states").fetchone()[0]
    return (pages - free) * page_size, rows


@contextlib.contextmanager
def load_generator(args: argparse.Namespace, port: int) -> Iterator[subprocess.Popen[str]]:
    """The load generator process."""
    command = [
        sys.executable, str(Path(__file__).resolve()), "load",
        "--port", str(port), "--trackers", str(args.trackers),
        "--interval", str(args.interval), "--seconds", str(args.seconds),
        "--warmup", str(args.warmup), "--rates", ",".join(str(r) for r in args.rates),
        "--first-imei", FIRST_IMEI,
    ]  # fmt: skip
    if args.parked:
        command.append("--parked")
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=30)


@contextlib.contextmanager
def profiling(args: argparse.Namespace, pid: int, rate: float) -> Iterator[None]:
    """Sample Home Assistant with py-spy while a phase is measured (`--py-spy`)."""
    if args.py_spy is None:
        yield
        return
    output = args.py_spy.with_suffix(f".x{rate:g}.txt")
    spy = subprocess.Popen(
        [str(args.py_spy_bin), "record", "--pid", str(pid), "--rate", "200", "--format", "raw",
         "--output", str(output), "--nonblocking", "--threads"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield
    finally:
        spy.send_signal(2)  # SIGINT: py-spy writes its file and exits
        spy.wait(timeout=60)
        print(f"fleet: py-spy samples in {output}")


async def read_line(process: subprocess.Popen[str]) -> str:
    """The load generator's next line (read in a thread: the pipe is blocking)."""
    assert process.stdout is not None
    line = await asyncio.to_thread(process.stdout.readline)
    if not line:
        raise SystemExit("fleet: the load generator ended early")
    return line.strip()


async def orchestrate(args: argparse.Namespace) -> dict[str, Any]:
    """Run the whole benchmark; return its figures."""
    folder = Path(tempfile.mkdtemp(prefix="tk970-fleet-"))
    http_port, tracker_port = free_port(), free_port()
    write_config(folder, CONFIGURATION.format(http_port=http_port))
    ha = HomeAssistantRun(folder, f"http://127.0.0.1:{http_port}")
    results: dict[str, Any] = {
        "trackers": args.trackers,
        "interval_s": args.interval,
        "parked": args.parked,
        "cpus": os.cpu_count(),
        "loadavg_before": os.getloadavg()[0],
    }
    timeout = aiohttp.ClientTimeout(total=600)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            started = time.monotonic()
            await ha.start(session)
            results["first_start_s"] = time.monotonic() - started
            access = await onboard(session, ha.url)
            ha.token = str(
                await websocket_call(
                    session,
                    access,
                    {"type": "auth/long_lived_access_token", "client_name": "fleet", "lifespan": 1},
                    ha.url,
                )
            )
            rss_empty = rss_mib(ha.pid)

            # Adding the trackers, as the UI does (config flow over REST).
            started = time.monotonic()
            gate = asyncio.Semaphore(ADD_CONCURRENCY)

            async def add(number: int, imei: str) -> None:
                async with gate:
                    await add_tracker(
                        session,
                        ha.token,
                        url=ha.url,
                        imei=imei,
                        name=f"Vehicle {number:04d}",
                        port=tracker_port,
                    )

            await asyncio.gather(
                *(add(n, imei) for n, imei in enumerate(imeis(FIRST_IMEI, args.trackers)))
            )
            await wait_until(
                lambda: _equals(ha.loaded_entries(session), args.trackers), 600, "entries"
            )
            results["add_entries_s"] = time.monotonic() - started
            print(f"fleet: added {args.trackers} trackers in {results['add_entries_s']:.0f} s")

            # Restarting with them.
            ha.stop()
            started = time.monotonic()
            await ha.start(session)
            results["restart_api_s"] = time.monotonic() - started
            await wait_until(
                lambda: _equals(ha.loaded_entries(session), args.trackers), 600, "restart"
            )
            results["restart_loaded_s"] = time.monotonic() - started
            print(f"fleet: restarted with them in {results['restart_loaded_s']:.0f} s")
            await asyncio.sleep(10)  # let start-up work settle before measuring idle
            cpu0, wall0 = cpu_seconds(ha.pid), time.monotonic()
            await asyncio.sleep(10)
            results["idle_cpu_share"] = (cpu_seconds(ha.pid) - cpu0) / (time.monotonic() - wall0)
            results["rss_empty_mib"] = rss_empty
            results["rss_configured_mib"] = rss_mib(ha.pid)

            with load_generator(args, tracker_port) as load:
                ready = (await read_line(load)).split()
                results["connected"] = int(ready[1])
                results["rss_connected_mib"] = rss_mib(ha.pid)
                phases = []
                for rate in args.rates:
                    assert (await read_line(load)).split()[0] == "phase"
                    await asyncio.sleep(args.warmup)
                    bytes0, rows0 = database_bytes(folder)
                    loop0 = main_thread_cpu_seconds(ha.pid)
                    cpu0, wall0 = cpu_seconds(ha.pid), time.monotonic()
                    with profiling(args, ha.pid, rate):
                        await asyncio.sleep(args.seconds)
                    cpu1, wall1 = cpu_seconds(ha.pid), time.monotonic()
                    loop1 = main_thread_cpu_seconds(ha.pid)
                    await asyncio.sleep(10)  # the recorder commits what the window wrote
                    bytes1, rows1 = database_bytes(folder)
                    phases.append(
                        {
                            "rate": rate,
                            "cpu_share": (cpu1 - cpu0) / (wall1 - wall0),
                            "cpu_s": cpu1 - cpu0,
                            "loop_cpu_s": loop1 - loop0,
                            "db_bytes": bytes1 - bytes0,
                            "state_rows": rows1 - rows0,
                            "loadavg": os.getloadavg()[0],
                        }
                    )
                    assert (await read_line(load)).split()[0] == "done"
                    print(f"fleet: x{rate}: HA CPU {phases[-1]['cpu_share']:.1%} of a core")
                results["on_map"] = await ha.trackers_on_map(session)
                results["rss_loaded_mib"] = rss_mib(ha.pid)
                figures = json.loads(await read_line(load))
            for phase, measured in zip(phases, figures["phases"], strict=True):
                phase.update(measured)
                reports = max(1, measured["sent"])
                phase["reports_per_s"] = measured["sent"] / args.seconds
                phase["cpu_ms_per_report"] = phase["cpu_s"] * 1000 / reports
                phase["loop_ms_per_report"] = phase["loop_cpu_s"] * 1000 / reports
                phase["db_bytes_per_report"] = phase["db_bytes"] / reports
                phase["state_rows_per_report"] = phase["state_rows"] / reports
            results["phases"] = phases
            results["connect_failures"] = figures["connect_failures"]
            if len(phases) >= 2:
                rates = [p["reports_per_s"] for p in phases]
                shares = [p["cpu_share"] for p in phases]
                slope, intercept = statistics.linear_regression(rates, shares)
                at_half = (0.5 - intercept) / slope if slope > 0 else float("inf")
                results["fit"] = {
                    "idle_share": intercept,
                    "ms_per_report": slope * 1000,
                    "reports_per_s_at_half_core": at_half,
                    "trackers_at_half_core": at_half * args.interval,
                }
    finally:
        ha.stop()
        if args.keep:
            print(f"fleet: kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    return results


async def _equals(value: Any, expected: int) -> bool:
    return bool(await value == expected)


def print_results(results: dict[str, Any]) -> None:
    """The tables of bench/RESULTS.md."""
    print()
    print(
        f"{results['trackers']} trackers ({results['connected']} connected), one GT06 location "
        f"every {results['interval_s']:g} s each, {'parked' if results['parked'] else 'driving'}; "
        f"{results['cpus']} CPUs, load average {results['loadavg_before']:.1f} before"
    )
    print(
        f"adding them by config flow: {results['add_entries_s']:.0f} s; restart: API after "
        f"{results['restart_api_s']:.0f} s, all loaded after {results['restart_loaded_s']:.0f} s; "
        f"idle (configured, none connected): {results['idle_cpu_share']:.1%} of a core"
    )
    print(
        f"memory (RSS): {results['rss_empty_mib']:.0f} MiB empty, "
        f"{results['rss_configured_mib']:.0f} MiB configured, "
        f"{results['rss_connected_mib']:.0f} MiB connected, "
        f"{results['rss_loaded_mib']:.0f} MiB after the load"
    )
    print(
        "| reports/s | HA CPU (share of a core) | HA CPU per report (event loop) | ack p50 | "
        "ack p99 | acks lost | recorder rows per report | recorder bytes per report |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for phase in results["phases"]:
        print(
            f"| {phase['reports_per_s']:.0f} | {phase['cpu_share']:.1%} | "
            f"{phase['cpu_ms_per_report']:.2f} ms ({phase['loop_ms_per_report']:.2f} ms) | "
            f"{phase['ack_p50_ms']:.1f} ms | "
            f"{phase['ack_p99_ms']:.1f} ms | {phase['lost']} of {phase['sent']} | "
            f"{phase['state_rows_per_report']:.2f} | {phase['db_bytes_per_report']:.0f} |"
        )
    print(f"on the map: {results['on_map']} of {results['trackers']}")
    if "fit" in results:
        fit = results["fit"]
        print(
            f"fit: {fit['idle_share']:.1%} idle + {fit['ms_per_report']:.2f} ms per report: "
            f"a core half busy at {fit['reports_per_s_at_half_core']:.0f} reports/s, "
            f"{fit['trackers_at_half_core']:.0f} trackers at one report per "
            f"{results['interval_s']:g} s"
        )


def main() -> None:
    """Command line: the benchmark, or (`load`) the load generator it starts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", default="run", choices=("run", "load"))
    parser.add_argument("--trackers", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between reports")
    parser.add_argument("--seconds", type=float, default=120.0, help="measured seconds per rate")
    parser.add_argument("--warmup", type=float, default=20.0, help="seconds before measuring")
    parser.add_argument(
        "--rates",
        type=lambda text: [float(r) for r in text.split(",")],
        default=[1.0],
        help="report rates to measure, as multiples of 1/interval (1,2,4 finds the ceiling)",
    )
    parser.add_argument("--parked", action="store_true", help="trackers never move")
    parser.add_argument("--keep", action="store_true", help="keep the Home Assistant folder")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--py-spy", type=Path, help="profile each measured phase into PATH.x<rate>.txt (raw)"
    )
    parser.add_argument(
        "--py-spy-bin",
        type=Path,
        default=Path(shutil.which("py-spy") or "py-spy"),
        help=argparse.SUPPRESS,
    )
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--first-imei", default=FIRST_IMEI, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode == "load":
        asyncio.run(run_load(args))
        return
    results = asyncio.run(orchestrate(args))
    print_results(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
