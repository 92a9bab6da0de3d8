"""H02: `*XX,<id>,<type>,...#` text frames and `$` binary records (protocols.md §4).

This module owns everything H02 between the splitter (`framing.split_h02`, which cuts text at
`#` and binary records by length) and the session: decoding each frame into a `Message`, the
replies traccar sends (`V4,V1` / `V4,NBR` with the time, the heartbeat echo), the text commands
(`S20` relay, `S26` status query, `S71` interval, raw codes) and deciding which `V4`
confirmation (or `LINK`, or `SMS` text) answers which command.

Field layouts follow traccar's `H02ProtocolDecoder` (the reference the vectors come from); where
traccar keeps only one alarm of the status word, every condition the word states is reported.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from enum import IntEnum, StrEnum
from functools import lru_cache
import re
import struct
from typing import NamedTuple

from .codec import KNOTS_TO_KMH, make_utc, nmea_degrees
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
)


class StatusBit(IntEnum):
    """Bits of the 32-bit status word, active low except ACC (protocols.md §4.2).

    traccar `processStatus`; the same word ends text reports and binary records. The H02
    document V1.0.5 ("GPS tracker communication protocol", §4 "Terminal status") numbers the
    bytes from the most significant and confirms traccar's bits (theft, robbery, overspeed in
    the fourth byte, ACC in the third, SOS and backup battery in the second).
    """

    THEFT = 0  #: clear: theft alarm (traccar: vibration)
    ROBBERY = 1  #: clear: robbery alarm (traccar: SOS)
    OVERSPEED = 2  #: clear: overspeed alarm
    ACC = 10  #: set: ignition on (active high, the one exception; vector h02:8 vs h02:3)
    SOS = 18  #: clear: SOS button
    BACKUP_POWER = 19  #: clear: running on the backup battery, external power cut
    #: clear: "vehicle in the cut-off oil & engine state", the relay engaged (the document's
    #: first byte, bit 3). Its S20 examples answer a cut with `F7FFFBFF` and a restore with
    #: `FFFFFBFF`; traccar's own S20 confirmation test frame carries `F7FFFBFF` (h02:62) while
    #: every plain report in h02.jsonl has the bit set; a CJ730 4G whose resume failed kept
    #: reporting `f7ffffff` (traccar issue 5417).
    OIL_CUT = 27


class RecordFlag(IntEnum):
    """Flags in the low nibble of a binary record's last longitude byte (protocols.md §4.3)."""

    VALID = 0x2  #: GNSS fix valid
    NORTH = 0x4  #: else south
    EAST = 0x8  #: else west


class RecordLength(IntEnum):
    """Binary record sizes whose layout differs (protocols.md §4.3, `framing.split_h02`)."""

    SHORT = 32  #: `$`, 5-byte BCD id, the base layout every longer record starts with
    IMEI = 42  #: `$`, 8-byte BCD id whose first 15 digits are the IMEI (vector h02:11)
    CELL = 45  #: 32-byte layout + odometer-like data and one serving cell (vectors h02:6, 74)


class Code(StrEnum):
    """Text message types and command codes (protocols.md §4.2, §4.4)."""

    POSITION = "V1"  #: real-time position; V2, V5, V6, V8, V19, VI1 are variants of it
    CONFIRMATION = "V4"  #: the device confirms a command
    HEARTBEAT = "HTBT"  #: heartbeat with battery %
    HEARTBEAT_V0 = "V0"  #: heartbeat
    HEARTBEAT_XT = "XT"  #: heartbeat (H02 document V1.0.3, layout undocumented)
    LINK = "LINK"  #: status: signal, satellites, battery; also the answer to S26
    NEIGHBOURS = "NBR"  #: cell towers with signal
    CELLS = "V3"  #: cell towers, four values each
    COMPACT = "VP1"  #: compact position or cells (lower-case maker `*hq`)
    BASE_STATIONS = "BS"  #: cell towers, hex (vector h02:39)
    SMS = "SMS"  #: free text, the answer to a text command
    RELAY = "S20"  #: engine cut / restore
    STATUS_QUERY = "S26"  #: status query, answered by LINK (traccar issue 1173)
    INTERVAL = "S71"  #: report interval


#: The conditions the status word states, present or absent (Message.alarm_states).
STATUS_ALARMS = frozenset({Alarm.VIBRATION, Alarm.SOS, Alarm.OVERSPEED, Alarm.POWER_CUT})
#: H02 relay commands: the `S20` parameters that cut and that restore (protocols.md §4.4).
RELAY_PARAMS = {True: ("1", "1"), False: ("1", "0")}
#: `S71` parameter selecting the timed report interval (traccar `H02ProtocolEncoder`).
INTERVAL_MODE = "22"
#: Largest CSQ value: LINK reports the modem's 0..31 signal quality (99 = unknown).
CSQ_MAX = 31
#: Mobile country codes are 200..799 (ITU-T E.212); anything else is not a cell.
MCC_RANGE = range(200, 800)

