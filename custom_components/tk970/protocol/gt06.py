"""GT06 / Concox (`78 78` / `79 79`): decode one frame, answer it, encode online commands.

This module owns protocols.md §5: the login that binds the IMEI to the connection (later frames
carry no identity), the terminal-info status byte (relay, ACC, charging, status alarms), the GPS,
LBS and Wi-Fi blocks, the alarm byte, command replies (`0x15` / `0x21`), the `0x94` information
frames, the server's acknowledgements (including the Wi-Fi echo and the `0x8A` time reply) and
the `0x80` online command with its server flag.

The layouts of the Concox documents (VL03) come first. Vendor layouts that traccar recognises by
the packet's length byte alone (no device model configured) are decoded as far as they carry
fields of our `Message`; anything else becomes an OTHER message with its serial. A frame always
decodes from its own bytes: the splitter may have cut it by scanning for `0D 0A` because its
length byte is wrong, so fixed fields are read from the start and the serial and CRC from the
end, exactly where traccar reads them.

Replies follow traccar, which answers every `78 78` packet it does not return from early, known
or not (see `_UNANSWERED`). `decode_fast` reads the reports a fleet sends most without the
splitter and the per-frame draft (the session's fast path).
"""

from __future__ import annotations

from binascii import crc_hqx
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from functools import lru_cache, partial
import re
import struct
from typing import Any

from .codec import (
    REFLECT as _REFLECT,
    bcd_datetime,
    bcd_digits,
    crc_itu,
    gt06_crc_ok,
    is_bcd,
    mac_text,
    make_utc,
)
from .commands import (
    Command,
    CommandKind,
    CommandOutcome,
    EncodedCommand,
    RelayDialect,
    text_verdict,
)
from .context import Context, Family, FrameResult
from .errors import CommandError, FrameError
from .messages import (
    Alarm,
    Cell,
    CommandReply,
    CommandResult,
    Message,
    MessageType,
    PositionSource,
    Protocol,
    WifiAccessPoint,
)


class PacketType(IntEnum):
    """GT06 protocol numbers (protocols.md §5; traccar `Gt06ProtocolDecoder` names the variants)."""

    LOGIN = 0x01  #: §5.2, IMEI + type id + time zone; reply required
    GPS = 0x10  #: old GPS-only report (gt06:139)
    GPS_LBS_OFFLINE = 0x11  #: GPS + LBS with 2-byte MNC and 4-byte cell id (gt06:48)
    GPS_LBS = 0x12  #: classic GPS + LBS report (§5.4)
    STATUS = 0x13  #: heartbeat / status (§5.3); reply required
    SATELLITE = 0x14  #: satellite details (traccar names it, decodes nothing)
    STRING = 0x15  #: command reply, old form (§5.7)
    GPS_LBS_STATUS = 0x16  #: GPS + LBS + status + alarm (§5.5); reply required
    WIFI = 0x17  #: Wi-Fi + cells, count in the length byte (§5.6); GPS + RFID when 0x28 long
    LBS_EXTEND = 0x18  #: multi-cell LBS + Wi-Fi list (gt06:128)
    LBS_STATUS = 0x19  #: LBS + status + alarm, no GPS (§5.5)
    GPS_PHONE = 0x1A  #: GPS report answering a phone request
    GPS_LBS_EXTEND = 0x1E  #: GPS + neighbour cells (JI09, gt06:143)
    STRING_INFO = 0x21  #: command reply, new `79 79` form with an encoding byte (§5.7)
    GPS_LBS_UTC = 0x22  #: GPS + LBS + ACC + re-upload flag, UTC (§5.4)
    HEARTBEAT = 0x23  #: GK310 heartbeat (gt06:82)
    LBS_MULTIPLE_3 = 0x24  #: multi-cell LBS; vendor layouts by length (gt06:43, gt06:46)
    GPS_LBS_DRIVER = 0x25  #: XT40 GPS report with a driver id (gt06:168, model specific)
    GPS_LBS_STATUS_UTC = 0x26  #: 0x16 in UTC (§5.5)
    GPS_LBS_STATUS_FENCES = 0x27  #: 0x26 + fence number (§5.5)
    LBS_MULTIPLE = 0x28  #: serving + 6 neighbour cells, UTC (§5.6)
    ADDRESS_REQUEST = 0x2A  #: GPS block + phone number: the device asks for an address
    LBS_WIFI = 0x2C  #: 0x28 cells + Wi-Fi list (§5.6)
    GPS_LBS_4 = 0x2D  #: 0x22 layout
    LBS_MULTIPLE_2 = 0x2E  #: 0x28 layout
    GPS_LBS_5 = 0x31  #: AZ735 / SL4X GPS report (GPS block only is decoded)
    GPS_LBS_STATUS_4 = 0x32  #: AZ735 / SL4X; the `79 79` form has a GPS length byte
    AZ735_ALARM = 0x33  #: AZ735 alarm, `79 79` form
    X1_GPS = 0x34  #: X1: alarm word + GPS + voltages (gt06:67)
    X1_PHOTO_INFO = 0x35  #: X1 photo announcement (not decoded)
    STATUS_2 = 0x36  #: Jimi 4G status with modules; TRX16I GPS layout when 0x35 long
    GPS_LBS_3 = 0x37  #: 0x22 layout + module
    GPS_LBS_8 = 0x38  #: GPS + upload mode + re-upload + typed cell (gt06:8)
    ALARM_MODULE = 0x39  #: Jimi 4G alarm: GPS, typed cell, status, alarm, status modules
    BMS = 0x40  #: WD-209 battery management data (not decoded)
    MULTIMEDIA = 0x41  #: WD-209 photo upload (not decoded), answered in the `79 79` form
    DTC = 0x65  #: FM08ABC fault codes (not decoded)
    PID = 0x66  #: FM08ABC engine values (not decoded, gt06:56)
    IBUTTON = 0x61  #: IMEI + GPS + LBS + iButton id (gt06:5)
    WIFI_2 = 0x69  #: Wi-Fi + cells, count in the length byte (§5.6)
    GPS_MODULAR = 0x70  #: modules (type, length, data): GPS, event, cell, battery
    COMMAND = 0x80  #: server -> device online command (§5.7)
    COMMAND_1 = 0x81  #: server message; a device echoing one is not answered (gt06:145)
    COMMAND_2 = 0x82  #: server message
    TIME_REQUEST = 0x8A  #: the device asks for the UTC time (§5.7)
    OBD = 0x8C  #: FM08ABC OBD values (not decoded, gt06:57)
    INFO = 0x94  #: information transfer, sub-typed (VL03 §9)
    ALARM_VIDEO = 0x95  #: JC100 / JC400 camera alarm
    ADDRESS_RESPONSE = 0x97  #: server -> device: the address asked for by 0x2A (`79 79`)
    SERIAL_PASSTHROUGH = 0x9B  #: external serial device data
    GPS_LBS_4G = 0xA0  #: 0x22 with 4G cell sizes (§5.4)
    LBS_4G = 0xA1  #: 0x28 with 4G cell sizes (§5.6)
    WIFI_4G = 0xA2  #: 4G cells + Wi-Fi list; LW4G GPS + status layout when 0x40 long
    FENCE_SINGLE = 0xA3  #: GK310 fence report; SeeWorld status when 0x0C / 0x18 long
    FENCE_MULTI_4G = 0xA4  #: 0x27 with 4G cell sizes (§5.5)
    LBS_ALARM_4G = 0xA5  #: 0x19 with 4G cell sizes
    LBS_ADDRESS = 0xA7  #: GK310: a cell and a phone number, asking for an address (gt06:88)
    WIFI_ALARM = 0xA9  #: Jimi 4G: cells, Wi-Fi list, alarm (traccar)
    ATTENDANCE = 0xB0  #: Jimi 4G attendance (not decoded)
    BLUETOOTH_CLOCK = 0xB2  #: Jimi 4G Bluetooth tag clocking (not decoded)
    DEVICE_STATUS = 0xF1  #: Jimi 4G status items (gt06:3)
    PERIPHERAL = 0xF2  #: VL842 peripheral status (not decoded, gt06:15)
    WIFI_4 = 0xF3  #: Wi-Fi list without RSSI (gt06:58)
    VENDOR_INFO = 0xFD  #: firmware banner


#: Packet types whose date is UTC by definition (VL03 names them "UTC"); the others are read in
#: the time zone a login announced, as traccar does (protocols.md §5.2).
_UTC_TYPES = frozenset(
    {0x22, 0x26, 0x27, 0x28, 0x2A, 0x8A, 0xA0, 0xA1, 0xA2, 0xA4, 0xA5, 0x32, 0x33, 0x70}
)

# Which frames are answered, and how, follows traccar's `Gt06ProtocolDecoder` (the reference
# server; VL03 requires the login, status and alarm replies, devices tolerate the others):
#
# * A `78 78` frame is answered `78 78 05 <type> <serial> <crc> 0D 0A`, whatever its type,
#   unknown ones included (traccar's catch-all branch), except the types in `_UNANSWERED` and
#   those with a reply of their own (Wi-Fi echo 0x17/0x69, time 0x8A, address 0x2A).
# * A `79 79` frame is answered only when its type is one traccar decodes as a report or
#   status (`_ANSWERED_LONG`), and still in the `78 78` form; 0x32, 0x33 and 0x41 are answered
#   in the `79 79` form (`_ANSWERED_LONG_FORM`).

#: `78 78` types traccar does not answer: text replies, information, serial data, OBD, the
#: Wi-Fi list without RSSI, photo data, server-side messages echoed back, and vendor frames it
#: returns from early (X1 0x34, 0x38).
_UNANSWERED = frozenset({0x21, 0x34, 0x35, 0x38, 0x80, 0x81, 0x82, 0x8C, 0x94, 0x9B, 0xF3})
#: `79 79` types answered (in the `78 78` form), as the reports, status and alarm frames they
#: are, plus the explicit acknowledgements of 0x40, 0x70, 0xF1 and 0xF2.
_ANSWERED_LONG = frozenset(
    {
        0x01, 0x10, 0x11, 0x12, 0x13, 0x15, 0x16, 0x18, 0x19, 0x1A, 0x1E, 0x22, 0x23, 0x24,
        0x25, 0x26, 0x27, 0x28, 0x2C, 0x2D, 0x2E, 0x31, 0x37, 0x39, 0x40, 0x61, 0x70, 0x95,
        0xA0, 0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0xA7, 0xA9, 0xB2, 0xF1, 0xF2,
    }
)  # fmt: skip
#: `79 79` types answered in the `79 79` form (AZ735 0x32 / 0x33, WD-209 multimedia 0x41).
_ANSWERED_LONG_FORM = frozenset({0x32, 0x33, 0x41})
#: 0x34 frames this long are SL4X cell lists, answered like any LBS report (traccar).
_SL4X_LENGTH = 0x37
#: Every protocol number this module knows; others are logged once as unknown.
_KNOWN = frozenset(PacketType)

