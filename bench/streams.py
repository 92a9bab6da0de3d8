"""Representative tracker streams for the decoding benchmark (issue 10).

Per device: one login, eight locations, one heartbeat, interleaved across devices the way a
listener sees them (every device's first frame, then every device's second ...). Frames are
built with the simulator (written from the wire descriptions, independently of the decoders)
from a route around Berlin, so times, positions and serials move as a real fleet's do.

* GT06: login `0x01`, GPS + LBS `0x12`, status `0x13`: the types npm `gt06` parses.
* JT808: authentication `0x0102`, location `0x0200` carrying what a TK-Star 4G unit sends
  (mileage `0x01`, signal `0x30`, satellites `0x31` and the `0xEB` block of jt808.jsonl line 9:
  ICCID, alarm and status words, battery voltage and level), heartbeat `0x0002`.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from simulator import frames
from simulator.frames import Fix

#: Reports per device: login, eight locations, heartbeat.
LOCATIONS = 8
#: TK-Star `0xEB` block of jt808.jsonl line 9 (ICCID, 0x0089, 0x00C5, 0x002D, 0x00A8).
_TKSTAR_EB = bytes.fromhex(
    "eb29000c00b28988228066613427450900060089ffffffff000600c5ffffffef0004002d0fa5000300a85c"
)
#: When the streams' first reports are made.
START = datetime(2026, 11, 24, 7, 0, tzinfo=UTC)


def _fixes(device: int) -> list[Fix]:
    """Eight fixes of one device driving east, 10 s apart."""
    first = Fix(
        time=START + timedelta(seconds=device),
        latitude=52.5 + device * 1e-3,
        longitude=13.3 + device * 1e-3,
        speed_kmh=42.0,
        course=88.0,
        ignition=True,
        odometer_km=1000.0 + device,
    )
    return [
        replace(
            first,
            time=first.time + timedelta(seconds=10 * n),
            longitude=first.longitude + n * 1e-4,
            odometer_km=(first.odometer_km or 0.0) + n * 0.1,
        )
        for n in range(LOCATIONS)
    ]


def _interleave(per_device: list[list[bytes]]) -> list[tuple[int, bytes]]:
    return [
        (device, stream[index])
        for index in range(len(per_device[0]))
        for device, stream in enumerate(per_device)
    ]


def _gt06_location(fix: Fix, serial: int) -> bytes:
    """`0x12`: the GPS block and a 2G cell, no tail (VL03 §3 classic report)."""
    time = fix.time.astimezone(UTC)
    course = round(fix.course) | 0x1000 | (0x0400 if fix.latitude >= 0 else 0)
    gps = (
        bytes((time.year - 2000, time.month, time.day, time.hour, time.minute, time.second))
        + bytes((0xC0 | fix.satellites,))
        + round(abs(fix.latitude) * 1_800_000).to_bytes(4, "big")
        + round(abs(fix.longitude) * 1_800_000).to_bytes(4, "big")
        + bytes((round(fix.speed_kmh),))
        + course.to_bytes(2, "big")
    )
    cell = (262).to_bytes(2, "big") + b"\x01" + (0x1234).to_bytes(2, "big") + b"\x00\x56\x78"
    return frames.gt06_frame(0x12, gps + cell, serial)


def gt06_stream(devices: int) -> list[tuple[int, bytes]]:
    """(device, frame) in arrival order."""
    per_device = []
    for device in range(devices):
        imei = f"35960000{device:07d}"
        fixes = _fixes(device)
        frames_ = [frames.gt06_login(imei, 1)]
        frames_ += [_gt06_location(fix, n + 2) for n, fix in enumerate(fixes)]
        frames_.append(frames.gt06_heartbeat(fixes[-1], LOCATIONS + 2))
        per_device.append(frames_)
    return _interleave(per_device)


def _jt808_location(terminal: str, serial: int, fix: Fix) -> bytes:
    """The simulator's `0x0200` body with the TK-Star items in place of its short ones."""
    plain = frames.jt808_unframe(frames.jt808_location(terminal, serial, fix))[2]
    basic = plain[:28]
    items = (
        b"\x01\x04"
        + round((fix.odometer_km or 0.0) * 10).to_bytes(4, "big")
        + b"\x30\x01\x1c\x31\x01"
        + bytes((fix.satellites,))
        + _TKSTAR_EB
    )
    return frames.jt808_frame(0x0200, basic + items, terminal, serial)


def jt808_stream(devices: int) -> list[tuple[int, bytes]]:
    """(device, frame) in arrival order."""
    per_device = []
    for device in range(devices):
        terminal = f"0095{device:08d}"
        frames_ = [frames.jt808_authenticate(terminal, 1, terminal)]
        frames_ += [_jt808_location(terminal, n + 2, fix) for n, fix in enumerate(_fixes(device))]
        frames_.append(frames.jt808_heartbeat(terminal, LOCATIONS + 2))
        per_device.append(frames_)
    return _interleave(per_device)
