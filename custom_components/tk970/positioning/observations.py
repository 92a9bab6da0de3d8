"""What a report says about the radio around the tracker, cleaned into comparable keys.

Trackers report cells and access points in many shapes: GT06 sets bit 15 of the MCC for a
two-byte MNC, empty slots carry LAC 0, some firmware writes signal as a positive byte, others
as dBm, MACs may come in any case. `observe()` turns a report's cells and access points into
an `Observation`: normalised, radio-agnostic cell keys `(mcc, mnc, lac, cid)` (trackers rarely
say which radio they use, and the same numbers name the same cell in every source we use) with
the serving cell first, lower-case colon MACs, and signals in dBm or None. Everything invalid
is dropped here, so the learned table, the imported database and the providers never see it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
import re
from typing import NamedTuple, Protocol


class CellLike(Protocol):
    """A cell as decoders report it (`protocol.Cell`)."""

    @property
    def mcc(self) -> int: ...  # noqa: D102
    @property
    def mnc(self) -> int: ...  # noqa: D102
    @property
    def lac(self) -> int: ...  # noqa: D102
    @property
    def cid(self) -> int: ...  # noqa: D102
    @property
    def rssi(self) -> int | None: ...  # noqa: D102


class WifiLike(Protocol):
    """An access point as decoders report it (`protocol.WifiAccessPoint`)."""

    @property
    def mac(self) -> str: ...  # noqa: D102
    @property
    def rssi(self) -> int | None: ...  # noqa: D102


class ReportLike(Protocol):
    """The position part of a decoded report (`protocol.Message`)."""

    @property
    def valid(self) -> bool | None: ...  # noqa: D102
    @property
    def latitude(self) -> float | None: ...  # noqa: D102
    @property
    def longitude(self) -> float | None: ...  # noqa: D102
    @property
    def position_source(self) -> str | None: ...  # noqa: D102


#: A cell, whatever its radio: mobile country code, network code, area code (LAC/TAC), cell id.
type CellKey = tuple[int, int, int, int]

#: Valid ranges (Ichnaea's checks, widened for 5G: BeaconDB keeps NR TAC 24-bit, NCI 36-bit).
MAX_MCC = 999
MAX_MNC = 999
MAX_LAC = 0xFFFFFF
MAX_CID = (1 << 36) - 1
#: LAC/TAC values that mean "none" on 2G to 4G.
INVALID_LACS = frozenset({0, 0xFFFE, 0xFFFF})
#: A cell id no network hands out: filler for "no cell" in several firmwares.
INVALID_CIDS = frozenset({0, 0xFFFF, 0xFFFFFFFF})
#: At most this many cells and access points are taken from one report (bounds the work).
MAX_CELLS = 8
MAX_WIFI = 16
#: A signal reading further out than this is not dBm.
MIN_DBM = -150


class ObservedCell(NamedTuple):
    """One cell as seen in one report."""

    key: CellKey
    signal: int | None  #: dBm, None when the tracker did not say or said something else

    @property
    def radio(self) -> str:
        """The radio type to name to an online provider: a guess from the size of the id.

        GSM cell ids fit 16 bits; LTE's 28-bit ECI (and UMTS's RNC+CID) do not; only NR's NCI
        needs more than 28 bits. Trackers do not say, and a 4G tracker is the common case.
        """
        cid = self.key[3]
        if cid > 0xFFFFFFF:
            return "nr"
        return "lte" if cid > 0xFFFF else "gsm"


class ObservedWifi(NamedTuple):
    """One Wi-Fi access point as seen in one report."""

    mac: str  #: lower case, colon separated
    signal: int | None  #: dBm


@dataclass(frozen=True, slots=True)
class Observation:
    """The cells (serving first) and access points of one report, cleaned."""

    cells: tuple[ObservedCell, ...] = ()
    wifi: tuple[ObservedWifi, ...] = ()

    def __bool__(self) -> bool:
        """True when there is anything to learn from or to resolve."""
        return bool(self.cells or self.wifi)

    @property
    def signature(self) -> tuple[frozenset[CellKey], frozenset[str]]:
        """What identifies the radio environment, without signal levels (cache key)."""
        return frozenset(c.key for c in self.cells), frozenset(w.mac for w in self.wifi)


def observe(cells: Iterable[CellLike], wifi: Iterable[WifiLike]) -> Observation:
    """Normalise a report's cells and access points; the first valid cell stays first."""
    seen_cells: dict[CellKey, ObservedCell] = {}
    for cell in cells:
        key = cell_key(cell.mcc, cell.mnc, cell.lac, cell.cid)
        if key is not None and key not in seen_cells:
            seen_cells[key] = ObservedCell(key, dbm(cell.rssi))
            if len(seen_cells) == MAX_CELLS:
                break
    seen_wifi: dict[str, ObservedWifi] = {}
    for access_point in wifi:
        mac = normalise_mac(access_point.mac)
        if mac is not None and mac not in seen_wifi:
            seen_wifi[mac] = ObservedWifi(mac, dbm(access_point.rssi))
            if len(seen_wifi) == MAX_WIFI:
                break
    return Observation(tuple(seen_cells.values()), tuple(seen_wifi.values()))


