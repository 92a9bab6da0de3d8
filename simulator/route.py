"""Driving a simulated tracker along a route: movement, stops, LBS stretches and tunnels.

A `Route` is a closed loop of waypoints (built in, or read from a GPX file). `Drive` moves a
`SimulatedTracker` along it in simulated real time: it reports every `interval` seconds, stops
at marked waypoints (so a relay cut below 20 km/h can be shown), loses GNSS on some stretches
(the report then has no valid fix, only the cells and access points around: `radio.py`), and
drives through "tunnels": no GNSS and no Wi-Fi inside, only cells, and in the middle third
no network at all, so those reports are buffered and uploaded when it comes out. While the
relay is cut the engine is off and the vehicle stands still.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
import logging
import math
from pathlib import Path
import xml.etree.ElementTree as ET

from . import radio
from .device import SimulatedTracker
from .frames import Fix

_LOGGER = logging.getLogger(__name__)

EARTH_RADIUS_M = 6_371_000.0
#: Reports that still carry the SOS state after the button was pressed.
SOS_REPORTS = 3


@dataclass(frozen=True, slots=True)
class Waypoint:
    """A point of the route; `stop` seconds are spent standing there."""

    latitude: float
    longitude: float
    stop: float = 0.0
    #: from here to the next waypoint: "gnss", "lbs" (no valid fix) or "tunnel" (no fix, no
    #: Wi-Fi, and no network in its middle third)
    stretch: str = "gnss"


#: A 5 km loop through the Tiergarten in Berlin, with a short stop at the Brandenburg Gate and a
#: longer one at the Victory Column (time to cut the engine), then a kilometre without GPS among
#: the trees, back east along the avenue it came by (so the cells around were learned there),
#: and a 1.2 km tunnel to Potsdamer Platz.
BUILTIN_LOOP = (
    Waypoint(52.51627, 13.37770, stop=10),  # Brandenburg Gate
    Waypoint(52.51450, 13.35010),
    Waypoint(52.51450, 13.35000, stop=45),  # Victory Column
    Waypoint(52.51400, 13.34900, stretch="lbs"),
    Waypoint(52.51150, 13.35200, stretch="lbs"),
    Waypoint(52.51120, 13.36500),
    Waypoint(52.50950, 13.35800, stretch="tunnel"),
    Waypoint(52.50960, 13.37610),  # Potsdamer Platz
    Waypoint(52.51350, 13.37800),
)


def distance_m(a: Waypoint, b: Waypoint) -> float:
    """Great-circle distance in metres."""
    lat1, lat2 = math.radians(a.latitude), math.radians(b.latitude)
    dlat = lat2 - lat1
    dlon = math.radians(b.longitude - a.longitude)
    h = math.sin(dlat / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(dlon / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(h))


def bearing(a: Waypoint, b: Waypoint) -> float:
    """Initial course from a to b, degrees from north."""
    lat1, lat2 = math.radians(a.latitude), math.radians(b.latitude)
    dlon = math.radians(b.longitude - a.longitude)
    x = math.sin(dlon) * math.cos(lat2)
    y = math.cos(lat1) * math.sin(lat2) - math.sin(lat1) * math.cos(lat2) * math.cos(dlon)
    return (math.degrees(math.atan2(x, y)) + 360) % 360


def load_gpx(path: Path) -> tuple[Waypoint, ...]:
    """Read track points (or route points) from a GPX file as a loop."""
    root = ET.parse(path).getroot()  # noqa: S314 - a local file the user chose
    points = [
        Waypoint(float(node.attrib["lat"]), float(node.attrib["lon"]))
        for node in root.iter()
        if node.tag.rsplit("}", 1)[-1] in ("trkpt", "rtept")
    ]
    if len(points) < 2:
        raise ValueError(f"{path} has fewer than two track points")
    return tuple(points)


@dataclass(frozen=True, slots=True)
class Position:
    """Where the vehicle is at one moment of the drive."""

    latitude: float
    longitude: float
    speed_kmh: float
    course: float
    stretch: str
    #: deep in a tunnel: no network
    offline: bool = False


class Route:
    """A closed loop driven at a cruising speed, with stops."""

    def __init__(self, waypoints: tuple[Waypoint, ...], speed_kmh: float = 40.0) -> None:
        """Precompute the legs."""
        self.waypoints = waypoints
        self.speed = speed_kmh / 3.6
        self.legs = [
            (a, b, distance_m(a, b))
            for a, b in zip(waypoints, waypoints[1:] + waypoints[:1], strict=True)
        ]
        self.period = sum(a.stop + length / self.speed for a, _, length in self.legs)

    def at(self, elapsed: float) -> Position:
        """The position `elapsed` driving seconds after the start (the loop repeats)."""
        t = elapsed % self.period if self.period else 0.0
        for a, b, length in self.legs:
            if t < a.stop:
                return Position(a.latitude, a.longitude, 0.0, bearing(a, b), a.stretch)
            t -= a.stop
            duration = length / self.speed
            if t < duration:
                share = t / duration if duration else 0.0
                return Position(
                    a.latitude + (b.latitude - a.latitude) * share,
                    a.longitude + (b.longitude - a.longitude) * share,
                    self.speed * 3.6,
                    bearing(a, b),
                    a.stretch,
                    offline=a.stretch == "tunnel" and 1 / 3 <= share < 2 / 3,
                )
            t -= duration
        first = self.waypoints[0]
        return Position(first.latitude, first.longitude, 0.0, 0.0, first.stretch)


class Drive:
    """Move a tracker along a route, report, and answer the server, until cancelled."""

    def __init__(
        self,
        tracker: SimulatedTracker,
        route: Route,
        *,
        interval: float = 10.0,
        heartbeat_every: int = 6,
        sos_every: float | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_stretch: Callable[[str], None] | None = None,
    ) -> None:
        """Set the reporting cadence; `sos_every` seconds raises SOS on a schedule;
        `on_stretch` hears "gnss", "lbs", "tunnel" or "offline" when the road changes."""
        self.tracker = tracker
        self.route = route
        self.interval = interval
        self.heartbeat_every = heartbeat_every
        self.sos_every = sos_every
        self.clock = clock
        self.on_stretch = on_stretch
        self.stretch: str | None = None
        self.driven = 0.0  # seconds of driving (the clock stops while the relay is cut)
        self.buffered: list[Fix] = []
        #: where the last valid fix was: fix-less reports repeat it, as devices do
        self.last_fix: tuple[float, float] = (0.0, 0.0)
        self._sos_requested = asyncio.Event()
        self._sos_reports = 0

    def request_sos(self) -> None:
        """Press the SOS button at the next tick."""
        self._sos_requested.set()

    def position(self) -> Position:
        """Where the vehicle is now."""
        return self.route.at(self.driven)

    async def run(self) -> None:
        """Drive forever (cancel to stop)."""
        tracker = self.tracker
        await tracker.connect()
        await tracker.login()
        loop = asyncio.get_running_loop()
        tick = 0
        since_sos = 0.0
        while True:
            await self.step(tick)
            tick += 1
            since_sos += self.interval
            if self.sos_every and since_sos >= self.sos_every:
                since_sos = 0.0
                self._sos_requested.set()
            # Wait out the interval; an SOS press is sent at once, and the next reports keep
            # the alarm state for a while, as devices do until they see it handled.
            deadline = loop.time() + self.interval
            while (remaining := deadline - loop.time()) > 0:
                try:
                    async with asyncio.timeout(remaining):
                        await self._sos_requested.wait()
                except TimeoutError:
                    break
                self._sos_requested.clear()
                _LOGGER.info("SOS pressed on the simulated tracker %s", tracker.identity)
                # JT808 clears its SOS flag once the server answered it (protocols.md §3.4);
                # status-word families show the alarm for a few more reports.
                self._sos_reports = 0 if tracker.protocol == "jt808" else SOS_REPORTS
                await tracker.sos()

    async def step(self, tick: int) -> None:
        """Advance one interval and report what the tracker would."""
        tracker = self.tracker
        if not tracker.relay:
            self.driven += self.interval
        where = self.position()
        stretch = "offline" if where.offline else where.stretch
        if stretch != self.stretch:
            self.stretch = stretch
            _LOGGER.debug("Simulated %s %s: %s", tracker.protocol, tracker.identity, stretch)
            if self.on_stretch is not None:
                self.on_stretch(stretch)
        speed = 0.0 if tracker.relay else where.speed_kmh
        valid = where.stretch == "gnss"
        if valid:
            self.last_fix = (where.latitude, where.longitude)
        latitude, longitude = self.last_fix
        fix = replace(
            tracker.fix,
            time=self.clock(),
            latitude=latitude,
            longitude=longitude,
            speed_kmh=speed,
            course=where.course,
            valid=valid,
            ignition=not tracker.relay,
            relay=tracker.relay,
            sos=self._sos_reports > 0,
            vibration=False,
            cells=tuple(radio.cells_at(where.latitude, where.longitude)) if tracker.radio else (),
            wifi=tuple(radio.access_points_at(where.latitude, where.longitude))
            if tracker.radio and where.stretch != "tunnel"
            else (),
        )
        self._sos_reports = max(0, self._sos_reports - 1)
        tracker.fix = fix
        if where.offline:
            self.buffered.append(fix)  # no network: the device keeps it for later
            return
        if self.buffered:
            _LOGGER.info("Leaving the tunnel: uploading %d buffered fixes", len(self.buffered))
            await tracker.upload_buffered(self.buffered)
            self.buffered = []
        await tracker.report()
        if tick % self.heartbeat_every == self.heartbeat_every - 1:
            await tracker.heartbeat()
