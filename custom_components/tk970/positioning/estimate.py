"""A fallback position, how several known stations combine into one, and when it may be shown.

An `Estimate` is a position with a radius (metres, the circle that should hold the tracker),
the radio it came from (`lbs` or `wifi`), the method that produced it (`learned`, `imported`,
`online`, or `device` when the tracker resolved it itself) and, where data from others is
used, whom to credit. `combine()` turns several located stations into one estimate, dropping
the ones that disagree with the rest. `fallback_moves()` is the "never worse" rule: a fallback
moves the tracker only when there is no GNSS fix to keep, or when that fix lies outside the
fallback's circle (the tracker has really moved).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
import math
from typing import Any, NamedTuple

EARTH_RADIUS_M = 6_371_000.0


class Kind(StrEnum):
    """What a fallback position was computed from (interfaces.md §4 `position_source`)."""

    LBS = "lbs"
    WIFI = "wifi"


class Method(StrEnum):
    """Who computed a fallback position."""

    DEVICE = "device"  #: the tracker itself sent coordinates for its cell or Wi-Fi fix
    LEARNED = "learned"  #: this installation's table, learned from the trackers' own fixes
    IMPORTED = "imported"  #: the cell database the user imported (OpenCellID format)
    ONLINE = "online"  #: an online geolocation provider


@dataclass(frozen=True, slots=True, kw_only=True)
class Estimate:
    """A fallback position."""

    latitude: float
    longitude: float
    accuracy: int  #: radius in metres
    kind: Kind
    method: Method
    #: the provider's host for online answers, the database's name for imported ones
    provider: str | None = None
    #: credit for third-party data, shown with the position
    attribution: str | None = None
    #: how many stations the estimate rests on
    stations: int = 1

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe form (saved with the tracker's state)."""
        return {
            "latitude": self.latitude,
            "longitude": self.longitude,
            "accuracy": self.accuracy,
            "kind": self.kind.value,
            "method": self.method.value,
            "provider": self.provider,
            "attribution": self.attribution,
            "stations": self.stations,
        }

    @classmethod
    def from_dict(cls, data: object) -> Estimate | None:
        """Inverse of `as_dict`; None for anything malformed."""
        if not isinstance(data, dict):
            return None
        try:
            latitude = float(data["latitude"])
            longitude = float(data["longitude"])
            accuracy = int(data["accuracy"])
            kind = Kind(data["kind"])
            method = Method(data["method"])
        except (KeyError, TypeError, ValueError):
            return None
        provider, attribution = data.get("provider"), data.get("attribution")
        stations = data.get("stations")
        return cls(
            latitude=latitude,
            longitude=longitude,
            accuracy=accuracy,
            kind=kind,
            method=method,
            provider=provider if isinstance(provider, str) else None,
            attribution=attribution if isinstance(attribution, str) else None,
            stations=stations if isinstance(stations, int) else 1,
        )


class Located(NamedTuple):
    """One station whose position is known: where, how far it reaches, how much it counts."""

    latitude: float
    longitude: float
    radius: float  #: metres
    weight: float


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres (haversine)."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi = phi2 - phi1
    dlambda = math.radians(lon2 - lon1)
    h = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlambda / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


#: Metres per degree of latitude (and of longitude at the equator).
METRES_PER_DEGREE = EARTH_RADIUS_M * math.pi / 180


def approx_distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Distance in metres on a local flat map: within 0.5 % of `distance_m` up to a few
    hundred kilometres, and several times cheaper (the learned table measures a lot)."""
    dlon = lon2 - lon1
    if abs(dlon) > 180:
        dlon -= math.copysign(360, dlon)  # across the antimeridian
    x = dlon * math.cos(math.radians((lat1 + lat2) / 2))
    return METRES_PER_DEGREE * math.hypot(x, lat2 - lat1)


def combine(
    stations: Sequence[Located], *, minimum: int, agree_m: float
) -> tuple[float, float, float, int] | None:
    """Weighted centre and radius of the stations that agree, or None.

    Stations farther than `agree_m` plus their own reach from the weighted centre are
    dropped one by one, farthest first (a moved station, a wrong entry). The radius is the
    largest reach among the stations kept, and at least the distance from the centre to any
    of them, so the circle never claims more than the stations support. `minimum` is how many
    must agree (two for Wi-Fi, one for cells).
    """
    kept = list(stations)
    while len(kept) >= minimum:
        total = sum(s.weight for s in kept)
        lat = sum(s.latitude * s.weight for s in kept) / total
        lon = sum(s.longitude * s.weight for s in kept) / total
        distances = [approx_distance_m(lat, lon, s.latitude, s.longitude) for s in kept]
        worst = max(range(len(kept)), key=lambda i: distances[i] - kept[i].radius)
        if len(kept) == 1 or distances[worst] <= kept[worst].radius + agree_m:
            radius = max(*(s.radius for s in kept), *distances)
            return lat, lon, radius, len(kept)
        del kept[worst]
    return None


def fallback_moves(
    estimate: Estimate, gnss_latitude: float | None, gnss_longitude: float | None
) -> bool:
    """The "never worse" rule: should a fallback replace the last GNSS position?

    Yes when there is no GNSS position, or when it lies outside the fallback's circle: the
    tracker has moved, and the fallback, however coarse, is closer to the truth. Otherwise the
    GNSS position is inside the circle and more precise: it stays.
    """
    if gnss_latitude is None or gnss_longitude is None:
        return True
    away = distance_m(gnss_latitude, gnss_longitude, estimate.latitude, estimate.longitude)
    return away > estimate.accuracy