_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+")
_HEX = re.compile(r"[0-9A-Fa-f]+")
_HEX8 = re.compile(r"[0-9A-Fa-f]{8}")
_COORD_DOT = re.compile(r"[0-9]+\.[0-9]+")  # (d)ddmm.mmmm[m], or minutes only (38.6508)
_COORD_DASH = re.compile(r"-([0-9]+)-([0-9]+\.[0-9]+)")  # -dd-mm.mmmm
_COORD_PLAIN = re.compile(r"([0-9]+)([0-9]{6})")  # ddmmmmmm without the dot
#: ITU-T E.118: "89" (telecom) then 16 to 20 more digits.
_ICCID = re.compile(r"89[0-9]{16,20}")
#: The serving cell of a 45-byte record at byte 37: mcc, mnc, lac, cid.
_CELL_45 = struct.Struct(">HBHH")
_ALTITUDE_TAIL = re.compile(
    r"([0-9]+),-?[0-9]+,[0-9]+\.[0-9]+,(-?[0-9]+),[0-9A-Fa-f]+,[0-9A-Fa-f]+"
)


# ---------------------------------------------------------------------------------------------
# Field helpers: each returns None for a field that is empty or malformed, never raises
# ---------------------------------------------------------------------------------------------


def _digits(text: str) -> bool:
    # str.isdigit alone accepts "²", which int() refuses.
    return text.isascii() and text.isdigit()


def _six_digits(text: str) -> bool:
    return len(text) == 6 and text.isascii() and text.isdigit()


def _int(text: str) -> int | None:
    return int(text) if text.isascii() and text.isdigit() else None


def _signed(text: str) -> int | None:
    value = _int(text.removeprefix("-"))
    return -value if value is not None and text[:1] == "-" else value


def _hex(text: str) -> int | None:
    return int(text, 16) if _HEX.fullmatch(text) else None


def _float(text: str) -> float | None:
    return float(text) if _NUMBER.fullmatch(text) else None


def _time(hhmmss: str, ddmmyy: str) -> datetime | None:
    """UTC time from the `hhmmss` and `ddmmyy` fields (H02 devices report UTC, §4.2)."""
    if not (_six_digits(hhmmss) and _six_digits(ddmmyy)):
        return None
    try:
        return make_utc(
            2000 + int(ddmmyy[4:]),
            int(ddmmyy[2:4]),
            int(ddmmyy[:2]),
            int(hhmmss[:2]),
            int(hhmmss[2:4]),
            int(hhmmss[4:]),
        )
    except FrameError:
        return None


def _coordinate(
    value: str, hemisphere: str, positive: str, negative: str, limit: float
) -> float | None:
    """Degrees from any of the text forms traccar accepts (protocols.md §4.2).

    The sign comes from the hemisphere only: the leading `-` of `-23-29.0095,S` is part of the
    form, not a sign (vector h02:52).
    """
    hemisphere = hemisphere.upper()
    if hemisphere == positive:
        sign = 1.0
    elif hemisphere == negative:
        sign = -1.0
    else:
        return None
    if _COORD_DOT.fullmatch(value):
        degrees = nmea_degrees(value)
    elif match := _COORD_DASH.fullmatch(value):
        degrees = int(match[1]) + float(match[2]) / 60
    elif match := _COORD_PLAIN.fullmatch(value):
        degrees = int(match[1]) + int(match[2]) / 600_000
    else:
        return None
    return sign * degrees if degrees <= limit else None


@lru_cache(maxsize=256)
def _status(word: int) -> tuple[tuple[Alarm, ...], bool, bool]:
    """Alarms the active-low status word shows, the ignition and the relay (cached: words
    repeat)."""
    alarms: list[Alarm] = []
    if not word & 1 << StatusBit.THEFT:
        alarms.append(Alarm.VIBRATION)
    if not word & 1 << StatusBit.ROBBERY or not word & 1 << StatusBit.SOS:
        alarms.append(Alarm.SOS)
    if not word & 1 << StatusBit.OVERSPEED:
        alarms.append(Alarm.OVERSPEED)
    if not word & 1 << StatusBit.BACKUP_POWER:
        alarms.append(Alarm.POWER_CUT)
    return tuple(alarms), bool(word & 1 << StatusBit.ACC), not word & 1 << StatusBit.OIL_CUT


