"""A made-up but consistent radio world: cell towers and Wi-Fi access points anywhere on Earth.

A simulated tracker needs to see the same cells and access points every time it passes the
same place, as a real one does, so that the integration can learn where they are. Towers
stand on a jittered grid of about 650 m (a city's LTE), access points on one of about 50 m (some
squares have none); positions, ids and MACs derive from a hash of the grid square, so the
world needs no storage and is the same in every run. What a tracker sees at a point is the
nearest towers (the serving cell first) and the access points within reach, with signals
that fall with distance.
"""

from __future__ import annotations

from dataclasses import dataclass
import hashlib
import math

#: Germany, Telekom: the demo drives in Berlin.
MCC = 262
MNC = 1
#: Tower grid, degrees (about 670 m north-south, 620 m east-west at 52 degrees north).
TOWER_STEP_LAT = 0.006
TOWER_STEP_LON = 0.009
#: Access point grid, degrees (about 55 m by 48 m at 52 degrees north).
AP_STEP_LAT = 0.0005
AP_STEP_LON = 0.0007
AP_SHARE = 0.6  #: squares that have an access point
AP_REACH_M = 80.0
NEIGHBOURS = 3


@dataclass(frozen=True, slots=True)
class SimCell:
    """A cell as a tracker reports it."""

    mcc: int
    mnc: int
    lac: int
    cid: int
    rssi: int  #: dBm
    latitude: float  #: where the tower stands (the simulator's secret)
    longitude: float


@dataclass(frozen=True, slots=True)
class SimAccessPoint:
    """An access point as a tracker reports it."""

    mac: str
    rssi: int  #: dBm
    latitude: float
    longitude: float


def _hash(*parts: object) -> int:
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _unit(value: int, shift: int) -> float:
    """A number in [0, 1) from 16 bits of a hash."""
    return ((value >> shift) & 0xFFFF) / 0x10000


def _metres(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Flat-earth distance, good enough at these ranges."""
    dy = (lat2 - lat1) * 111_195.0
    dx = (lon2 - lon1) * 111_195.0 * math.cos(math.radians((lat1 + lat2) / 2))
    return math.hypot(dx, dy)


def _tower(ix: int, iy: int) -> tuple[float, float, int, int]:
    """Position, LAC and cell id of the tower of grid square (ix, iy)."""
    h = _hash("tower", ix, iy)
    lat = (iy + 0.2 + 0.6 * _unit(h, 0)) * TOWER_STEP_LAT
    lon = (ix + 0.2 + 0.6 * _unit(h, 16)) * TOWER_STEP_LON
    lac = 0x1000 + (ix // 8 % 64) * 64 + iy // 8 % 64  # areas of 8 x 8 towers
    cid = 0x10000 + (h >> 32) % 0xEF0000  # a 24-bit LTE-sized id (fits GT06's 3 bytes)
    return lat, lon, lac, cid


def cells_at(latitude: float, longitude: float, count: int = 1 + NEIGHBOURS) -> list[SimCell]:
    """The `count` nearest towers' cells, serving (nearest) first."""
    ix0 = math.floor(longitude / TOWER_STEP_LON)
    iy0 = math.floor(latitude / TOWER_STEP_LAT)
    found = []
    for ix in range(ix0 - 2, ix0 + 3):
        for iy in range(iy0 - 2, iy0 + 3):
            lat, lon, lac, cid = _tower(ix, iy)
            found.append((_metres(latitude, longitude, lat, lon), lat, lon, lac, cid))
    found.sort()
    return [
        SimCell(MCC, MNC, lac, cid, _signal(distance, -50, 100.0), lat, lon)
        for distance, lat, lon, lac, cid in found[:count]
    ]


def access_points_at(latitude: float, longitude: float) -> list[SimAccessPoint]:
    """The access points within reach, strongest first."""
    ix0 = math.floor(longitude / AP_STEP_LON)
    iy0 = math.floor(latitude / AP_STEP_LAT)
    found = []
    for ix in range(ix0 - 2, ix0 + 3):
        for iy in range(iy0 - 2, iy0 + 3):
            h = _hash("ap", ix, iy)
            if _unit(h, 0) >= AP_SHARE:
                continue
            lat = (iy + _unit(h, 16)) * AP_STEP_LAT
            lon = (ix + _unit(h, 32)) * AP_STEP_LON
            distance = _metres(latitude, longitude, lat, lon)
            if distance <= AP_REACH_M:
                # A universally administered unicast MAC (first octet even, bit 1 clear).
                octets = [(h >> 8 * i) & 0xFF for i in range(6)]
                octets[0] &= 0xFC
                mac = ":".join(f"{octet:02x}" for octet in octets)
                found.append(SimAccessPoint(mac, _signal(distance, -35, 5.0), lat, lon))
    found.sort(key=lambda ap: -ap.rssi)
    return found


def _signal(distance: float, at_reference: int, reference_m: float) -> int:
    """Log-distance path loss: 20 dB per decade, clamped to what radios report."""
    loss = 20 * math.log10(max(distance, 1.0) / reference_m)
    return max(-110, min(-30, round(at_reference - loss)))
