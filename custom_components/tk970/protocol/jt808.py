"""JT/T 808 with the BSJ / TK-Star `0xEB` extension: decode uplinks, answer them, encode commands.

This module owns everything past the splitter for the JT808 family (protocols.md §3): the 2011/
2013 and 2019 headers, the XOR checksum, every uplink we understand (registration and
authentication, heartbeat, location, batch, query response, command replies, text reports, the
JT600-style `0x5501`/`0x5502` reports and the `(...)` vendor text frames traccar accepts on this
port), the `0x8001`/`0x8100` replies each one is owed, the commands we send (relay, locate,
report interval, text) and the verdict a reply gives on a command.

`framing.split_jt808` has already cut the frame and un-escaped it (or, for firmware that never
escapes 7D, taken it literally); it passes those bytes (header, body, checksum) as `payload`.
Replies and commands echo the terminal id bytes exactly as the device sent them
(`Context.jt808_terminal`), because ids are not always BCD and a re-encoded id would address
nobody. Device times are local (GMT+8 by the standard, §3.10): UTC = local - offset.

Every uplink without a reply of its own gets `0x8001`, unknown ids included (`UNANSWERED` lists
the exceptions); sub-packaged messages are put back together by `reassembly` (`settle` asks for
missing fragments and reports the lost). `decode_fast` is the session's fast path: a whole frame
with a plain header, and the TK-Star 4G report read in one unpack.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from functools import lru_cache, partial
from operator import itemgetter
import re
import struct
from typing import Any, NamedTuple

from .codec import jt808_escape, jt808_unescape, mac_text, xor_checksum
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
from .reassembly import Fragment, Key as FragmentKey, Lost, Reassembly


class MessageId(IntEnum):
    """Message ids this module reads or writes (protocols.md §3.4-§3.8, traccar `Jt808*`)."""

    TERMINAL_RESPONSE = 0x0001  #: the device's verdict on a platform message (§3.8), vector 114
    HEARTBEAT = 0x0002  #: empty, or BSJ battery %, CSQ, mode (§3.4), vectors 86, 118
    LOGOUT = 0x0003  #: empty (§3.4, TC-PR5848)
    PARAMETERS_RESPONSE = 0x0104  #: the device's answer to a parameter query (a response)
    TIME_SYNC = 0x0109  #: the device asks for the time, answered by `TIME_SYNC_RESPONSE`
    HEARTBEAT_CC888 = 0x0506  #: CC888 heartbeat with the engine off, empty (traccar)
    REGISTER = 0x0100  #: registration, answered by `REGISTER_RESPONSE` (§3.4), vectors 5, 50
    AUTHENTICATE = 0x0102  #: authentication code (§3.4), vectors 33, 81, 115
    ATTRIBUTES = 0x0107  #: terminal attributes: model, ICCID, firmware (§3.4), vector 93
    LOCATION = 0x0200  #: location report (§3.5)
    LOCATION_QUERY_RESPONSE = 0x0201  #: reply serial + location body, answers `LOCATION_QUERY`
    LOCATION_BATCH_VENDOR = 0x0210  #: vendor batch, BYTE item lengths (§3.7), vectors 43, 92
    WAYBILL = 0x0701  #: "electronic waybill", used by vendors for command result text (vector 17)
    LOCATION_BATCH = 0x0704  #: batch / blind-area upload (§3.7)
    DRIVER_IDENTITY = 0x0702  #: driver card read (standard; traccar decodes it, vector 8)
    TRANSPARENT = 0x0900  #: data uplink transparent (§3.4)
    TIMEZONE_SYNC = 0x1007  #: vendor time zone sync, acknowledged by traccar (vector 94)
    TEXT_RESPONSE = 0x1300  #: vendor reply serial + UTF-16 text, "Set OK!" (§3.8, vector 63)
    JT600_GENERAL_RESPONSE = 0x4401  #: traccar's reply to JT600-style reports that ask for one
    JT600_LOCATION = 0x5501  #: JT600-style vendor location, 1-byte serial (§3.7)
    JT600_BLIND = 0x5502  #: JT600-style vendor blind-area location (§3.7)
    ACCELERATION = 0x2070  #: vendor accelerometer samples (traccar decodes them, vector 55)
    TEXT_REPORT = 0x6006  #: BSJ text report, must be acknowledged (§3.4, §3.8, vector 22)
    PLATFORM_RESPONSE = 0x8001  #: our general response (§3.4)
    RETRANSMIT_REQUEST = 0x8003  #: we ask for the fragments of a message that did not come
    REGISTER_RESPONSE = 0x8100  #: our registration response (§3.4)
    SET_PARAMETERS = 0x8103  #: set terminal parameters (§3.8), vector 119
    TERMINAL_CONTROL = 0x8105  #: terminal control, one command word (§3.8), vectors 109, 113
    LOCATION_QUERY = 0x8201  #: "locate now", empty body (§3.7), vector 116
    ALARM_CONFIRM = 0x8203  #: manual alarm confirmation: alarm serial WORD + alarm types DWORD
    TIME_SYNC_RESPONSE = 0x8109  #: UTC year WORD, month, day, hour, minute, second, result
    TEXT = 0x8300  #: text message: flag byte + GBK text = the SMS command set (§3.8), vector 111
    PHOTO = 0x8888  #: a vendor uplink traccar acknowledges like a heartbeat
    TRANSPARENT_DOWNLINK = 0x8900  #: data downlink transparent (Jimi), vector 112
    OIL_CONTROL = 0xA006  #: vendor oil control: BYTE 1 stop / 0 resume + BCD time (§3.8)


class Attribute(IntEnum):
    """Bits of the header's body-attribute word (protocols.md §3.3)."""

    LENGTH = 0x03FF  #: bits 0-9: body length
    ENCRYPTION = 0x1C00  #: bits 10-12: encryption (0 = none); we cannot read encrypted bodies
    SUBPACKAGE = 0x2000  #: bit 13: total packets and packet index follow the serial
    VERSION_2019 = 0x4000  #: bit 14: 2019 header, version byte and a 10-byte terminal id
    JT600_ACK_REQUESTED = 0x8000  #: bit 15 on `0x5501`/`0x5502`: the device wants `0x4401`


class StatusBit(IntEnum):
    """Bits of the `0x0200` status word that we read (protocols.md §3.5)."""

    IGNITION = 0  #: ACC on
    VALID = 1  #: position fixed
    SOUTH = 2  #: latitude is south
    WEST = 3  #: longitude is west
    OIL_CUT = 10  #: oil circuit cut: the relay is engaged (traccar `blocked`, vectors 18, 59)
    CHARGING = 26  #: charging (vendor use, traccar's generic mapping; vector 46)


class AlarmBit(IntEnum):
    """Bits of the `0x0200` alarm word, named by their JT/T 808 meaning (protocols.md §3.5).

    Each bit maps to one shared `Alarm` (`_ALARM_OF_BIT`). The choices:

    * 0 SOS → `sos`; 1 overspeed and 13 overspeed warning → `overspeed`.
    * 7 main power under-voltage → `low_power`: the standard speaks of the *main* (external)
      supply, and a vehicle tracker with a relay has one. traccar calls it `lowBattery`.
    * 8 main power off → `power_cut` (external power removed, the device still reports).
      traccar calls it `powerOff`, but a device that sends the frame is not switched off.
    * 15-17 are reserved by the standard and vendor-defined; we follow traccar's generic mapping:
      15 → `vibration`, 16 and 17 → `tamper` (vectors 34, 57, 58). 18 (accumulated driving time
      in the standard) is "low battery" in traccar's generic mapping, i.e. the device's own
      battery → `low_battery`, which keeps it distinct from bit 7.
    * 20 area in/out and 21 route in/out → `geofence`; 28 illegal displacement → `movement`;
      29 collision and 30 rollover → `collision`; 31 illegal door opening → `door`.
    * Every other bit (driving-time, fault and vehicle-equipment alarms) → `other`, so that a
      frame carrying any alarm is never mistaken for a plain position (vector 32: bit 12).
    """

    SOS = 0
    OVERSPEED = 1
    FATIGUE = 2
    DANGER = 3
    GNSS_FAULT = 4
    GNSS_ANTENNA_OPEN = 5
    GNSS_ANTENNA_SHORT = 6
    MAIN_POWER_LOW = 7
    MAIN_POWER_OFF = 8
    LCD_FAULT = 9
    TTS_FAULT = 10
    CAMERA_FAULT = 11
    IC_CARD_FAULT = 12
    OVERSPEED_WARNING = 13
    FATIGUE_WARNING = 14
    VENDOR_VIBRATION = 15
    VENDOR_TAMPER = 16
    VENDOR_REMOVAL = 17
    VENDOR_LOW_BATTERY = 18
    PARKING_TIMEOUT = 19
    AREA = 20
    ROUTE = 21
    ROUTE_TIME = 22
    OFF_ROUTE = 23
    VSS_FAULT = 24
    FUEL_ABNORMAL = 25
    STOLEN = 26
    ILLEGAL_IGNITION = 27
    ILLEGAL_DISPLACEMENT = 28
    COLLISION = 29
    ROLLOVER = 30
    ILLEGAL_DOOR = 31


_ALARM_OF_BIT: dict[AlarmBit, Alarm] = {
    AlarmBit.SOS: Alarm.SOS,
    AlarmBit.OVERSPEED: Alarm.OVERSPEED,
    AlarmBit.OVERSPEED_WARNING: Alarm.OVERSPEED,
    AlarmBit.MAIN_POWER_LOW: Alarm.LOW_POWER,
    AlarmBit.MAIN_POWER_OFF: Alarm.POWER_CUT,
    AlarmBit.VENDOR_VIBRATION: Alarm.VIBRATION,
    AlarmBit.VENDOR_TAMPER: Alarm.TAMPER,
    AlarmBit.VENDOR_REMOVAL: Alarm.TAMPER,
    AlarmBit.VENDOR_LOW_BATTERY: Alarm.LOW_BATTERY,
    AlarmBit.AREA: Alarm.GEOFENCE,
    AlarmBit.ROUTE: Alarm.GEOFENCE,
    AlarmBit.ILLEGAL_DISPLACEMENT: Alarm.MOVEMENT,
    AlarmBit.COLLISION: Alarm.COLLISION,
    AlarmBit.ROLLOVER: Alarm.COLLISION,
    AlarmBit.ILLEGAL_DOOR: Alarm.DOOR,
}
#: Alarm per single-bit mask, every bit of the word included (unlisted bits are `other`).
_ALARM_OF_MASK: dict[int, Alarm] = {
    1 << bit: _ALARM_OF_BIT.get(bit, Alarm.OTHER) for bit in AlarmBit
}
#: What the alarm word states, present or absent: every alarm one of its bits can raise.
WORD_ALARM_STATES: frozenset[Alarm] = frozenset(_ALARM_OF_MASK.values())