def _battery_level(value: int) -> float | None:
    """Binary record power level (traccar `decodeBattery`): levels 1..6, or a percentage.

    traccar returns 1..6 for F1..F6; those are read here as the levels 1..6 with the high
    nibble set, since a battery at "3 %" for level 3 would raise false low-battery alerts.
    """
    if 0xF1 <= value <= 0xF6:
        value &= 0x0F
    if value == 0 or value > 100:
        return None
    if value <= 3:
        return (value - 1) * 10.0
    if value <= 6:
        return (value - 1) * 20.0
    return float(value)


def _cell(
    mcc: int | None, mnc: int | None, lac: int | None, cid: int | None, rssi: int | None = None
) -> Cell | None:
    """A plausible serving cell, else None (zeros and impossible country codes are padding)."""
    if mcc is None or mcc not in MCC_RANGE or mnc is None or mnc > 999:
        return None
    if lac is None or cid is None:
        return None
    if lac > 0xFFFF:
        # 4G firmware sends the 28-bit cell id first (vector h02:3); an area code is 16 bits.
        if cid > 0xFFFF:
            return None
        lac, cid = cid, lac
    if lac == 0 and cid == 0:
        return None
    return Cell(mcc=mcc, mnc=mnc, lac=lac, cid=cid, rssi=rssi)


def _trailing_cell(extra: list[str]) -> Cell | None:
    """The optional `mcc,mnc,lac,cid` after the status word of a position report.

    Firmware writes them in decimal (`460,11,...`, `246,03,00002,41565`) or hex (`cc,28,db,
    d75b`, `0002d4,000004,...`); a three-digit decimal MCC in range tells the decimal form.
    """
    if len(extra) < 4:
        return None
    mcc_text, mnc_text, lac_text, cid_text = extra[:4]
    decimal = len(mcc_text) == 3 and _int(mcc_text) in MCC_RANGE
    if decimal:
        if _digits(lac_text) and _digits(cid_text):
            return _cell(_int(mcc_text), _int(mnc_text), int(lac_text), int(cid_text))
        return _cell(_int(mcc_text), _int(mnc_text), _hex(lac_text), _hex(cid_text))
    return _cell(_hex(mcc_text), _hex(mnc_text), _hex(lac_text), _hex(cid_text))


def _iccid(text: str) -> str | None:
    """An ICCID without the filler some firmware pads it with (`...700F`, `...555?`)."""
    text = text.rstrip("?Ff")
    return text if _ICCID.fullmatch(text) else None


def _csq_percent(rssi: int | None) -> int | None:
    if rssi is None or rssi > CSQ_MAX:
        return None
    return round(rssi * 100 / CSQ_MAX)


# ---------------------------------------------------------------------------------------------
# Text frames
# ---------------------------------------------------------------------------------------------


class _Head(NamedTuple):
    """The fields every text frame starts with."""

    maker: str  #: as sent, echoed in replies
    sent_id: str  #: the id field as sent (may be empty), echoed in replies
    device_id: str | None  #: the id, or the connection's identity when the field is empty
    code: str  #: message type, upper case
    raw: bytes


class _Fix(NamedTuple):
    """The position block `hhmmss,A,lat,N,lon,E,speed,course,[battery,]ddmmyy,status,...`."""

    time: datetime | None
    valid: bool
    latitude: float | None
    longitude: float | None
    speed_kmh: float | None
    course: float | None
    status: int | None
    cell: Cell | None
    altitude_m: float | None
    iccid: str | None
    odometer_km: float | None = None


def _parse_fix(fields: list[str], start: int) -> _Fix:
    """Read the position block whose time field is `fields[start]` (protocols.md §4.2)."""
    count = len(fields)
    block = fields[start : start + 8]
    block += [""] * (8 - len(block))
    hhmmss, flag, lat, north, lon, east, speed, course = block
    index = start + 8
    # Some firmware puts a battery field before the date (`...,047,4,080918,...`, h02:12).
    if index + 1 < count and not _six_digits(fields[index]) and _six_digits(fields[index + 1]):
        index += 1
    ddmmyy = fields[index] if index < count else ""
    index += 1
    status: int | None = None
    iccid: str | None = None
    extra: list[str] = []
    if index < count and _HEX8.fullmatch(fields[index]):
        status = int(fields[index], 16)
        extra = fields[index + 1 :]
    elif index + 3 < count and _HEX8.fullmatch(fields[index + 3]):
        # V19: `,<empty>,<phone or IP>,<ICCID>` between the date and the status (h02:18).
        iccid = _iccid(fields[index + 2])
        status = int(fields[index + 3], 16)
        extra = fields[index + 4 :]
    knots = _float(speed)
    altitude: float | None = None
    odometer: float | None = None
    if len(extra) == 6 and (match := _ALTITUDE_TAIL.fullmatch(",".join(extra))):
        # traccar's `odometer,temperature,fuel,altitude,lac,cid` tail (no MCC: no cell); the
        # odometer in metres, as traccar stores it.
        odometer = int(match[1]) / 1000
        altitude = float(match[2])
    return _Fix(
        time=_time(hhmmss, ddmmyy),
        # A digit here is a "coding scheme" of V2/VI1 firmware, which traccar reads as a fix.
        valid=flag == "A" or _digits(flag),
        latitude=_coordinate(lat, north, "N", "S", 90.0),
        longitude=_coordinate(lon, east, "E", "W", 180.0),
        speed_kmh=knots * KNOTS_TO_KMH if knots is not None else None,
        course=_float(course),
        status=status,
        cell=_trailing_cell(extra) if altitude is None else None,
        altitude_m=altitude,
        iccid=iccid,
        odometer_km=odometer,
    )