def has_fix(message: ReportLike) -> bool:
    """Whether a report carries a valid GNSS fix (which teaches; a report without is resolved)."""
    return (
        message.valid is True
        and message.latitude is not None
        and message.longitude is not None
        and (message.latitude, message.longitude) != (0.0, 0.0)
        and message.position_source in (None, "gnss")
    )


def cell_key(mcc: int, mnc: int, lac: int, cid: int) -> CellKey | None:
    """The normalised key of a cell, or None when it cannot name a real cell."""
    mcc &= 0x7FFF  # GT06: bit 15 flags a two-byte MNC
    if not 0 < mcc <= MAX_MCC or not 0 <= mnc <= MAX_MNC:
        return None
    if lac in INVALID_LACS or not 0 < lac <= MAX_LAC:
        return None
    if cid in INVALID_CIDS or not 0 < cid <= MAX_CID:
        return None
    return (mcc, mnc, lac, cid)


_CANONICAL_MAC = re.compile(r"[0-9a-f]{2}(?::[0-9a-f]{2}){5}")


@lru_cache(maxsize=4096)
def normalise_mac(mac: str) -> str | None:
    """A MAC as lower-case colon-separated hex, or None for a malformed, empty or group one.

    Cached: a tracker sees the same few access points report after report.
    """
    canonical = _CANONICAL_MAC.fullmatch(mac) is not None  # what the decoders produce
    digits = (
        mac.replace(":", "") if canonical else "".join(ch for ch in mac.lower() if ch not in ":-. ")
    )
    if len(digits) != 12:
        return None
    try:
        value = int(digits, 16)
    except ValueError:
        return None
    if value in (0, 0xFFFFFFFFFFFF) or (value >> 40) & 0x01:
        return None  # all zeros, broadcast, or a multicast (group) address: no access point
    return mac if canonical else ":".join(digits[i : i + 2] for i in range(0, 12, 2))


def dbm(value: int | None) -> int | None:
    """A signal in dBm, or None.

    Decoders pass what the wire says: dBm (negative), or a positive byte that several
    firmwares mean as minus dBm (traccar and BeaconDB negate it the same way). Zero and values
    no radio measures are unknown.
    """
    if value is None or value == 0:
        return None
    if value > 0:
        value = -value
    return value if value >= MIN_DBM else None


def pack_cell(key: CellKey) -> int:
    """One integer per cell: a compact dictionary key (10 + 10 + 24 + 36 bits)."""
    mcc, mnc, lac, cid = key
    return (((mcc << 10 | mnc) << 24 | lac) << 36) | cid


def unpack_cell(packed: int) -> CellKey:
    """Inverse of `pack_cell`."""
    cid = packed & MAX_CID
    packed >>= 36
    lac = packed & MAX_LAC
    packed >>= 24
    return (packed >> 10, packed & 0x3FF, lac, cid)


def pack_mac(mac: str) -> int:
    """A normalised MAC as a 48-bit integer."""
    return int(mac.replace(":", ""), 16)


def unpack_mac(packed: int) -> str:
    """Inverse of `pack_mac`."""
    digits = f"{packed:012x}"
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


def format_cell(key: CellKey) -> str:
    """`mcc-mnc-lac-cid`, as stored in files."""
    return "-".join(str(part) for part in key)


def parse_cell(text: str) -> CellKey | None:
    """Inverse of `format_cell`; None when it is not a valid key."""
    try:
        mcc, mnc, lac, cid = (int(part) for part in text.split("-"))
    except ValueError:
        return None
    return cell_key(mcc, mnc, lac, cid)