class Item(IntEnum):
    """Additional items of a location body that we read (protocols.md §3.5, traccar).

    Items not listed are skipped: `0x25` extended signal status, `0x2A` IO status and `0x2B`
    analog inputs have no field in the shared model.
    """

    MILEAGE = 0x01  #: DWORD, 0.1 km (standard; traccar reads it as odometer)
    SIGNAL = 0x30  #: CSQ 0-31
    SATELLITES = 0x31
    CELLS_2G = 0x53  #: count + (MCC, MNC, LAC, cell id, signal) per cell (G10LS)
    WIFI_COUNTED = 0x54  #: count + (MAC, signal) per access point (G10LS)
    BATTERY_LEVEL_TENTHS = 0x56  #: level 0-10, reserved byte (G10LS)
    CELLS_4G = 0x5D  #: as `CELLS_2G` with a DWORD cell id (G10LS)
    DRIVING_BEHAVIOUR = 0x57  #: WORD alarms (bits 8-10: harsh acceleration/braking/turn), ...
    POWER_CENTIVOLTS = 0x61  #: main power, 0.01 V
    BATTERY_CENTIVOLTS = 0x69  #: battery, 0.01 V
    POWER_DECIVOLTS = 0x82  #: main power, 0.1 V
    USER_STATUS = 0xD0  #: DWORD, bit 3 vibration
    POWER_DECIVOLTS_D3 = 0xD3  #: main power, 0.1 V
    BATTERY_LEVEL_D4 = 0xD4  #: 1 byte: battery %, 0xFF = charging
    LEVEL_CELLS_OR_POWER = 0xE1  #: 1 byte battery %, 2 bytes power 0.1 V, or a cell list
    BATTERY_INFO = 0xE3  #: reserved, battery %, battery 0.01 V
    CHARGE_LEVEL = 0xE4  #: charge flag (0 = charging), battery %
    VENDOR_ALARM = 0xE7  #: 8 bytes: WORD bit 0 vibration, bits 1-3 SOS
    BATTERY_LEVEL_E9 = 0xE9  #: 1 byte: battery %, 0xFF = charging
    EXTENSION = 0xEB  #: BSJ sub-records, a cell list, or a time zone string (§3.6)
    WIFI = 0xEC  #: MAC(6) + RSSI(1) per access point
    STATUS_BLOCK = 0xEE  #: 6 bytes: CSQ, power mV, battery mV, satellites
    CELLS = 0xF0  #: MCC, MNC, CID, LAC, RSSI per cell (13 bytes)
    POWER_MILLIVOLTS = 0xF1  #: main power, mV
    WIFI_F4 = 0xF4  #: same layout as `WIFI`
    IMEI = 0xF6  #: 8 bytes: IMEI as BCD with a pad nibble (vector 91)
    BATTERY_PACK = 0xF7  #: battery mV, charge state, battery %
    GNSS_INFO = 0xF9  #: mask + fields, HDOP when bit 2
    VENDOR_LEVEL_OR_POWER = 0xFE  #: 1 byte battery %, 2 bytes power 0.1 V


class BsjType(IntEnum):
    """Sub-record types inside item `0xEB` (protocols.md §3.6, BSJ Appendix D, traccar)."""

    VOLTAGE = 0x002D  #: 2 bytes internal battery mV, 4 bytes external supply mV
    ALARM_WORD = 0x0089  #: active-low DWORD: bit 12 removal (tamper)
    BATTERY_LEVEL = 0x00A8  #: battery %
    ICCID = 0x00B2  #: 10 bytes, hex digits, `f` padding
    WIFI = 0x00B9  #: count + ASCII `mac,rssi,...`
    STATUS_WORD = 0x00C5  #: active-low DWORD: bit 6 vibration, bit 14 light (box opened)
    BATTERY_ALARM = 0x00C6  #: 3 or 4 = low battery
    POWER = 0x00CE  #: external supply, 0.01 V
    IMEI = 0x00D5  #: 15 ASCII digits
    CELL = 0x00D8  #: MCC WORD, MNC BYTE, LAC WORD, CID DWORD
    BATTERY_LEVEL_E1 = 0x00E1  #: battery % (traccar)


class ControlWord(IntEnum):
    """`0x8105` terminal-control command words (protocols.md §3.8)."""

    RESET = 0x04  #: terminal reset (standard; vector 113)
    STOP_F0 = 0xF0  #: engine stop, traccar's default (vector 109)
    RESUME_F1 = 0xF1  #: engine resume (vector 110)
    CUT_64 = 0x64  #: cut oil and electricity (G10LS, SeeWorld W15L)
    RESTORE_65 = 0x65  #: restore (G10LS, SeeWorld W15L)


class Parameter(IntEnum):
    """`0x8103` terminal parameter ids (protocols.md §3.8)."""

    REPORT_INTERVAL = 0x0029  #: default report interval, seconds (vector 119)


class ResponseResult(IntEnum):
    """Result byte of `0x0001` (and of our `0x8001`)."""

    SUCCESS = 0
    FAILURE = 1
    MESSAGE_ERROR = 2
    UNSUPPORTED = 3


_RESULT_VERDICT = {
    ResponseResult.SUCCESS: CommandResult.SUCCESS,
    ResponseResult.FAILURE: CommandResult.FAILURE,
    ResponseResult.MESSAGE_ERROR: CommandResult.FAILURE,
    ResponseResult.UNSUPPORTED: CommandResult.UNSUPPORTED,
}

#: Uplinks that are themselves answers to a platform message, and so get no `0x8001`: the
#: general response, the parameter query answer, and the text results vendors send as
#: `0x0701` / `0x1300` (traccar answers none of them, vectors 17, 63, 114). Every other uplink
#: without a reply of its own is answered with `0x8001`, known or not: the standard's general
#: response (JT/T 808-2013 §8.2) is what stops a terminal retransmitting, and an unknown
#: message is answered too, and logged once.
UNANSWERED: frozenset[int] = frozenset(
    {
        MessageId.TERMINAL_RESPONSE,
        MessageId.PARAMETERS_RESPONSE,
        MessageId.WAYBILL,
        MessageId.TEXT_RESPONSE,
    }
)
#: Message ids this module names (`MessageId`): anything else is logged as unknown.
KNOWN: frozenset[int] = frozenset(MessageId)

_FLAG = b"\x7e"
_WORD = struct.Struct(">H")
_DWORD = struct.Struct(">I")
_HEAD = struct.Struct(">HH")
_RESPONSE = struct.Struct(">HHB")  # serial, message id, result: 0x0001 and 0x8001 bodies
#: alarm word, status word, latitude, longitude, altitude (signed, as traccar), speed, course
_BASIC = struct.Struct(">IIIIhHH")
_BASIC_SIZE = 28  # the seven fields above, then BCD[6] time
_MAX_LATITUDE = 90_000_000
_MAX_LONGITUDE = 180_000_000
_MAX_BODY = 1023

_PRINTABLE = re.compile(rb"[\x20-\x7e]+")
_MAC = re.compile(r"[0-9a-f]{2}(?::[0-9a-f]{2}){5}")
_TEXT_FRAME_ID = re.compile(rb"\((\d{1,20}),")

# ---------------------------------------------------------------------------------------------
# Header
# ---------------------------------------------------------------------------------------------


class Header(NamedTuple):
    """The fields of a JT808 header, and what the frame as a whole says about itself."""

    message_id: int
    attributes: int
    terminal: bytes  #: terminal id bytes as sent (6, or 10 in the 2019 form)
    device_id: str
    serial: int
    version: int | None  #: 2019 protocol version, None for the 2011/2013 header
    packets: tuple[int, int] | None  #: (total, index) when sub-packaged
    checksum_ok: bool
    raw: bytes  #: the whole frame as received


@lru_cache(maxsize=4096)
def device_id_of(terminal: bytes) -> str:
    """Return the identity of a terminal id: its BCD digits, or traccar's IMEI for binary ids.

    Some vendors (Jimi) put a 48-bit integer where the BCD phone number belongs; traccar turns
    it into an IMEI by appending a Luhn check digit (protocols.md §3.3), which matches the label.
    """
    digits = terminal.hex()
    if digits.isdigit():
        return digits
    number = str(int.from_bytes(terminal[:6], "big"))
    return number + str(_luhn_digit(number))


def _luhn_digit(number: str) -> int:
    total = 0
    for index, char in enumerate(reversed(number)):
        value = int(char)
        if index % 2 == 0:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return (10 - total % 10) % 10


_JT600 = frozenset({MessageId.JT600_LOCATION, MessageId.JT600_BLIND})