def _position_message(
    head: _Head,
    fix: _Fix,
    kind: MessageType | None,
    *,
    text: str | None = None,
    reply: CommandReply | None = None,
    relay: bool | None = None,
) -> Message:
    """Build the message for a frame with a position block; `kind` None: location or alarm.

    The relay is what the status word says; a frame without one keeps the `relay` given.
    """
    if fix.status is not None:
        alarms, ignition, relay = _status(fix.status)
    else:
        alarms, ignition = (), None
    if kind is None:
        kind = MessageType.ALARM if alarms else MessageType.LOCATION
    located = fix.latitude is not None and fix.longitude is not None
    return Message(
        protocol=Protocol.H02,
        type=kind,
        device_id=head.device_id,
        time=fix.time,
        valid=fix.valid,
        latitude=fix.latitude if located else None,
        longitude=fix.longitude if located else None,
        speed_kmh=fix.speed_kmh,
        course=fix.course,
        altitude_m=fix.altitude_m,
        odometer_km=fix.odometer_km,
        # Without coordinates, the serving cell is what a position can come from.
        position_source=PositionSource.GNSS
        if located
        else (PositionSource.LBS if fix.cell is not None else None),
        cells=(fix.cell,) if fix.cell is not None else (),
        alarms=alarms,
        alarm_states=STATUS_ALARMS if fix.status is not None else frozenset(),
        ignition=ignition,
        info=(("iccid", fix.iccid),) if fix.iccid else (),
        relay=relay,
        text=text,
        reply=reply,
        raw=head.raw,
    )


@lru_cache(maxsize=4)
def _reply_stamp(now: datetime) -> str:
    """`yyyyMMddHHmmss` in UTC (cached: every frame of one read shares the caller's clock)."""
    now = now.astimezone(UTC)
    return f"{now.year:04}{now.month:02}{now.day:02}{now.hour:02}{now.minute:02}{now.second:02}"


def _timed_reply(head: _Head, code: str, ctx: Context) -> bytes:
    """`*<maker>,<id>,V4,<code>,<yyyyMMddHHmmss UTC>#`, traccar's reply to V1 and NBR (§4.2)."""
    return f"*{head.maker},{head.sent_id},V4,{code},{_reply_stamp(ctx.now)}#".encode("ascii")


def _decode_position(head: _Head, fields: list[str], ctx: Context) -> FrameResult:
    """V1 and its variants (V2, V5, V6, V8, V19, VI1 ...)."""
    fix = _parse_fix(fields, 3)
    if fix.iccid:
        ctx.info["iccid"] = fix.iccid
    ack = _timed_reply(head, Code.POSITION, ctx) if head.code == Code.POSITION else None
    return FrameResult((_position_message(head, fix, None),), ack)


def _hemisphere_index(fields: list[str]) -> int:
    """Index of the latitude hemisphere of a V4 frame's position block, or -1 when it has none."""
    # `V4,<code>,<time>,<flag>,<lat>,N`: the hemisphere comes at index 7 at the earliest.
    for index in range(7, len(fields) - 2):
        if fields[index] in ("N", "S") and fields[index + 2] in ("E", "W"):
            return index
    return -1


def _result_code(params: list[str]) -> CommandResult | None:
    """The H02 document's `ret` field (§6): two hex digits, 0x80 and above success, 0x01
    "not supported", anything else below 0x80 a failure; None when `params` is not one."""
    if len(params) != 1 or not _RET.fullmatch(params[0]):
        return None
    ret = int(params[0], 16)
    if ret >= 0x80:
        return CommandResult.SUCCESS
    return CommandResult.UNSUPPORTED if ret == 0x01 else CommandResult.FAILURE


_RET = re.compile(r"[0-9A-Fa-f]{2}")


