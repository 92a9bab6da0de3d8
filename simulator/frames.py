"""Uplink frame builders: the bytes a TK-Star tracker sends, per protocol family.

Written from the wire descriptions in protocols.md, independently of the integration's
decoders (nothing here imports `custom_components`), and checked against the captured vectors
in `tests/simulator/`, so a round trip through the decoder tests both sides instead of
confirming one mistake twice.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import reduce
from operator import xor

from .radio import SimAccessPoint, SimCell

_REFLECT = bytes(int(f"{value:08b}"[::-1], 2) for value in range(256))


def crc_x25(data: bytes) -> int:
    """CRC-16/X-25 (GT06 "CRC-ITU")."""
    crc = binascii.crc_hqx(data.translate(_REFLECT), 0xFFFF)
    return ((_REFLECT[crc & 0xFF] << 8) | _REFLECT[crc >> 8]) ^ 0xFFFF


@dataclass(frozen=True, slots=True, kw_only=True)
class Fix:
    """What a tracker knows when it reports: position, motion and status."""

    time: datetime
    latitude: float
    longitude: float
    speed_kmh: float = 0.0
    course: float = 0.0
    altitude_m: float = 0.0
    satellites: int = 9
    valid: bool = True
    ignition: bool = False
    relay: bool = False
    charging: bool = True
    battery_percent: int = 90
    sos: bool = False
    vibration: bool = False
    #: total distance the device has counted, sent where the protocol has a field for it
    odometer_km: float | None = None
    #: the cells the tracker sees, serving first, and the Wi-Fi access points in reach (None:
    #: the tracker fills in what the radio world has at the fix's position)
    cells: tuple[SimCell, ...] | None = None
    wifi: tuple[SimAccessPoint, ...] | None = None


# ---------------------------------------------------------------------------------------------
# JT/T 808 (2013 header)
# ---------------------------------------------------------------------------------------------


def _jt808_escape(data: bytes) -> bytes:
    return data.replace(b"\x7d", b"\x7d\x01").replace(b"\x7e", b"\x7d\x02")


def jt808_frame(message_id: int, body: bytes, terminal: str, serial: int) -> bytes:
    """Header, body and XOR checksum, escaped between two 7E flags."""
    header = (
        message_id.to_bytes(2, "big")
        + len(body).to_bytes(2, "big")
        + bytes.fromhex(terminal.rjust(12, "0")[-12:])
        + (serial & 0xFFFF).to_bytes(2, "big")
    )
    plain = header + body
    return b"\x7e" + _jt808_escape(plain + bytes([reduce(xor, plain, 0)])) + b"\x7e"


def jt808_register(terminal: str, serial: int, model: str = "TK970") -> bytes:
    """0x0100 registration (2013 layout)."""
    body = (
        (0).to_bytes(2, "big")
        + (0).to_bytes(2, "big")
        + b"TKSTR"
        + model.encode().ljust(20, b"\x00")
        + terminal[-7:].encode().rjust(7, b"0")
        + b"\x00"
    )
    return jt808_frame(0x0100, body, terminal, serial)


def jt808_authenticate(terminal: str, serial: int, code: str) -> bytes:
    """0x0102 authentication with the code from the 0x8100 answer."""
    return jt808_frame(0x0102, code.encode(), terminal, serial)


def jt808_heartbeat(terminal: str, serial: int) -> bytes:
    """0x0002 heartbeat (empty body, as the standard has it)."""
    return jt808_frame(0x0002, b"", terminal, serial)


def _jt808_location_body(fix: Fix, utc_offset: timedelta) -> bytes:
    alarm = (1 if fix.sos else 0) | ((1 << 15) if fix.vibration else 0)
    status = (
        (1 if fix.ignition else 0)
        | (2 if fix.valid else 0)
        | (4 if fix.latitude < 0 else 0)
        | (8 if fix.longitude < 0 else 0)
        | ((1 << 10) if fix.relay else 0)
    )
    local = fix.time + utc_offset
    bcd = bytes.fromhex(local.strftime("%y%m%d%H%M%S"))
    basic = (
        alarm.to_bytes(4, "big")
        + status.to_bytes(4, "big")
        + round(abs(fix.latitude) * 1e6).to_bytes(4, "big")
        + round(abs(fix.longitude) * 1e6).to_bytes(4, "big")
        + round(fix.altitude_m).to_bytes(2, "big")
        + min(0xFFFF, round(fix.speed_kmh * 10)).to_bytes(2, "big")
        + round(fix.course).to_bytes(2, "big")
        + bcd
    )
    bsj = _bsj_record(0x00A8, bytes([fix.battery_percent]))
    if fix.cells:  # TK-Star 4G: the serving cell, then up to five access points (BSJ 0xEB)
        cell = fix.cells[0]
        bsj += _bsj_record(
            0x00D8,
            cell.mcc.to_bytes(2, "big")
            + bytes([cell.mnc])
            + cell.lac.to_bytes(2, "big")
            + cell.cid.to_bytes(4, "big"),
        )
    if fix.wifi:
        points = fix.wifi[:5]
        text = ",".join(f"{ap.mac},{ap.rssi}" for ap in points)
        bsj += _bsj_record(0x00B9, bytes([len(points)]) + text.encode("ascii"))
    extras = (
        b"\x30\x01\x1c"  # network signal CSQ 28
        b"\x31\x01" + bytes([fix.satellites]) + b"\xeb" + bytes([len(bsj)]) + bsj
    )
    if fix.odometer_km is not None:  # item 0x01: mileage DWORD in 0.1 km
        extras = b"\x01\x04" + round(fix.odometer_km * 10).to_bytes(4, "big") + extras
    if fix.cells and len(fix.cells) > 1:
        # Every cell in view, serving first (vendor item 0xF0: MCC, MNC, CID, LAC, -dBm).
        cells = b"".join(
            cell.mcc.to_bytes(2, "big")
            + cell.mnc.to_bytes(2, "big")
            + cell.cid.to_bytes(4, "big")
            + cell.lac.to_bytes(4, "big")
            + bytes([-cell.rssi])
            for cell in fix.cells[:8]
        )
        extras += b"\xf0" + bytes([len(cells)]) + cells
    return basic + extras


def _bsj_record(kind: int, data: bytes) -> bytes:
    """One `0xEB` sub-record: length (counting the type word), type, data."""
    return (len(data) + 2).to_bytes(2, "big") + kind.to_bytes(2, "big") + data


def jt808_location(
    terminal: str, serial: int, fix: Fix, utc_offset: timedelta = timedelta(hours=8)
) -> bytes:
    """0x0200 location report; the BCD time is device-local (GMT+8 by the standard)."""
    return jt808_frame(0x0200, _jt808_location_body(fix, utc_offset), terminal, serial)


def jt808_batch(
    terminal: str, serial: int, fixes: list[Fix], utc_offset: timedelta = timedelta(hours=8)
) -> bytes:
    """0x0704 blind-area upload (type 1) of several fixes."""
    body = len(fixes).to_bytes(2, "big") + b"\x01"
    for fix in fixes:
        item = _jt808_location_body(fix, utc_offset)
        body += len(item).to_bytes(2, "big") + item
    return jt808_frame(0x0704, body, terminal, serial)


def jt808_general_response(
    terminal: str, serial: int, reply_serial: int, reply_id: int, result: int
) -> bytes:
    """0x0001 terminal general response to a platform command (0 ok, 1 fail, 3 unsupported)."""
    body = reply_serial.to_bytes(2, "big") + reply_id.to_bytes(2, "big") + bytes([result])
    return jt808_frame(0x0001, body, terminal, serial)


def jt808_location_response(
    terminal: str,
    serial: int,
    reply_serial: int,
    fix: Fix,
    utc_offset: timedelta = timedelta(hours=8),
) -> bytes:
    """0x0201 answer to a 0x8201 location query: the query's serial + a 0x0200 body."""
    body = reply_serial.to_bytes(2, "big") + _jt808_location_body(fix, utc_offset)
    return jt808_frame(0x0201, body, terminal, serial)