def _parse_header(data: bytes, frame: bytes) -> tuple[Header, bytes]:
    """Split un-escaped header+body+checksum into the header and the body."""
    if len(data) < 12:
        raise FrameError("JT808 frame too short")
    message_id, attributes = _HEAD.unpack_from(data)
    version: int | None = None
    if message_id in _JT600:
        # JT600-style reports keep a 6-byte id but a 1-byte serial, and use the attribute's
        # upper bits for their own purposes (traccar Jt808ProtocolDecoder).
        terminal, serial, offset = data[4:10], data[10], 11
    elif attributes & Attribute.ENCRYPTION:
        raise FrameError("encrypted JT808 body")
    elif attributes & Attribute.VERSION_2019:
        version, terminal, offset = data[4], data[5:15], 17
        serial = int.from_bytes(data[15:17], "big")
    else:
        terminal, offset = data[4:10], 12
        serial = int.from_bytes(data[10:12], "big")
    packets: tuple[int, int] | None = None
    if attributes & Attribute.SUBPACKAGE and message_id not in _JT600:
        if len(data) < offset + 5:
            raise FrameError("JT808 frame too short")
        packets = (
            int.from_bytes(data[offset : offset + 2], "big"),
            int.from_bytes(data[offset + 2 : offset + 4], "big"),
        )
        offset += 4
    if len(data) < offset + 1:
        raise FrameError("JT808 frame too short")
    header = Header(
        message_id,
        attributes,
        terminal,
        device_id_of(terminal),
        serial,
        version,
        packets,
        xor_checksum(data[:-1]) == data[-1],
        frame,
    )
    # The body runs to the checksum, whatever the length field says: like traccar, we trust the
    # flags (a wrong length also shows as a checksum failure).
    return header, data[offset:-1]


# ---------------------------------------------------------------------------------------------
# Replies and downlink frames
# ---------------------------------------------------------------------------------------------


def encode_frame(message_id: int, body: bytes, ctx: Context) -> tuple[bytes, int]:
    """Build an escaped downlink frame to the session's terminal; return it and its serial.

    The header echoes the terminal id bytes (and the 2019 version) the device last sent, and
    carries the next server serial (`Context.next_serial`).
    """
    if not ctx.jt808_terminal:
        raise CommandError("the JT808 terminal id is not known yet")
    if len(body) > _MAX_BODY:
        raise CommandError(f"JT808 body of {len(body)} bytes is over {_MAX_BODY}")
    serial = ctx.next_serial()
    if ctx.jt808_2019:
        head = _HEAD.pack(message_id, len(body) | Attribute.VERSION_2019) + bytes(
            (ctx.jt808_version,)
        )
    else:
        head = _HEAD.pack(message_id, len(body))
    plain = head + ctx.jt808_terminal + _WORD.pack(serial) + body
    return _FLAG + jt808_escape(plain + bytes((xor_checksum(plain),))) + _FLAG, serial


def _general_response(header: Header, ctx: Context) -> bytes:
    """`0x8001` quoting the device's serial and message id, result 0."""
    return _response(header.serial, header.message_id, ctx)


def _response(answered: int, quoted: int, ctx: Context) -> bytes:
    """`0x8001` to device serial `answered` of message `quoted`: `encode_frame`'s frame, built
    in one piece for the 2011/2013 header that nearly every report has."""
    if ctx.jt808_2019 or not ctx.jt808_terminal:
        body = _RESPONSE.pack(answered, quoted, ResponseResult.SUCCESS)
        return encode_frame(MessageId.PLATFORM_RESPONSE, body, ctx)[0]
    prefix, prefix_xor = _response_prefix(ctx.jt808_terminal)
    serial = ctx.next_serial()
    checksum = (
        prefix_xor
        ^ serial >> 8 ^ serial & 0xFF ^ answered >> 8 ^ answered & 0xFF
        ^ quoted >> 8 ^ quoted & 0xFF
    )  # fmt: skip
    tail = _RESPONSE_TAIL.pack(serial, answered, quoted, 0, checksum)
    return prefix + jt808_escape(tail) + _FLAG


@lru_cache(maxsize=4096)
def _response_prefix(terminal: bytes) -> tuple[bytes, int]:
    """The start of every `0x8001` to one terminal (flag, header words and terminal id,
    escaped: escaping goes byte by byte, so parts can be escaped apart) and the XOR of those
    bytes, the part of the checksum all its replies share."""
    plain = _RESPONSE_HEAD + terminal
    return _FLAG + jt808_escape(plain), xor_checksum(plain)


#: `0x8001` header words (id, attributes = body length), then after the terminal id: server
#: serial, device serial, device message id, result.
_RESPONSE_HEAD = bytes.fromhex("80010005")
_RESPONSE_TAIL = struct.Struct(">HHHBB")  # ... result, checksum


def _ack(header: Header, ctx: Context) -> bytes | None:
    return _general_response(header, ctx) if header.message_id not in UNANSWERED else None


# ---------------------------------------------------------------------------------------------
# Location body: basic block and additional items (protocols.md §3.5, §3.6)
# ---------------------------------------------------------------------------------------------


def _signal_percent(csq: int) -> int | None:
    """CSQ 0-31 to 0-100; 99 means unknown. Some firmware sends a percentage (vector 25)."""
    if csq <= 31:
        return round(csq * 100 / 31)
    if csq == 99 or csq > 100:
        return None
    return csq


#: `_signal_percent` of every byte value.
_SIGNAL_PERCENT = tuple(_signal_percent(value) for value in range(256))


def _device_time(bcd: bytes, offset: timedelta) -> datetime | None:
    """BCD `YYMMDDhhmmss` device-local time to UTC; None when the clock is not set or invalid.

    Remembered for the next report of the same second (a fleet's reports share their second).
    """
    key = (bcd, offset)
    moment = _times.get(key, _times)
    if moment is not _times:
        return moment  # type: ignore[return-value]
    moment = _read_device_time(bcd, offset)
    if len(_times) >= _MAX_TIMES:
        _times.clear()
    _times[key] = moment
    return moment


_times: dict[tuple[bytes, timedelta], datetime | None] = {}
_MAX_TIMES = 1024


def _read_device_time(bcd: bytes, offset: timedelta) -> datetime | None:
    digits = bcd.hex()
    if len(digits) != 12 or not digits.isdigit():
        return None
    value = int(digits)  # one conversion, then split
    rest, second = divmod(value, 100)
    rest, minute = divmod(rest, 100)
    rest, hour = divmod(rest, 100)
    rest, day = divmod(rest, 100)
    year, month = divmod(rest, 100)
    try:
        return datetime(2000 + year, month, day, hour, minute, second, tzinfo=UTC) - offset
    except ValueError:
        return None


class _Extras:
    """What the additional items of one location body add to its basic block."""

    __slots__ = (
        "alarms",
        "battery_percent",
        "battery_voltage",
        "cells",
        "charging",
        "gsm_signal",
        "hdop",
        "info",
        "odometer_km",
        "power_voltage",
        "satellites",
        "states",
        "wifi",
    )

    def __init__(self, charging: bool) -> None:
        self.alarms: list[Alarm] = []
        self.states: list[Alarm] = []  #: alarm states beyond the alarm word's (0xEB words)
        self.battery_percent: float | None = None
        self.battery_voltage: float | None = None
        self.power_voltage: float | None = None
        self.gsm_signal: int | None = None
        self.odometer_km: float | None = None
        self.satellites: int | None = None
        self.hdop: float | None = None
        self.charging: bool = charging
        self.cells: list[Cell] = []
        self.wifi: list[WifiAccessPoint] = []
        self.info: list[tuple[str, str]] = []

    def level(self, value: int) -> None:
        """Take a battery-level byte: 0-100 %, 0xFF = charging (traccar), else nonsense."""
        if value <= 100:
            self.battery_percent = value
        elif value == 0xFF:
            self.charging = True


type _Handler = Callable[[bytes, _Extras], None]


def _word(data: bytes, offset: int = 0) -> int:
    return int.from_bytes(data[offset : offset + 2], "big")


def _dword(data: bytes, offset: int = 0) -> int:
    return int.from_bytes(data[offset : offset + 4], "big")


def _item_mileage(data: bytes, x: _Extras) -> None:
    if len(data) == 4:
        x.odometer_km = _dword(data) / 10


def _item_signal(data: bytes, x: _Extras) -> None:
    if data:
        x.gsm_signal = _signal_percent(data[0])


def _item_satellites(data: bytes, x: _Extras) -> None:
    if data:
        x.satellites = data[0]


def _item_counted_cells(data: bytes, x: _Extras) -> None:
    """Items `0x53` (2G) and `0x5D` (4G): a count, then per cell MCC WORD, MNC BYTE, LAC WORD,
    cell id and signal BYTE (G10LS Table 20). The cell id is a WORD in 2G and a DWORD in 4G,
    but some 2G firmware sends a DWORD too (jt808.jsonl line 18): the sizes tell."""
    if not data or not data[0] or (len(data) - 1) % data[0]:
        return
    size = (len(data) - 1) // data[0]
    if size not in (8, 10):
        return
    for pos in range(1, len(data), size):
        mcc, mnc, lac = _COUNTED_CELL.unpack_from(data, pos)
        cid = int.from_bytes(data[pos + 5 : pos + size - 1])
        if lac or cid:  # all zeros: no cell (jt808.jsonl line 66)
            x.cells.append(Cell(mcc=mcc, mnc=mnc, lac=lac, cid=cid, rssi=data[pos + size - 1]))


_COUNTED_CELL = struct.Struct(">HBH")


def _item_counted_wifi(data: bytes, x: _Extras) -> None:
    """Item `0x54`: a count, then per access point its MAC and signal (G10LS Table 20)."""
    if data and len(data) == 1 + 7 * data[0]:
        _item_wifi(data[1:], x)


def _item_battery_tenths(data: bytes, x: _Extras) -> None:
    if data and data[0] <= 10:
        x.battery_percent = data[0] * 10


def _item_driving(data: bytes, x: _Extras) -> None:
    # Harsh acceleration, braking and cornering (bits 8-10) have no name in the shared
    # vocabulary; they are events the user may still want to see (vector 45).
    if len(data) >= 2 and _word(data) & 0x0700:
        x.alarms.append(Alarm.OTHER)


def _item_power_centivolts(data: bytes, x: _Extras) -> None:
    if len(data) >= 2:
        x.power_voltage = _word(data) / 100


def _item_battery_centivolts(data: bytes, x: _Extras) -> None:
    if len(data) >= 2:
        x.battery_voltage = _word(data) / 100


def _item_power_decivolts(data: bytes, x: _Extras) -> None:
    if len(data) >= 2:
        x.power_voltage = _word(data) / 10


