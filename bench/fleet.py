"""A fleet in one real Home Assistant: its CPU, ack latency, lost acks and recorder growth.

    $TK970_VENV/bin/python bench/fleet.py [--trackers 1000] [--interval 10] [--seconds 120]
        [--rates 1,2,4] [--moving 1.0] [--exclude-speed] [--keep] [--json results.json]

Starts Home Assistant (recorder on, SQLite, its default commit interval) from a throw-away
folder on free ports, onboards it, adds the trackers through the integration's config flow over
the REST API (as the UI does; timed), restarts it with them (timed), then runs the load generator
in another process: N simulated GT06 trackers over TCP, each logging in and then reporting one
location every `interval` seconds, timing every acknowledgement. Driving trackers change position
and speed with every report; `--moving 0.3` leaves 70% of them parked (the same place again and
again). While it runs, the Home Assistant process's CPU is read from /proc (utime + stime of all
its threads), which holds on a loaded machine better than wall time. After each phase it waits
until Home Assistant is idle again, so that the work per report includes the recorder's backlog.
At the end every tracker must be on the map, and the recorder's database growth is divided by
the reports.

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

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
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
#: An acknowledgement slower than this is listed by when it was sent (stalls show as clusters).
SLOW_ACK = 0.2
#: An acknowledgement later than this is counted as lost.
ACK_TIMEOUT = 10.0
#: Entries added at once over the REST API (the UI adds one at a time; this only saves time).
ADD_CONCURRENCY = 4
#: Simultaneous TCP connects and logins of the load generator.
CONNECT_CONCURRENCY = 50
#: Home Assistant is idle (its queued work done) below this share of a core over QUIET_SECONDS.
QUIET = 0.04
QUIET_SECONDS = 3.0
#: The recorder commits every 5 s (its default): this long after going quiet, all is written.
COMMIT_WAIT = 6.0

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
recorder:{recorder}
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


def system_cpu_seconds(pid: int) -> float:
    """stime of a process: the kernel's share (socket sends and receives, file writes)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[12]) / CLOCK_TICKS


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
    #: reports sent in the phase, warm-up included (what the recorder's growth is divided by)
    total: int = 0
    #: reports sent inside the measurement window, and how many of them were acknowledged
    sent: int = 0
    acked: int = 0
    rtts: list[float] = field(default_factory=list)
    #: send times (perf_counter) of acknowledgements slower than SLOW_ACK
    slow: list[float] = field(default_factory=list)
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
                if now - sent > SLOW_ACK:
                    stats.slow.append(sent)


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
        stats.total += 1
        if loop.time() >= measure_from:
            tracker.waiting[tracker.serial] = time.perf_counter()
            stats.sent += 1
        try:
            tracker.writer.write(data)
        except OSError:
            return
        when += interval


async def run_load(args: argparse.Namespace) -> None:
    """Connect and log in every tracker, say `ready`; on `prime`, report twice each and say
    `primed`; then per rate, on `go` from the parent, report for warmup + seconds and print
    `done` with the phase's figures as JSON."""
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
    print("ready", len(trackers), stats.connect_failures, flush=True)
    loop = asyncio.get_running_loop()
    moving = round(args.moving * len(trackers))

    def parked(index: int) -> bool:
        return index >= moving

    if (await asyncio.to_thread(sys.stdin.readline)).strip() == "prime":
        # Two reports each, unmeasured: every entity has its first value before the phases.
        start = loop.time()
        end = start + 2 * args.interval
        await asyncio.gather(
            *(
                _drive(tracker, _LoadStats(), args.interval, start, end, end, parked(index))
                for index, tracker in enumerate(trackers)
            )
        )
        print("primed", flush=True)
    for rate in args.rates:
        if (await asyncio.to_thread(sys.stdin.readline)).strip() != "go":
            break
        start = loop.time()
        measure_from = start + args.warmup
        end = measure_from + args.seconds
        stats.sent = stats.acked = stats.total = 0
        stats.rtts = []
        stats.slow = []
        for tracker in trackers:
            tracker.waiting.clear()
        phase_start = time.perf_counter()
        started_at = datetime.now(UTC).isoformat(timespec="seconds")
        await asyncio.gather(
            *(
                _drive(
                    tracker, stats, args.interval / rate, start, measure_from, end, parked(index)
                )
                for index, tracker in enumerate(trackers)
            )
        )
        await asyncio.sleep(min(ACK_TIMEOUT, args.interval))  # the last acks
        rtts = sorted(stats.rtts)
        phase = {
            "rate": rate,
            "reports": stats.total,
            "sent": stats.sent,
            "acked": stats.acked,
            "lost": stats.sent - stats.acked,
            "ack_p50_ms": _percentile(rtts, 0.50) * 1000,
            "ack_p99_ms": _percentile(rtts, 0.99) * 1000,
            "ack_max_ms": (rtts[-1] if rtts else 0.0) * 1000,
            # When the slow acknowledgements were sent (seconds into the phase): a stall of
            # the event loop shows as a cluster.
            "started_at": started_at,
            "slow_acks_at_s": sorted({round(at - phase_start) for at in stats.slow}),
        }
        print("done", json.dumps(phase), flush=True)
    # Hang up only when told: the hang-ups (Connected off, Last seen) are no phase's work.
    await asyncio.to_thread(sys.stdin.readline)
    for task in readers:
        task.cancel()
    for tracker in trackers:
        tracker.writer.close()


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
    env: dict[str, str] = field(default_factory=dict)

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
        self.process = start_home_assistant(self.folder, self.env)
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
    command += ["--moving", str(args.moving)]
    process = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
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