def _decode_confirmation(head: _Head, fields: list[str], ctx: Context) -> FrameResult:
    """V4: `V4,<code>,<params...>,<our hhmmss>,<device hhmmss>,A,lat,...` (H02 document) or
    the short echo `V4,<code>,<our hhmmss>,<params...>` (traccar issue 5417).

    In the long form a single two-digit parameter is the document's result code; the relay
    state the reply states is its status word's, else the echo of the S20 parameters.
    """
    code = fields[3].upper() if len(fields) > 3 else ""
    hemisphere = _hemisphere_index(fields)
    block = hemisphere - 3
    middle = fields[4:block] if hemisphere > 0 else fields[4:]
    sent_time: str | None = None
    if middle and _six_digits(middle[0]) and hemisphere < 0:
        sent_time, params = middle[0], middle[1:]
    elif middle and _six_digits(middle[-1]):
        sent_time, params = middle[-1], middle[:-1]
    else:
        params = middle
    relay: bool | None = None
    if code == Code.RELAY and len(params) >= 2 and all(map(_digits, params[:2])):
        # The echo of the S20 parameters states the relay: `1,1` cut, `1,0` released.
        relay = params[1] != "0"
    fix = _parse_fix(fields, block) if hemisphere > 0 else None
    result = _result_code(params) if fix is not None else None
    if result is None and params:
        result = text_verdict(",".join(params))
    if fix is not None and fix.status is not None and code == Code.RELAY:
        relay = _status(fix.status)[2]
    reply = CommandReply(
        reference=int(sent_time) if sent_time is not None else None,
        command=code or None,
        result=result,
        relay=relay,
    )
    text = ",".join([code, *params])
    if fix is not None:
        message = _position_message(
            head, fix, MessageType.COMMAND_REPLY, text=text, reply=reply, relay=relay
        )
    else:
        message = Message(
            protocol=Protocol.H02,
            type=MessageType.COMMAND_REPLY,
            device_id=head.device_id,
            relay=relay,
            text=text,
            reply=reply,
            raw=head.raw,
        )
    return FrameResult((message,))


def _status_message(
    head: _Head,
    kind: MessageType,
    time: datetime | None,
    status: int | None,
    cells: tuple[Cell, ...] = (),
    *,
    gsm_signal: int | None = None,
    satellites: int | None = None,
    battery_percent: float | None = None,
) -> Message:
    """Build a message without a position block, that may end with the status word."""
    alarms: tuple[Alarm, ...] = ()
    ignition = relay = None
    if status is not None:
        alarms, ignition, relay = _status(status)
    return Message(
        protocol=Protocol.H02,
        type=kind,
        device_id=head.device_id,
        time=time,
        position_source=PositionSource.LBS if cells else None,
        cells=cells,
        alarms=alarms,
        alarm_states=STATUS_ALARMS if status is not None else frozenset(),
        ignition=ignition,
        relay=relay,
        gsm_signal=gsm_signal,
        satellites=satellites,
        battery_percent=battery_percent,
        raw=head.raw,
    )


def _field(fields: list[str], index: int) -> str:
    return fields[index] if index < len(fields) else ""


def _status_field(text: str) -> int | None:
    return int(text, 16) if _HEX8.fullmatch(text) else None


def _decode_link(head: _Head, fields: list[str], ctx: Context) -> FrameResult:
    """LINK: `<hhmmss>,<rssi>,<satellites>,<battery%>,<steps>,<turnovers>,<ddmmyy>,<status>`."""
    battery = _int(_field(fields, 6))
    message = _status_message(
        head,
        MessageType.HEARTBEAT,
        _time(_field(fields, 3), _field(fields, 9)),
        _status_field(_field(fields, 10)),
        gsm_signal=_csq_percent(_int(_field(fields, 4))),
        satellites=_int(_field(fields, 5)),
        battery_percent=float(battery) if battery is not None and battery <= 100 else None,
    )
    return FrameResult((message,))


def _decode_neighbours(head: _Head, fields: list[str], ctx: Context) -> FrameResult:
    """NBR: `<hhmmss>,<mcc>,<mnc>,<delay>,<count>,(<lac>,<cid>,<rssi>)*,<ddmmyy>,<status>`."""
    mcc, mnc = _int(_field(fields, 4)), _int(_field(fields, 5))
    # The count field is not trusted: the cells run up to the `ddmmyy,status` pair.
    end = 8
    while end + 1 < len(fields) and not (
        _six_digits(fields[end]) and _HEX8.fullmatch(fields[end + 1])
    ):
        end += 3
    cells: list[Cell] = []
    for index in range(8, min(end, len(fields) - 2), 3):
        lac, cid, rssi = fields[index : index + 3]
        cell = _cell(mcc, mnc, _int(lac), _int(cid), _signed(rssi))
        if cell is not None:
            cells.append(cell)
    message = _status_message(
        head,
        MessageType.LBS,
        _time(_field(fields, 3), _field(fields, end)),
        _status_field(_field(fields, end + 1)),
        tuple(cells),
    )
    return FrameResult((message,), _timed_reply(head, Code.NEIGHBOURS, ctx))