def _item_user_status(data: bytes, x: _Extras) -> None:
    if len(data) >= 4 and _dword(data) & 0x08:
        x.alarms.append(Alarm.VIBRATION)


def _item_level(data: bytes, x: _Extras) -> None:
    if len(data) == 1:
        x.level(data[0])


def _item_level_cells_or_power(data: bytes, x: _Extras) -> None:
    length = len(data)
    if length == 1:
        x.level(data[0])
    elif length == 2:
        x.power_voltage = _word(data) / 10
    elif length >= 12 and (length - 4) % 8 == 0:
        mcc, mnc = _word(data), _word(data, 2)
        for pos in range(4, length, 8):
            lac = int.from_bytes(data[pos : pos + 3], "big")
            cid = _dword(data, pos + 3)
            if 0 < lac <= 0xFFFF and cid <= 0xFFFFFFF:
                x.cells.append(Cell(mcc=mcc, mnc=mnc, lac=lac, cid=cid, rssi=data[pos + 7]))


def _item_battery_info(data: bytes, x: _Extras) -> None:
    if len(data) >= 4:
        x.level(data[1])
        x.battery_voltage = _word(data, 2) / 100


def _item_charge_level(data: bytes, x: _Extras) -> None:
    if len(data) >= 2:
        if data[0] == 0:
            x.charging = True
        x.level(data[1])


def _item_vendor_alarm(data: bytes, x: _Extras) -> None:
    if len(data) == 8:
        word = _word(data)
        if word & 0x01:
            x.alarms.append(Alarm.VIBRATION)
        if word & 0x0E:
            x.alarms.append(Alarm.SOS)


def _item_wifi(data: bytes, x: _Extras) -> None:
    for pos in range(0, len(data) - 6, 7):
        rssi = data[pos + 6]
        x.wifi.append(
            WifiAccessPoint(
                mac=mac_text(data[pos : pos + 6]), rssi=rssi - 256 if rssi > 127 else rssi
            )
        )


def _item_status_block(data: bytes, x: _Extras) -> None:
    if len(data) == 6:
        x.gsm_signal = _signal_percent(data[0])
        x.power_voltage = _word(data, 1) / 1000
        x.battery_voltage = _word(data, 3) / 1000
        x.satellites = data[5]


def _item_cells(data: bytes, x: _Extras) -> None:
    for pos in range(0, len(data) - 12, 13):
        x.cells.append(
            Cell(
                mcc=_word(data, pos),
                mnc=_word(data, pos + 2),
                cid=_dword(data, pos + 4),
                lac=_dword(data, pos + 8),
                rssi=data[pos + 12],
            )
        )


def _item_power_millivolts(data: bytes, x: _Extras) -> None:
    if len(data) >= 4:
        x.power_voltage = _dword(data) / 1000


def _item_imei(data: bytes, x: _Extras) -> None:
    digits = data.hex()[1:]
    if len(data) == 8 and digits.isdigit():
        x.info.append(("imei", digits))


def _item_battery_pack(data: bytes, x: _Extras) -> None:
    if len(data) >= 4:
        x.battery_voltage = _dword(data) / 1000
        if len(data) >= 5 and data[4] in (2, 3):
            x.charging = True
        if len(data) >= 6:
            x.level(data[5])


def _item_gnss_info(data: bytes, x: _Extras) -> None:
    if len(data) < 2:
        return
    mask = _word(data)
    pos = 2 + 4 * bool(mask & 0x01) + 4 * bool(mask & 0x02)  # GNSS age, ACC-on time
    if mask & 0x04 and len(data) >= pos + 2:
        x.hdop = _word(data, pos) / 10


#: Bits of the driving-event word in item `0xFE` sub-record 0x01 (traccar).
_FE_EVENTS = ((0x07, Alarm.OTHER), (0x08, Alarm.COLLISION), (0x10, Alarm.TAMPER))


def _item_vendor_level_or_power(data: bytes, x: _Extras) -> None:
    """Item `0xFE`: battery %, power 0.1 V, odometer (m), or 0x7C + sub-records with a
    driving-event word."""
    if len(data) == 1:
        x.level(data[0])
    elif len(data) == 2:
        x.power_voltage = _word(data) / 10
    elif len(data) == 4:
        x.odometer_km = _dword(data) / 1000  # metres, as traccar stores it
    elif len(data) > 4 and data[0] == 0x7C:
        # Bits 0-2 harsh acceleration/braking/cornering (no shared name: `other`, vector 45),
        # bit 3 accident, bit 4 tampering.
        pos = 1
        while pos + 2 <= len(data):
            start = pos + 2
            pos = start + data[start - 1]
            if data[start - 2] == 0x01 and pos - start == 4 and pos <= len(data):
                events = _dword(data, start)
                x.alarms.extend(alarm for mask, alarm in _FE_EVENTS if events & mask)


def _item_extension(data: bytes, x: _Extras) -> None:
    """Item `0xEB`: a cell list, a time zone string, or BSJ sub-records (traccar's order)."""
    length = len(data)
    if length >= 3 and (data[0] << 8 | data[1]) > 200 and (length - 3) % 5 == 0:
        mcc, mnc = _word(data), data[2]
        for pos in range(3, length, 5):
            x.cells.append(
                Cell(
                    mcc=mcc,
                    mnc=mnc,
                    lac=_word(data, pos),
                    cid=_word(data, pos + 2),
                    rssi=data[pos + 4],
                )
            )
    elif length and 0x20 <= data[0] <= 0x7E and _PRINTABLE.fullmatch(data):
        x.info.append(("timezone", data.decode("ascii")))
    else:
        pos = 0
        handlers = _BSJ_HANDLERS
        while pos + 4 <= length:
            size, kind = _HEAD.unpack_from(data, pos)
            stop = pos + 2 + size  # the length counts the type word
            if stop > length or stop < pos + 4:
                break
            handler = handlers.get(kind)
            if handler is not None:
                handler(data[pos + 4 : stop], x)
            pos = stop


def _bsj_voltage(data: bytes, x: _Extras) -> None:
    # Two bytes: the TK905-class internal battery (vector 9); four: the BSJ external supply
    # (vector 2). traccar tells them apart the same way.
    if len(data) == 4:
        x.power_voltage = _dword(data) / 1000
    elif len(data) == 2:
        x.battery_voltage = _word(data) / 1000


def _bsj_alarm_word(data: bytes, x: _Extras) -> None:
    # Active low. Only bit 12 (illegal removal) is used. Bit 0 is the battery switch (BSJ), not
    # a power-off alarm as traccar reads it: vector 2 clears it with 11.7 V external power on.
    # Bit 4 (collision) is clear on every point of a moving truck's batch (vector 60).
    if len(data) == 4:
        x.states.append(Alarm.TAMPER)
        if not _dword(data) & 0x1000:
            x.alarms.append(Alarm.TAMPER)


def _bsj_status_word(data: bytes, x: _Extras) -> None:
    # Active low: bit 6 vibration (vector 11), bit 14 light sensor, i.e. the case was opened.
    if len(data) == 4:
        word = _dword(data)
        x.states.extend((Alarm.VIBRATION, Alarm.TAMPER))
        if not word & 0x0040:
            x.alarms.append(Alarm.VIBRATION)
        if not word & 0x4000:
            x.alarms.append(Alarm.TAMPER)


def _bsj_battery_level(data: bytes, x: _Extras) -> None:
    if data:
        x.level(data[0])


def _bsj_iccid(data: bytes, x: _Extras) -> None:
    iccid = data.hex().rstrip("f")
    if len(data) == 10 and iccid.strip("0"):
        x.info.append(("iccid", iccid))


def _bsj_wifi(data: bytes, x: _Extras) -> None:
    fields = data[1:].decode("ascii", "replace").split(",")
    for index in range(0, len(fields) - 1, 2):
        mac = fields[index].strip().lower()
        if not _MAC.fullmatch(mac):
            continue
        try:
            rssi: int | None = int(fields[index + 1])
        except ValueError:
            rssi = None
        x.wifi.append(WifiAccessPoint(mac=mac, rssi=rssi))


def _bsj_battery_alarm(data: bytes, x: _Extras) -> None:
    if data:
        x.states.append(Alarm.LOW_BATTERY)
        if data[0] in (3, 4):
            x.alarms.append(Alarm.LOW_BATTERY)


def _bsj_power(data: bytes, x: _Extras) -> None:
    if len(data) >= 2:
        x.power_voltage = _word(data) / 100


def _bsj_imei(data: bytes, x: _Extras) -> None:
    if len(data) == 15 and data.isdigit() and data.strip(b"0"):
        x.info.append(("imei", data.decode("ascii")))


def _bsj_cell(data: bytes, x: _Extras) -> None:
    if len(data) >= 9:
        lac, cid = _word(data, 3), _dword(data, 5)
        if lac or cid:  # BSJ: all zeros when there is no base station
            x.cells.append(Cell(mcc=_word(data), mnc=data[2], lac=lac, cid=cid))


_BSJ_HANDLERS: dict[int, _Handler] = {
    BsjType.VOLTAGE: _bsj_voltage,
    BsjType.ALARM_WORD: _bsj_alarm_word,
    BsjType.BATTERY_LEVEL: _bsj_battery_level,
    BsjType.BATTERY_LEVEL_E1: _bsj_battery_level,
    BsjType.ICCID: _bsj_iccid,
    BsjType.WIFI: _bsj_wifi,
    BsjType.STATUS_WORD: _bsj_status_word,
    BsjType.BATTERY_ALARM: _bsj_battery_alarm,
    BsjType.POWER: _bsj_power,
    BsjType.IMEI: _bsj_imei,
    BsjType.CELL: _bsj_cell,
}
_BSJ_HANDLERS = {int(kind): handler for kind, handler in _BSJ_HANDLERS.items()}

