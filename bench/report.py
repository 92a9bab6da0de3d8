"""What one report costs Home Assistant: CPU and state writes, against writing every entity.

    $TK970_VENV/bin/python bench/report.py [--trackers 100] [--reports 3000] [--rounds 3]

Runs a real Home Assistant in this process (`bootstrap.async_setup_hass` on a throw-away folder,
recorder on SQLite), adds the trackers through the config flow, links each to a real protocol
`Session` (no socket: the listener's side is `bench/decode.py`'s), and hands the coordinators
decoded GT06 reports as the hub does. For each kind of report it measures the process's CPU
(every thread: the event loop and the recorder writing the rows) from the first report until the
recorder has committed the last row, and counts the state writes and recorder rows.

The baseline, measured in the same run on the same Home Assistant, is the behaviour before
entities compared what they show: every report notifies the coordinator's listeners and every
entity writes its state, and "Last seen" moves with every report. Each kind alternates between
the two `rounds` times; the best round of each counts.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable, Iterator
import contextlib
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
import shutil
import sys
import tempfile
import threading
import time
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from homeassistant import bootstrap, runner  # noqa: E402
from homeassistant.components.recorder import get_instance  # noqa: E402
from homeassistant.components.recorder.tasks import CommitTask  # noqa: E402
from homeassistant.const import EVENT_STATE_CHANGED  # noqa: E402
from homeassistant.core import Event, HomeAssistant, callback  # noqa: E402
from homeassistant.helpers.update_coordinator import (  # noqa: E402
    CoordinatorEntity,
    DataUpdateCoordinator,
)
from homeassistant.util import dt as dt_util  # noqa: E402

from bench.fleet import free_port  # noqa: E402
from custom_components.tk970 import (  # noqa: E402
    coordinator as coordinator_module,
    tracking as tracking_module,
)
from custom_components.tk970.coordinator import TrackerCoordinator  # noqa: E402
from custom_components.tk970.entity import TK970Entity  # noqa: E402
from custom_components.tk970.listener import Link  # noqa: E402
from custom_components.tk970.protocol import Decoded, Message, Protocol, Session  # noqa: E402
from simulator import frames  # noqa: E402
from simulator.__main__ import imeis  # noqa: E402

CONFIGURATION = """\
homeassistant:
  name: tk970 report benchmark
  latitude: 52.5145
  longitude: 13.3600
  elevation: 34
  unit_system: metric
  time_zone: Europe/Berlin
# Home Assistant starts its HTTP server (for the frontend) even unasked: keep it off 8123,
# where a demo may run.
http:
  server_host: 127.0.0.1
  server_port: {http_port}
recorder:
  commit_interval: {commit}
logger:
  default: warning
"""
FIRST_IMEI = "354000000000000"
BATCH = 10


@dataclass
class Tracker:
    """One configured tracker, its link and the frames it sends."""

    coordinator: TrackerCoordinator
    link: Link
    session: Session
    fix: frames.Fix
    serial: int = 1

    def decode(self, data: bytes, now: datetime) -> list[Message]:
        """Decode frames as the listener does."""
        return [item.message for item in self.session.feed(data, now) if isinstance(item, Decoded)]

    def location(self, now: datetime, *, move: bool) -> bytes:
        """The next location frame: moved on and at another speed, or the same as before."""
        if move:
            self.fix = replace(
                self.fix,
                latitude=self.fix.latitude + 0.0002,
                longitude=self.fix.longitude + 0.0001,
                speed_kmh=30.0 + self.serial % 7 * 5,
                course=self.serial * 13 % 360,
            )
        self.fix = replace(self.fix, time=now)
        self.serial += 1
        return frames.gt06_location(self.fix, self.serial)

    def status(self, now: datetime) -> bytes:
        """A status (heartbeat) frame that states nothing new."""
        self.serial += 1
        return frames.gt06_heartbeat(replace(self.fix, time=now), self.serial)


class ReportClock:
    """The coordinator's `dt_util`, on the benchmark's clock: a tracker's reports 10 s apart.

    Reports are applied as fast as the machine goes; with the real clock every report of a
    tracker would fall into the same second, and the baseline's "Last seen" would not change.
    """

    def __init__(self) -> None:
        """Start now."""
        self.now = datetime.now(UTC).replace(microsecond=0)

    def utcnow(self) -> datetime:
        """The simulated receive time."""
        return self.now

    def __getattr__(self, name: str) -> Any:
        """Everything else from Home Assistant's module."""
        return getattr(dt_util, name)