def _decode_cells(head: _Head, fields: list[str], ctx: Context) -> FrameResult:
    """V3: `<hhmmss>,<mcc><mnc>,<count>,(<lac>,<cid>,<x>,<rssi>)*,<battery>,<reboot>,X,...`."""
    network = _field(fields, 4)
    mcc = _int(network[:3]) if len(network) > 3 else None
    mnc = _int(network[3:]) if len(network) > 3 else None
    try:
        marker = fields.index("X", 6)
    except ValueError:
        marker = len(fields)
    cells: list[Cell] = []
    for index in range(6, marker - 2 - 3, 4):
        lac, cid, _, rssi = fields[index : index + 4]
        cell = _cell(mcc, mnc, _int(lac), _int(cid), _signed(rssi))
        if cell is not None:
            cells.append(cell)
    message = _status_message(
        head,
        MessageType.LBS,
        _time(_field(fields, 3), _field(fields, marker + 1)),
        _status_field(_field(fields, marker + 2)),
        tuple(cells),
    )
    return FrameResult((message,))


def _decode_compact(head: _Head, fields: list[str], ctx: Context) -> FrameResult:
    """VP1: `V,<mcc>,<mnc>,<lac>,<cid>,<rssi>Y...` cells, or `A,lat,N,lon,E,speed,course,ddmmyy`."""
    flag = _field(fields, 3).upper()
    if flag in ("A", "B"):
        knots = _float(_field(fields, 8))
        fix = _Fix(
            # The frame carries a date but no time of day: no usable timestamp.
            time=None,
            valid=True,  # traccar: A and B both mean a fix here
            latitude=_coordinate(_field(fields, 4), _field(fields, 5), "N", "S", 90.0),
            longitude=_coordinate(_field(fields, 6), _field(fields, 7), "E", "W", 180.0),
            speed_kmh=knots * KNOTS_TO_KMH if knots is not None else None,
            course=_float(_field(fields, 9)),
            status=None,
            cell=None,
            altitude_m=None,
            iccid=None,
        )
        return FrameResult((_position_message(head, fix, MessageType.LOCATION),))
    mcc, mnc = _int(_field(fields, 4)), _int(_field(fields, 5))
    cells: list[Cell] = []
    for group in ",".join(fields[6:]).split("Y"):
        values = group.split(",")
        if len(values) == 3:
            cell = _cell(mcc, mnc, _int(values[0]), _int(values[1]), _signed(values[2]))
            if cell is not None:
                cells.append(cell)
    return FrameResult((_status_message(head, MessageType.LBS, None, None, tuple(cells)),))


def _decode_base_stations(head: _Head, fields: list[str], ctx: Context) -> FrameResult:
    """BS: `,<mcc hex>,<mnc hex>,(<lac hex>,<cid hex>,<rssi>)*,,<status>,...` (h02:39 only)."""
    mcc, mnc = _hex(_field(fields, 4)), _hex(_field(fields, 5))
    end = 6
    while end < len(fields) and fields[end] and not _HEX8.fullmatch(fields[end]):
        end += 1
    cells: list[Cell] = []
    for index in range(6, end - 2, 3):
        lac, cid, rssi = fields[index : index + 3]
        cell = _cell(mcc, mnc, _hex(lac), _hex(cid), _signed(rssi))
        if cell is not None:
            cells.append(cell)
    status = next((int(text, 16) for text in fields[end:] if _HEX8.fullmatch(text)), None)
    return FrameResult((_status_message(head, MessageType.LBS, None, status, tuple(cells)),))


def _decode_heartbeat(head: _Head, fields: list[str], ctx: Context) -> FrameResult:
    """HTBT `<battery%>`, V0 and XT; HTBT and V0 are echoed up to the type (traccar)."""
    battery = _int(_field(fields, 3)) if head.code == Code.HEARTBEAT else None
    message = Message(
        protocol=Protocol.H02,
        type=MessageType.HEARTBEAT,
        device_id=head.device_id,
        battery_percent=float(battery) if battery is not None and battery <= 100 else None,
        raw=head.raw,
    )
    if head.code == Code.HEARTBEAT_XT:
        return FrameResult((message,))
    return FrameResult((message,), f"*{head.maker},{head.sent_id},{fields[2]}#".encode("ascii"))


def _decode_other(head: _Head, fields: list[str], ctx: Context) -> FrameResult:
    message = Message(
        protocol=Protocol.H02, type=MessageType.OTHER, device_id=head.device_id, raw=head.raw
    )
    return FrameResult((message,))


_Handler = Callable[[_Head, list[str], Context], FrameResult]