def jt808_text_response(terminal: str, serial: int, reply_serial: int, text: str) -> bytes:
    """0x1300 vendor answer to a 0x8300 text command: its serial + UTF-16 text ("Set OK!")."""
    return jt808_frame(
        0x1300, reply_serial.to_bytes(2, "big") + text.encode("utf-16-be"), terminal, serial
    )


def jt808_split(stream: bytes) -> tuple[list[bytes], bytes]:
    """Cut the whole `7E ... 7E` frames off a platform byte stream: (frames, the rest to keep)."""
    out: list[bytes] = []
    while (start := stream.find(b"\x7e")) >= 0 and (end := stream.find(b"\x7e", start + 1)) > 0:
        out.append(stream[start : end + 1])
        stream = stream[end + 1 :]
    return out, stream


def jt808_unframe(frame: bytes) -> tuple[int, int, bytes]:
    """Read a platform message: (message id, serial, body)."""
    plain = frame.strip(b"\x7e").replace(b"\x7d\x02", b"\x7e").replace(b"\x7d\x01", b"\x7d")
    message_id = int.from_bytes(plain[0:2], "big")
    length = int.from_bytes(plain[2:4], "big") & 0x3FF
    serial = int.from_bytes(plain[10:12], "big")
    return message_id, serial, plain[12 : 12 + length]