#: Alarm byte of 0x16/0x26/0x27/0x19/0xA4/0xA5 (protocols.md §5.5). Where traccar differs, the
#: vectors follow traccar: 0x0C "power on" and 0x25 are tampering (gt06:40, gt06:42), 0x09
#: "tow/theft" is vibration. Codes the shared vocabulary has no name for map to OTHER; codes
#: that are events rather than alarms (blind area, first fix, ACC on/off) map to nothing.
_ALARM_CODES: dict[int, Alarm] = {
    0x01: Alarm.SOS,
    0x02: Alarm.POWER_CUT,
    0x03: Alarm.VIBRATION,
    0x04: Alarm.GEOFENCE_ENTER,
    0x05: Alarm.GEOFENCE_EXIT,
    0x06: Alarm.OVERSPEED,
    0x09: Alarm.VIBRATION,
    0x0C: Alarm.TAMPER,
    0x0E: Alarm.LOW_POWER,  # low external battery
    0x0F: Alarm.LOW_POWER,  # external battery low-voltage protection
    0x10: Alarm.OTHER,  # SIM changed
    0x11: Alarm.POWER_OFF,
    0x13: Alarm.TAMPER,
    0x14: Alarm.DOOR,
    0x15: Alarm.POWER_OFF,  # switched off by low battery
    0x18: Alarm.TAMPER,  # cover removed
    0x19: Alarm.LOW_BATTERY,  # low internal battery
    0x1A: Alarm.OTHER,  # harsh braking
    0x1B: Alarm.OTHER,  # cornering
    0x23: Alarm.FALL,
    0x25: Alarm.TAMPER,
    0x26: Alarm.OTHER,  # harsh acceleration
    0x27: Alarm.OTHER,  # harsh braking
    0x28: Alarm.OTHER,  # harsh braking
    0x29: Alarm.OTHER,  # harsh acceleration
    0x2A: Alarm.OTHER,  # sharp left turn
    0x2B: Alarm.OTHER,  # sharp right turn
    0x2C: Alarm.COLLISION,
    0x2E: Alarm.OTHER,  # cornering
    0x30: Alarm.OTHER,  # harsh braking (traccar: jamming)
    0x32: Alarm.TAMPER,  # unplugged
    0x53: Alarm.OTHER,  # fuel leak
    0x5B: Alarm.OTHER,  # temperature
    0x5C: Alarm.OTHER,  # temperature
    0xF0: Alarm.OTHER,  # harsh acceleration
    0xF1: Alarm.OTHER,  # harsh braking
    0xF2: Alarm.COLLISION,
    0x0107: Alarm.OTHER,  # jamming (0x27/0xA4 language high nibble 1)
    0x010B: Alarm.OTHER,  # jamming
}

#: Terminal-info bits 5-3 (protocols.md §5.3; 6 and 7 are traccar's additions).
_STATUS_ALARMS: dict[int, Alarm] = {
    1: Alarm.VIBRATION,
    2: Alarm.POWER_CUT,
    3: Alarm.LOW_BATTERY,
    4: Alarm.SOS,
    6: Alarm.GEOFENCE,
    7: Alarm.TAMPER,
}
_STATUS_STATES = frozenset(_STATUS_ALARMS.values())

#: JC100/JC400 `0x95` event codes (traccar); 0x01 is SOS only in the long form.
_VIDEO_EVENTS: dict[int, Alarm] = {
    0x0E: Alarm.LOW_POWER,
    0x76: Alarm.OTHER,  # temperature
    0x80: Alarm.VIBRATION,
    0x87: Alarm.OVERSPEED,
    0x88: Alarm.POWER_CUT,
    0x90: Alarm.OTHER,  # harsh acceleration
    0x91: Alarm.OTHER,  # harsh braking
    0x92: Alarm.OTHER,  # cornering
    0x93: Alarm.COLLISION,
}

#: `0x70` module 0x34 event codes (traccar).
_MODULAR_EVENTS: dict[int, Alarm] = {
    0x10: Alarm.DOOR,
    0x12: Alarm.TAMPER,  # removal
    0x14: Alarm.GEOFENCE_ENTER,
    0x15: Alarm.GEOFENCE_EXIT,
    0x16: Alarm.OTHER,  # temperature
    0x1A: Alarm.LOW_BATTERY,
    0x1B: Alarm.OVERSPEED,
    0x1D: Alarm.POWER_OFF,
    0x20: Alarm.VIBRATION,
    0x21: Alarm.POWER_CUT,
    0x23: Alarm.TAMPER,
}

#: AZ735 `0x33` status byte values that are alarms (traccar).
_AZ735_ALARMS: dict[int, Alarm] = {
    0xA2: Alarm.LOW_BATTERY,
    0xA3: Alarm.LOW_BATTERY,
    0xA4: Alarm.OTHER,
    0xA5: Alarm.DOOR,
}

#: Voltage level 0-6 (VL03 §2) as a battery percentage, the usual linear reading (traccar).
_VOLTAGE_LEVEL_PERCENT = (0.0, 17.0, 33.0, 50.0, 67.0, 83.0, 100.0)

#: Coordinates are minutes x 30000 (protocols.md §5.4).
_COORDINATE_SCALE = 1_800_000

#: GPS block after its 6 date bytes: satellites, latitude, longitude, speed, course/status.
_GPS = struct.Struct(">BIIBH")
#: The whole 18-byte block: the date bytes, then as `_GPS`.
_GPS_BLOCK = struct.Struct(">6BBIIBH")
_GPS_SIZE = _GPS_BLOCK.size

#: Bits of the course/status word (protocols.md §5.4).
_COURSE_MASK = 0x03FF
_NORTH = 0x0400
_WEST = 0x0800
_FIXED = 0x1000
_ACC_KNOWN = 0x4000  # traccar: bit 14 set means bit 15 is the ACC state
_ACC_ON = 0x8000

#: MCC bit 15: the MNC that follows takes two bytes (VL03 §10).
_MNC_WIDE = 0x8000

#: MCC, MNC, LAC, cell id by (MNC, LAC, cell id) sizes: 2G is 1/2/3 bytes, 4G 1-2/4/8.
_FIELD_CODES = {1: "B", 2: "H", 3: "BH", 4: "I", 8: "Q"}
_CELL_LAYOUTS = {
    (mnc, lac, cid): struct.Struct(">H" + _FIELD_CODES[mnc] + _FIELD_CODES[lac] + _FIELD_CODES[cid])
    for mnc in (1, 2)
    for lac in (2, 4)
    for cid in (3, 4, 8)
}

#: `Current position!Lat:N54.739332,Lon:E25.273270,Course:126.53,Speed:0.0000,DateTime:...`
#: answering `WHERE#` (traccar `PATTERN_LOCATION`, gt06:122).
_POSITION_TEXT = re.compile(
    r"Current position!Lat:([NS])(\d+(?:\.\d+)?),Lon:([EW])(\d+(?:\.\d+)?),"
    r"Course:(\d+(?:\.\d+)?),Speed:(\d+(?:\.\d+)?),"
    r"DateTime:(\d{4})-(\d\d)-(\d\d) +(\d\d):(\d\d):(\d\d)"
)
#: Relay state stated by a reply text (CONCOX-MAN, gt06:129-131): "Restore fuel supply",
#: "Already in the state of fuel supply to resume", "HFYD=Success!" / "Cut off the fuel supply",
#: "DYD=Success!".
_RELAY_RESTORED_TEXT = re.compile(r"restore|resume|\bHFYD\b", re.IGNORECASE)
_RELAY_CUT_TEXT = re.compile(r"cut off|\bDYD\b", re.IGNORECASE)
_FIRMWARE_BANNER = re.compile(rb"\[VERSION\]([\x20-\x5a\x5c-\x7e]+)")

#: Building a NamedTuple through tuple.__new__ skips its Python-level __new__; the fast path
#: gives every field, in `Message._fields` order.
_new_message = partial(tuple.__new__, Message)

_START_SHORT = b"\x78\x78"
_START_LONG = b"\x79\x79"
_STOP = b"\r\n"
#: 0x9B data counts as text when every byte is printable ASCII or white space.
_PRINTABLE = frozenset(range(0x20, 0x7F)) | frozenset(b"\r\n\t")


class _TruncatedError(Exception):
    """A block the packet type promises is missing: the frame decodes as OTHER, still answered."""


class _Draft:
    """The message being decoded from one frame: its fields, alarms, cells and reply."""

    __slots__ = (
        "ack", "alarms", "cells", "ctx", "data", "end", "fields", "frame", "kind", "length",
        "offset", "wifi",
    )  # fmt: skip

    def __init__(
        self, frame: bytes, kind: int, data: bytes, ctx: Context, offset: timedelta | None
    ) -> None:
        self.frame = frame
        #: the protocol number
        self.kind = kind
        #: the `78 78` length byte, by which traccar tells vendor layouts apart; -1 in `79 79`
        self.length = frame[2] if frame[0] == 0x78 else -1
        #: the bytes after the protocol number, up to the 0D 0A (serial and CRC included)
        self.data = data
        #: where the content ends in `data` (the serial and CRC follow)
        self.end = max(0, len(data) - 4)
        self.ctx = ctx
        #: the login's time zone for this packet type, None for UTC types
        self.offset = offset
        self.fields: dict[str, Any] = {}
        self.alarms: list[Alarm] = []
        self.cells: list[Cell] = []
        self.wifi: list[WifiAccessPoint] = []
        self.ack: bytes | None = None


# ---------------------------------------------------------------------------------------------
# Field readers
# ---------------------------------------------------------------------------------------------


def _binary_time(data: bytes, off: int, offset: timedelta | None) -> datetime | None:
    """Six binary bytes `yy mm dd hh mi ss`; None for an impossible date (all zeros)."""
    year, month, day, hour, minute, second = data[off : off + 6]
    try:
        moment = make_utc(2000 + year, month, day, hour, minute, second)
    except FrameError:
        return None
    return moment - offset if offset else moment


def _bcd_time(data: bytes, off: int) -> datetime | None:
    """Six BCD bytes `yy mm dd hh mi ss`, UTC (Wi-Fi frames); None when not a valid date."""
    raw = data[off : off + 6]
    if len(raw) < 6:
        return None
    try:
        return make_utc(*bcd_datetime(raw))
    except FrameError:
        return None


def _set_position(d: _Draft, lat_raw: int, lon_raw: int, flags: int, speed: float | None) -> None:
    """Apply coordinates and the course/status word (protocols.md §5.4)."""
    latitude = lat_raw / _COORDINATE_SCALE
    longitude = lon_raw / _COORDINATE_SCALE
    fields = d.fields
    if latitude > 90 or longitude > 180:
        # A vendor layout read as the standard one (gt06:166, gt06:170): no position in it.
        fields["valid"] = False
        return
    fields["latitude"] = latitude if flags & _NORTH else -latitude
    fields["longitude"] = -longitude if flags & _WEST else longitude
    fields["course"] = float(flags & _COURSE_MASK)
    fields["valid"] = bool(flags & _FIXED)
    if speed is not None:
        fields["speed_kmh"] = speed
    fields["position_source"] = PositionSource.GNSS
    if flags & _ACC_KNOWN:
        fields["ignition"] = bool(flags & _ACC_ON)