CLOCK = ReportClock()


@contextlib.contextmanager
def old_behaviour(trackers: list[Tracker]) -> Iterator[Callable[[Tracker], None]]:
    """Every report writes every entity, and Last seen moves with each: the baseline.

    Yields what to call after each report: the coordinator's unconditional update.
    """
    patched_update = TK970Entity._handle_coordinator_update  # noqa: SLF001
    step = tracking_module.LAST_SEEN_STEP
    TK970Entity._handle_coordinator_update = CoordinatorEntity._handle_coordinator_update  # type: ignore[method-assign]  # noqa: SLF001
    tracking_module.LAST_SEEN_STEP = timedelta(0)
    for tracker in trackers:
        tracker.coordinator.async_set_updated_data = lambda data: None  # type: ignore[method-assign]

    def notify(tracker: Tracker) -> None:
        DataUpdateCoordinator.async_set_updated_data(tracker.coordinator, tracker.coordinator.data)

    try:
        yield notify
    finally:
        TK970Entity._handle_coordinator_update = patched_update  # type: ignore[method-assign]  # noqa: SLF001
        tracking_module.LAST_SEEN_STEP = step
        for tracker in trackers:
            del tracker.coordinator.async_set_updated_data


async def start_home_assistant(folder: Path, commit: int) -> HomeAssistant:
    """A real Home Assistant from `folder`, started."""
    (folder / "configuration.yaml").write_text(
        CONFIGURATION.format(commit=commit, http_port=free_port())
    )
    custom = folder / "custom_components"
    custom.mkdir()
    (custom / "tk970").symlink_to(ROOT / "custom_components" / "tk970")
    hass = await bootstrap.async_setup_hass(
        runner.RuntimeConfig(config_dir=str(folder), skip_pip=True, log_no_color=True)
    )
    if hass is None:
        raise SystemExit("report: Home Assistant did not set up")
    await hass.async_start()
    return hass


async def add_trackers(hass: HomeAssistant, count: int, port: int) -> list[Tracker]:
    """Configure `count` trackers through the config flow and give each a linked session."""
    now = datetime.now(UTC)
    trackers = []
    for number, imei in enumerate(imeis(FIRST_IMEI, count)):
        result = await hass.config_entries.flow.async_init(
            "tk970",
            context={"source": "user"},
            data={"imei": imei, "name": f"Vehicle {number:04d}", "port": port},
        )
        entry = result["result"]
        await hass.async_block_till_done()
        session = Session()
        session.feed(frames.gt06_login(imei, 1), now)
        link = Link(
            imei, Protocol.GT06, "tcp", ("127.0.0.1", 40000 + number), session, _drop, now, now
        )
        coordinator: TrackerCoordinator = entry.runtime_data
        coordinator.async_link_changed(link)
        fix = frames.Fix(time=now, latitude=52.4 + number * 0.001, longitude=13.3)
        trackers.append(Tracker(coordinator, link, session, fix))
    await hass.async_block_till_done()
    return trackers


def _drop(data: bytes) -> None:
    """Replies go nowhere: this benchmark has no socket."""


async def settle(hass: HomeAssistant) -> None:
    """Wait until the recorder has written and committed everything queued so far."""
    await hass.async_block_till_done()
    recorder = get_instance(hass)
    recorder.queue_task(CommitTask())  # what its commit timer queues every commit interval
    await recorder.async_block_till_done()


@dataclass
class Figures:
    """One measured round."""

    reports: int
    cpu_s: float
    loop_cpu_s: float
    writes: int
    rows: int

    @property
    def us_per_report(self) -> float:
        """Process CPU per report, microseconds."""
        return self.cpu_s * 1e6 / self.reports


async def measure(
    hass: HomeAssistant,
    trackers: list[Tracker],
    kind: str,
    reports: int,
    notify: Callable[[Tracker], None] | None,
) -> Figures:
    """Apply `reports` reports of `kind` round-robin over the trackers; CPU until committed."""
    recorder = get_instance(hass)
    writes = 0

    @callback
    def _count(_event: Event[Any]) -> None:
        nonlocal writes
        writes += 1

    await settle(hass)
    rows0 = await recorder.async_add_executor_job(_count_rows, recorder)
    unsubscribe = hass.bus.async_listen(EVENT_STATE_CHANGED, _count)
    cpu0, loop0 = time.process_time(), time.thread_time()
    sent = 0
    while sent < reports:
        CLOCK.now += timedelta(seconds=10)
        now = CLOCK.now
        for tracker in trackers:
            if kind == "batch":
                data = b"".join(tracker.location(now + timedelta(seconds=i), move=True)
                                for i in range(BATCH))  # fmt: skip
            elif kind == "status":
                data = tracker.status(now)
            else:
                data = tracker.location(now, move=kind == "driving")
            messages = tracker.decode(data, now)
            tracker.coordinator.async_handle_messages(tracker.link, messages)
            if notify is not None:
                notify(tracker)
            sent += 1
        await asyncio.sleep(0)  # let the event loop breathe, as between socket reads
    loop1 = time.thread_time()
    await settle(hass)
    cpu1 = time.process_time()
    unsubscribe()
    rows1 = await recorder.async_add_executor_job(_count_rows, recorder)
    return Figures(sent, cpu1 - cpu0, loop1 - loop0, writes, rows1 - rows0)