# ---------------------------------------------------------------------------------------------
# GT06 / Concox
# ---------------------------------------------------------------------------------------------


def gt06_frame(kind: int, content: bytes, serial: int) -> bytes:
    """7878 frame with length, serial and CRC-ITU."""
    body = bytes([kind]) + content + (serial & 0xFFFF).to_bytes(2, "big")
    length = bytes([len(body) + 2])
    return b"\x78\x78" + length + body + crc_x25(length + body).to_bytes(2, "big") + b"\r\n"


def gt06_login(imei: str, serial: int) -> bytes:
    """0x01 login: IMEI as BCD with a leading 0 nibble, type id, time zone GMT+0."""
    return gt06_frame(0x01, bytes.fromhex("0" + imei) + b"\x36\x08" + b"\x00\x02", serial)


def _gt06_terminal_info(fix: Fix) -> int:
    alarm = 0b100 if fix.sos else (0b001 if fix.vibration else 0)
    return (
        (0x80 if fix.relay else 0)
        | (0x40 if fix.valid else 0)
        | (alarm << 3)
        | (0x04 if fix.charging else 0)
        | (0x02 if fix.ignition else 0)
    )


def gt06_heartbeat(fix: Fix, serial: int) -> bytes:
    """0x13 status: terminal info, voltage level (0-6), GSM level (0-4), alarm/language."""
    voltage = min(6, round(fix.battery_percent / 100 * 6))
    content = bytes([_gt06_terminal_info(fix), voltage, 4]) + b"\x00\x02"
    return gt06_frame(0x13, content, serial)


def _gt06_gps(fix: Fix) -> bytes:
    time = fix.time.astimezone(UTC)
    course = round(fix.course) & 0x3FF
    course |= (1 << 12) if fix.valid else 0
    course |= (1 << 10) if fix.latitude >= 0 else 0
    course |= (1 << 11) if fix.longitude < 0 else 0
    return (
        bytes([time.year - 2000, time.month, time.day, time.hour, time.minute, time.second])
        + bytes([0xC0 | min(fix.satellites, 15)])
        + round(abs(fix.latitude) * 1_800_000).to_bytes(4, "big")
        + round(abs(fix.longitude) * 1_800_000).to_bytes(4, "big")
        + bytes([min(255, round(fix.speed_kmh))])
        + course.to_bytes(2, "big")
    )


_GT06_NO_CELL = (262).to_bytes(2, "big") + b"\x01" + (0x1234).to_bytes(2, "big") + b"\x00\x56\x78"


def _gt06_serving_cell(fix: Fix) -> bytes:
    """MCC, MNC, LAC, 3-byte cell id of the serving cell (a fixed one when none is set)."""
    if not fix.cells:
        return _GT06_NO_CELL
    cell = fix.cells[0]
    return (
        cell.mcc.to_bytes(2, "big")
        + bytes([cell.mnc])
        + cell.lac.to_bytes(2, "big")
        + cell.cid.to_bytes(3, "big")
    )


def gt06_location(fix: Fix, serial: int) -> bytes:
    """0x22 GPS + LBS location (UTC), live upload."""
    content = _gt06_gps(fix) + _gt06_serving_cell(fix) + bytes([1 if fix.ignition else 0, 0, 0])
    return gt06_frame(0x22, content, serial)


def gt06_lbs(fix: Fix, serial: int) -> bytes:
    """0x28 (cells only) or 0x2C (cells and Wi-Fi): what a GT06 sends without a fix (§5.6).

    UTC time, MCC, MNC, seven (LAC, cell id, RSSI) slots with the serving cell first (empty
    slots are zero), timing advance; 0x2C adds a counted (MAC, RSSI) list. RSSI bytes are
    minus dBm, as Concox firmware writes them.
    """
    time = fix.time.astimezone(UTC)
    content = bytes([time.year - 2000, time.month, time.day, time.hour, time.minute, time.second])
    cells = fix.cells or ()
    serving = cells[0] if cells else None
    content += (serving.mcc if serving else 0).to_bytes(2, "big")
    content += bytes([serving.mnc if serving else 0])
    for slot in range(7):
        if slot < len(cells):
            cell = cells[slot]
            content += (
                cell.lac.to_bytes(2, "big") + cell.cid.to_bytes(3, "big") + bytes([-cell.rssi])
            )
        else:
            content += bytes(6)
    content += b"\x00"  # timing advance
    if not fix.wifi:
        return gt06_frame(0x28, content + b"\x00\x02", serial)
    listed = fix.wifi[:8]
    content += bytes([len(listed)])
    for access_point in listed:
        content += bytes.fromhex(access_point.mac.replace(":", "")) + bytes([-access_point.rssi])
    return gt06_frame(0x2C, content, serial)


