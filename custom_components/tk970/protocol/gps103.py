"""GPS103 / TK103-2 text protocol (protocols.md §6): decoding, replies and commands.

The device sends `;`-terminated ASCII lines (the splitter in `framing.py` cuts them; traccar's
captures often lack the final `;`): a `##,imei:<IMEI>,A;` login answered with `LOAD`, a bare-IMEI
heartbeat answered with `ON`, and `imei:<IMEI>,<keyword>,...` reports in three layouts:

- the regular one, `imei,keyword,local time,phone|rfid,F|L,utc hhmmss,A|V,lat,N|S,lon,E|W,speed
  (knots),course[,altitude,acc,door,fuel1,fuel2,temp]`, or with `L` (no fix) the cell's hex LAC and
  CID instead of the GNSS block;
- `OBD` lines (engine data, no position);
- an alternative comma layout ending in `*`, with decimal degrees and km/h (traccar `PATTERN_ALT`).

The protocol has no checksum (`checksum_ok` is always None) and no command acknowledgement: a
command is confirmed, at best, by the reports that follow, so `EncodedCommand.confirmable` is
False and `command_outcome` never matches a message.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
import re

from .codec import KNOTS_TO_KMH, make_utc, nmea_degrees
from .commands import Command, CommandKind, CommandOutcome, EncodedCommand, RelayDialect
from .context import Context, Family, FrameResult
from .errors import CommandError, FrameError
from .messages import Alarm, Cell, Message, MessageType, PositionSource, Protocol


class Code(StrEnum):
    """Command codes after `**,imei:<IMEI>,` (protocols.md §6.3; traccar `Gps103ProtocolEncoder`).

    Others the devices know (`D` stop reports, `L` arm, `M` disarm, `160` photo) are sent as RAW.
    """

    LOCATE = "B"  #: one position report now
    INTERVAL = "C"  #: periodic reports, `C,<nn>s|m|h`
    CONFIRM_SOS = "E"  #: stops the `help me` repeats (protocols.md §6.2)
    RELAY_CUT = "J"  #: cut oil / engine
    RELAY_RESTORE = "K"  #: resume oil / engine


#: Replies to the handshakes (protocols.md §6.1; vectors gps103:41 and gps103:42).
ACK_LOGIN = b"LOAD"
ACK_HEARTBEAT = b"ON"

#: Report keywords that are alarms (protocols.md §6.2, traccar `decodeAlarm`).
KEYWORD_ALARMS: dict[str, Alarm] = {
    "help me": Alarm.SOS,
    "low battery": Alarm.LOW_BATTERY,
    "stockade": Alarm.GEOFENCE,
    "move": Alarm.MOVEMENT,
    "speed": Alarm.OVERSPEED,
    "door alarm": Alarm.DOOR,
    "ac alarm": Alarm.POWER_CUT,
    "accident alarm": Alarm.COLLISION,
    "sensor alarm": Alarm.VIBRATION,
    # Hood and foot-brake switches of car alarm kits, and engine fault codes: real alarms the
    # shared vocabulary has no name for. (A bonnet is not the cabin door `door` stands for.)
    "bonnet alarm": Alarm.OTHER,
    "footbrake alarm": Alarm.OTHER,
    "DTC": Alarm.OTHER,
}
# `T:<temp>` and `oil...` report a reading (traccar files them as temperature / fuel alarms, the
# vectors as plain locations); `acc alarm`, `rfid`, `vt<n>` and `tracker` carry no alarm either.

#: Keywords that state the ignition (without being alarms).
KEYWORD_IGNITION: dict[str, bool] = {"acc on": True, "acc off": False}

_SOS_KEYWORD = "help me"
_PHOTO_DATA_KEYWORD = "vr"  #: hex photo chunks: nothing for the model
_OBD_KEYWORD = "OBD"

# The regular report after `imei:<IMEI>,<keyword>,` (traccar `PATTERN`, same alternatives):
_REGULAR = re.compile(
    r"imei:\d+,[^,]*,"
    # local date and time: yyMMddHHmm[ss] or yy/MM/dd HH:mm, or digits that are no date
    r"(?:(\d\d)/?(\d\d)/?(\d\d) ?(\d\d):?(\d\d)(\d\d)?|\d*),"
    r"[^,]*,"  # phone number or RFID tag
    r"(?:L,(?:,,([0-9A-Fa-f]+),,([0-9A-Fa-f]+))?"  # no fix: LAC and CID in hex
    r"|F,(?:(\d\d)(\d\d)(\d\d)(?:\.\d+)?|(?:\d{1,5}\.\d+)?),"  # fix: UTC hhmmss[.sss]
    r"([AV]),"
    r"(?:([NS]),)?(\d+\.\d+),(?:([NS]),)?"  # hemisphere before or after the number
    r"(?:([EW]),)?(\d+\.\d+),(?:([EW])?,)?"
    r"(\d+\.?\d*)?"  # speed, knots
    r"(?:,(\d+\.?\d*)?)?"  # course
    r"(?:,(-?\d+\.?\d*)?)?"  # altitude
    r"(?:,([01])?)?"  # ACC
    r")",
    re.ASCII,
)

_ALTERNATIVE = re.compile(
    r"imei:\d+,[^,]*,"
    r"[^,]*,[^,]*,[^,]*,"  # event, sensor id, sensor voltage ("---" when absent)
    r"(\d\d)(\d\d)(\d\d),(\d\d)(\d\d)(\d\d),"  # UTC hhmmss, ddmmyy
    r"\d+,"  # signal strength, scale undocumented
    r"(\d),"  # GNSS status, > 0 when fixed
    r"(-?\d+\.\d+),(-?\d+\.\d+),"  # decimal degrees
    r"(\d+),(\d+),(-?\d+),"  # speed km/h, course, altitude
    r"(\d+\.\d+),(\d+),"  # HDOP, satellites
    r"([01]),([01]),",  # ignition, charging
    re.ASCII,
)

_HEAD = re.compile(r"imei:(\d+)(?:,([^,]*))?", re.ASCII)
_LOGIN = re.compile(r"##,imei:(\d+)", re.ASCII)
_HEARTBEAT_ID = re.compile(r"\d{8,20}", re.ASCII)
_VOLTS = re.compile(r"\d+\.\d+", re.ASCII)
_DIGITS = b"0123456789"

#: Field of an OBD line holding the vehicle battery (external supply) voltage (traccar
#: `PATTERN_OBD`: imei, OBD, time, odometer, fuel x2, hours, speed, load, temp, throttle, rpm).
_OBD_VOLTS_FIELD = 12


def decode(frame: bytes, ctx: Context, payload: bytes | None = None) -> FrameResult:
    """Decode one GPS103 line (login, heartbeat or report) and the reply it calls for."""
    text = frame.decode("latin-1").rstrip(";\r\n")
    if not text:
        raise FrameError("empty GPS103 frame")
    if frame[0] in _DIGITS:
        return _heartbeat(text, frame)
    if text.startswith("##"):
        login = _LOGIN.match(text)
        if login is None:
            raise FrameError("GPS103 login without an IMEI")
        message = Message(
            protocol=Protocol.GPS103, type=MessageType.LOGIN, device_id=login[1], raw=frame
        )
        return FrameResult((message,), ACK_LOGIN)
    if text.startswith("imei:"):
        message, ack = _report(text, frame)
        return FrameResult((message,), ack)
    raise FrameError("not a GPS103 frame")


def _heartbeat(text: str, frame: bytes) -> FrameResult:
    """A bare IMEI, possibly glued to the next report (vector gps103:31): `ON` either way."""
    start = text.find("imei:")
    imei = text if start < 0 else text[:start]
    if not _HEARTBEAT_ID.fullmatch(imei):
        raise FrameError("GPS103 heartbeat is not an IMEI")
    heartbeat = Message(
        protocol=Protocol.GPS103, type=MessageType.HEARTBEAT, device_id=imei, raw=frame
    )
    if start < 0:
        return FrameResult((heartbeat,), ACK_HEARTBEAT)
    report, _ = _report(text[start:], frame)
    return FrameResult((heartbeat, report), ACK_HEARTBEAT)


def _report(text: str, frame: bytes) -> tuple[Message, bytes | None]:
    """Decode an `imei:` report; an SOS is confirmed with `**,imei:<IMEI>,E;` (traccar)."""
    head = _HEAD.match(text)
    if head is None:
        raise FrameError("GPS103 report without an IMEI")
    imei = head[1]
    keyword = head[2] or ""
    ack = f"**,imei:{imei},{Code.CONFIRM_SOS};".encode() if keyword == _SOS_KEYWORD else None
    if keyword == _PHOTO_DATA_KEYWORD:
        message = Message(
            protocol=Protocol.GPS103, type=MessageType.OTHER, device_id=imei, raw=frame
        )
    elif keyword == _OBD_KEYWORD:
        message = _obd(text, imei, frame)
    elif text.endswith("*"):
        message = _alternative(text, imei, keyword, frame)
    else:
        message = _regular(text, imei, keyword, frame)
    return message, ack


def _regular(text: str, imei: str, keyword: str, frame: bytes) -> Message:
    alarm = KEYWORD_ALARMS.get(keyword)
    alarms = (alarm,) if alarm is not None else ()
    ignition = KEYWORD_IGNITION.get(keyword)
    match = _REGULAR.match(text)
    if match is None:
        # The keyword alone still tells an SOS or a power cut; keep it.
        return Message(
            protocol=Protocol.GPS103,
            type=MessageType.ALARM if alarms else MessageType.OTHER,
            device_id=imei,
            alarms=alarms,
            ignition=ignition,
            raw=frame,
        )
    (year, month, day, hour, minute, second, lac, cid, utc_hour, utc_minute, utc_second,
     validity, lat_before, lat, lat_after, lon_before, lon, lon_after,
     speed, course, altitude, acc) = match.groups()  # fmt: skip
    if validity is None:  # `L`: no fix, maybe a cell
        # MCC and MNC are not sent: 0 stands for unknown, as in traccar's default configuration
        # (`CellTower.fromLacCid`); a geolocation lookup needs the home network filled in.
        cells = (Cell(mcc=0, mnc=0, lac=int(lac, 16), cid=int(cid, 16)),) if lac else ()
        return Message(
            protocol=Protocol.GPS103,
            type=MessageType.ALARM if alarms else MessageType.LBS,
            device_id=imei,
            position_source=PositionSource.LBS if cells else None,
            cells=cells,
            alarms=alarms,
            ignition=ignition,
            raw=frame,
        )
    time = None
    if year is not None:
        time = _report_time(
            (int(year), int(month), int(day), int(hour), int(minute), int(second or 0)),
            (int(utc_hour), int(utc_minute), int(utc_second)) if utc_hour else None,
        )
    return Message(
        protocol=Protocol.GPS103,
        type=MessageType.ALARM if alarms else MessageType.LOCATION,
        device_id=imei,
        time=time,
        valid=validity == "A",
        latitude=nmea_degrees(lat, lat_before or lat_after or ""),
        longitude=nmea_degrees(lon, lon_before or lon_after or ""),
        speed_kmh=float(speed) * KNOTS_TO_KMH if speed else None,
        course=float(course) if course else None,
        altitude_m=float(altitude) if altitude else None,
        position_source=PositionSource.GNSS,
        alarms=alarms,
        ignition=ignition if ignition is not None else (acc == "1" if acc else None),
        raw=frame,
    )


def _report_time(
    local: tuple[int, int, int, int, int, int], utc: tuple[int, int, int] | None
) -> datetime | None:
    """UTC time of a report from its device-local date/time and its GNSS UTC time of day.

    As traccar does (protocols.md §6.2): local date + local hour and minute + UTC seconds, minus
    the local-UTC difference wrapped to ±12 h, which also moves the date across midnight (vector
    gps103:39). Without a UTC time the local time is all there is; its zone is unknown and it is
    taken as UTC, as traccar does. None when the local date is no date (`000000...`).
    """
    year, month, day, hour, minute, second = local
    try:
        base = make_utc(2000 + year, month, day, hour, minute)
    except FrameError:
        return None
    if utc is None:
        return base + timedelta(seconds=second)
    utc_hour, utc_minute, utc_second = utc
    delta = (hour - utc_hour) * 60 + minute - utc_minute
    if delta <= -12 * 60:
        delta += 24 * 60
    elif delta > 12 * 60:
        delta -= 24 * 60
    return base + timedelta(seconds=utc_second - delta * 60)


def _alternative(text: str, imei: str, keyword: str, frame: bytes) -> Message:
    """The comma layout ending in `*`: UTC time, decimal degrees, km/h (traccar `PATTERN_ALT`)."""
    match = _ALTERNATIVE.match(text)
    if match is None:
        alarm = KEYWORD_ALARMS.get(keyword)
        return Message(
            protocol=Protocol.GPS103,
            type=MessageType.OTHER if alarm is None else MessageType.ALARM,
            device_id=imei,
            alarms=() if alarm is None else (alarm,),
            raw=frame,
        )
    (hour, minute, second, day, month, year, status, lat, lon, speed, course, altitude,
     hdop, satellites, ignition, charging) = match.groups()  # fmt: skip
    try:
        time: datetime | None = make_utc(
            2000 + int(year), int(month), int(day), int(hour), int(minute), int(second)
        )
    except FrameError:
        time = None
    return Message(
        protocol=Protocol.GPS103,
        type=MessageType.LOCATION,
        device_id=imei,
        time=time,
        valid=status != "0",
        latitude=float(lat),
        longitude=float(lon),
        speed_kmh=float(speed),
        course=float(course),
        altitude_m=float(altitude),
        satellites=int(satellites),
        hdop=float(hdop),
        position_source=PositionSource.GNSS,
        ignition=ignition == "1",
        charging=charging == "1",
        raw=frame,
    )


def _obd(text: str, imei: str, frame: bytes) -> Message:
    """An OBD line: engine data without a position; only the supply voltage fits the model.

    Its time is the device-local clock (zone unknown, see `_report_time`), so it is not used.
    """
    fields = text.split(",", _OBD_VOLTS_FIELD + 1)
    volts = fields[_OBD_VOLTS_FIELD] if len(fields) > _OBD_VOLTS_FIELD else ""
    # A dongle powered by the vehicle cannot run at 0 V: `0.00` means "not read" (gps103:12).
    power = float(volts) if _VOLTS.fullmatch(volts) else 0.0
    return Message(
        protocol=Protocol.GPS103,
        type=MessageType.OTHER,
        device_id=imei,
        power_voltage=power or None,
        raw=frame,
    )


# -- commands -----------------------------------------------------------------------------------

#: Interval units, largest first: the field holds two digits and a unit (`C,05m`).
_INTERVAL_UNITS = ((3600, "h"), (60, "m"), (1, "s"))
_INTERVAL_MAX_VALUE = 99


def interval_text(seconds: int) -> str:
    """Format a report interval as `<nn>s|m|h`: exact in the largest unit that fits two digits,
    else rounded to the nearest minute (or hour) that does. 300 s gives `05m` (vector gps103:79).
    """
    if seconds < 1:
        raise CommandError("the report interval must be at least one second")
    for unit, suffix in _INTERVAL_UNITS:
        if seconds % unit == 0 and seconds // unit <= _INTERVAL_MAX_VALUE:
            return f"{seconds // unit:02d}{suffix}"
    for unit, suffix in _INTERVAL_UNITS[1::-1]:  # minutes, then hours
        value = round(seconds / unit)
        if value <= _INTERVAL_MAX_VALUE:
            return f"{value:02d}{suffix}"
    raise CommandError("GPS103 report intervals stop at 99 hours")


def encode_command(command: Command, ctx: Context) -> EncodedCommand:
    """Encode `**,imei:<IMEI>,<code>[,<param>]`, without `;` as traccar and the vendor tool send.

    The device never acknowledges a command (protocols.md §6.3): `confirmable` is False.
    """
    if not ctx.device_id:
        raise CommandError("the device has not identified itself yet")
    body: str
    if command.is_relay:
        dialect = command.dialect or RelayDialect.GPS103_JK
        if dialect is not RelayDialect.GPS103_JK:
            raise CommandError(f"GPS103 devices do not speak the {dialect} relay dialect")
        body = Code.RELAY_CUT if command.kind is CommandKind.RELAY_CUT else Code.RELAY_RESTORE
    elif command.kind is CommandKind.LOCATE:
        body = Code.LOCATE
    elif command.kind is CommandKind.CLEAR_SOS:
        body = Code.CONFIRM_SOS
    elif command.kind is CommandKind.SET_INTERVAL:
        if command.interval is None:
            raise CommandError("SET_INTERVAL needs an interval")
        body = f"{Code.INTERVAL},{interval_text(command.interval)}"
    elif command.kind is CommandKind.RAW:
        if not command.text:
            raise CommandError("RAW needs a command text")
        body = command.text
    else:
        raise CommandError(f"GPS103 cannot send {command.kind.value}")
    try:
        data = f"**,imei:{ctx.device_id},{body}".encode("ascii")
    except UnicodeEncodeError as err:
        raise CommandError("GPS103 commands are ASCII text") from err
    return EncodedCommand(data, confirmable=False)


def command_outcome(
    command: Command, sent: EncodedCommand, message: Message
) -> CommandOutcome | None:
    """Always None: GPS103 has no command acknowledgement (protocols.md §6.3, §9)."""
    return None


FAMILY = Family(decode, encode_command, command_outcome)