def _count_rows(recorder: Any) -> int:
    from sqlalchemy import text  # noqa: PLC0415 - the recorder's own dependency

    with recorder.engine.connect() as connection:
        return int(connection.execute(text("SELECT COUNT(*) FROM states")).scalar_one())


async def run(args: argparse.Namespace, folder: Path) -> None:
    """Set up, measure every kind both ways, print the table."""
    hass = await start_home_assistant(folder, args.commit)
    coordinator_module.dt_util = CLOCK  # type: ignore[assignment]
    try:
        trackers = await add_trackers(hass, args.trackers, args.port or free_port())
        # First reports fill every entity once; they are not what is measured.
        for kind in ("driving", "status"):
            await measure(hass, trackers, kind, args.trackers, None)
        rows = []
        for kind in args.kinds:
            best: dict[str, Figures] = {}
            count = args.reports // BATCH if kind == "batch" else args.reports
            for _ in range(args.rounds):
                for mode in ("changed only", "every entity")[: 2 if args.baseline else 1]:
                    if mode == "changed only":
                        figures = await measure(hass, trackers, kind, count, None)
                    else:
                        with old_behaviour(trackers) as notify:
                            figures = await measure(hass, trackers, kind, count, notify)
                    if mode not in best or figures.cpu_s < best[mode].cpu_s:
                        best[mode] = figures
            rows.append((kind, best["changed only"], best.get("every entity")))
    finally:
        await hass.async_stop()
    label = {
        "driving": "driving (position and speed change)",
        "parked": "parked (the same position again)",
        "status": "status frame (nothing new)",
        "batch": f"buffered upload, {BATCH} fixes in one read",
    }
    print(
        f"{args.trackers} trackers, recorder commit every {args.commit} s; per report "
        f"(per read for the batch), best of {args.rounds}:"
    )
    print(
        "| report | state writes | recorder rows | HA CPU (event loop) | every-entity baseline: "
        "writes, rows, CPU | CPU ratio |"
    )
    print("|---|---|---|---|---|---|")
    for kind, new, old in rows:
        baseline = "not measured | |"
        if old is not None:
            baseline = (
                f"{old.writes / old.reports:.2f}, {old.rows / old.reports:.2f}, "
                f"{old.us_per_report:.0f} µs | {new.cpu_s / old.cpu_s:.2f}x |"
            )
        print(
            f"| {label[kind]} | {new.writes / new.reports:.2f} | {new.rows / new.reports:.2f} | "
            f"{new.us_per_report:.0f} µs ({new.loop_cpu_s * 1e6 / new.reports:.0f} µs) | "
            + baseline
        )


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trackers", type=int, default=100)
    parser.add_argument("--reports", type=int, default=3000, help="reports per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--commit", type=int, default=5, help="recorder commit interval, s")
    parser.add_argument(
        "--kinds",
        type=lambda text: text.split(","),
        default=["driving", "parked", "status", "batch"],
        help="which reports to measure (driving,parked,status,batch)",
    )
    parser.add_argument(
        "--no-baseline", dest="baseline", action="store_false", help="skip the baseline"
    )
    parser.add_argument("--port", type=int, default=0, help="the listener's port (0: a free one)")
    args = parser.parse_args()
    asyncio.set_event_loop_policy(runner.HassEventLoopPolicy(False))
    folder = Path(tempfile.mkdtemp(prefix="tk970-report-"))
    try:
        asyncio.run(run(args, folder))
    finally:
        # In a thread: Home Assistant's blocking-call guard still watches this one.
        cleaner = threading.Thread(target=shutil.rmtree, args=(folder, True))
        cleaner.start()
        cleaner.join()


if __name__ == "__main__":
    main()