_ITEM_HANDLERS: dict[int, _Handler] = {
    Item.MILEAGE: _item_mileage,
    Item.SIGNAL: _item_signal,
    Item.SATELLITES: _item_satellites,
    Item.CELLS_2G: _item_counted_cells,
    Item.WIFI_COUNTED: _item_counted_wifi,
    Item.CELLS_4G: _item_counted_cells,
    Item.BATTERY_LEVEL_TENTHS: _item_battery_tenths,
    Item.DRIVING_BEHAVIOUR: _item_driving,
    Item.POWER_CENTIVOLTS: _item_power_centivolts,
    Item.BATTERY_CENTIVOLTS: _item_battery_centivolts,
    Item.POWER_DECIVOLTS: _item_power_decivolts,
    Item.USER_STATUS: _item_user_status,
    Item.POWER_DECIVOLTS_D3: _item_power_decivolts,
    Item.BATTERY_LEVEL_D4: _item_level,
    Item.LEVEL_CELLS_OR_POWER: _item_level_cells_or_power,
    Item.BATTERY_INFO: _item_battery_info,
    Item.CHARGE_LEVEL: _item_charge_level,
    Item.VENDOR_ALARM: _item_vendor_alarm,
    Item.BATTERY_LEVEL_E9: _item_level,
    Item.EXTENSION: _item_extension,
    Item.WIFI: _item_wifi,
    Item.STATUS_BLOCK: _item_status_block,
    Item.CELLS: _item_cells,
    Item.POWER_MILLIVOLTS: _item_power_millivolts,
    Item.WIFI_F4: _item_wifi,
    Item.IMEI: _item_imei,
    Item.BATTERY_PACK: _item_battery_pack,
    Item.GNSS_INFO: _item_gnss_info,
    Item.VENDOR_LEVEL_OR_POWER: _item_vendor_level_or_power,
}
#: The same with plain int keys: looked up once per item, an int key is found by identity.
_ITEM_HANDLERS = {int(item): handler for item, handler in _ITEM_HANDLERS.items()}


#: Some firmware (Carscop CCTR-830G-4G, traccar commit 42af749b7) appends a fixed 18-byte
#: block instead of items: 4 reserved bytes, odometer DWORD km, battery WORD 0.1 V, area id
#: DWORD, signal BYTE, 3 reserved bytes (traccar counts 20 with the checksum and flag).
_FIXED_TAIL_SIZE = 18
_FIXED_TAIL = struct.Struct(">4xIHIB3x")


def _items_fit(body: bytes) -> bool:
    """Tell whether the bytes after the basic block read as items ending exactly at the end."""
    pos, end = _BASIC_SIZE, len(body)
    while pos + 2 <= end:
        pos += 2 + body[pos + 1]
    return pos == end


def _fixed_tail(body: bytes, x: _Extras) -> None:
    """Read the 18-byte block that is not items (vector 59), only when items do not fit it."""
    odometer, battery, _area, signal = _FIXED_TAIL.unpack_from(body, _BASIC_SIZE)
    x.odometer_km = float(odometer)
    x.battery_voltage = battery / 10
    x.gsm_signal = _signal_percent(signal)


def _location(
    header: Header,
    body: bytes,
    ctx: Context,
    *,
    historical: bool = False,
    reply: CommandReply | None = None,
) -> Message:
    """Decode a `0x0200` body (basic block + additional items) into one message."""
    if len(body) < _BASIC_SIZE:
        raise FrameError("JT808 location body too short")
    alarm_word, status, lat_raw, lon_raw, altitude, speed, course = _BASIC.unpack_from(body)
    extras = _Extras(bool(status & _CHARGING))
    end = len(body)
    if end - _BASIC_SIZE == _FIXED_TAIL_SIZE and not _items_fit(body):
        _fixed_tail(body, extras)
    else:
        pos = _BASIC_SIZE
        while pos + 2 <= end:
            start = pos + 2
            pos = start + body[pos + 1]
            if pos > end:
                break  # a truncated last item: keep what came before it
            handler = _ITEM_HANDLERS.get(body[start - 2])
            if handler is not None:
                handler(body[start:pos], extras)

    alarms: list[Alarm] = []
    while alarm_word:
        lowest = alarm_word & -alarm_word
        alarms.append(_ALARM_OF_MASK[lowest])
        alarm_word ^= lowest
    alarms += extras.alarms
    valid = bool(status & _VALID)
    latitude: float | None = None
    longitude: float | None = None
    if lat_raw <= _MAX_LATITUDE and lon_raw <= _MAX_LONGITUDE:
        latitude = -lat_raw / 1e6 if status & _SOUTH else lat_raw / 1e6
        longitude = -lon_raw / 1e6 if status & _WEST else lon_raw / 1e6
    else:
        valid = False  # not a coordinate: keep the frame, drop the position
    if reply is not None:
        kind: MessageType = MessageType.COMMAND_REPLY
    elif alarms:
        kind = _ALARM
    else:
        kind = _LOCATION
    states = extras.states
    # Built positionally (Message._fields order): one is built per report.
    return _new_message(
        (
            _JT808, kind, header.device_id, _device_time(body[22:28], ctx.jt808_utc_offset),
            valid, latitude, longitude, speed / 10, float(course), float(altitude),
            extras.satellites, extras.hdop, _GNSS if valid else None, tuple(extras.cells),
            tuple(extras.wifi), tuple(dict.fromkeys(alarms)) if alarms else (),
            WORD_ALARM_STATES.union(states)
            if states and not WORD_ALARM_STATES.issuperset(states)
            else WORD_ALARM_STATES,
            bool(status & _IGNITION), bool(status & _OIL_CUT), extras.charging,
            extras.battery_percent, extras.battery_voltage, extras.power_voltage,
            extras.gsm_signal, extras.odometer_km, header.serial, None, reply,
            header.checksum_ok, historical, tuple(extras.info), header.raw,
        )
    )  # fmt: skip


_new_message = partial(tuple.__new__, Message)
_new_header = partial(tuple.__new__, Header)
_new_result = partial(tuple.__new__, FrameResult)
_CHARGING = 1 << StatusBit.CHARGING
_JT808 = Protocol.JT808
_TAMPER = Alarm.TAMPER
_VIBRATION = Alarm.VIBRATION
_ALARM = MessageType.ALARM
_LOCATION = MessageType.LOCATION
_GNSS = PositionSource.GNSS
_VALID = 1 << StatusBit.VALID
_SOUTH = 1 << StatusBit.SOUTH
_WEST = 1 << StatusBit.WEST
_IGNITION = 1 << StatusBit.IGNITION
_OIL_CUT = 1 << StatusBit.OIL_CUT


# ---------------------------------------------------------------------------------------------
# Messages
# ---------------------------------------------------------------------------------------------


def _plain(
    header: Header,
    kind: MessageType,
    *,
    time: datetime | None = None,
    battery_percent: float | None = None,
    gsm_signal: int | None = None,
    text: str | None = None,
    reply: CommandReply | None = None,
    info: tuple[tuple[str, str], ...] = (),
) -> Message:
    """A message without a position: the header's identity, serial and checksum, and the rest
    (built positionally, in `Message._fields` order: heartbeats are frequent)."""
    return _new_message(
        (
            _JT808, kind, header.device_id, time, None, None, None, None, None, None, None, None,
            None, (), (), (), _NO_STATES, None, None, None, battery_percent, None, None,
            gsm_signal, None, header.serial, text, reply, header.checksum_ok, False, info,
            header.raw,
        )
    )  # fmt: skip


_NO_STATES: frozenset[Alarm] = frozenset()


def _text(data: bytes, encoding: str = "gbk") -> str:
    """Decode a device string: NUL padding and surrounding blanks removed."""
    return data.decode(encoding, "replace").strip("\x00 \r\n\t")


def _text_reply(header: Header, text: str, reference: int | None = None) -> Message:
    command = f"{MessageId.TEXT:04x}" if reference is not None else None
    return _plain(
        header,
        MessageType.COMMAND_REPLY,
        text=text,
        reply=CommandReply(reference=reference, command=command, result=text_verdict(text)),
    )


def _decode_register(header: Header, body: bytes, ctx: Context) -> FrameResult:
    """`0x0100`: registration, answered with `0x8100` (result 0, auth code = terminal id)."""
    if header.version is not None:  # 2019: maker 11, model 30, terminal id 30 (after 4 bytes)
        maker, model, terminal = body[4:15], body[15:45], body[45:75]
    elif len(body) >= 37:  # 2013: maker 5, model 20, terminal id 7
        maker, model, terminal = body[4:9], body[9:29], body[29:36]
    else:  # 2011: maker 5, model 8, terminal id 7
        maker, model, terminal = body[4:9], body[9:17], body[17:24]
    info = [("manufacturer", _text(maker)), ("model", _text(model))]
    imei = _text(terminal)
    if len(imei) == 15 and imei.isdigit():
        info.append(("imei", imei))
    response = _WORD.pack(header.serial) + bytes((ResponseResult.SUCCESS,))
    ack, _ = encode_frame(
        MessageId.REGISTER_RESPONSE, response + header.device_id.encode("ascii"), ctx
    )
    message = _plain(header, MessageType.LOGIN, info=tuple((k, v) for k, v in info if v))
    return FrameResult((message,), ack)


def _decode_authenticate(header: Header, body: bytes, ctx: Context) -> FrameResult:
    """`0x0102`: any auth code is accepted; the 2019 form adds the IMEI and firmware."""
    info: tuple[tuple[str, str], ...] = ()
    if header.version is not None and body:
        rest = body[1 + body[0] :]
        imei, firmware = _text(rest[:15]), _text(rest[15:35])
        info = tuple(
            (key, value)
            for key, value in (("imei", imei), ("firmware", firmware))
            if value and (key != "imei" or value.isdigit())
        )
    return _new_result(((_plain(header, MessageType.LOGIN, info=info),), _ack(header, ctx), None))


def _decode_heartbeat(header: Header, body: bytes, ctx: Context) -> FrameResult:
    """`0x0002`: empty, or BSJ battery %, CSQ and mode (protocols.md §3.4)."""
    if len(body) >= 3:
        message = _plain(
            header,
            MessageType.HEARTBEAT,
            battery_percent=body[0] if body[0] <= 100 else None,
            gsm_signal=_signal_percent(body[1]),
        )
    else:
        message = _plain(header, MessageType.HEARTBEAT)
    return _new_result(((message,), _ack(header, ctx), None))