async def quiet(pid: int, within: float = 900.0) -> float:
    """Wait until Home Assistant is done with queued work (its CPU falls below `QUIET` over
    `QUIET_SECONDS`: the recorder has written its backlog); return the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < within:
        cpu0, wall0 = cpu_seconds(pid), time.monotonic()
        await asyncio.sleep(QUIET_SECONDS)
        if (cpu_seconds(pid) - cpu0) / (time.monotonic() - wall0) < QUIET:
            return time.monotonic() - started
    raise SystemExit("fleet: Home Assistant never went quiet")


async def read_line(process: subprocess.Popen[str]) -> str:
    """The load generator's next line (read in a thread: the pipe is blocking)."""
    assert process.stdout is not None
    line = await asyncio.to_thread(process.stdout.readline)
    if not line:
        raise SystemExit("fleet: the load generator ended early")
    return line.strip()


async def confirm_http_config(session: aiohttp.ClientSession, token: str, url: str) -> None:
    """Keep Home Assistant on the benchmark's port on the newest releases.

    Since 2026 Home Assistant takes a YAML `http:` block as a trial: unless it is confirmed within
    five minutes it reverts to its stored port and restarts, in the middle of the measurement.
    Older releases have no such command and answer with an error, which is fine.
    """
    async with session.ws_connect(f"{url}/api/websocket") as socket:
        await socket.receive_json()
        await socket.send_json({"type": "auth", "access_token": token})
        await socket.receive_json()
        await socket.send_json({"id": 1, "type": "http/config/promote"})
        reply = await socket.receive_json()
        if reply.get("success"):
            print("fleet: confirmed the HTTP port (a trial on this Home Assistant)", flush=True)


