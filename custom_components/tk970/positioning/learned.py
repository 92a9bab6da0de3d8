"""The learned table: where this installation's trackers have seen each cell and access point.

Every report with a valid GNSS fix and its cells or access points teaches the table; a report
without a fix whose stations are known is resolved from it. Nothing leaves the house.

Rules (after Mozilla's Ichnaea and BeaconDB, `research/geolocation.md` §6):

* **Weights.** An observation counts less when the fix is poor (accuracy over 30 m), and a
  neighbour cell half as much as the serving cell. Wi-Fi also counts less at speed (a scan a
  second older than the fix is many metres off); cells do not care. Fixes worse than 1000 m
  (cells) or 200 m (Wi-Fi), or faster than 50 m/s, teach nothing.
* **Position.** A weighted running mean, with the bounding box of all observations kept; the
  radius is half the box's diagonal, never less than a floor (1000 m for a 16-bit GSM cell id,
  500 m for larger ids, 50 m for Wi-Fi). The weight saturates, so a station that drifts is
  followed slowly instead of never.
* **Outliers.** Once a cell is trusted, an observation far outside its circle (four radii, at
  least twice the floor) is not averaged in; three in a row mean the cell is somewhere else
  now, and the entry starts over from there.
* **Moved stations.** An observation more than 100 km from a cell means it moved (or is a cell
  on wheels): the entry is deleted and the cell ignored for 48 hours. An access point seen more
  than 500 m from its entry, or whose box grows beyond that, travels (a phone hotspot, a bus):
  the same.
* **Trust.** A cell is used after a weight of 3 (three good fixes in it) or sightings on two
  days; an access point after a weight of 1 or two days, and only when another known access
  point in the same report agrees (two are needed, as in MLS and BeaconDB).
* **Bounds.** Entries unseen for a year expire; each table holds at most `max_entries`, the
  least recently seen dropped first.

Entries are rows of one `array('d')` per kind, found through dicts keyed by packed
integers: less than half the memory of a dict of named fields per entry
(`bench/positioning.py`). `as_data()` / `load_data()` are the persistence pair
(`snapshot()` + `snapshot_data()` split the first into a cheap copy and the formatting, which
can run in a worker thread): Home Assistant backs them with a `Store` and a delayed save, the
gateway with `persist.JsonFile`.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterable
import math
from typing import Any, NamedTuple

from .estimate import Estimate, Kind, Located, Method, approx_distance_m, combine
from .observations import (
    CellKey,
    Observation,
    format_cell,
    normalise_mac,
    pack_cell,
    pack_mac,
    parse_cell,
    unpack_cell,
    unpack_mac,
)

DATA_VERSION = 1

# Row layout of one entry.
_LAT, _LON, _WEIGHT, _SOUTH, _WEST, _NORTH, _EAST, _LAST_SEEN, _DAYS, _OUTLIERS = range(10)
_WIDTH = 10

DAY = 86_400
#: Fix quality: full weight up to this accuracy, then falling as 1/accuracy.
GOOD_ACCURACY_M = 30.0
MAX_ACCURACY_CELL_M = 1000.0
MAX_ACCURACY_WIFI_M = 200.0
#: Wi-Fi counts fully up to this speed, then falling as 1/speed; nothing learns above the max.
SLOW_MS = 5.0
MAX_SPEED_MS = 50.0
NEIGHBOUR_WEIGHT = 0.5
#: A running mean's weight stops growing here: later observations keep a say.
MAX_WEIGHT = 200.0
TRUST_WEIGHT_CELL = 3.0
TRUST_WEIGHT_WIFI = 1.0
TRUST_DAYS = 2
MOVED_CELL_M = 100_000.0
MAX_WIFI_RADIUS_M = 500.0
BLOCK_SECONDS = 48 * 3600
OUTLIER_RADII = 4.0
OUTLIERS_TO_RESET = 3
FLOOR_GSM_M = 1000.0
FLOOR_CELL_M = 500.0
FLOOR_WIFI_M = 50.0
MAX_CELL_RADIUS_M = 50_000.0
EXPIRE_SECONDS = 365 * DAY
DEFAULT_MAX_ENTRIES = 20_000
#: How far apart stations of one report may lie and still agree (plus their own reach).
AGREE_CELL_M = 10_000.0
AGREE_WIFI_M = 200.0
#: Reference signals for weighting stations against each other (weight 1 at these).
REFERENCE_CELL_DBM = -95
REFERENCE_WIFI_DBM = -80


class _Stations:
    """One kind of station (cells or access points): entries, blocked keys, bounds.

    All entries live in one `array('d')` (the slab), `_WIDTH` doubles each; `entries` maps a
    packed key to the offset of its row. Freed rows are reused. One slab instead of an object
    per entry halves the memory, and a save copies it in one go.
    """

    __slots__ = (
        "blocked", "entries", "free", "max_entries", "max_radius", "moved_m", "slab",
        "trust_weight",
    )  # fmt: skip

    def __init__(
        self,
        *,
        max_entries: int,
        moved_m: float,
        trust_weight: float,
        max_radius: float | None = None,
    ) -> None:
        #: packed key -> offset of the entry's row in `slab`
        self.entries: dict[int, int] = {}
        self.slab: array[float] = array("d")
        self.free: list[int] = []
        #: stations ignored until a Unix time (moved or travelling)
        self.blocked: dict[int, int] = {}
        self.max_entries = max_entries
        self.moved_m = moved_m
        self.trust_weight = trust_weight
        #: a station whose box grows beyond this travels (Wi-Fi): blocked, not outlier-checked
        self.max_radius = max_radius

    def trusted(self, at: int) -> bool:
        slab = self.slab
        return slab[at + _WEIGHT] >= self.trust_weight or slab[at + _DAYS] >= TRUST_DAYS

    def radius(self, at: int, floor: float) -> float:
        """Half the diagonal of an entry's bounding box, at least `floor`."""
        slab = self.slab
        diagonal = approx_distance_m(
            slab[at + _SOUTH], slab[at + _WEST], slab[at + _NORTH], slab[at + _EAST]
        )
        return max(diagonal / 2, floor)

    def put(self, key: int, values: Iterable[float]) -> None:
        """Store a row for `key` (a new one, or over its old one)."""
        at = self.entries.get(key)
        if at is None:
            if self.free:
                at = self.free.pop()
            else:
                at = len(self.slab)
                self.slab.extend((0.0,) * _WIDTH)
            self.entries[key] = at
        self.slab[at : at + _WIDTH] = array("d", values)

    def remove(self, key: int) -> None:
        at = self.entries.pop(key, None)
        if at is not None:
            self.free.append(at)

    def learn(
        self, key: int, lat: float, lon: float, weight: float, now: int, floor: float
    ) -> bool:
        """Fold one observation in; return whether anything changed."""
        until = self.blocked.get(key)
        if until is not None:
            if until > now:
                return False
            del self.blocked[key]
        at = self.entries.get(key)
        if at is None:
            self.put(key, _new_row(lat, lon, weight, now))
            return True
        slab = self.slab
        away = approx_distance_m(slab[at + _LAT], slab[at + _LON], lat, lon)
        if away > self.moved_m:
            self.block(key, now)
            return True
        if self.trusted(at) and away > max(OUTLIER_RADII * self.radius(at, floor), 2 * floor):
            slab[at + _OUTLIERS] += 1
            if slab[at + _OUTLIERS] >= OUTLIERS_TO_RESET:
                self.put(key, _new_row(lat, lon, weight, now))
            return True
        slab[at + _OUTLIERS] = 0
        south, west, north, east = (
            slab[at + _SOUTH], slab[at + _WEST], slab[at + _NORTH], slab[at + _EAST]
        )  # fmt: skip
        grows = not (south <= lat <= north and west <= lon <= east)
        total = slab[at + _WEIGHT] + weight
        slab[at + _LAT] += (lat - slab[at + _LAT]) * weight / total
        slab[at + _LON] += (lon - slab[at + _LON]) * weight / total
        slab[at + _WEIGHT] = min(total, MAX_WEIGHT)
        if grows:
            slab[at + _SOUTH] = min(south, lat)
            slab[at + _NORTH] = max(north, lat)
            slab[at + _WEST] = min(west, lon)
            slab[at + _EAST] = max(east, lon)
        if now // DAY != int(slab[at + _LAST_SEEN]) // DAY:
            slab[at + _DAYS] += 1
        slab[at + _LAST_SEEN] = max(slab[at + _LAST_SEEN], now)
        if grows and self.max_radius is not None and self.radius(at, floor) > self.max_radius:
            self.block(key, now)
        return True

    def block(self, key: int, now: int) -> None:
        self.remove(key)
        self.blocked[key] = now + BLOCK_SECONDS

    def last_seen(self, key: int) -> float:
        return self.slab[self.entries[key] + _LAST_SEEN]

    def prune(self, now: int) -> int:
        """Drop expired entries and stale blocks, then the least recently seen over the cap."""
        before = len(self.entries)
        horizon = now - EXPIRE_SECONDS
        for key in [k for k in self.entries if self.last_seen(k) < horizon]:
            self.remove(key)
        for key in [k for k, until in self.blocked.items() if until <= now]:
            del self.blocked[key]
        excess = len(self.entries) - self.max_entries
        if excess > 0:
            # Drop a little more than needed, so a full table is not sorted on every report.
            excess += self.max_entries // 20
            for key in sorted(self.entries, key=self.last_seen)[:excess]:
                self.remove(key)
        if len(self.blocked) > self.max_entries:
            for key in sorted(self.blocked, key=self.blocked.__getitem__)[: self.max_entries // 20]:
                del self.blocked[key]
        if not self.entries:
            self.slab = array("d")  # give the memory back
            self.free.clear()
        return before - len(self.entries)

    def row(self, key: int) -> list[float]:
        """A copy of an entry's row."""
        at = self.entries[key]
        return self.slab[at : at + _WIDTH].tolist()


def _new_row(lat: float, lon: float, weight: float, now: int) -> tuple[float, ...]:
    return (lat, lon, weight, lat, lon, lat, lon, now, 1, 0)


def cell_floor(key: CellKey) -> float:
    """The smallest radius claimed for a cell: GSM cells (16-bit ids) reach further."""
    return FLOOR_GSM_M if key[3] <= 0xFFFF else FLOOR_CELL_M


def signal_weight(signal: int | None, reference: int) -> float:
    """Relative weight of a station by signal: 1 at the reference, x10 per 20 dB stronger."""
    if signal is None:
        return 1.0
    return min(10.0, max(0.1, 10 ** ((signal - reference) / 20)))


class LearnedTable:
    """Cells and access points located from the trackers' own fixes."""

    def __init__(
        self,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        """An empty table; `on_change` is called after every change (to schedule a save)."""
        self.cells = _Stations(
            max_entries=max_entries, moved_m=MOVED_CELL_M, trust_weight=TRUST_WEIGHT_CELL
        )
        self.wifi = _Stations(
            max_entries=max_entries,
            moved_m=MAX_WIFI_RADIUS_M,
            trust_weight=TRUST_WEIGHT_WIFI,
            max_radius=MAX_WIFI_RADIUS_M,
        )
        self.on_change = on_change
        self._pruned_at = 0

    def __len__(self) -> int:
        """Entries in both tables."""
        return len(self.cells.entries) + len(self.wifi.entries)

    # -- learning ---------------------------------------------------------------------------

    def learn(
        self,
        observation: Observation,
        *,
        latitude: float,
        longitude: float,
        accuracy_m: float,
        speed_kmh: float | None,
        now: int,
    ) -> bool:
        """Teach the table what a report with a valid fix saw; return whether it changed."""
        if not observation or not _plausible(latitude, longitude):
            return False
        speed = (speed_kmh or 0.0) / 3.6
        if speed > MAX_SPEED_MS:
            return False
        quality = 1.0 if accuracy_m <= GOOD_ACCURACY_M else GOOD_ACCURACY_M / accuracy_m
        changed = False
        if accuracy_m <= MAX_ACCURACY_CELL_M:
            for index, cell in enumerate(observation.cells):
                weight = quality * (1.0 if index == 0 else NEIGHBOUR_WEIGHT)
                changed |= self.cells.learn(
                    pack_cell(cell.key), latitude, longitude, weight, now, cell_floor(cell.key)
                )
        if accuracy_m <= MAX_ACCURACY_WIFI_M:
            weight = quality * (1.0 if speed <= SLOW_MS else SLOW_MS / speed)
            for access_point in observation.wifi:
                key = pack_mac(access_point.mac)
                changed |= self.wifi.learn(key, latitude, longitude, weight, now, FLOOR_WIFI_M)
        if (
            now - self._pruned_at >= 3600
            or len(self.cells.entries) > self.cells.max_entries
            or len(self.wifi.entries) > self.wifi.max_entries
        ):
            self.prune(now)
        if changed and self.on_change is not None:
            self.on_change()
        return changed

    def prune(self, now: int) -> int:
        """Expire and cap both tables; return how many entries were dropped."""
        self._pruned_at = now
        return self.cells.prune(now) + self.wifi.prune(now)

    # -- resolving --------------------------------------------------------------------------

    def resolve(self, observation: Observation, *, now: int) -> Estimate | None:
        """A position from the known stations of a report without a fix: Wi-Fi first."""
        return self.resolve_wifi(observation, now=now) or self.resolve_cells(observation, now=now)

    def resolve_wifi(self, observation: Observation, *, now: int) -> Estimate | None:
        """Two or more trusted access points that agree, or None."""
        located = []
        stations = self.wifi
        for access_point in observation.wifi:
            at = _usable(stations, pack_mac(access_point.mac), now)
            if at is not None:
                located.append(
                    Located(
                        stations.slab[at + _LAT],
                        stations.slab[at + _LON],
                        stations.radius(at, FLOOR_WIFI_M),
                        signal_weight(access_point.signal, REFERENCE_WIFI_DBM),
                    )
                )
        if len(located) < 2:
            return None
        found = combine(located, minimum=2, agree_m=AGREE_WIFI_M)
        return _estimate(found, Kind.WIFI)

    def resolve_cells(self, observation: Observation, *, now: int) -> Estimate | None:
        """The trusted cells that agree (the serving cell counts double), or None."""
        located = []
        stations = self.cells
        for index, cell in enumerate(observation.cells):
            at = _usable(stations, pack_cell(cell.key), now)
            if at is not None:
                weight = signal_weight(cell.signal, REFERENCE_CELL_DBM) * (
                    2.0 if index == 0 else 1.0
                )
                located.append(
                    Located(
                        stations.slab[at + _LAT],
                        stations.slab[at + _LON],
                        stations.radius(at, cell_floor(cell.key)),
                        weight,
                    )
                )
        if not located:
            return None
        found = combine(located, minimum=1, agree_m=AGREE_CELL_M)
        return _estimate(found, Kind.LBS)

    # -- persistence ------------------------------------------------------------------------

    def as_data(self) -> dict[str, Any]:
        """JSON-safe contents (`snapshot_data(self.snapshot())`)."""
        return snapshot_data(self.snapshot())

    def snapshot(self) -> Snapshot:
        """A copy of the contents, cheap enough for an event loop; `snapshot_data()` makes
        it JSON-safe, and may run in a worker thread."""
        return Snapshot(
            list(self.cells.entries.items()),
            self.cells.slab[:],
            list(self.wifi.entries.items()),
            self.wifi.slab[:],
            list(self.cells.blocked.items()),
            list(self.wifi.blocked.items()),
        )

    def load_data(self, data: object, *, now: int) -> int:
        """Replace the contents with an `as_data()` snapshot; return the entries loaded.

        Anything malformed is skipped, so a damaged file costs entries, never the start-up.
        """
        for stations in (self.cells, self.wifi):
            stations.entries.clear()
            stations.slab = array("d")
            stations.free.clear()
            stations.blocked.clear()
        if not isinstance(data, dict) or data.get("version") != DATA_VERSION:
            return 0
        _load_rows(self.cells, data.get("cells"), _cell_packer)
        _load_rows(self.wifi, data.get("wifi"), _mac_packer)
        _load_blocks(self.cells, data.get("blocked_cells"), _cell_packer)
        _load_blocks(self.wifi, data.get("blocked_wifi"), _mac_packer)
        self.prune(now)
        return len(self)

    def stats(self) -> dict[str, int]:
        """Sizes, for diagnostics."""
        return {
            "cells": len(self.cells.entries),
            "cells_trusted": sum(map(self.cells.trusted, self.cells.entries.values())),
            "wifi": len(self.wifi.entries),
            "wifi_trusted": sum(map(self.wifi.trusted, self.wifi.entries.values())),
            "blocked": len(self.cells.blocked) + len(self.wifi.blocked),
        }


def _usable(stations: _Stations, key: int, now: int) -> int | None:
    """The row offset of a trusted, current entry, or None."""
    at = stations.entries.get(key)
    if (
        at is None
        or not stations.trusted(at)
        or stations.slab[at + _LAST_SEEN] < now - EXPIRE_SECONDS
    ):
        return None
    return at


def _estimate(found: tuple[float, float, float, int] | None, kind: Kind) -> Estimate | None:
    if found is None:
        return None
    lat, lon, radius, count = found
    if kind is Kind.LBS:
        radius = min(radius, MAX_CELL_RADIUS_M)
    return Estimate(
        latitude=round(lat, 6),
        longitude=round(lon, 6),
        accuracy=math.ceil(radius),
        kind=kind,
        method=Method.LEARNED,
        stations=count,
    )


def _plausible(latitude: float, longitude: float) -> bool:
    return -90 <= latitude <= 90 and -180 <= longitude <= 180 and (latitude, longitude) != (0, 0)


class Snapshot(NamedTuple):
    """The table's contents at one moment: (packed key, row offset) pairs with a copy of the
    slab they point into, and (packed key, until) pairs for blocked stations."""

    cells: list[tuple[int, int]]
    cell_slab: array[float]
    wifi: list[tuple[int, int]]
    wifi_slab: array[float]
    blocked_cells: list[tuple[int, int]]
    blocked_wifi: list[tuple[int, int]]


def snapshot_data(snapshot: Snapshot) -> dict[str, Any]:
    """JSON-safe form: `{"version", "cells": {"mcc-mnc-lac-cid": row}, "wifi": {mac: row}, ...}`.

    A row is `[lat, lon, weight, south, west, north, east, last_seen, days, outliers]`;
    blocked stations are kept with the Unix time they are ignored until. Touches nothing but
    the snapshot: safe in a worker thread.
    """
    return {
        "version": DATA_VERSION,
        "cells": {
            format_cell(unpack_cell(k)): _saved(snapshot.cell_slab, at) for k, at in snapshot.cells
        },
        "wifi": {unpack_mac(k): _saved(snapshot.wifi_slab, at) for k, at in snapshot.wifi},
        "blocked_cells": {format_cell(unpack_cell(k)): t for k, t in snapshot.blocked_cells},
        "blocked_wifi": {unpack_mac(k): t for k, t in snapshot.blocked_wifi},
    }


def _saved(slab: array[float], at: int) -> list[float | int]:
    lat, lon, weight, south, west, north, east, last_seen, days, outliers = slab[at : at + _WIDTH]
    return [
        round(lat, 7), round(lon, 7), round(weight, 4), round(south, 7), round(west, 7),
        round(north, 7), round(east, 7), int(last_seen), int(days), int(outliers),
    ]  # fmt: skip


def _cell_packer(text: str) -> int | None:
    key = parse_cell(text)
    return pack_cell(key) if key is not None else None


def _mac_packer(text: str) -> int | None:
    mac = normalise_mac(text)
    return pack_mac(mac) if mac is not None else None


def _load_rows(stations: _Stations, rows: object, packer: Callable[[str], int | None]) -> None:
    if not isinstance(rows, dict):
        return
    for text, values in rows.items():
        key = packer(str(text))
        if key is None or not isinstance(values, list) or len(values) != _OUTLIERS + 1:
            continue
        try:
            row = [float(v) for v in values]
        except (TypeError, ValueError):
            continue
        if _plausible(row[_LAT], row[_LON]) and row[_WEIGHT] > 0 and _finite(row):
            stations.put(key, row)


def _load_blocks(stations: _Stations, blocks: object, packer: Callable[[str], int | None]) -> None:
    if not isinstance(blocks, dict):
        return
    for text, until in blocks.items():
        key = packer(str(text))
        if key is not None and isinstance(until, int):
            stations.blocked[key] = until


def _finite(values: Iterable[float]) -> bool:
    return all(math.isfinite(v) for v in values)