_HANDLERS: dict[str, _Handler] = {
    Code.CONFIRMATION: _decode_confirmation,
    Code.HEARTBEAT: _decode_heartbeat,
    Code.HEARTBEAT_V0: _decode_heartbeat,
    Code.HEARTBEAT_XT: _decode_heartbeat,
    Code.LINK: _decode_link,
    Code.NEIGHBOURS: _decode_neighbours,
    Code.CELLS: _decode_cells,
    Code.COMPACT: _decode_compact,
    Code.BASE_STATIONS: _decode_base_stations,
}


def _decode_text(frame: bytes, ctx: Context) -> FrameResult:
    """Split a `*XX,<id>,<type>,...#` frame into fields and hand it to its type's decoder."""
    text = frame.rstrip(b"\r\n").decode("utf-8", "replace")
    if not text.endswith("#"):
        raise FrameError("H02 text frame without its #")
    body = text[1:-1]
    fields = body.split(",")
    if len(fields) < 3:
        raise FrameError("H02 text frame without a message type")
    maker, sent_id = fields[0], fields[1].strip()
    if not (len(maker) == 2 and maker.isascii() and maker.isalpha()):
        raise FrameError(f"invalid H02 maker code {maker[:8]!r}")
    if sent_id and not (sent_id.isascii() and sent_id.isdigit()):
        raise FrameError("H02 device id is not numeric")
    ctx.h02_maker = maker
    code = fields[2].strip().upper()
    head = _Head(maker, sent_id, sent_id or ctx.device_id, code, frame)
    if code == Code.SMS:
        # Free text: commas and new lines belong to it.
        reply_text = body.split(",", 3)[3] if len(fields) > 3 else ""
        message = Message(
            protocol=Protocol.H02,
            type=MessageType.COMMAND_REPLY,
            device_id=head.device_id,
            text=reply_text,
            reply=CommandReply(result=text_verdict(reply_text)),
            raw=frame,
        )
        return FrameResult((message,))
    if " " in body:  # `  3.34`, `  db`: space-padded numbers in some firmware
        fields = [field.strip() for field in fields]
    handler = _HANDLERS.get(code)
    if handler is None:
        handler = _decode_position if code.startswith("V") else _decode_other
    return handler(head, fields, ctx)


# ---------------------------------------------------------------------------------------------
# Binary records
# ---------------------------------------------------------------------------------------------


def _decode_binary(frame: bytes, ctx: Context) -> FrameResult:
    """A `$` record (protocols.md §4.3): BCD id, time, date, position, level, status word."""
    size = len(frame)
    if size < RecordLength.SHORT:
        raise FrameError(f"H02 binary record of {size} bytes")
    digits = frame.hex()
    # Hex digits from the time field on; the 42-byte record has an 8-byte id.
    id_end = 18 if size == RecordLength.IMEI else 12
    device_id = digits[2:17] if size == RecordLength.IMEI else digits[2:12]
    body = digits[id_end:]
    # BCD fields: id, time, date, latitude (not the level byte), longitude, speed and course.
    if not all(part.isdigit() for part in (device_id, body[:20], body[22:31], body[32:38])):
        raise FrameError("H02 binary record with a non-BCD field")
    flags = int(body[31], 16)
    latitude = int(body[12:14]) + int(body[14:20]) / 600_000
    longitude = int(body[22:25]) + int(body[25:31]) / 600_000
    located = latitude <= 90 and longitude <= 180
    status = int(body[38:46], 16)
    alarms, ignition, relay = _status(status)
    cell: Cell | None = None
    if size == RecordLength.CELL:
        # mcc(2) mnc(1) lac(2) cid(2) at byte 37: the countries match the positions in
        # vectors h02:6, 9, 22, 71, 74, 76.
        mcc, mnc, lac, cid = _CELL_45.unpack_from(frame, 37)
        cell = _cell(mcc, mnc, lac, cid)
    message = Message(
        protocol=Protocol.H02,
        type=MessageType.ALARM if alarms else MessageType.LOCATION,
        device_id=device_id,
        time=_time(body[:6], body[6:12]),
        valid=bool(flags & RecordFlag.VALID),
        latitude=(latitude if flags & RecordFlag.NORTH else -latitude) if located else None,
        longitude=(longitude if flags & RecordFlag.EAST else -longitude) if located else None,
        speed_kmh=int(body[32:35]) * KNOTS_TO_KMH,
        course=float(int(body[35]) * 100 + int(body[36:38])),
        position_source=PositionSource.GNSS if located else None,
        cells=(cell,) if cell is not None else (),
        alarms=alarms,
        alarm_states=STATUS_ALARMS,
        ignition=ignition,
        relay=relay,
        battery_percent=_battery_level(int(body[20:22], 16)),
        raw=frame,
    )
    return FrameResult((message,))


def _decode_alternative(frame: bytes) -> FrameResult:
    """The 32-byte `X` record: framed by traccar, never decoded; its id field is not the
    device's (vector h02:86 and traccar's frame test), so it must not rebind the connection.
    """
    return FrameResult((Message(protocol=Protocol.H02, type=MessageType.OTHER, raw=frame),))