async def orchestrate(args: argparse.Namespace) -> dict[str, Any]:
    """Run the whole benchmark; return its figures."""
    folder = Path(tempfile.mkdtemp(prefix="tk970-fleet-"))
    http_port, tracker_port = free_port(), free_port()
    recorder = ""
    if args.exclude_speed:
        recorder = "\n  exclude:\n    entity_globs:\n      - sensor.*_speed"
    write_config(folder, CONFIGURATION.format(http_port=http_port, recorder=recorder))
    ha = HomeAssistantRun(folder, f"http://127.0.0.1:{http_port}")
    if args.watch_gc:
        ha.env = {
            "PYTHONPATH": str(BENCH / "gcwatch"),
            "TK970_GC_LOG": str(folder / "gc.log"),
        }
    results: dict[str, Any] = {
        "trackers": args.trackers,
        "interval_s": args.interval,
        "moving": args.moving,
        "exclude_speed": args.exclude_speed,
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
            await confirm_http_config(session, access, ha.url)
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
            # Restored states and the first writes of 16 entities per tracker: let them settle.
            results["restart_settled_s"] = await quiet(ha.pid) + results["restart_loaded_s"]
            cpu0, wall0 = cpu_seconds(ha.pid), time.monotonic()
            await asyncio.sleep(20)
            idle = (cpu_seconds(ha.pid) - cpu0) / (time.monotonic() - wall0)
            results["idle_cpu_share"] = idle
            results["rss_empty_mib"] = rss_empty
            results["rss_configured_mib"] = rss_mib(ha.pid)

            with load_generator(args, tracker_port) as load:
                assert load.stdin is not None
                ready = (await read_line(load)).split()
                results["connected"] = int(ready[1])
                results["connect_failures"] = int(ready[2])
                await quiet(ha.pid)
                results["rss_connected_mib"] = rss_mib(ha.pid)
                load.stdin.write("prime\n")
                load.stdin.flush()
                assert await read_line(load) == "primed"
                await quiet(ha.pid)
                phases = []
                for rate in args.rates:
                    await asyncio.sleep(COMMIT_WAIT)  # what is queued is committed
                    bytes0, rows0 = database_bytes(folder)
                    work0, go = cpu_seconds(ha.pid), time.monotonic()
                    load.stdin.write("go\n")
                    load.stdin.flush()
                    await asyncio.sleep(args.warmup)
                    loop0 = main_thread_cpu_seconds(ha.pid)
                    kernel0 = system_cpu_seconds(ha.pid)
                    cpu0, wall0 = cpu_seconds(ha.pid), time.monotonic()
                    with profiling(args, ha.pid, rate):
                        await asyncio.sleep(args.seconds)
                    cpu1, wall1 = cpu_seconds(ha.pid), time.monotonic()
                    loop1 = main_thread_cpu_seconds(ha.pid)
                    kernel1 = system_cpu_seconds(ha.pid)
                    line = await read_line(load)
                    assert line.startswith("done ")
                    measured = json.loads(line.removeprefix("done "))
                    # Everything the phase caused, the recorder's backlog included, less idling.
                    await quiet(ha.pid)
                    work1, settled = cpu_seconds(ha.pid), time.monotonic()
                    await asyncio.sleep(COMMIT_WAIT)
                    bytes1, rows1 = database_bytes(folder)
                    reports = max(1, measured["reports"])
                    window_reports = max(1, measured["sent"])
                    work = work1 - work0 - idle * (settled - go)
                    phase = {
                        **measured,
                        "cpu_share": (cpu1 - cpu0) / (wall1 - wall0),
                        "kernel_share": (kernel1 - kernel0) / max(1e-9, cpu1 - cpu0),
                        "loop_ms_per_report": (loop1 - loop0) * 1000 / window_reports,
                        "reports_per_s": window_reports / args.seconds,
                        "work_ms_per_report": work * 1000 / reports,
                        "db_bytes_per_report": (bytes1 - bytes0) / reports,
                        "state_rows_per_report": (rows1 - rows0) / reports,
                        "loadavg": os.getloadavg()[0],
                    }
                    phase["work_share"] = (
                        phase["work_ms_per_report"] * phase["reports_per_s"] / 1000
                    )
                    phases.append(phase)
                    print(
                        f"fleet: x{rate:g}: HA CPU {phase['cpu_share']:.1%} of a core "
                        f"({phase['work_ms_per_report']:.2f} ms of work per report)"
                    )
                results["on_map"] = await ha.trackers_on_map(session)
                results["rss_loaded_mib"] = rss_mib(ha.pid)
                load.stdin.write("close\n")
                load.stdin.flush()
                load.wait(timeout=60)
            results["phases"] = phases
            if len(phases) >= 2:
                rates = [p["reports_per_s"] for p in phases]
                shares = [p["work_share"] for p in phases]
                slope, intercept = statistics.linear_regression(rates, shares)
                at_half = (0.5 - idle - intercept) / slope if slope > 0 else float("inf")
                results["fit"] = {
                    "ms_per_report": slope * 1000,
                    "reports_per_s_at_half_core": at_half,
                    "trackers_at_half_core": at_half * args.interval,
                }
            else:
                per_report = phases[0]["work_ms_per_report"] / 1000
                at_half = (0.5 - idle) / per_report
                results["fit"] = {
                    "ms_per_report": per_report * 1000,
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
        f"every {results['interval_s']:g} s each, {results['moving']:.0%} of them driving"
        f"{', speed not recorded' if results['exclude_speed'] else ''}; "
        f"{results['cpus']} CPUs, load average {results['loadavg_before']:.1f} before"
    )
    print(
        f"adding them by config flow: {results['add_entries_s']:.0f} s; restart: API after "
        f"{results['restart_api_s']:.0f} s, all loaded after {results['restart_loaded_s']:.0f} s, "
        f"settled after {results['restart_settled_s']:.0f} s; idle (configured, none connected): "
        f"{results['idle_cpu_share']:.1%} of a core"
    )
    print(
        f"memory (RSS): {results['rss_empty_mib']:.0f} MiB empty, "
        f"{results['rss_configured_mib']:.0f} MiB configured, "
        f"{results['rss_connected_mib']:.0f} MiB connected, "
        f"{results['rss_loaded_mib']:.0f} MiB after the load"
    )
    print(
        "| reports/s | HA CPU, share of a core (window; in the kernel) | HA CPU per report (all "
        "work; event loop) | ack p50 | ack p99 | acks lost | recorder rows per report | recorder "
        "bytes per report | load average |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for phase in results["phases"]:
        print(
            f"| {phase['reports_per_s']:.0f} | {phase['cpu_share']:.1%} "
            f"({phase['kernel_share']:.0%}) | "
            f"{phase['work_ms_per_report']:.2f} ms; {phase['loop_ms_per_report']:.2f} ms | "
            f"{phase['ack_p50_ms']:.1f} ms | {phase['ack_p99_ms']:.1f} ms | "
            f"{phase['lost']} of {phase['sent']} | {phase['state_rows_per_report']:.2f} | "
            f"{phase['db_bytes_per_report']:.0f} | {phase['loadavg']:.1f} |"
        )
    print(f"on the map: {results['on_map']} of {results['trackers']}")
    fit = results["fit"]
    print(
        f"{fit['ms_per_report']:.2f} ms of Home Assistant CPU per report over "
        f"{results['idle_cpu_share']:.1%} idle: half a core at "
        f"{fit['reports_per_s_at_half_core']:.0f} reports/s, "
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
    parser.add_argument(
        "--moving", type=float, default=1.0, help="share of the trackers driving (others parked)"
    )
    parser.add_argument(
        "--exclude-speed",
        action="store_true",
        help="the recorder leaves out the speed sensors (as a user may configure it)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the Home Assistant folder")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--watch-gc",
        action="store_true",
        help="log slow garbage collections to gc.log in the folder (with --keep to read it)",
    )
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