def _gps(d: _Draft, off: int) -> int:
    """Read the 18-byte GPS block at `off` and return the offset after it.

    The block may run into the serial bytes of a frame whose tail is missing (gt06:37,
    gt06:100), as traccar reads it; only a block cut short is an error.
    """
    data = d.data
    if len(data) < off + _GPS_SIZE:
        raise _TruncatedError
    year, month, day, hour, minute, second, satellites, lat_raw, lon_raw, speed, flags = (
        _GPS_BLOCK.unpack_from(data, off)
    )
    try:
        moment: datetime | None = datetime(
            2000 + year, month, day, hour, minute, second, tzinfo=UTC
        )
    except ValueError:
        moment = None  # all zeros before the first fix (gt06:190)
    offset = d.offset
    d.fields["time"] = moment - offset if moment and offset else moment
    d.fields["satellites"] = satellites & 0x0F
    _set_position(d, lat_raw, lon_raw, flags, float(speed))
    return off + _GPS_SIZE


@lru_cache(maxsize=1024)
def _shared_cell(mcc: int, mnc: int, lac: int, cid: int, rssi: int | None = None) -> Cell:
    """One immutable Cell per identity: a device reports the same few cells over and over."""
    return Cell(mcc=mcc, mnc=mnc, lac=lac, cid=cid, rssi=rssi)


def _cell(
    d: _Draft, off: int, *, lac_size: int = 2, cid_size: int = 3, wide_mnc: bool = False
) -> int | None:
    """Read MCC, MNC, LAC and cell id at `off`; the offset after them, None if cut short.

    A cell without LAC and cell id identifies nothing and is not kept.
    """
    data = d.data
    if len(data) < off + 2:
        return None
    mnc_size = 2 if wide_mnc or data[off] & 0x80 else 1  # MCC bit 15
    layout = _CELL_LAYOUTS[mnc_size, lac_size, cid_size]
    after = off + layout.size
    if d.end < after:
        return None
    if cid_size == 3:
        mcc, mnc, lac, cid_high, cid_low = layout.unpack_from(data, off)
        cid = cid_high << 16 | cid_low
    else:
        mcc, mnc, lac, cid = layout.unpack_from(data, off)
    if lac or cid:
        d.cells.append(_shared_cell(mcc & 0x7FFF, mnc, lac, cid))
    return after


def _lbs_block(d: _Draft, off: int) -> int:
    """LBS block led by its length byte (0x16/0x26/0x27/0xA4); the offset after it.

    The length counts itself: 9 for a 2G cell (8 also occurs, gt06:40), 16 or 17 for the 4G
    sizes (0xA4, §5.5). Zero means no cell; some firmware then still sends 45 zero bytes,
    which traccar skips.
    """
    data = d.data
    if off >= d.end:
        return off
    length = data[off]
    start = off + 1
    if length == 0:
        zero_fill = data[start + 9 : min(start + 45, d.end)]
        if zero_fill and not any(zero_fill):
            return min(start + 45, d.end)
        return start
    lte = length >= 16
    after = _cell(d, start, lac_size=4 if lte else 2, cid_size=8 if lte else 3)
    return max(after or start, off + length)


def _terminal_info(d: _Draft, info: int) -> None:
    """Terminal-info byte (protocols.md §5.3): relay, status alarm, charging, ACC."""
    fields = d.fields
    fields["relay"] = bool(info & 0x80)
    fields["charging"] = bool(info & 0x04)
    fields["ignition"] = bool(info & 0x02)
    fields["alarm_states"] = _STATUS_STATES
    alarm = _STATUS_ALARMS.get((info >> 3) & 0x07)
    if alarm is not None:
        d.alarms.append(alarm)


def _battery_level(d: _Draft, level: int) -> None:
    """Voltage level 0-6, or a percentage from firmware that sends one (traccar)."""
    if level <= 6:
        d.fields["battery_percent"] = _VOLTAGE_LEVEL_PERCENT[level]
    elif level <= 100:
        d.fields["battery_percent"] = float(level)


def _gsm_level(d: _Draft, level: int) -> None:
    """GSM level 0-4 scaled to 0..100, or a percentage from firmware that sends one."""
    if level <= 4:
        d.fields["gsm_signal"] = level * 25
    elif level <= 100:
        d.fields["gsm_signal"] = level


def _alarm_code(d: _Draft, code: int) -> None:
    alarm = _ALARM_CODES.get(code)
    if alarm is not None:
        d.alarms.append(alarm)


def _status(d: _Draft, off: int, *, alarm: bool, fence: bool = False) -> int:
    """Terminal info, voltage level, GSM level and, when `alarm`, the alarm + language bytes.

    `fence` (0x27, 0xA4): the language byte's high nibble extends the alarm code (traccar).
    """
    data = d.data
    if d.end < off + 3:
        return off
    info, level, gsm = data[off : off + 3]
    _terminal_info(d, info)
    _battery_level(d, level)
    _gsm_level(d, gsm)
    off += 3
    if alarm and off < d.end:
        code = data[off]
        if fence and off + 1 < d.end:
            code |= (data[off + 1] >> 4) << 8
        _alarm_code(d, code)
        off += 2
    return off


def _report_tail(d: _Draft, off: int, *, exact: bool) -> None:
    """ACC, upload mode and re-upload bytes after the cell (0x22 family, §5.4), and the
    mileage DWORD that may follow them (VL03 "mileage statistics").

    With `exact`, only when exactly those 3 bytes (or 3 + a mileage DWORD) remain, which is
    how traccar recognises them in layouts that do not always carry them. 0x37 follows them
    with a module (id WORD, length, value) and SeeWorld's 0x2F-long 0x22 with more fields.
    """
    remaining = d.end - off
    if remaining < 3 or (exact and remaining not in (3, 7)):
        return
    data = d.data
    d.fields["ignition"] = data[off] > 0
    if data[off + 2]:
        d.fields["historical"] = True
    if remaining == 7 or (d.kind == PacketType.GPS_LBS_UTC and d.length == _SEEWORLD_LENGTH):
        _mileage(d, off + 3)
    elif d.kind == PacketType.GPS_LBS_3 and remaining >= 6:
        module, size = int.from_bytes(data[off + 3 : off + 5]), data[off + 5]
        if remaining >= 6 + size:
            if module == 0x002E and size == 4:
                _mileage(d, off + 6)
            elif module == 0x0027 and size == 2:
                d.fields["power_voltage"] = _volts(data, off + 6)


#: SeeWorld's 0x22 report (traccar variant SEEWORLD): the 3 tail bytes, then the odometer.
_SEEWORLD_LENGTH = 0x2F


def _mileage(d: _Draft, off: int, scale: int = 1) -> None:
    """A mileage DWORD at `off`, in metres times `scale` (traccar stores GT06 mileage as
    metres), as the odometer in km."""
    d.fields["odometer_km"] = int.from_bytes(d.data[off : off + 4]) * scale / 1000


def _volts(data: bytes, off: int, scale: float = 100.0) -> float:
    return int.from_bytes(data[off : off + 2]) / scale


def _ascii(raw: bytes) -> str:
    return raw.decode("ascii", "replace")


def _position_type(d: _Draft) -> MessageType:
    return MessageType.ALARM if d.alarms else MessageType.LOCATION


# ---------------------------------------------------------------------------------------------
# Login, status, heartbeat
# ---------------------------------------------------------------------------------------------


def _login(d: _Draft) -> MessageType:
    """IMEI (BCD, pad digit dropped), type id, time-zone word (protocols.md §5.2)."""
    data = d.data
    if len(data) < 8:
        raise FrameError("GT06 login without a terminal id")
    imei, info, offset = _login_facts(data, d.end)
    ctx = d.ctx
    ctx.device_id = imei
    if offset is not None:
        ctx.gt06_utc_offset = offset
    ctx.info.update(info)
    d.fields["device_id"] = imei
    d.fields["info"] = info
    return MessageType.LOGIN


