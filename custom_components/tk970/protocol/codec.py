"""Byte-level helpers shared by the families: checksums, BCD, JT808 escaping, coordinates.

Everything here works on whole `bytes` and leans on C-implemented standard library calls
(`binascii.crc_hqx`, `bytes.translate`, `bytes.replace`), because these run once per frame on the
hot path (see `bench/decode.py`).
"""

from __future__ import annotations

import binascii
from datetime import UTC, datetime
from functools import reduce
from operator import xor

from .errors import FrameError

# Bit-reversal of every byte value: CRC-ITU (CRC-16/X-25) is the bit-reflected form of the
# CRC-CCITT that binascii.crc_hqx computes, so reflecting the input bytes and the 16-bit result
# lets the C implementation do the work.
REFLECT = bytes(int(f"{value:08b}"[::-1], 2) for value in range(256))
_REFLECT = REFLECT


def _reflect16(value: int) -> int:
    return (_REFLECT[value & 0xFF] << 8) | _REFLECT[value >> 8]


def crc_itu(data: bytes) -> int:
    """Return the GT06 CRC-ITU (CRC-16/X-25) of `data` (check value 0x906E for b"123456789")."""
    return _reflect16(binascii.crc_hqx(data.translate(_REFLECT), 0xFFFF)) ^ 0xFFFF


def gt06_crc_ok(frame: bytes) -> bool:
    """Tell whether a GT06 frame's CRC (the 2 bytes before `0D 0A`) matches length ... serial.

    The same test as `crc_itu(frame[2:-4]) == int.from_bytes(frame[-4:-2])`, with the
    reflection moved to the received bytes (reflecting both sides of an equality keeps it), so
    that everything runs in C.
    """
    reflected = frame.translate(_REFLECT)
    return binascii.crc_hqx(reflected[2:-4], 0xFFFF) ^ 0xFFFF == int.from_bytes(reflected[-3:-5:-1])


#: Largest input `xor_checksum` folds (a JT808 frame has at most 1045 bytes un-escaped).
_MAX_FOLDED = 2048


def _fold_plan(size: int) -> tuple[tuple[int, int], ...]:
    """The halvings that fold `size` bytes down to one: (shift, mask) pairs."""
    plan = []
    bits = size * 8
    while bits > 8:
        half = 1 << ((bits - 1).bit_length() - 1)  # the largest power of two below `bits`
        plan.append((half, (1 << half) - 1))
        bits = half
    return tuple(plan)


_FOLD_PLANS = tuple(_fold_plan(size) for size in range(_MAX_FOLDED + 1))


def xor_checksum(data: bytes) -> int:
    """Return the JT808 checksum: XOR of every byte.

    The bytes are read as one integer and folded in halves (each half XORed onto the other):
    a few big-integer operations in C instead of one Python step per byte.
    """
    size = len(data)
    if size > _MAX_FOLDED:
        return reduce(xor, data, 0)
    number = int.from_bytes(data)
    for half, mask in _FOLD_PLANS[size]:
        number = (number >> half) ^ (number & mask)
    return number


def jt808_unescape(data: bytes) -> bytes:
    """Undo JT808 escaping (7D 02 -> 7E, 7D 01 -> 7D) on the bytes between the 7E flags.

    Raises FrameError for a 7D followed by anything else: the bytes are not JT808.
    """
    if b"\x7d" not in data:
        return data
    out = data.replace(b"\x7d\x02", b"\x7e").replace(b"\x7d\x01", b"\x7d")
    # A 7D left after both replacements was not part of an escape pair... unless it came from
    # "7D 01" itself; count pairs instead of trusting the replaced text.
    if data.count(b"\x7d") != data.count(b"\x7d\x02") + data.count(b"\x7d\x01"):
        raise FrameError("invalid JT808 escape sequence")
    return out


def jt808_escape(data: bytes) -> bytes:
    """Apply JT808 escaping to header, body and checksum (not the 7E flags)."""
    return data.replace(b"\x7d", b"\x7d\x01").replace(b"\x7e", b"\x7d\x02")


def bcd_digits(data: bytes) -> str:
    """Return the decimal digits of packed BCD; raises FrameError on a nibble above 9."""
    digits = data.hex()
    if not digits.isdigit():
        raise FrameError(f"invalid BCD {digits}")
    return digits


def is_bcd(data: bytes) -> bool:
    """Tell whether every nibble of `data` is a decimal digit."""
    return data.hex().isdigit()


def bcd_datetime(data: bytes) -> tuple[int, int, int, int, int, int]:
    """Read six BCD bytes `YY MM DD hh mm ss` as integers (year as 2000 + YY)."""
    digits = bcd_digits(data[:6])
    year, month, day, hour, minute, second = (int(digits[i : i + 2]) for i in range(0, 12, 2))
    return 2000 + year, month, day, hour, minute, second


def make_utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    """Build an aware UTC datetime; raises FrameError for an impossible date or time."""
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError as err:
        stamp = f"{year}-{month}-{day} {hour}:{minute}:{second}"
        raise FrameError(f"invalid date/time {stamp}") from err


def nmea_degrees(value: str, hemisphere: str = "") -> float:
    """Convert NMEA `(d)ddmm.mmmm` to signed decimal degrees (S and W negative).

    Raises FrameError when the text is not a number.
    """
    try:
        number = float(value)
    except ValueError as err:
        raise FrameError(f"invalid coordinate {value!r}") from err
    sign = -1.0 if number < 0 else 1.0
    number = abs(number)
    degrees = int(number // 100)
    result = sign * (degrees + (number - degrees * 100) / 60)
    return -result if hemisphere in ("S", "W", "s", "w") else result


KNOTS_TO_KMH = 1.852


def mac_text(data: bytes) -> str:
    """Format six bytes as a lower-case colon-separated MAC address."""
    return ":".join(f"{byte:02x}" for byte in data)