def decode(frame: bytes, ctx: Context, payload: bytes | None = None) -> FrameResult:
    """Decode one H02 frame as cut by `framing.split_h02`."""
    marker = frame[:1]
    if marker == b"*":
        return _decode_text(frame, ctx)
    if marker == b"$":
        return _decode_binary(frame, ctx)
    if marker == b"X" and len(frame) == RecordLength.SHORT:
        return _decode_alternative(frame)
    raise FrameError("not an H02 frame")


# ---------------------------------------------------------------------------------------------
# Commands (protocols.md §4.4)
# ---------------------------------------------------------------------------------------------

_RAW_FORBIDDEN = re.compile(r"[#*\r\n]")
_RAW_CODE = re.compile(r"[A-Za-z0-9]+")


def _command_parts(command: Command) -> tuple[str, tuple[str, ...]]:
    """The command code and the parameters that follow our time field."""
    kind = command.kind
    if command.is_relay:
        if command.dialect not in (None, RelayDialect.H02_S20):
            raise CommandError(f"H02 devices do not speak the {command.dialect} relay dialect")
        return Code.RELAY, RELAY_PARAMS[kind is CommandKind.RELAY_CUT]
    if kind is CommandKind.SET_INTERVAL:
        if command.interval is None or command.interval < 1:
            raise CommandError("a report interval of at least one second is required")
        return Code.INTERVAL, (INTERVAL_MODE, str(command.interval))
    if kind is not CommandKind.RAW:
        # No "report a position now" (protocols.md §4.4: S26 only brings a LINK status, which
        # a user can still ask for as RAW `S26`) and no SOS acknowledgement.
        raise CommandError(f"H02 cannot send {kind.value}")
    text = (command.text or "").strip()
    code, _, params = text.partition(",")
    if not text.isascii() or _RAW_FORBIDDEN.search(text) or not _RAW_CODE.fullmatch(code):
        raise CommandError("an H02 raw command is `<CODE>[,<params>]` in ASCII, without # or *")
    return code.upper(), (params,) if params else ()


def encode_command(command: Command, ctx: Context) -> EncodedCommand:
    """`*<maker>,<id>,<CODE>,<HHMMSS>,<params>#`; the V4 confirmation quotes our HHMMSS."""
    if not ctx.device_id:
        raise CommandError("the device has not identified itself yet")
    code, params = _command_parts(command)
    stamp = f"{ctx.now.astimezone(UTC):%H%M%S}"
    text = ",".join((f"*{ctx.h02_maker}", ctx.device_id, code, stamp, *params)) + "#"
    return EncodedCommand(text.encode("ascii"), reference=int(stamp))


def _frame_code(data: bytes) -> str:
    """The type (uplink) or command code (downlink) of a text frame."""
    parts = data.split(b",", 3)
    return parts[2].rstrip(b"#").decode("ascii", "replace").upper() if len(parts) > 2 else ""


def command_outcome(
    command: Command, sent: EncodedCommand, message: Message
) -> CommandOutcome | None:
    """Whether `message` answers `sent`: a V4 confirming the same code (and our time when it
    quotes one), a LINK after S26, an SMS text after a raw command; None otherwise.
    """
    if message.protocol is not Protocol.H02:
        return None
    code = _frame_code(sent.data)
    reply = message.reply
    if reply is None:
        # `*XX,<id up to 20 digits>,LINK,` fits in the first 32 bytes.
        if code == Code.STATUS_QUERY and _frame_code(message.raw[:32]) == Code.LINK:
            return CommandOutcome(CommandResult.SUCCESS)
        return None
    if reply.command is None:
        if command.kind is CommandKind.RAW:
            return CommandOutcome(reply.result or CommandResult.SUCCESS, message.text)
        return None
    if reply.command != code:
        return None
    if None not in (reply.reference, sent.reference) and reply.reference != sent.reference:
        return None  # a confirmation of an earlier command with the same code
    if not command.is_relay:
        return CommandOutcome(reply.result or CommandResult.SUCCESS, message.text)
    target = command.kind is CommandKind.RELAY_CUT
    if reply.result in (CommandResult.FAILURE, CommandResult.UNSUPPORTED):
        return CommandOutcome(reply.result, message.text, reply.relay)
    if reply.relay is not None:
        # A resume echoed as `1,1` left the relay engaged (traccar issue 5417).
        result = CommandResult.SUCCESS if reply.relay is target else CommandResult.FAILURE
        return CommandOutcome(result, message.text, reply.relay)
    return CommandOutcome(CommandResult.SUCCESS, message.text, target)


FAMILY = Family(decode, encode_command, command_outcome)