def _decode_attributes(header: Header, body: bytes, ctx: Context) -> FrameResult:
    """`0x0107`: type, maker, model (20; 2019: 30), terminal id (7; 2019: 30), ICCID, versions."""
    model_end = 57 if header.version is not None else 27
    iccid_start = model_end + (30 if header.version is not None else 7)
    info = [("manufacturer", _text(body[2:7])), ("model", _text(body[7:model_end]))]
    iccid = body[iccid_start : iccid_start + 10].hex().rstrip("f")
    if len(iccid) >= 19:
        info.append(("iccid", iccid))
    pos = iccid_start + 10
    for key in ("hardware", "firmware"):
        if pos >= len(body):
            break
        end = pos + 1 + body[pos]
        info.append((key, _text(body[pos + 1 : end])))
        pos = end
    message = _plain(header, MessageType.OTHER, info=tuple((k, v) for k, v in info if v))
    return FrameResult((message,), _ack(header, ctx))


def _decode_terminal_response(header: Header, body: bytes, ctx: Context) -> FrameResult:
    """`0x0001`: reply serial, answered message id, result; the device expects nothing back."""
    if len(body) < _RESPONSE.size:
        raise FrameError("JT808 terminal response too short")
    serial, answered, result = _RESPONSE.unpack_from(body)
    verdict = _RESULT_VERDICT.get(result, CommandResult.FAILURE)
    reply = CommandReply(reference=serial, command=f"{answered:04x}", result=verdict)
    return FrameResult((_plain(header, MessageType.COMMAND_REPLY, reply=reply),), None)


def _decode_location(header: Header, body: bytes, ctx: Context) -> FrameResult:
    return _new_result(((_location(header, body, ctx),), _ack(header, ctx), None))


def _decode_query_response(header: Header, body: bytes, ctx: Context) -> FrameResult:
    """`0x0201`: the answer to our `0x8201` ("locate now"): reply serial + location body."""
    reply = CommandReply(
        reference=_word(body),
        command=f"{MessageId.LOCATION_QUERY:04x}",
        result=CommandResult.SUCCESS,
    )
    return FrameResult((_location(header, body[2:], ctx, reply=reply),), _ack(header, ctx))


def _decode_batch(header: Header, body: bytes, ctx: Context) -> FrameResult:
    """`0x0704` (WORD count, BYTE type, WORD-prefixed items) and vendor `0x0210` (BYTE-prefixed).

    One message per item, in order; the single `0x8001` goes with the first. Type 1 is a
    blind-area re-upload: the items are history, not the current position (§3.7).
    """
    ack = _ack(header, ctx)
    if header.message_id == MessageId.LOCATION_BATCH_VENDOR:
        if len(body) == 7:  # traccar: a battery level and a time, no position (vector 92)
            message = _plain(
                header,
                MessageType.HEARTBEAT,
                battery_percent=body[0] if body[0] <= 100 else None,
                time=_device_time(body[1:7], ctx.jt808_utc_offset),
            )
            return FrameResult((message,), ack)
        pos, size, historical = 0, 1, False
    else:
        pos, size, historical = 3, 2, len(body) >= 3 and body[2] != 0
    messages: list[Message] = []
    while pos + size <= len(body):
        start = pos + size
        pos = start + int.from_bytes(body[pos:start], "big")
        if pos > len(body):
            break
        try:
            messages.append(_location(header, body[start:pos], ctx, historical=historical))
        except FrameError:
            continue  # one unreadable item does not spoil the others
    if not messages:
        messages.append(_plain(header, MessageType.OTHER))
    return FrameResult(tuple(messages), ack)


def _decode_text_report(header: Header, body: bytes, ctx: Context) -> FrameResult:
    """`0x6006`: encoding byte (0 GB2312, 1 Unicode) + the device's text (BSJ §2.5)."""
    encoding = "utf-16-be" if body[:1] == b"\x01" else "gbk"
    return FrameResult((_text_reply(header, _text(body[1:], encoding)),), _ack(header, ctx))