def gt06_alarm(fix: Fix, alarm_code: int, serial: int) -> bytes:
    """0x26 alarm: GPS, LBS, terminal info, voltage, GSM, alarm byte, language."""
    voltage = min(6, round(fix.battery_percent / 100 * 6))
    content = (
        _gt06_gps(fix)
        + b"\x09"
        + _gt06_serving_cell(fix)
        + bytes([_gt06_terminal_info(fix), voltage, 4, alarm_code, 0x02])
    )
    return gt06_frame(0x26, content, serial)


def gt06_command_reply(server_flag: int, text: str, serial: int) -> bytes:
    """0x15 answer to an online command: length, server flag, ASCII text, language."""
    payload = server_flag.to_bytes(4, "big") + text.encode("ascii")
    return gt06_frame(0x15, bytes([len(payload)]) + payload + b"\x00\x02", serial)


def gt06_where_text(fix: Fix) -> str:
    """The SMS-style answer to `WHERE#` (CONCOX-MAN; traccar `PATTERN_LOCATION`), in UTC."""
    time = fix.time.astimezone(UTC)
    return (
        f"Current position!Lat:{'N' if fix.latitude >= 0 else 'S'}{abs(fix.latitude):.6f},"
        f"Lon:{'E' if fix.longitude >= 0 else 'W'}{abs(fix.longitude):.6f},"
        f"Course:{fix.course:.2f},Speed:{fix.speed_kmh:.4f},"
        f"DateTime:{time:%Y-%m-%d %H:%M:%S}"
    )


def gt06_command(frame: bytes) -> tuple[int, str] | None:
    """Read a 0x80 online command: (server flag, text), or None for anything else."""
    if len(frame) < 10 or frame[:2] != b"\x78\x78" or frame[3] != 0x80:
        return None
    size = frame[4]
    flag = int.from_bytes(frame[5:9], "big")
    return flag, frame[9 : 5 + size].decode("ascii", "replace")


# ---------------------------------------------------------------------------------------------
# H02
# ---------------------------------------------------------------------------------------------


def _nmea(value: float, degree_digits: int) -> str:
    value = abs(value)
    degrees = int(value)
    minutes = (value - degrees) * 60
    return f"{degrees:0{degree_digits}d}{minutes:07.4f}"


def h02_status(fix: Fix) -> str:
    """The active-low status word: bit 0 clear = vibration, bit 1 clear = SOS, bit 10 = ACC,
    bit 27 clear = oil and engine cut (H02 document V1.0.5, "terminal status")."""
    word = 0xFFFFFFFF & ~(1 << 10)
    if fix.vibration:
        word &= ~1
    if fix.sos:
        word &= ~2
    if fix.ignition:
        word |= 1 << 10
    if fix.relay:
        word &= ~(1 << 27)
    return f"{word:08X}"


def h02_position(device_id: str, fix: Fix, kind: str = "V1", *, maker: str = "HQ") -> bytes:
    """`*HQ,<id>,V1,hhmmss,A,lat,N,lon,E,knots,course,ddmmyy,status#`."""
    time = fix.time.astimezone(UTC)
    fields = [
        f"*{maker}",
        device_id,
        kind,
        time.strftime("%H%M%S"),
        "A" if fix.valid else "V",
        _nmea(fix.latitude, 2),
        "N" if fix.latitude >= 0 else "S",
        _nmea(fix.longitude, 3),
        "E" if fix.longitude >= 0 else "W",
        f"{fix.speed_kmh / 1.852:.2f}",
        f"{round(fix.course)}",
        time.strftime("%d%m%y"),
        h02_status(fix),
    ]
    return (",".join(fields) + "#").encode()


def h02_heartbeat(device_id: str, battery: int, *, maker: str = "HQ") -> bytes:
    """`*HQ,<id>,HTBT,<battery%>#`."""
    return f"*{maker},{device_id},HTBT,{battery}#".encode()