@lru_cache(maxsize=1024)
def _login_facts(
    data: bytes, end: int
) -> tuple[str, tuple[tuple[str, str], ...], timedelta | None]:
    """The IMEI, the facts for the device description and the time zone of a login whose
    content (`end` bytes before the serial) starts `data`. Raises FrameError for a non-BCD id."""
    digits = bcd_digits(data[:8])
    imei = digits[1:] if digits[0] == "0" else digits
    info = [("imei", imei)]
    offset: timedelta | None = None
    if end >= 10:
        info.append(("type_id", data[8:10].hex()))
    if end >= 12:
        word = int.from_bytes(data[10:12])
        zone = word >> 4  # hours x 100 + minutes
        minutes = (zone // 100) * 60 + zone % 100
        if word & 0x08:  # west of Greenwich
            minutes = -minutes
        offset = timedelta(minutes=minutes)
        sign = "-" if minutes < 0 else "+"
        info.append(("timezone", f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"))
    return imei, tuple(info), offset


def _status_packet(d: _Draft) -> MessageType:
    """0x13: terminal info, voltage level, GSM level, language (protocols.md §5.3).

    Two longer layouts traccar recognises by size: OBD6 (14 content bytes: signal word, alarm,
    battery %, external voltage) and a 16-byte one with a battery percentage.
    """
    data = d.data
    size = d.end
    if size == 14:
        _terminal_info(d, data[0])
        _gsm_level(d, round((data[2] & 0x1F) * 100 / 31))
        _alarm_code(d, data[3])
        d.fields["battery_percent"] = float(min(data[5], 100))
        d.fields["power_voltage"] = _volts(data, 7)
    elif size == 16:
        d.fields["battery_percent"] = float(min(data[5], 100))
    elif size >= 3:
        _status(d, 0, alarm=False)
    elif size >= 1:
        _terminal_info(d, data[0])
    return MessageType.HEARTBEAT


def _heartbeat(d: _Draft) -> MessageType:
    """0x23 (GK310): status byte, battery volts, GSM level (traccar)."""
    data = d.data
    if d.end >= 1:
        status = data[0]
        d.fields["charging"] = bool(status & 0x04)
        d.fields["ignition"] = bool(status & 0x02)
    if d.end >= 3:
        d.fields["battery_voltage"] = _volts(data, 1)
    if d.end >= 4:
        _gsm_level(d, data[3])
    return MessageType.HEARTBEAT


# ---------------------------------------------------------------------------------------------
# GPS reports
# ---------------------------------------------------------------------------------------------


def _gps_only(d: _Draft) -> MessageType:
    """A GPS block first; what follows is vendor-specific and not read."""
    _gps(d, 0)
    return _position_type(d)


def _gps_lbs_offline(d: _Draft) -> MessageType:
    """0x11: GPS + cell with a 2-byte MNC and 4-byte cell id (gt06:48)."""
    after = _cell(d, _gps(d, 0), cid_size=4, wide_mnc=True)
    if after is not None:
        _report_tail(d, after, exact=True)
    return _position_type(d)


def _gps_lbs(d: _Draft) -> MessageType:
    """0x12: GPS + 2G cell, then what the length byte says follows (traccar variants)."""
    after = _cell(d, _gps(d, 0))
    if after is None:
        return _position_type(d)
    data = d.data
    length = d.length
    if length in (0x24, 0x2B) and d.end >= after + 4:
        # VXT01 (0x24) / S5 (0x2B): terminal info, external volts, GSM level, alarm
        _terminal_info(d, data[after])
        d.fields["power_voltage"] = _volts(data, after + 1)
        _gsm_level(d, data[after + 3])
        if length == 0x2B and d.end > after + 4:
            _alarm_code(d, data[after + 4])
            if d.end >= after + 12:  # then oil WORD, temperature, odometer in 10 m
                _mileage(d, after + 8, scale=10)
    elif length == 0x21 and d.end >= after + 2:
        d.fields["ignition"] = bool(data[after] & 0x80)  # Benway input mask
    else:
        _report_tail(d, after, exact=True)
    return _position_type(d)


def _gps_lbs_utc(d: _Draft) -> MessageType:
    """0x22 / 0x2D / 0x37: GPS + 2G cell + ACC, upload mode, re-upload (protocols.md §5.4)."""
    after = _cell(d, _gps(d, 0))
    if after is not None:
        _report_tail(d, after, exact=False)
    return _position_type(d)


def _gps_lbs_4g(d: _Draft) -> MessageType:
    """0xA0: 0x22 with the 4G cell (LAC DWORD, cell id QWORD), VL03 §10."""
    after = _cell(d, _gps(d, 0), lac_size=4, cid_size=8)
    if after is not None:
        _report_tail(d, after, exact=True)
    return _position_type(d)


def _gps_alarm(d: _Draft) -> MessageType:
    """0x16 / 0x26 / 0x27 / 0xA4: GPS, LBS block, status, alarm (protocols.md §5.5).

    A 0x16 one byte short (31 content bytes, traccar's VXT01) has no LBS length byte and its
    alarm byte is not the §5.5 code.
    """
    off = _gps(d, 0)
    kind = d.kind
    if kind == PacketType.GPS_LBS_STATUS and d.end == 31:
        _status(d, _cell(d, off) or off + 8, alarm=False)
        return MessageType.ALARM
    fence = kind in (PacketType.GPS_LBS_STATUS_FENCES, PacketType.FENCE_MULTI_4G)
    off = _status(d, _lbs_block(d, off), alarm=True, fence=fence)
    if not fence and d.end - off == 4:
        _mileage(d, off)  # VL03 0x26: "mileage statistics" after the alarm and language
    return MessageType.ALARM


def _alarm_module(d: _Draft) -> MessageType:
    """0x39 (Jimi 4G): GPS, cell type, cell (4G sizes from type 3) and its signal, status,
    alarm extended by the language byte, then status modules (traccar `MSG_ALARM_MODULE`)."""
    off = _gps(d, 0)
    data = d.data
    if d.end <= off:
        return _position_type(d)
    lte = data[off] >= 3
    after = _cell(d, off + 1, lac_size=4 if lte else 2, cid_size=8 if lte else 3)
    if after is not None:
        _status_modules(d, _status(d, after + (2 if lte else 1), alarm=True, fence=True))
    return MessageType.ALARM


def _status_modules(d: _Draft, off: int) -> None:
    """(id WORD, length, value) modules after a status block: battery volts and level."""
    data = d.data
    while off + 3 <= d.end:
        module, size = int.from_bytes(data[off : off + 2]), data[off + 2]
        value = data[off + 3 : off + 3 + size]
        if len(value) < size:
            break
        if module == 0x0018 and size >= 2:
            d.fields["battery_voltage"] = int.from_bytes(value[:2]) / 100
        elif module == 0x006A and size >= 1:
            d.fields["battery_percent"] = float(min(value[0], 100))
        off += 3 + size


def _gps_lbs_8(d: _Draft) -> MessageType:
    """0x38: GPS, upload mode, re-upload, cell type, cell (4G sizes from type 3), gt06:8."""
    off = _gps(d, 0)
    data = d.data
    if d.end >= off + 3:
        if data[off + 1] == 1:
            d.fields["historical"] = True
        lte = data[off + 2] >= 3
        _cell(d, off + 3, lac_size=4 if lte else 2, cid_size=8 if lte else 3)
    return _position_type(d)


def _ibutton(d: _Draft) -> MessageType:
    """0x61: IMEI, GPS, cell with a 4-byte id, iButton id (gt06:5)."""
    if d.end < 8:
        raise _TruncatedError
    _cell(d, _gps(d, 8), cid_size=4)
    return _position_type(d)


def _x1_gps(d: _Draft) -> MessageType:
    """0x34 (X1): alarm word, GPS, terminal word, odometer, cell, driver, battery and power.

    The 0x37-long SL4X form is a cell list traccar parses differently: not decoded.
    """
    if d.length == 0x37:
        return MessageType.OTHER
    if d.end < 4:
        raise _TruncatedError
    off = _gps(d, 4) + 6  # terminal info word, odometer
    if d.end >= off:
        _mileage(d, off - 4)
    after = _cell(d, off, cid_size=4)
    if after is not None and d.end >= after + 8:
        d.fields["battery_voltage"] = _volts(d.data, after + 4)
        d.fields["power_voltage"] = _volts(d.data, after + 6)
    return _position_type(d)


def _status_2(d: _Draft) -> MessageType:
    """0x36: TRX16I GPS report when 0x35 long, else Jimi 4G status with modules (traccar)."""
    data = d.data
    if d.length == 0x35:
        after = _cell(d, _gps(d, 0), cid_size=4)
        if after is not None and d.end >= after + 10:
            d.fields["ignition"] = data[after] > 0
            if data[after + 2]:
                d.fields["historical"] = True
            d.fields["power_voltage"] = _volts(data, after + 7)
            d.fields["battery_voltage"] = data[after + 9] / 10
        return _position_type(d)
    _status_modules(d, _status(d, 0, alarm=True))
    return MessageType.ALARM if d.alarms else MessageType.HEARTBEAT


def _fence_single(d: _Draft) -> MessageType:
    """0xA3: SeeWorld status (0x0C / 0x18 long: terminal info first), else a GPS report."""
    if d.length in (0x0C, 0x18):
        if d.end >= 1:
            _terminal_info(d, d.data[0])
        return MessageType.HEARTBEAT
    return _gps_only(d)


def _wifi_4g(d: _Draft) -> MessageType:
    """0xA2: LW4G GPS + 4G cell + status when 0x40 long, else 4G cells + Wi-Fi list."""
    if d.length != 0x40:
        return _cell_list(d, lte=True, wifi=True)
    after = _cell(d, _gps(d, 0), lac_size=4, cid_size=8)
    if after is not None and d.end >= after + 8:
        data = d.data
        _terminal_info(d, data[after + 1])  # after the network indicator
        d.fields["power_voltage"] = _volts(data, after + 2)
        _battery_level(d, data[after + 4])
        _gsm_level(d, data[after + 5])
        _alarm_code(d, data[after + 6])
        if d.end >= after + 12:  # after the language byte
            _mileage(d, after + 8)
    return _position_type(d)


def _modular(d: _Draft) -> MessageType:
    """0x70: a list of (type WORD, length WORD, data) modules (traccar `MSG_GPS_MODULAR`)."""
    data = d.data
    off = 0
    fields = d.fields
    while off + 4 <= d.end:
        module = int.from_bytes(data[off : off + 2])
        size = int.from_bytes(data[off + 2 : off + 4])
        at = off + 4
        off = at + size
        if off > d.end:
            break
        if module == 0x33 and size >= 18:
            epoch = int.from_bytes(data[at : at + 4])
            fields["time"] = datetime.fromtimestamp(epoch, UTC) if epoch else None
            fields["satellites"] = data[at + 4]
            fields["altitude_m"] = float(int.from_bytes(data[at + 5 : at + 7], signed=True))
            lat_raw, lon_raw, speed, flags = struct.unpack_from(">IIBH", data, at + 7)
            _set_position(d, lat_raw, lon_raw, flags, float(speed))
        elif module == 0x34 and size >= 1:
            alarm = _MODULAR_EVENTS.get(data[at])
            if alarm is not None:
                d.alarms.append(alarm)
        elif module == 0x11 and size >= 10:
            mcc, mnc, lac = struct.unpack_from(">HHH", data, at)
            cid = int.from_bytes(data[at + 6 : at + 9])
            if cid:
                d.cells.append(_shared_cell(mcc, mnc, lac, cid, data[at + 9]))
        elif module == 0x18 and size >= 2:
            fields["battery_voltage"] = _volts(data, at)
        elif module == 0x09 and size >= 1:
            fields["satellites"] = data[at]
        elif module == 0x28 and size >= 1:
            fields["hdop"] = data[at] / 10
        elif module == 0x03 and size >= 10:
            fields["info"] = (("iccid", data[at : at + 10].hex().rstrip("f")),)
        elif module == 0x2E and size >= 4:
            # Metres, big-endian like every other field: traccar reads it little-endian,
            # which turns gt06:69 and gt06:68 (three weeks apart) into 3,253,731 km and
            # 1,576,141 km; read big-endian they are 61.6 km and 62.0 km.
            fields["odometer_km"] = int.from_bytes(data[at : at + 4]) / 1000
    if "latitude" in fields:
        return _position_type(d)
    if d.alarms:
        return MessageType.ALARM
    if d.cells:
        fields["position_source"] = PositionSource.LBS
        return MessageType.LBS
    return MessageType.OTHER


def _az735(d: _Draft, *, alarm: bool) -> MessageType:
    """`79 79` 0x32 / 0x33 (AZ735): GPS with a length byte, LBS with one, skipped cell and
    Wi-Fi blocks, then a status byte that 0x33 turns into an alarm (traccar)."""
    data = d.data
    if d.end < 7:
        raise _TruncatedError
    d.fields["time"] = _binary_time(data, 0, d.offset)
    off = 7
    if data[6]:
        if len(data) < 7 + _GPS.size:
            raise _TruncatedError
        satellites, lat_raw, lon_raw, speed, flags = _GPS.unpack_from(data, 7)
        d.fields["satellites"] = satellites & 0x0F
        _set_position(d, lat_raw, lon_raw, flags, float(speed))
        off += _GPS.size
    if off < d.end and data[off]:
        start = off + 1
        after = _cell(d, start)
        off = max(after or start, off + data[off])
        if after is not None:
            off += 1  # RSSI, on a scale traccar does not document
    elif off < d.end:
        off += 1
    for _block in range(2):  # additional cells, Wi-Fi access points
        if off < d.end:
            off += 1 + data[off]
    if alarm and off < d.end:
        code = _AZ735_ALARMS.get(data[off])
        if code is not None:
            d.alarms.append(code)
    if alarm:
        return MessageType.ALARM
    if "latitude" in d.fields:
        return MessageType.LOCATION
    d.fields["position_source"] = PositionSource.LBS
    return MessageType.LBS


def _az735_report(d: _Draft) -> MessageType:
    """0x32: AZ735 layout in `79 79` frames, a GPS block first in `78 78` ones."""
    return _az735(d, alarm=False) if d.frame[0] == 0x79 else _gps_only(d)


def _az735_alarm(d: _Draft) -> MessageType:
    """0x33: AZ735 alarm in `79 79` frames; the `78 78` form is a cell + Wi-Fi list."""
    if d.frame[0] == 0x79:
        return _az735(d, alarm=True)
    return _cell_list(d, lte=False, wifi=True, cells=6, cid_size=4)


def _alarm_video(d: _Draft) -> MessageType:
    """0x95 (JC100/JC400): date or position, event code, event data (traccar `MSG_ALARM`).

    More than 7 content bytes carry a position: JC400 (marker FFFF) with satellites, course
    word before a 2-byte speed and a power word; JC100 with only coordinates and course word.
    """
    data = d.data
    fields = d.fields
    declared = d.length if d.length >= 0 else int.from_bytes(d.frame[2:4])
    extended = declared - 5 > 7  # content bytes, by the length field as traccar counts them
    if not extended:
        if d.end < 7:
            raise _TruncatedError
        fields["time"] = _binary_time(data, 0, d.offset)
        off = 6
    elif data[:2] == b"\xff\xff":
        if d.end < 25:
            raise _TruncatedError
        fields["time"] = _binary_time(data, 3, d.offset)
        satellites, lat_raw, lon_raw, flags, speed = struct.unpack_from(">BIIHH", data, 9)
        fields["satellites"] = satellites & 0x0F
        _set_position(d, lat_raw, lon_raw, flags, float(speed))
        fields["power_voltage"] = _volts(data, 22, 10.0)
        off = 24
    else:
        if d.end < 17:
            raise _TruncatedError
        fields["time"] = _binary_time(data, 0, d.offset)
        lat_raw, lon_raw, flags = struct.unpack_from(">IIH", data, 6)
        _set_position(d, lat_raw, lon_raw, flags, None)  # this form has no speed
        off = 16
    event = data[off]
    alarm = (Alarm.SOS if extended else Alarm.OTHER) if event == 0x01 else _VIDEO_EVENTS.get(event)
    if alarm is not None:
        d.alarms.append(alarm)
    return MessageType.ALARM


# ---------------------------------------------------------------------------------------------
# LBS and Wi-Fi
# ---------------------------------------------------------------------------------------------


def _lbs_status(d: _Draft) -> MessageType:
    """0x19: 2G cell + status + alarm (protocols.md §5.5).

    From 18 content bytes on it is traccar's SPACE10X multi-cell layout, which traccar drops:
    nothing in it is decoded.
    """
    if d.end >= 18:
        return MessageType.OTHER
    _status(d, _cell(d, 0) or 8, alarm=True)
    d.fields["position_source"] = PositionSource.LBS
    return MessageType.ALARM


def _lbs_alarm_4g(d: _Draft) -> MessageType:
    """0xA5: 4G cell (LAC DWORD, cell id QWORD) + status + alarm (0x19 with 4G sizes)."""
    after = _cell(d, 0, lac_size=4, cid_size=8)
    if after is not None:
        _status(d, after, alarm=True)
    d.fields["position_source"] = PositionSource.LBS
    return MessageType.ALARM


def _cell_list(
    d: _Draft,
    *,
    lte: bool,
    wifi: bool,
    cells: int = 7,
    cid_size: int = 3,
    counted: bool = False,
) -> MessageType:
    """Date, MCC, MNC, then `cells` x (LAC, cell id, RSSI), timing advance and, with `wifi`,
    a counted (MAC, RSSI) list: 0x28 / 0x2E / 0x24 / 0x18 / 0xA1 / 0x2C / 0xA2 (§5.6).

    `counted` (traccar's WANWAY S20 0x24): timing advance before the MCC, a cell count after
    the MNC and no Wi-Fi. Cells with LAC 0 are empty slots.
    """
    _read_cell_list(d, lte=lte, wifi=wifi, cells=cells, cid_size=cid_size, counted=counted)
    return _cell_list_type(d, wifi=wifi)


def _cell_list_type(d: _Draft, *, wifi: bool) -> MessageType:
    if d.wifi or (wifi and not d.cells):
        d.fields["position_source"] = PositionSource.WIFI
        return MessageType.WIFI
    d.fields["position_source"] = PositionSource.LBS
    return MessageType.LBS


def _read_cell_list(
    d: _Draft,
    *,
    lte: bool,
    wifi: bool,
    cells: int = 7,
    cid_size: int = 3,
    counted: bool = False,
    typed: bool = False,
) -> int:
    """Read what `_cell_list` describes; return the offset after it.

    `typed` (0xA9): after the MNC a byte says whether the cells have 4G sizes, then a count.
    """
    data = d.data
    end = d.end
    if end < 9:
        raise _TruncatedError
    fields = d.fields
    fields["time"] = _binary_time(data, 0, d.offset)
    off = 7 if counted else 6
    mcc = int.from_bytes(data[off : off + 2])
    mnc_size = 2 if mcc & _MNC_WIDE else 1
    mnc = int.from_bytes(data[off + 2 : off + 2 + mnc_size])
    mcc &= 0x7FFF
    off += 2 + mnc_size
    if typed:
        lte = off < end and data[off] > 0
        off += 1
    if counted or typed:
        cells = data[off] if off < end else 0
        off += 1
    lac_size = 4 if lte else 2
    if lte:
        cid_size = 8
    step = lac_size + cid_size + 1
    for _slot in range(cells):
        if off + step > end:
            break
        lac = int.from_bytes(data[off : off + lac_size])
        if lac:
            cid = int.from_bytes(data[off + lac_size : off + step - 1])
            d.cells.append(_shared_cell(mcc, mnc, lac, cid, -data[off + step - 1]))
        off += step
    off += 1  # timing advance
    if wifi and off < end:
        count = data[off]
        off += 1
        for _entry in range(count):
            if off + 7 > end:
                break
            mac = data[off : off + 6]
            if any(mac):  # unused slots are zero-filled (gt06:84)
                d.wifi.append(WifiAccessPoint(mac=mac_text(mac), rssi=data[off + 6]))
            off += 7
    return off


def _wifi_alarm(d: _Draft) -> MessageType:
    """0xA9 (Jimi 4G): date, MCC, MNC, 4G flag, counted cells, Wi-Fi list, then the alarm
    byte extended by the language byte's high nibble (traccar `MSG_WIFI_ALARM`)."""
    off = _read_cell_list(d, lte=False, wifi=True, typed=True)
    if off + 2 <= d.end:
        _alarm_code(d, (d.data[off + 1] >> 4) << 8 | d.data[off])
    kind = _cell_list_type(d, wifi=True)
    return MessageType.ALARM if d.alarms else kind


#: The address traccar answers 0x2A with: none ("NA"), which stops the device asking.
_NO_ADDRESS = b"NA&&NA&&0##"


def _address_request(d: _Draft) -> MessageType:
    """0x2A: a GPS block and a phone number; the device wants an address for an SMS.

    Answered as traccar does, with a `79 79` 0x97 carrying no address (length, server flag 0,
    `NA&&NA&&0##`) and serial 0, so the device stops asking (protocols.md §5.5).
    """
    content = bytes((len(_NO_ADDRESS),)) + bytes(4) + _NO_ADDRESS
    d.ack = _packet(PacketType.ADDRESS_RESPONSE, content, bytes(2), long_form=True)
    return _gps_only(d)


def _lbs_address(d: _Draft) -> MessageType:
    """0xA7 (GK310): a 2G cell, then a phone number asking for an address; traccar reads the
    cell and answers with the general acknowledgement (gt06:88)."""
    _cell(d, 0)
    if not d.cells:
        return MessageType.OTHER
    d.fields["position_source"] = PositionSource.LBS
    return MessageType.LBS


def _lbs_multiple(d: _Draft) -> MessageType:
    """0x28 / 0x2E: serving + 6 neighbour cells (protocols.md §5.6)."""
    return _cell_list(d, lte=False, wifi=False)


def _lbs_4g(d: _Draft) -> MessageType:
    """0xA1: 0x28 with 4G sizes (VL03 §11)."""
    return _cell_list(d, lte=True, wifi=False)


def _lbs_wifi(d: _Draft) -> MessageType:
    """0x2C: 0x28 cells + Wi-Fi list (§5.6)."""
    return _cell_list(d, lte=False, wifi=True)


def _lbs_extend(d: _Draft) -> MessageType:
    """0x18: 0x28 cells followed by a Wi-Fi count (gt06:128)."""
    return _cell_list(d, lte=False, wifi=True)


def _lbs_multiple_3(d: _Draft) -> MessageType:
    """0x24: by length, SR411 mini GPS report (0x2E), WANWAY S20 cell list (0x31), or 0x28."""
    length = d.length
    if length == 0x2E:
        after = _cell(d, _gps(d, 0))
        if after is not None and d.end >= after + 5:
            d.fields["ignition"] = d.data[after] > 0
            d.fields["power_voltage"] = _volts(d.data, after + 1)
            d.fields["battery_voltage"] = _volts(d.data, after + 3)
        return _position_type(d)
    if length == 0x31:
        return _cell_list(d, lte=False, wifi=False, counted=True)
    return _cell_list(d, lte=False, wifi=False)


def _wifi_counted_by_length(d: _Draft) -> MessageType:
    """0x69 / 0x17: BCD date, Wi-Fi APs counted by the length byte, then counted cells.

    These frames carry no serial or CRC and the server echoes the date:
    `78 78 00 <type> <6 date bytes> 0D 0A` (traccar, gt06:73). A 0x17 whose length and CRC are
    consistent is instead traccar's RFID report: GPS + cell (gt06:23).
    """
    frame = d.frame
    kind = d.kind
    if kind == PacketType.WIFI and _declared_size(frame) == len(frame) and _crc_ok(frame):
        _cell(d, _gps(d, 0))
        return _position_type(d)
    data = d.data
    if len(data) < 6:
        raise _TruncatedError
    d.fields["time"] = _bcd_time(data, 0)
    d.ack = _START_SHORT + bytes((0, kind)) + data[:6] + _STOP
    off = 6
    # no serial/CRC here: the content runs up to the 0D 0A
    end = len(data)
    for _entry in range(frame[2]):
        if off + 7 > end:
            break
        d.wifi.append(WifiAccessPoint(mac=mac_text(data[off : off + 6]), rssi=data[off + 6]))
        off += 7
    if off + 4 <= end:
        count = data[off]
        mcc = int.from_bytes(data[off + 1 : off + 3])
        mnc = data[off + 3]
        off += 4
        for _slot in range(count):
            if off + 5 > end:
                break
            lac = int.from_bytes(data[off : off + 2])
            cid = int.from_bytes(data[off + 2 : off + 4])
            d.cells.append(_shared_cell(mcc, mnc, lac, cid, data[off + 4]))
            off += 5
    d.fields["position_source"] = PositionSource.WIFI if d.wifi else PositionSource.LBS
    return MessageType.WIFI


def _wifi_4(d: _Draft) -> MessageType:
    """0xF3: BCD date, Wi-Fi count, (2 reserved bytes + MAC) per access point (gt06:58)."""
    data = d.data
    if d.end < 7:
        raise _TruncatedError
    d.fields["time"] = _bcd_time(data, 0)
    off = 7
    for _entry in range(data[6]):
        if off + 8 > d.end:
            break
        d.wifi.append(WifiAccessPoint(mac=mac_text(data[off + 2 : off + 8])))
        off += 8
    d.fields["position_source"] = PositionSource.WIFI
    return MessageType.WIFI


# ---------------------------------------------------------------------------------------------
# Command replies and information frames
# ---------------------------------------------------------------------------------------------


def _relay_from_text(text: str, result: CommandResult | None) -> bool | None:
    """Relay state a successful reply states ("Cut off the fuel supply: Success!")."""
    if result is not CommandResult.SUCCESS:
        return None
    if _RELAY_RESTORED_TEXT.search(text):
        return False
    if _RELAY_CUT_TEXT.search(text):
        return True
    return None


def _reply(d: _Draft, flag: int, text: str) -> MessageType:
    """Fill a command reply: text, server flag, verdict, stated relay state, `WHERE#` position."""
    fields = d.fields
    fields["text"] = text
    match = _POSITION_TEXT.match(text)
    if match:
        hemi_lat, lat, hemi_lon, lon, course, speed, *stamp = match.groups()
        fields["latitude"] = -float(lat) if hemi_lat == "S" else float(lat)
        fields["longitude"] = -float(lon) if hemi_lon == "W" else float(lon)
        fields["course"] = float(course)
        fields["speed_kmh"] = float(speed)
        fields["valid"] = True
        fields["position_source"] = PositionSource.GNSS
        year, month, day, hour, minute, second = (int(part) for part in stamp)
        try:
            moment = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
        except ValueError:
            moment = None
        # The SMS-style text is in the device's configured zone, the one its login announced
        # (traccar reads it as UTC, which is the same for a device that announced none).
        offset = d.ctx.gt06_utc_offset
        fields["time"] = moment - offset if moment and offset else moment
        result: CommandResult | None = CommandResult.SUCCESS
    else:
        result = text_verdict(text)
    relay = _relay_from_text(text, result)
    if relay is not None:
        fields["relay"] = relay
    if text.startswith("<ICCID:") and text.endswith(">"):
        fields["info"] = (("iccid", text[7:-1]),)
    fields["reply"] = CommandReply(reference=flag, result=result, relay=relay)
    return MessageType.COMMAND_REPLY


def _string(d: _Draft) -> MessageType:
    """0x15: length, server flag, ASCII text, language WORD (protocols.md §5.7).

    Some firmware sends 0 as the length and pads the text with NULs (gt06:119, gt06:129): the
    text is then everything between the flag and the language word.
    """
    data = d.data
    end = d.end
    if end < 5:
        raise _TruncatedError
    length = data[0]
    flag = int.from_bytes(data[1:5])
    stop = 1 + length if 5 <= length <= end - 1 else max(5, end - 2)
    text = _ascii(data[5:stop]).strip("\x00").strip()
    return _reply(d, flag, text)


def _string_info(d: _Draft) -> MessageType:
    """0x21: server flag, encoding (1 ASCII, 2 UTF-16BE), text (protocols.md §5.7)."""
    data = d.data
    if d.end < 5:
        raise _TruncatedError
    flag = int.from_bytes(data[0:4])
    raw = data[5 : d.end]
    utf16 = data[4] == 2
    text = raw[: len(raw) & ~1].decode("utf-16-be", "replace") if utf16 else _ascii(raw)
    return _reply(d, flag, text.strip("\x00").strip())


def _serial_passthrough(d: _Draft) -> MessageType:
    """0x9B: device type, then data from an external serial device (traccar `result`)."""
    raw = d.data[1 : d.end]
    printable = bool(raw) and all(byte in _PRINTABLE for byte in raw)
    d.fields["text"] = _ascii(raw).strip() if printable else raw.hex()
    d.fields["reply"] = CommandReply()
    return MessageType.COMMAND_REPLY


def _info(d: _Draft) -> MessageType:
    """0x94 information transfer (VL03 §9): external volts, status string, door, ICCID ...

    The `78 78` form carries only the external voltage (traccar, gt06:78).
    """
    data = d.data
    fields = d.fields
    if d.frame[0] == 0x78:
        if d.end >= 2:
            fields["power_voltage"] = int.from_bytes(data[0:2], signed=True) / 100
        return MessageType.OTHER
    if d.end < 1:
        raise _TruncatedError
    sub = data[0]
    body = data[1 : d.end]
    if sub == 0x00 and len(body) >= 2:
        fields["power_voltage"] = _volts(body, 0)
    elif sub == 0x04:
        _info_status(d, _ascii(body))
    elif sub == 0x05 and body:
        door = bool(body[6 if len(body) >= 7 else 0] & 0x01)
        fields["alarm_states"] = frozenset((Alarm.DOOR,))
        if door:
            d.alarms.append(Alarm.DOOR)
    elif sub == 0x0A and len(body) >= 26:
        info = [("iccid", body[16:26].hex().rstrip("f"))]
        if is_bcd(body[0:8]):
            info.insert(0, ("imei", body[0:8].hex().removeprefix("0")))
        if is_bcd(body[8:16]):
            info.insert(1, ("imsi", body[8:16].hex().removeprefix("0")))
        fields["info"] = tuple(info)
    elif sub == 0x0B and len(body) == 1:
        fields["info"] = (("network", "4G" if body[0] else "2G"),)
    elif sub == 0x0B and len(body) == 2:
        fields["power_voltage"] = _volts(body, 0)
    elif sub == 0x1B and body:
        if chr(body[0]).isalpha():
            fields["info"] = (("rfid", _ascii(body).strip()),)
        elif len(body) >= 6:
            fields["info"] = (("rfid", body[2:6].hex()),)
    return MessageType.OTHER


def _info_status(d: _Draft, text: str) -> None:
    """Sub-type 0x04 `KEY=VALUE;` status string: DYD gives the relay state, ICCID the SIM.

    DYD bits (VL03 §9): bit 1 fuel/power cut, bit 0 fuel/power connected.
    """
    info: list[tuple[str, str]] = []
    for item in text.split(";"):
        key, _sep, value = item.partition("=")
        if key == "DYD":
            try:
                bits = int(value, 16)
            except ValueError:
                continue
            if bits & 0x03:
                d.fields["relay"] = bool(bits & 0x02)
        elif key == "ICCID" and value:
            info.append(("iccid", value.rstrip("Ff")))
    if info:
        d.fields["info"] = tuple(info)


def _device_status(d: _Draft) -> MessageType:
    """0xF1 (Jimi 4G): epoch time, then (id WORD, length, value) items (traccar, gt06:3)."""
    data = d.data
    fields = d.fields
    off = 4
    while off + 3 <= d.end:
        item, size = int.from_bytes(data[off : off + 2]), data[off + 2]
        value = data[off + 3 : off + 3 + size]
        off += 3 + size
        if len(value) < size or not value:
            break
        if item == 0x0004:
            fields["ignition"] = value[0] > 0
        elif item == 0x0005 and size >= 2:
            fields["power_voltage"] = int.from_bytes(value[:2]) / 100
        elif item == 0x0007:
            fields["charging"] = value[0] > 0
    return MessageType.OTHER


def _vendor_info(d: _Draft) -> MessageType:
    """0xFD: a firmware banner `[VERSION]...[BUILD]...` (gt06:144)."""
    match = _FIRMWARE_BANNER.search(d.data)
    if match:
        d.fields["info"] = (("firmware", _ascii(match.group(1)).strip()),)
    return MessageType.OTHER


def _time_request(d: _Draft) -> MessageType:
    """0x8A: answer with the current UTC time and the request's serial (VL03 §8)."""
    now = d.ctx.now.astimezone(UTC)
    stamp = bytes((now.year - 2000, now.month, now.day, now.hour, now.minute, now.second))
    d.ack = _packet(PacketType.TIME_REQUEST, stamp, d.frame[-6:-4])
    return MessageType.OTHER


def _other(_d: _Draft) -> MessageType:
    return MessageType.OTHER


_HANDLERS: dict[int, Callable[[_Draft], MessageType]] = {
    PacketType.LOGIN: _login,
    PacketType.GPS: _gps_only,
    PacketType.GPS_LBS_OFFLINE: _gps_lbs_offline,
    PacketType.GPS_LBS: _gps_lbs,
    PacketType.STATUS: _status_packet,
    PacketType.STRING: _string,
    PacketType.GPS_LBS_STATUS: _gps_alarm,
    PacketType.WIFI: _wifi_counted_by_length,
    PacketType.LBS_EXTEND: _lbs_extend,
    PacketType.LBS_STATUS: _lbs_status,
    PacketType.GPS_PHONE: _gps_only,
    PacketType.GPS_LBS_EXTEND: _gps_only,
    PacketType.STRING_INFO: _string_info,
    PacketType.GPS_LBS_UTC: _gps_lbs_utc,
    PacketType.HEARTBEAT: _heartbeat,
    PacketType.LBS_MULTIPLE_3: _lbs_multiple_3,
    PacketType.GPS_LBS_STATUS_UTC: _gps_alarm,
    PacketType.GPS_LBS_STATUS_FENCES: _gps_alarm,
    PacketType.LBS_MULTIPLE: _lbs_multiple,
    PacketType.ADDRESS_REQUEST: _address_request,
    PacketType.LBS_WIFI: _lbs_wifi,
    PacketType.GPS_LBS_4: _gps_lbs_utc,
    PacketType.LBS_MULTIPLE_2: _lbs_multiple,
    PacketType.GPS_LBS_5: _gps_only,
    PacketType.GPS_LBS_STATUS_4: _az735_report,
    PacketType.AZ735_ALARM: _az735_alarm,
    PacketType.X1_GPS: _x1_gps,
    PacketType.STATUS_2: _status_2,
    PacketType.GPS_LBS_3: _gps_lbs_utc,
    PacketType.GPS_LBS_8: _gps_lbs_8,
    PacketType.ALARM_MODULE: _alarm_module,
    PacketType.IBUTTON: _ibutton,
    PacketType.WIFI_2: _wifi_counted_by_length,
    PacketType.GPS_MODULAR: _modular,
    PacketType.TIME_REQUEST: _time_request,
    PacketType.INFO: _info,
    PacketType.ALARM_VIDEO: _alarm_video,
    PacketType.SERIAL_PASSTHROUGH: _serial_passthrough,
    PacketType.GPS_LBS_4G: _gps_lbs_4g,
    PacketType.LBS_4G: _lbs_4g,
    PacketType.WIFI_4G: _wifi_4g,
    PacketType.FENCE_SINGLE: _fence_single,
    PacketType.FENCE_MULTI_4G: _gps_alarm,
    PacketType.LBS_ALARM_4G: _lbs_alarm_4g,
    PacketType.LBS_ADDRESS: _lbs_address,
    PacketType.WIFI_ALARM: _wifi_alarm,
    PacketType.DEVICE_STATUS: _device_status,
    PacketType.WIFI_4: _wifi_4,
    PacketType.VENDOR_INFO: _vendor_info,
}


# ---------------------------------------------------------------------------------------------
# Frame level: serial, CRC, acknowledgement, the entry points
# ---------------------------------------------------------------------------------------------


def _declared_size(frame: bytes) -> int:
    """Frame size the length field announces (protocols.md §5.1)."""
    if frame[0] == 0x79:
        return int.from_bytes(frame[2:4]) + 6
    return frame[2] + 5


def _crc_ok(frame: bytes) -> bool:
    """CRC-ITU over length ... serial against the two bytes before the end (protocols.md §5.1).

    A frame too short for a protocol number, serial, CRC and stop bytes has none.
    """
    if len(frame) < (11 if frame[0] == 0x79 else 10):
        return False
    return crc_itu(frame[2:-4]) == int.from_bytes(frame[-4:-2])


def _packet(kind: int, content: bytes, serial: bytes, *, long_form: bool = False) -> bytes:
    """A `78 78` (or `79 79`) packet: length, protocol number, content, serial, CRC, stop (§5.1)."""
    size = len(content) + 5
    if long_form:
        head = size.to_bytes(2) + bytes((kind,)) + content + serial
        return _START_LONG + head + crc_itu(head).to_bytes(2) + _STOP
    head = bytes((size, kind)) + content + serial
    return _START_SHORT + head + crc_itu(head).to_bytes(2) + _STOP


def decode(frame: bytes, ctx: Context, payload: bytes | None = None) -> FrameResult:
    """Decode one GT06 frame (as cut by `framing.split_gt06`) into a message and its reply."""
    del payload  # the GT06 splitter does no work the decoder could reuse
    size = len(frame)
    if size < 5 or frame[0] not in (0x78, 0x79) or frame[1] != frame[0]:
        raise FrameError("not a GT06 frame")
    start = 4 if frame[0] == 0x79 else 3
    if size <= start:
        raise FrameError("GT06 frame too short")
    kind = frame[start]
    stop = size - 2 if frame.endswith(_STOP) else size
    draft = _Draft(
        frame,
        kind,
        frame[start + 1 : stop],
        ctx,
        None if kind in _UTC_TYPES else ctx.gt06_utc_offset,
    )
    # Serial and CRC are read where traccar reads them, six and four bytes from the end, also
    # in a frame whose length byte is wrong.
    complete = size >= start + 7
    if complete:
        serial = frame[-6:-4]
        checksum_ok = gt06_crc_ok(frame)
        draft.ack = _default_ack(frame, kind, serial)
    else:
        serial = b""
        checksum_ok = False
        if size >= 6:
            # A frame with no room for a serial (`78 78 01 08 0D 0A`, gt06:154) is answered
            # all the same, quoting the two bytes traccar reads as the serial.
            draft.ack = _default_ack(frame, kind, frame[-6:-4])
    try:
        message_type = _HANDLERS.get(kind, _other)(draft)
    except _TruncatedError:
        # Still answered: the device waits for the reply whatever it sent (gt06:1).
        message_type = MessageType.OTHER
        draft.fields.clear()
        draft.alarms.clear()
        draft.cells.clear()
        draft.wifi.clear()
    except (IndexError, ValueError, struct.error) as err:
        # Length checks guard every documented read; a vendor frame cut at an odd place
        # must still only cost itself.
        raise FrameError(f"GT06 {kind:#04x} frame malformed: {err}") from err
    fields = draft.fields
    fields["protocol"] = Protocol.GT06
    fields["type"] = message_type
    fields.setdefault("device_id", ctx.device_id)
    fields["serial"] = int.from_bytes(serial) if complete else None
    fields["checksum_ok"] = checksum_ok
    fields["raw"] = frame
    alarms = draft.alarms
    if alarms:
        fields["alarms"] = (alarms[0],) if len(alarms) == 1 else tuple(dict.fromkeys(alarms))
    cells = draft.cells
    if cells:
        # devices pad the neighbour list with copies of the serving cell (gt06:84)
        fields["cells"] = (cells[0],) if len(cells) == 1 else tuple(dict.fromkeys(cells))
    if draft.wifi:
        fields["wifi"] = tuple(draft.wifi)
    unknown = None if kind in _KNOWN else f"{kind:#04x}"
    return FrameResult((Message(**fields),), draft.ack, unknown)


def _default_ack(frame: bytes, kind: int, serial: bytes) -> bytes | None:
    """The general acknowledgement a frame gets, before any reply of its own (see `_UNANSWERED`)."""
    if frame[0] == 0x78:
        if kind in _UNANSWERED and not (kind == PacketType.X1_GPS and frame[2] == _SL4X_LENGTH):
            return None
        return _short_ack(kind, int.from_bytes(serial))
    if kind in _ANSWERED_LONG_FORM:
        return _packet(kind, b"", serial, long_form=True)
    if kind in _ANSWERED_LONG:
        return _short_ack(kind, int.from_bytes(serial))
    return None


@lru_cache(maxsize=4096)
def _short_ack(kind: int, serial: int) -> bytes:
    """`78 78 05 <type> <serial> <CRC> 0D 0A`, kept for reuse: a fleet's devices count their
    serials from 1 after every boot, so the same few hundred replies come back all the time."""
    return _packet(kind, b"", serial.to_bytes(2))


# ---------------------------------------------------------------------------------------------
# Fast path (`Family.fast`): one whole frame per read, the most common layouts decoded straight
# ---------------------------------------------------------------------------------------------

#: The GPS block and a 2G cell, as `0x12` and `0x22` carry them: date (6 bytes), satellites,
#: latitude, longitude, speed, course/status, MCC, MNC, LAC, cell id (BYTE + WORD).
_FAST_GPS_CELL = struct.Struct(">6sBIIBHHBHBH")
#: The same with the 4G cell of `0xA0`: MCC, MNC, LAC DWORD, cell id QWORD.
_FAST_GPS_CELL_4G = struct.Struct(">6sBIIBHHBIQ")
_NO_STATES: frozenset[Alarm] = frozenset()
_GT06 = Protocol.GT06
_LOCATION = MessageType.LOCATION
_HEARTBEAT = MessageType.HEARTBEAT
_GNSS = PositionSource.GNSS
_new_result = partial(tuple.__new__, FrameResult)


def decode_fast(frame: bytes, ctx: Context) -> FrameResult | None:
    """A read that is exactly one well-formed frame, decoded without the splitter.

    The splitter would cut such a read as one frame (its length field ends on `0D 0A`), so
    `decode` is what the general path runs on it; the layouts a fleet sends most (GPS + LBS
    `0x12`, `0x22`, `0xA0` and the `0x13` heartbeat in their standard sizes) are decoded
    straight, the same fields in the same way (tests/protocol/test_fastpath.py).
    Wi-Fi frames (`0x17`, `0x69`) are left to the splitter, which sizes them by their counts.
    """
    size = len(frame)
    if size < 10 or frame[-1] != 0x0A or frame[-2] != 0x0D:
        return None
    if frame[0] == 0x78:
        length = frame[2]
        if frame[1] != 0x78 or length + 5 != size:
            return None
        kind = frame[3]
        layout = _FAST_LAYOUTS.get(kind << 8 | length)
        if layout is not None:
            return layout(frame, ctx)
        if kind in (0x17, 0x69):  # Wi-Fi: the splitter sizes them by their counts
            return None
    elif frame[0] != 0x79 or frame[1] != 0x79 or int.from_bytes(frame[2:4]) + 6 != size:
        return None
    return decode(frame, ctx)


#: Packet times decoded recently: a fleet's reports share their second (a thousand trackers
#: at 10 s send a hundred reports a second), and the datetime is the same object's worth.
_times: dict[bytes | tuple[bytes, timedelta], datetime | None] = {}
_MAX_TIMES = 1024


def _fast_time(stamp: bytes, offset: timedelta | None) -> datetime | None:
    """`_gps`'s reading of the 6 date bytes, remembered for the next report of that second."""
    key = (stamp, offset) if offset else stamp  # a zero offset shifts nothing, like none
    moment = _times.get(key, _times)
    if moment is not _times:
        return moment  # type: ignore[return-value]
    year, month, day, hour, minute, second = stamp
    try:
        moment = datetime(2000 + year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        moment = None
    else:
        if offset:
            moment -= offset
    if len(_times) >= _MAX_TIMES:
        _times.clear()
    _times[key] = moment
    return moment


def _fast_position(frame: bytes, ctx: Context) -> FrameResult | None:
    """`0x12` 0x1F long (nothing after the cell, VL03 §3, in the login's zone), `0x22` 0x22
    long (ACC, upload mode, re-upload, UTC) or 0x26 long (and mileage), and `0xA0` 0x29 / 0x2D
    long (the same with a 4G cell): what `_gps`, `_set_position`, `_cell` and `_report_tail`
    read for these sizes."""
    kind = frame[3]
    if kind == 0xA0:  # GPS_LBS_4G
        (stamp, satellites, lat_raw, lon_raw, speed, flags, mcc, mnc, lac, cid) = (
            _FAST_GPS_CELL_4G.unpack_from(frame, 4)
        )
        end, offset = _FAST_END_4G, None
    else:
        (stamp, satellites, lat_raw, lon_raw, speed, flags, mcc, mnc, lac, cid, cid_low) = (
            _FAST_GPS_CELL.unpack_from(frame, 4)
        )
        cid = cid << 16 | cid_low
        end = _FAST_END
        offset = None if kind == 0x22 else ctx.gt06_utc_offset  # GPS_LBS_UTC is UTC
    if mcc & _MNC_WIDE or lat_raw > _MAX_LAT_RAW or lon_raw > _MAX_LON_RAW:
        return None  # a 2-byte MNC shifts the layout; no coordinates: the general path
    latitude = lat_raw / _COORDINATE_SCALE
    longitude = lon_raw / _COORDINATE_SCALE
    ignition = (flags & _ACC_ON != 0) if flags & _ACC_KNOWN else None
    historical = False
    odometer = None
    tail = len(frame) - 6 - end
    if tail:
        ignition = frame[end] > 0
        historical = frame[end + 2] > 0
        if tail == 7:
            odometer = int.from_bytes(frame[end + 3 : end + 7]) / 1000
    serial = frame[-6] << 8 | frame[-5]
    moment = _times.get(stamp if not offset else (stamp, offset), _times)
    if moment is _times:
        moment = _fast_time(stamp, offset)
    reflected = frame.translate(_REFLECT)  # `gt06_crc_ok`, spelled out
    checksum_ok = crc_hqx(reflected[2:-4], 0xFFFF) ^ 0xFFFF == int.from_bytes(reflected[-3:-5:-1])
    message = _new_message(
        (
            _GT06, _LOCATION, ctx.device_id, moment, flags & _FIXED != 0,
            latitude if flags & _NORTH else -latitude,
            -longitude if flags & _WEST else longitude,
            float(speed), float(flags & _COURSE_MASK), None, satellites & 0x0F, None, _GNSS,
            (_shared_cell(mcc, mnc, lac, cid),) if lac or cid else (),
            (), (), _NO_STATES, ignition, None, None, None, None, None, None, odometer,
            serial, None, None, checksum_ok, historical, (), frame,
        )
    )  # fmt: skip
    return _new_result(((message,), _short_ack(kind, serial), None))


#: `_set_position`'s limits (90 and 180 degrees) on the raw values: exact, both are multiples.
_MAX_LAT_RAW = 90 * _COORDINATE_SCALE
_MAX_LON_RAW = 180 * _COORDINATE_SCALE
_FAST_END = 4 + _FAST_GPS_CELL.size
_FAST_END_4G = 4 + _FAST_GPS_CELL_4G.size


def _fast_login(frame: bytes, ctx: Context) -> FrameResult | None:
    """`0x01`, 0x0D long (the IMEI) or 0x11 long (and type id, time zone): `_login`."""
    try:
        imei, info, offset = _login_facts(frame[4:-6], frame[2] - 5)
    except FrameError:
        return None
    ctx.device_id = imei
    if offset is not None:
        ctx.gt06_utc_offset = offset
    ctx.info.update(info)
    serial = frame[-6] << 8 | frame[-5]
    message = _new_message(
        (
            _GT06, MessageType.LOGIN, imei, None, None, None, None, None, None, None, None,
            None, None, (), (), (), _NO_STATES, None, None, None, None, None, None, None, None,
            serial, None, None, gt06_crc_ok(frame), False, info, frame,
        )
    )  # fmt: skip
    return _new_result(((message,), _short_ack(PacketType.LOGIN, serial), None))


def _fast_status(frame: bytes, ctx: Context) -> FrameResult | None:
    """`0x13`, 0x0A long: terminal info, voltage level, GSM level, language (VL03 §2)."""
    info, level, gsm = frame[4], frame[5], frame[6]
    alarm = _STATUS_ALARMS.get((info >> 3) & 0x07)
    if level <= 6:
        battery: float | None = _VOLTAGE_LEVEL_PERCENT[level]
    else:
        battery = float(level) if level <= 100 else None
    if gsm <= 4:
        signal: int | None = gsm * 25
    else:
        signal = gsm if gsm <= 100 else None
    serial = frame[-6] << 8 | frame[-5]
    message = _new_message(
        (
            _GT06, _HEARTBEAT, ctx.device_id, None, None, None, None, None, None, None, None,
            None, None, (), (), () if alarm is None else (alarm,), _STATUS_STATES,
            bool(info & 0x02), bool(info & 0x80), bool(info & 0x04), battery, None, None,
            signal, None, serial, None, None, gt06_crc_ok(frame), False, (), frame,
        )
    )  # fmt: skip
    return _new_result(((message,), _short_ack(PacketType.STATUS, serial), None))


_FastLayout = Callable[[bytes, Context], FrameResult | None]

#: Protocol number << 8 | `78 78` length byte -> its straight decoder.
_FAST_LAYOUTS: dict[int, _FastLayout] = {
    PacketType.LOGIN << 8 | 0x0D: _fast_login,
    PacketType.LOGIN << 8 | 0x11: _fast_login,
    PacketType.GPS_LBS << 8 | 0x1F: _fast_position,
    PacketType.GPS_LBS_UTC << 8 | 0x22: _fast_position,
    PacketType.GPS_LBS_UTC << 8 | 0x26: _fast_position,
    PacketType.GPS_LBS_4G << 8 | 0x29: _fast_position,
    PacketType.GPS_LBS_4G << 8 | 0x2D: _fast_position,
    PacketType.STATUS << 8 | 0x0A: _fast_status,
}


# ---------------------------------------------------------------------------------------------
# Commands (protocols.md §5.7)
# ---------------------------------------------------------------------------------------------

#: `Relay,1#` / `Relay,0#` (traccar default, gt06:191, gt06:192).
_RELAY_TEXT = {CommandKind.RELAY_CUT: "Relay,1#", CommandKind.RELAY_RESTORE: "Relay,0#"}
#: `DYD,<password>#` / `HFYD,<password>#` (traccar `gt06.alternative`, gt06:193, gt06:194).
_DYD_WORD = {CommandKind.RELAY_CUT: "DYD", CommandKind.RELAY_RESTORE: "HFYD"}
#: Longest text the 1-byte length field can carry: 255 - (type, command length, flag, serial,
#: CRC).
MAX_COMMAND_TEXT = 255 - 1 - 1 - 4 - 2 - 2
#: `TIMER,<seconds>#` interval range accepted here; devices clamp further (Concox: 5-18000 s).
_MAX_INTERVAL = 86_400


def _command_content(text: str, language: int | None) -> bytes:
    """The ASCII command text, checked to fit the 1-byte length field."""
    try:
        content = text.encode("ascii")
    except UnicodeEncodeError as err:
        raise CommandError("GT06 online commands are ASCII text") from err
    if not content:
        raise CommandError("empty GT06 command text")
    if len(content) > MAX_COMMAND_TEXT - (0 if language is None else 2):
        raise CommandError(f"GT06 command text longer than {MAX_COMMAND_TEXT} characters")
    return content


def encode_online_command(
    text: str, *, flag: int, serial: int, language: int | None = None
) -> bytes:
    """Build a `0x80` online command: `78 78 | len | 80 | cmdlen | flag | text | [language] |
    serial | CRC | 0D 0A` (VL03 §7). traccar omits the language word, and so do we: the VL03
    example (gt06:182) has none either, its last word before the CRC is the serial.
    """
    content = _command_content(text, language)
    body = bytes((PacketType.COMMAND, 4 + len(content))) + (flag & 0xFFFFFFFF).to_bytes(4)
    body += content
    if language is not None:
        body += language.to_bytes(2)
    head = bytes((len(body) + 4,)) + body + (serial & 0xFFFF).to_bytes(2)
    return _START_SHORT + head + crc_itu(head).to_bytes(2) + _STOP


def command_text(command: Command) -> str:
    """The SMS-style text a command is sent as (protocols.md §5.7)."""
    kind = command.kind
    if command.is_relay:
        dialect = command.dialect or RelayDialect.GT06_RELAY
        if dialect is RelayDialect.GT06_RELAY:
            return _RELAY_TEXT[kind]
        if dialect is RelayDialect.GT06_DYD:
            password = command.password
            if any(char in password for char in "#,;"):
                raise CommandError("the DYD password cannot contain '#', ',' or ';'")
            return f"{_DYD_WORD[kind]},{password}#" if password else f"{_DYD_WORD[kind]}#"
        raise CommandError(f"GT06 devices do not speak the {dialect.value} relay dialect")
    if kind is CommandKind.LOCATE:
        return "WHERE#"
    if kind is CommandKind.SET_INTERVAL:
        # Concox-family SMS command; the single-value form is the SeeWorld S119 manual's
        # ("TIMER,20#" -> "TIMER set ok. Now data upload period is 20 seconds."), Concox
        # firmware reads it as the ACC-on interval of `TIMER,T1,T2#`.
        interval = command.interval
        if interval is None or not 1 <= interval <= _MAX_INTERVAL:
            raise CommandError(f"SET_INTERVAL needs an interval of 1 to {_MAX_INTERVAL} s")
        return f"TIMER,{interval}#"
    if kind is CommandKind.RAW:
        if not command.text:
            raise CommandError("RAW needs a text")
        return command.text
    raise CommandError(f"GT06 cannot send {kind.value}")


def encode_command(command: Command, ctx: Context) -> EncodedCommand:
    """Encode `command` as a `0x80` online command.

    The session's next serial is both the packet serial and the server flag the device echoes
    in its `0x15` / `0x21` reply, which ties the reply to the command. The first command of a
    session uses 0, as traccar always does.
    """
    text = command_text(command)
    _command_content(text, None)  # refuse before a serial is used
    serial = ctx.next_serial()
    return EncodedCommand(encode_online_command(text, flag=serial, serial=serial), serial)


def command_outcome(
    command: Command, sent: EncodedCommand, message: Message
) -> CommandOutcome | None:
    """Tell whether `message` is the device's answer to `sent`, and what it says.

    A `0x15` / `0x21` reply answers when its server flag equals ours, or is 0 (firmware that
    does not echo the flag); without a matching non-zero flag, only a reply that makes sense
    for the command counts.
    """
    reply = message.reply
    if (
        message.protocol is not Protocol.GT06
        or message.type is not MessageType.COMMAND_REPLY
        or reply is None
        or reply.reference is None
    ):
        return None
    if reply.reference not in (0, sent.reference):
        return None
    # Flag 0 is also what firmware that ignores the flag sends: it only proves the reply is
    # ours when we did not send 0 ourselves (the first command of a session does).
    exact = reply.reference == sent.reference != 0
    text = message.text
    kind = command.kind
    if kind is CommandKind.LOCATE and message.latitude is not None:
        return CommandOutcome(CommandResult.SUCCESS, text)
    result = reply.result
    if command.is_relay:
        wanted = kind is CommandKind.RELAY_CUT
        if reply.relay is not None and reply.relay is not wanted:
            # A reply about the other relay state answers a different command.
            return CommandOutcome(CommandResult.FAILURE, text, reply.relay) if exact else None
        if result is None:
            return None
        return CommandOutcome(result, text, reply.relay)
    if result is None:
        # Any reply answers a text command; other commands need a verdict or an exact flag.
        if kind is CommandKind.RAW or exact:
            return CommandOutcome(CommandResult.SUCCESS, text)
        return None
    return CommandOutcome(result, text)


FAMILY = Family(decode, encode_command, command_outcome, decode_fast)