def _decode_text_response(header: Header, body: bytes, ctx: Context) -> FrameResult:
    """`0x1300`: the serial of our `0x8300` + UTF-16 text ("Set OK!", vector 63)."""
    if len(body) < 2:
        raise FrameError("JT808 text response too short")
    text = _text(body[2 : 2 + (len(body) - 2) // 2 * 2], "utf-16-be")
    return FrameResult((_text_reply(header, text, _word(body)),), None)


def _decode_waybill(header: Header, body: bytes, ctx: Context) -> FrameResult:
    """`0x0701`: DWORD length + ASCII, which vendors use for command results (vector 17)."""
    text = _text(body[4 : 4 + _dword(body)], "ascii")
    return FrameResult((_text_reply(header, text),), None)


def _decode_other(header: Header, body: bytes, ctx: Context) -> FrameResult:
    """Messages with nothing for the model (transparent data, logout, vendor extras).

    A message id this module does not name is answered all the same (`UNANSWERED` aside) and
    flagged for the session's log.
    """
    message_id = header.message_id
    unknown = None if message_id in KNOWN else f"{message_id:#06x}"
    return FrameResult((_plain(header, MessageType.OTHER),), _ack(header, ctx), unknown)


_TIME_SYNC_BODY = struct.Struct(">HBBBBBB")


def _decode_time_sync(header: Header, body: bytes, ctx: Context) -> FrameResult:
    """`0x0109`: the device asks for the time; `0x8109` gives it in UTC (traccar's layout:
    year WORD, month, day, hour, minute, second, result 0)."""
    now = ctx.now.astimezone(UTC)
    reply = _TIME_SYNC_BODY.pack(
        now.year, now.month, now.day, now.hour, now.minute, now.second, ResponseResult.SUCCESS
    )
    ack, _ = encode_frame(MessageId.TIME_SYNC_RESPONSE, reply, ctx)
    return FrameResult((_plain(header, MessageType.OTHER),), ack)


# JT600-style reports (protocols.md §3.7; traccar `decodeLocation2`, `Jt600ProtocolDecoder`).
_JT600_BASIC = struct.Struct(
    ">BBIBIHBHH"
)  # rssi, sats, km, battery, cid, lac, product, status, alarm
#: Alarm word bits of product type 3 (vehicle units); types 1 and 2 only use bit 0, low power.
_JT600_PRODUCT_3_ALARMS = (
    (0, Alarm.OVERSPEED),
    (1, Alarm.LOW_POWER),
    (2, Alarm.VIBRATION),
    (3, Alarm.LOW_BATTERY),
    (5, Alarm.GEOFENCE_ENTER),
    (6, Alarm.GEOFENCE_EXIT),
)


def _jt600_degrees(digits: str) -> float:
    """`(d)ddmmmmmm` BCD digits: degrees, then minutes with four decimals."""
    value = int(digits)
    return value // 1_000_000 + (value % 1_000_000) / 10_000 / 60


def _decode_jt600(header: Header, body: bytes, ctx: Context) -> FrameResult:
    """`0x5501`/`0x5502`: BCD time (UTC) and coordinates, then a fixed status block.

    The speed byte is BCD knots, as traccar reads it. `0x5502` is a blind-area record.
    """
    if len(body) < 17 + _JT600_BASIC.size:
        raise FrameError("JT600-style location too short")
    digits = body[:17].hex()
    if not digits[:29].isdigit() or not digits[30:32].isdigit():
        raise FrameError("JT600-style location with non-BCD fields")
    flags = body[14] & 0x0F  # the low nibble after the 9 longitude digits
    # ddMMyy hhmmss, UTC: swap the date to the JT808 order and reuse its reader.
    time = _device_time(
        bytes.fromhex(digits[4:6] + digits[2:4] + digits[0:2] + digits[6:12]), timedelta(0)
    )
    latitude = _jt600_degrees(digits[12:20])
    longitude = _jt600_degrees(digits[20:29])
    rssi, satellites, _km, battery, _cid, _lac, product, status, alarm = _JT600_BASIC.unpack_from(
        body, 17
    )
    alarms: list[Alarm] = []
    relay: bool | None = None
    if product in (1, 2) and alarm & 1:
        alarms.append(Alarm.LOW_POWER)
    elif product == 3:
        relay = bool(status & 0x20)
        alarms.extend(name for bit, name in _JT600_PRODUCT_3_ALARMS if alarm >> bit & 1)
    message = Message(
        protocol=Protocol.JT808,
        type=MessageType.ALARM if alarms else MessageType.LOCATION,
        device_id=header.device_id,
        time=time,
        valid=bool(flags & 1),
        latitude=latitude if flags & 2 else -latitude,
        longitude=longitude if flags & 4 else -longitude,
        speed_kmh=int(digits[30:32]) * 1.852,
        course=body[16] * 2.0,
        satellites=satellites,
        position_source=PositionSource.GNSS if flags & 1 else None,
        alarms=tuple(alarms),
        relay=relay,
        charging=True if battery in (0xAA, 0xAB) else None,
        battery_percent=battery if battery <= 100 else None,
        gsm_signal=_signal_percent(rssi),
        serial=header.serial,
        checksum_ok=header.checksum_ok,
        historical=header.message_id == MessageId.JT600_BLIND,
        raw=header.raw,
    )
    ack = None
    if header.attributes & Attribute.JT600_ACK_REQUESTED:
        # traccar's 0x4401: answered id + result, with the fixed 1-byte serial 1 in the header.
        plain = (
            _HEAD.pack(MessageId.JT600_GENERAL_RESPONSE, 3)
            + header.terminal
            + b"\x01"
            + _WORD.pack(header.message_id)
            + bytes((ResponseResult.SUCCESS,))
        )
        ack = _FLAG + jt808_escape(plain + bytes((xor_checksum(plain),))) + _FLAG
    return FrameResult((message,), ack)


_DECODERS: dict[int, Callable[[Header, bytes, Context], FrameResult]] = {
    MessageId.TERMINAL_RESPONSE: _decode_terminal_response,
    MessageId.HEARTBEAT: _decode_heartbeat,
    MessageId.HEARTBEAT_CC888: _decode_heartbeat,
    MessageId.TIME_SYNC: _decode_time_sync,
    MessageId.REGISTER: _decode_register,
    MessageId.AUTHENTICATE: _decode_authenticate,
    MessageId.ATTRIBUTES: _decode_attributes,
    MessageId.LOCATION: _decode_location,
    MessageId.LOCATION_QUERY_RESPONSE: _decode_query_response,
    MessageId.LOCATION_BATCH_VENDOR: _decode_batch,
    MessageId.LOCATION_BATCH: _decode_batch,
    MessageId.WAYBILL: _decode_waybill,
    MessageId.TEXT_RESPONSE: _decode_text_response,
    MessageId.TEXT_REPORT: _decode_text_report,
    MessageId.JT600_LOCATION: _decode_jt600,
    MessageId.JT600_BLIND: _decode_jt600,
}
#: The decoders the fast path may use: all but the JT600-style reports (1-byte serial), with
#: plain int keys.
_FAST_DECODERS = {int(k): v for k, v in _DECODERS.items() if k not in _JT600}

_TIME_REQUEST = "BASE,2"
_TIME_PLACEHOLDER = "TIME"


def _decode_text_frame(frame: bytes, ctx: Context) -> FrameResult:
    """`(id,...)` vendor frames (E-locks) that traccar accepts on the JT808 port.

    `(id,1,seq,BASE,2,TIME)` asks for the time: we echo it with TIME replaced by the UTC time
    `yyyyMMddHHmmss`, as traccar does (vector 47). Anything else is the answer to a command
    (vector 62: `(id,1,001,ELOCK,3,529439)`).
    """
    if not frame.endswith(b")"):
        raise FrameError("JT808 text frame without its closing parenthesis")
    sentence = frame.decode("ascii", "replace")
    found = _TEXT_FRAME_ID.match(frame)
    device_id = found.group(1).decode("ascii") if found else None
    if _TIME_REQUEST in sentence:
        stamp = ctx.now.astimezone(UTC).strftime("%Y%m%d%H%M%S")
        ack = sentence.replace(_TIME_PLACEHOLDER, stamp).encode("ascii", "replace")
        message = Message(
            protocol=Protocol.JT808, type=MessageType.OTHER, device_id=device_id, raw=frame
        )
        return FrameResult((message,), ack)
    message = Message(
        protocol=Protocol.JT808,
        type=MessageType.COMMAND_REPLY,
        device_id=device_id,
        text=sentence,
        reply=CommandReply(result=text_verdict(sentence)),
        raw=frame,
    )
    return FrameResult((message,), None)


def decode(frame: bytes, ctx: Context, payload: bytes | None = None) -> FrameResult:
    """Decode one frame (flags included).

    `payload` is the content `framing.split_jt808` un-escaped (or took literally, for firmware
    that does not escape 7D); without it the frame is un-escaped strictly here.
    """
    if frame[:1] == b"(":
        return _decode_text_frame(frame, ctx)
    if payload is None:
        if len(frame) < 2 or frame[0] != 0x7E or frame[-1] != 0x7E:
            raise FrameError("not a JT808 frame")
        payload = jt808_unescape(frame[1:-1])
    header, body = _parse_header(payload, frame)
    ctx.jt808_terminal = header.terminal
    ctx.jt808_2019 = header.version is not None
    if header.version is not None:
        ctx.jt808_version = header.version
    if header.packets is not None and header.packets[0] > 1:
        return _decode_fragment(header, body, ctx)
    handler = _DECODERS.get(header.message_id, _decode_other)
    return handler(header, body, ctx)


def decode_fast(frame: bytes, ctx: Context) -> FrameResult | None:
    """A read that is exactly one consistent frame with a 2011/2013 header, without the
    splitter (`Family.fast`).

    The splitter would cut such a read as one frame and keep its un-escaped bytes, since their
    length and checksum agree; the message's own decoder then runs as in `decode`. Anything
    else (a text frame, a 2019 or JT600 header, fragments, an encrypted body, a bad checksum,
    unescaped 7D) is left to the general path.
    """
    size = len(frame)
    if size < 15 or frame[0] != 0x7E or frame[-1] != 0x7E or frame.find(b"\x7e", 1) != size - 1:
        return None
    payload = frame[1:-1]
    if 0x7D in payload:
        try:
            payload = jt808_unescape(payload)
        except FrameError:
            return None
    message_id, attributes = _HEAD.unpack_from(payload)
    handler = _FAST_DECODERS.get(message_id)
    if (
        handler is None
        or attributes & _FAST_REFUSED
        or len(payload) != 13 + (attributes & 0x03FF)  # the body length field
        or xor_checksum(payload)  # the checksum byte cancels the others when they agree
    ):
        return None
    terminal = payload[4:10]
    serial = payload[10] << 8 | payload[11]
    ctx.jt808_terminal = terminal
    ctx.jt808_2019 = False
    if message_id == 0x0200 and len(payload) == _TKSTAR_PAYLOAD:
        values = _TKSTAR.unpack_from(payload, 12)
        if _tkstar_markers(values) == _TKSTAR_SKELETON:
            message = _tkstar_location(device_id_of(terminal), serial, frame, values, ctx)
            return _new_result(((message,), _response(serial, 0x0200, ctx), None))
    header = _new_header(
        (message_id, attributes, terminal, device_id_of(terminal), serial, None, None, True, frame)
    )
    return handler(header, payload[12:-1], ctx)


#: The location report of a TK-Star 4G unit (jt808.jsonl lines 9-12 and 28): the basic block,
#: then mileage `0x01`, signal `0x30`, satellites `0x31` and the `0xEB` block (ICCID, alarm word
#: `0x0089`, status word `0x00C5`, battery mV `0x002D`, battery % `0x00A8`), always these items
#: in this order and these sizes, so one unpack reads them all. The markers (item id and
#: length, sub-record length and type) must be exactly these, else the items are walked.
_TKSTAR = struct.Struct(
    ">IIIIhHH6s"  # basic block: alarm, status, latitude, longitude, altitude, speed, course, time
    "HIHBHB"  # mileage, signal, satellites
    "HHH10sHHIHHIHHHHHB"  # 0xEB: ICCID, alarm word, status word, mV, level
)  # fmt: skip
#: Un-escaped size of a frame holding one (header, body, checksum).
_TKSTAR_PAYLOAD = 12 + _TKSTAR.size + 1
_tkstar_markers = itemgetter(8, 10, 12, 14, 15, 16, 18, 19, 21, 22, 24, 25, 27, 28)
_TKSTAR_SKELETON = (
    0x0104, 0x3001, 0x3101, 0xEB29, 0x000C, 0x00B2, 0x0006, 0x0089, 0x0006, 0x00C5, 0x0004,
    0x002D, 0x0003, 0x00A8,
)  # fmt: skip


@lru_cache(maxsize=4096)
def _iccid_info(data: bytes) -> tuple[tuple[str, str], ...]:
    """`_bsj_iccid` for a 10-byte ICCID field, as the message's `info` (a device sends its
    SIM's in every report)."""
    iccid = data.hex().rstrip("f")
    return (("iccid", iccid),) if iccid.strip("0") else ()


def _tkstar_location(
    device_id: str, serial: int, frame: bytes, values: tuple[Any, ...], ctx: Context
) -> Message:
    """What `_location` reads from a TK-Star report (of a frame whose checksum agrees), from its
    one unpack (`_TKSTAR`)."""
    (alarm_word, status, lat_raw, lon_raw, altitude, speed, course, stamp, _, mileage, _, csq, _,
     satellites, _, _, _, iccid, _, _, bsj_alarms, _, _, bsj_status, _, _, millivolts, _, _,
     level) = values  # fmt: skip
    alarms: list[Alarm] = []
    while alarm_word:
        lowest = alarm_word & -alarm_word
        alarms.append(_ALARM_OF_MASK[lowest])
        alarm_word ^= lowest
    if not bsj_alarms & 0x1000:  # `_bsj_alarm_word`
        alarms.append(_TAMPER)
    if not bsj_status & 0x0040:  # `_bsj_status_word`
        alarms.append(_VIBRATION)
    if not bsj_status & 0x4000:
        alarms.append(_TAMPER)
    valid, south, west, ignition, relay, charging = _status_bits(status)
    battery: int | None = None
    if level <= 100:  # `_Extras.level`
        battery = level
    elif level == 0xFF:
        charging = True
    latitude: float | None = None
    longitude: float | None = None
    if lat_raw <= _MAX_LATITUDE and lon_raw <= _MAX_LONGITUDE:
        latitude = -lat_raw / 1e6 if south else lat_raw / 1e6
        longitude = -lon_raw / 1e6 if west else lon_raw / 1e6
    else:
        valid = False
    return _new_message(
        (
            _JT808, _ALARM if alarms else _LOCATION, device_id,
            _device_time(stamp, ctx.jt808_utc_offset), valid, latitude, longitude, speed / 10,
            float(course), float(altitude), satellites, None, _GNSS if valid else None, (), (),
            tuple(dict.fromkeys(alarms)) if alarms else (), WORD_ALARM_STATES,
            ignition, relay, charging, battery,
            millivolts / 1000, None, _SIGNAL_PERCENT[csq], mileage / 10, serial, None, None,
            True, False, _iccid_info(iccid), frame,
        )
    )  # fmt: skip


@lru_cache(maxsize=1024)
def _status_bits(status: int) -> tuple[bool, bool, bool, bool, bool, bool]:
    """The status word's valid, south, west, ignition, relay and charging bits (a device's
    status word takes few values)."""
    return (
        status & _VALID != 0, status & _SOUTH != 0, status & _WEST != 0,
        status & _IGNITION != 0, status & _OIL_CUT != 0, status & _CHARGING != 0,
    )  # fmt: skip


#: Header bits the fast path leaves to the general one: encryption, fragments, 2019, vendor.
_FAST_REFUSED = int(
    Attribute.ENCRYPTION
    | Attribute.SUBPACKAGE
    | Attribute.VERSION_2019
    | Attribute.JT600_ACK_REQUESTED
)


# ---------------------------------------------------------------------------------------------
# Sub-packaged messages (header bit 13, protocols.md §3.12; `reassembly`)
# ---------------------------------------------------------------------------------------------

#: Messages whose own reply is more than a general response: kept when they come in pieces.
_SPECIFIC_REPLIES = frozenset({MessageId.REGISTER, MessageId.TIME_SYNC})


def _decode_fragment(header: Header, body: bytes, ctx: Context) -> FrameResult:
    """One fragment of a sub-packaged message, kept until the message is whole.

    Each fragment gets its own `0x8001` (JT/T 808-2013 §7.12 allows one general response per
    fragment), so the device never resends one we hold. The fragment that completes the
    message returns it decoded as one, under the first fragment's serial; the others decode
    to an OTHER message that keeps the link alive.
    """
    assert header.packets is not None
    total, index = header.packets
    if not 1 <= index <= total:
        raise FrameError(f"JT808 fragment {index} of {total}: indexes run from 1")
    ack = _general_response(header, ctx)
    fragments = ctx.jt808_fragments
    if fragments is None:
        fragments = ctx.jt808_fragments = Reassembly()
    key = FragmentKey(header.message_id, total, (header.serial - index + 1) & 0xFFFF)
    whole = fragments.add(key, index, Fragment(body, header.raw, header.checksum_ok), ctx.now)
    if whole is None:
        return FrameResult((_plain(header, MessageType.OTHER),), ack)
    first = header._replace(
        serial=key.first_serial, packets=None, checksum_ok=whole.checksum_ok, raw=whole.frames
    )
    result = _DECODERS.get(key.message_id, _decode_other)(first, whole.body, ctx)
    if result.ack is not None and key.message_id in _SPECIFIC_REPLIES:
        ack += result.ack
    return FrameResult(result.messages, ack, result.unknown)


class Settled(NamedTuple):
    """What became of a session's unfinished sub-packaged messages (see `settle`)."""

    request: bytes | None  #: `0x8003` frames asking for missing fragments, to send now
    lost: tuple[Lost, ...]  #: messages given up, to report


def settle(ctx: Context, *, final: bool, can_request: bool = True) -> Settled:
    """Time out unfinished sub-packaged messages and ask for fragments that did not come.

    A message whose last fragment arrived while others are missing gets one `0x8003`
    retransmission request (original serial, count, indexes: JT/T 808-2013 §8.4; the count is a
    WORD in the 2019 form). `final` (the connection closed) gives every unfinished message up.
    """
    fragments = ctx.jt808_fragments
    if fragments is None:
        return Settled(None, ())
    requests, lost = fragments.settle(ctx.now, final=final, can_request=can_request)
    frames = b""
    for key, missing in requests:
        count = _WORD.pack(len(missing)) if ctx.jt808_2019 else bytes((len(missing),))
        body = _WORD.pack(key.first_serial) + count + b"".join(map(_WORD.pack, missing))
        frames += encode_frame(MessageId.RETRANSMIT_REQUEST, body, ctx)[0]
    return Settled(frames or None, tuple(lost))


# ---------------------------------------------------------------------------------------------
# Commands (protocols.md §3.8)
# ---------------------------------------------------------------------------------------------

#: `RELAY,1#` / `RELAY,0#`: 0x8300 text reaches the firmware's SMS command parser (BSJ
#: Appendix E, traccar's BSJ/C5 text commands), and this is the relay SMS of the TK-Star and
#: Concox firmware families (CONCOX-MAN). The flag byte is traccar's 0x01 (vector 111).
_RELAY_TEXT = {True: b"RELAY,1#", False: b"RELAY,0#"}
_TEXT_FLAG = b"\x01"
_MAX_INTERVAL = 0xFFFFFFFF
#: `0x8203` body: alarm serial 0 (every pending alarm, JT/T 808-2013 §8.20) and the alarm
#: types confirmed, bit 0 = the emergency (SOS) alarm, the bit it has in the status word.
_CONFIRM_SOS = b"\x00\x00" + _DWORD.pack(1)


def _bcd_now(ctx: Context) -> bytes:
    """The device's local time as BCD `yyMMddHHmmss` (its clock runs at UTC + offset)."""
    return bytes.fromhex((ctx.now.astimezone(UTC) + ctx.jt808_utc_offset).strftime("%y%m%d%H%M%S"))


def _relay_body(command: Command, ctx: Context) -> tuple[int, bytes]:
    cut = command.kind is CommandKind.RELAY_CUT
    dialect = command.dialect or RelayDialect.JT808_8105_F0F1
    if dialect is RelayDialect.JT808_8105_F0F1:
        word = ControlWord.STOP_F0 if cut else ControlWord.RESUME_F1
        return MessageId.TERMINAL_CONTROL, bytes((word,))
    if dialect is RelayDialect.JT808_8105_6465:
        word = ControlWord.CUT_64 if cut else ControlWord.RESTORE_65
        return MessageId.TERMINAL_CONTROL, bytes((word,))
    if dialect is RelayDialect.JT808_A006:
        return MessageId.OIL_CONTROL, bytes((1 if cut else 0,)) + _bcd_now(ctx)
    if dialect is RelayDialect.JT808_TEXT:
        return MessageId.TEXT, _TEXT_FLAG + _RELAY_TEXT[cut]
    raise CommandError(f"relay dialect {dialect} is not a JT808 dialect")


def _command_body(command: Command, ctx: Context) -> tuple[int, bytes]:
    kind = command.kind
    if command.is_relay:
        return _relay_body(command, ctx)
    if kind is CommandKind.LOCATE:
        return MessageId.LOCATION_QUERY, b""
    if kind is CommandKind.SET_INTERVAL:
        interval = command.interval
        if interval is None or not 0 < interval <= _MAX_INTERVAL:
            raise CommandError("SET_INTERVAL needs an interval of 1 second or more")
        item = _DWORD.pack(Parameter.REPORT_INTERVAL) + b"\x04" + _DWORD.pack(interval)
        return MessageId.SET_PARAMETERS, b"\x01" + item
    if kind is CommandKind.RAW:
        if not command.text:
            raise CommandError("RAW needs a text")
        try:
            text = command.text.encode("gbk")
        except UnicodeEncodeError as err:
            raise CommandError("RAW text cannot be encoded in GBK") from err
        return MessageId.TEXT, _TEXT_FLAG + text
    if kind is CommandKind.CLEAR_SOS:
        return MessageId.ALARM_CONFIRM, _CONFIRM_SOS
    raise CommandError(f"{kind} is not supported by JT808")


def encode_command(command: Command, ctx: Context) -> EncodedCommand:
    """Encode `command`; the reference is the header serial the device's `0x0001` will quote."""
    message_id, body = _command_body(command, ctx)
    data, serial = encode_frame(message_id, body, ctx)
    return EncodedCommand(data, reference=serial)


def _answered_id(command: Command) -> str:
    """The message id (hex, as `CommandReply.command`) a reply to `command` quotes."""
    if command.is_relay:
        dialect = command.dialect or RelayDialect.JT808_8105_F0F1
        if dialect is RelayDialect.JT808_A006:
            return f"{MessageId.OIL_CONTROL:04x}"
        if dialect is RelayDialect.JT808_TEXT:
            return f"{MessageId.TEXT:04x}"
        return f"{MessageId.TERMINAL_CONTROL:04x}"
    return {
        CommandKind.LOCATE: f"{MessageId.LOCATION_QUERY:04x}",
        CommandKind.SET_INTERVAL: f"{MessageId.SET_PARAMETERS:04x}",
        CommandKind.CLEAR_SOS: f"{MessageId.ALARM_CONFIRM:04x}",
    }.get(command.kind, f"{MessageId.TEXT:04x}")


def _is_text_command(command: Command) -> bool:
    return command.kind is CommandKind.RAW or (
        command.is_relay and command.dialect is RelayDialect.JT808_TEXT
    )


def _text_outcome(
    command: Command, text: str, verdict: CommandResult | None
) -> CommandOutcome | None:
    """A text answer to a text command: RAW takes any answer; a relay needs a clear verdict."""
    if command.kind is CommandKind.RAW:
        return CommandOutcome(verdict or CommandResult.SUCCESS, text)
    if verdict is None:
        return None
    relay = command.kind is CommandKind.RELAY_CUT if verdict is CommandResult.SUCCESS else None
    return CommandOutcome(verdict, text, relay)


def command_outcome(
    command: Command, sent: EncodedCommand, message: Message
) -> CommandOutcome | None:
    """Tell whether `message` answers `sent`, and how.

    * `0x0001` quoting our serial and the message id we sent: its result (0 success, 1/2
      failure, 3 unsupported). For a relay switched by text, acceptance of the text is not
      execution, so only a refusal ends the wait there.
    * `0x0201` quoting our serial answers LOCATE.
    * `0x1300` quoting our serial, or a `0x6006` / `0x0701` / `(...)` text, answers a text
      command (RAW, or the text relay dialect), judged by `text_verdict`.
    * A live status report whose relay bit (status bit 10) already shows the requested state
      confirms a relay command (the goal is the state, and some firmware never answers).
    """
    if message.protocol is not Protocol.JT808:
        return None
    reply = message.reply
    if reply is None:
        if (
            command.is_relay
            and message.relay is not None
            and not message.historical
            and message.type in (MessageType.LOCATION, MessageType.ALARM)
            and message.relay is (command.kind is CommandKind.RELAY_CUT)
        ):
            return CommandOutcome(CommandResult.SUCCESS, relay=message.relay)
        return None
    if reply.reference is None:
        if message.text is None or not _is_text_command(command):
            return None
        return _text_outcome(command, message.text, reply.result)
    if reply.reference != sent.reference or reply.command not in (None, _answered_id(command)):
        return None
    if message.text is not None:
        return _text_outcome(command, message.text, reply.result)
    if reply.result is None:
        return None
    if reply.result is CommandResult.SUCCESS and _is_text_command(command) and command.is_relay:
        return None
    return CommandOutcome(reply.result)


FAMILY = Family(decode, encode_command, command_outcome, decode_fast)