def h02_confirmation(device_id: str, fix: Fix, code: str, params: str, command_time: str) -> bytes:
    """`*HQ,<id>,V4,<code>,<params>,<command hhmmss>,<device hhmmss>,A,...,status#`."""
    position = h02_position(device_id, fix).decode()[:-1].split(",")
    fields = [*position[:2], "V4", code, params, command_time, *position[3:]]
    return (",".join(fields) + "#").encode()


def h02_command(frame: bytes) -> tuple[str, str, list[str]] | None:
    """Read `*HQ,<id>,<CMD>,<hhmmss>,<params>#`: (code, time, params)."""
    text = frame.decode("ascii", "replace").strip().rstrip("#")
    parts = text.split(",")
    if len(parts) < 4 or not parts[0].startswith("*"):
        return None
    return parts[2], parts[3], parts[4:]


# ---------------------------------------------------------------------------------------------
# GPS103
# ---------------------------------------------------------------------------------------------


def gps103_login(imei: str) -> bytes:
    """`##,imei:<IMEI>,A;`."""
    return f"##,imei:{imei},A;".encode()


def gps103_heartbeat(imei: str) -> bytes:
    """The bare IMEI, as a keep-alive."""
    return f"{imei};".encode()


def gps103_report(imei: str, fix: Fix, keyword: str = "tracker") -> bytes:
    """`imei:<IMEI>,<keyword>,<local yymmddHHMM>,,F,<utc hhmmss.sss>,A,lat,N,lon,E,knots,course;`.

    The device's local clock is set to UTC here, so local and UTC fields agree.
    """
    time = fix.time.astimezone(UTC)
    fields = [
        f"imei:{imei}",
        keyword,
        time.strftime("%y%m%d%H%M"),
        "",
        "F",
        time.strftime("%H%M%S") + ".000",
        "A" if fix.valid else "V",
        _nmea(fix.latitude, 2),
        "N" if fix.latitude >= 0 else "S",
        _nmea(fix.longitude, 3),
        "E" if fix.longitude >= 0 else "W",
        f"{fix.speed_kmh / 1.852:.2f}",
        f"{fix.course:.2f}",
    ]
    return (",".join(fields) + ";").encode()


def gps103_command(frame: bytes) -> tuple[str, list[str]] | None:
    """Read `**,imei:<IMEI>,<code>[,<param>]`: (code, params)."""
    text = frame.decode("ascii", "replace").strip().rstrip(";")
    if not text.startswith("**,imei:"):
        return None
    parts = text.split(",")
    return (parts[2], parts[3:]) if len(parts) >= 3 else None


# ---------------------------------------------------------------------------------------------
# Watch (`[SG*<id>*<len hex>*<content>]`, protocols.md §7)
# ---------------------------------------------------------------------------------------------


def watch_frame(device_id: str, content: str, *, maker: str = "SG") -> bytes:
    """`[<maker>*<id>*<length, 4 hex digits>*<content>]`."""
    data = content.encode()
    return b"[%s*%s*%04X*%s]" % (maker.encode(), device_id.encode(), len(data), data)


def watch_heartbeat(device_id: str, battery: int) -> bytes:
    """`LK,<steps>,<rolls>,<battery %>`."""
    return watch_frame(device_id, f"LK,0,0,{battery}")


def watch_position(device_id: str, fix: Fix, word: str = "UD") -> bytes:
    """`UD` (or `AL`): date, UTC time, validity, decimal degrees, km/h, course, altitude,
    satellites, GSM %, battery %, steps, rolls, status word (bit 16 SOS), then no cells and
    no Wi-Fi."""
    time = fix.time.astimezone(UTC)
    status = 1 << 16 if fix.sos else 0
    fields = [
        word,
        time.strftime("%d%m%y"),
        time.strftime("%H%M%S"),
        "A" if fix.valid else "V",
        f"{abs(fix.latitude):.6f}",
        "N" if fix.latitude >= 0 else "S",
        f"{abs(fix.longitude):.6f}",
        "E" if fix.longitude >= 0 else "W",
        f"{fix.speed_kmh:.2f}",
        f"{round(fix.course)}",
        f"{fix.altitude_m:.1f}",
        str(fix.satellites),
        "80",
        str(fix.battery_percent),
        "0",
        "0",
        f"{status:08X}",
        "0",
        "0",
    ]
    return watch_frame(device_id, ",".join(fields))


def watch_command(frame: bytes) -> str | None:
    """Read a server frame's content (`CR`, `UPLOAD,60`, `LK` ...), or None."""
    parts = frame.decode("ascii", "replace").strip("[]").split("*", 3)
    return parts[3] if len(parts) == 4 else None
