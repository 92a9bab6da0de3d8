"""Watch protocol (protocols.md §7): `[maker*id*len*content]` frames of TK-Star personal trackers.

Content is a word and comma-separated fields: `LK` heartbeat, `UD`/`UD2`/`UD_LTE`/`WT` positions,
`AL...` alarms (same layout), `INIT`, `TKQ`/`TKQ2`; health and media uploads carry nothing for the
model; any other word is the device echoing a platform command (`CR`, `UPLOAD`). Some makers add
a frame index before the length (`[ZJ*id*0003*0113*AL,...]`), which replies repeat. There is no
checksum. Field layout, status bits and replies follow traccar's `WatchProtocolDecoder` and
`WatchProtocolEncoder` (protocols.md §0).

Fields are split on `,` before `}` escapes are undone (traccar un-escapes first), so an escaped
comma inside a Wi-Fi name cannot shift the fields that follow.
"""

from __future__ import annotations

from enum import IntEnum
import re

from .codec import make_utc
from .commands import Command, CommandKind, CommandOutcome, EncodedCommand
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


class Status(IntEnum):
    """Terminal status word of `UD`/`AL` frames: low half states, high half alarms.

    Bits as traccar `WatchProtocolDecoder.decodeAlarm` reads them (protocols.md §7), which is the
    commonly published 3G-watch layout; every set bit counts, not only the first.
    """

    LOW_BATTERY_STATE = 1 << 0
    FENCE_OUT_STATE = 1 << 1
    FENCE_IN_STATE = 1 << 2
    POWER_CUT = 1 << 14
    SOS = 1 << 16
    LOW_BATTERY = 1 << 17
    FENCE_EXIT = 1 << 18
    FENCE_ENTER = 1 << 19
    REMOVED = 1 << 20  #: watch taken off the wrist
    FALL = 1 << 21
    FALL_ALT = 1 << 22  #: traccar reads either bit as a fall


_STATUS_ALARMS = (
    (Status.SOS, Alarm.SOS),
    (Status.LOW_BATTERY | Status.LOW_BATTERY_STATE, Alarm.LOW_BATTERY),
    (Status.FENCE_EXIT | Status.FENCE_OUT_STATE, Alarm.GEOFENCE_EXIT),
    (Status.FENCE_ENTER | Status.FENCE_IN_STATE, Alarm.GEOFENCE_ENTER),
    (Status.POWER_CUT, Alarm.POWER_CUT),
    (Status.REMOVED, Alarm.TAMPER),
    (Status.FALL | Status.FALL_ALT, Alarm.FALL),
)
#: Every position frame carries the whole status word: each of these alarms is known set or clear.
_STATUS_STATES = frozenset(alarm for _, alarm in _STATUS_ALARMS)

# `[` maker `*` id `*` [index `*`] length `*`
_HEADER = re.compile(
    rb"\[([0-9A-Za-z]{2})\*([0-9A-Za-z]+)\*(?:([0-9A-Fa-f]{4})\*)?[0-9A-Fa-f]{4}\*"
)
_POSITION = re.compile(
    rb"(\d\d)(\d\d)(\d\d),(\d\d)(\d\d)(\d\d),([AV]),"  # ddmmyy, hhmmss UTC, validity
    rb" *(-?\d+(?:\.\d+)?),([NS]?), *(-?\d+(?:\.\d+)?),([EW]?),"  # decimal degrees
    rb"(\d+(?:\.\d*)?),(\d+(?:\.\d*)?),(-?\d+(?:\.\d*)?),"  # km/h, course, altitude
    rb"(\d+),(\d+),(\d+),\d+,\d+,([0-9A-Fa-f]{1,8})(?:,|\Z)"  # sats, GSM %, battery %, steps,
)  # rolls, status; then the cells and Wi-Fi access points
_MAC = re.compile(rb"[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}")
_POSITION_WORDS = (b"UD", b"AL", b"WT")
#: Health and media uploads (traccar): nothing for the model, and no command echo.
_UPLOADS = frozenset((b"PULSE", b"HEART", b"BLOOD", b"BPHRT", b"BTEMP2", b"OXYGEN", b"TEMP",
                      b"IMG", b"JXTK", b"TK"))  # fmt: skip
_ESCAPES = ((b"}\x02", b"["), (b"}\x03", b"]"), (b"}\x04", b","), (b"}\x05", b"*"))

#: Maker for commands before the device spoke; traccar sends "3G" devices "SG" (commit 18fa5d9).
DEFAULT_MAKER = "SG"


def decode(frame: bytes, ctx: Context, payload: bytes | None = None) -> FrameResult:
    """Decode one `[...]` frame and the reply it calls for."""
    header = _HEADER.match(frame)
    if header is None or frame[-1:] != b"]":
        raise FrameError("not a Watch frame")
    maker, device, index = header.groups()
    device_id = device.decode()
    ctx.watch_maker = maker.decode()
    if index is not None:
        ctx.watch_indexed = True
    content = frame[header.end() : -1]
    word, _, rest = content.partition(b",")
    ack: bytes | None = None
    if word == b"LK":
        values = rest.split(b",")
        battery = values[2] if len(values) >= 3 and values[2].isdigit() else None
        message = Message(
            protocol=Protocol.WATCH,
            type=MessageType.HEARTBEAT,
            device_id=device_id,
            battery_percent=min(int(battery), 100) if battery else None,
            raw=frame,
        )
        ack = _frame(maker, device, index, b"LK")
    elif word.startswith(_POSITION_WORDS):
        message = _position(word, rest, device_id, frame)
        if word.startswith(b"AL"):
            ack = _frame(maker, device, index, b"AL")
    elif word == b"INIT":
        message = Message(
            protocol=Protocol.WATCH, type=MessageType.LOGIN, device_id=device_id, raw=frame
        )
        ack = _frame(maker, device, index, b"INIT,1")
    elif not word or word in (b"TKQ", b"TKQ2") or word.upper() in _UPLOADS:
        message = Message(
            protocol=Protocol.WATCH, type=MessageType.OTHER, device_id=device_id, raw=frame
        )
        if word.startswith(b"TKQ"):
            ack = _frame(maker, device, index, word)
    else:
        message = Message(
            protocol=Protocol.WATCH,
            type=MessageType.COMMAND_REPLY,
            device_id=device_id,
            text=_unescape(content).decode("utf-8", "replace"),
            reply=CommandReply(command=word.decode("latin-1"), result=CommandResult.SUCCESS),
            raw=frame,
        )
    return FrameResult((message,), ack)


def _position(word: bytes, rest: bytes, device_id: str, frame: bytes) -> Message:
    match = _POSITION.match(rest)
    if match is None:
        return Message(
            protocol=Protocol.WATCH, type=MessageType.OTHER, device_id=device_id, raw=frame
        )
    (day, month, year, hour, minute, second, validity, lat, lat_hemisphere, lon, lon_hemisphere,
     speed, course, altitude, satellites, signal, battery, status) = match.groups()  # fmt: skip
    try:
        time = make_utc(2000 + int(year), int(month), int(day), int(hour), int(minute), int(second))
    except FrameError:
        time = None
    # Some firmware signs the number and names the hemisphere too ("-84.14,W"): trust either.
    latitude = -abs(float(lat)) if lat_hemisphere == b"S" else float(lat)
    longitude = -abs(float(lon)) if lon_hemisphere == b"W" else float(lon)
    status_word = int(status, 16)
    alarms = tuple(alarm for mask, alarm in _STATUS_ALARMS if status_word & mask)
    cells, wifi = _network(rest[match.end() :].split(b","))
    return Message(
        protocol=Protocol.WATCH,
        type=MessageType.ALARM if alarms or word.startswith(b"AL") else MessageType.LOCATION,
        device_id=device_id,
        time=time,
        valid=validity == b"A",
        latitude=latitude,
        longitude=longitude,
        speed_kmh=float(speed),
        course=float(course),
        altitude_m=float(altitude),
        satellites=int(satellites),
        position_source=PositionSource.GNSS,
        cells=cells,
        wifi=wifi,
        alarms=alarms,
        alarm_states=_STATUS_STATES,
        battery_percent=min(int(battery), 100),
        gsm_signal=min(int(signal), 100),
        historical=word == b"UD2",  # "blind area" records uploaded late
        raw=frame,
    )


def _network(values: list[bytes]) -> tuple[tuple[Cell, ...], tuple[WifiAccessPoint, ...]]:
    """Cells (`count,ta,mcc,mnc,{lac,cid,rssi}`) then Wi-Fi (`count,{name,mac,rssi}`).

    LAC and CID are decimal unless they hold hex letters (traccar). A short or odd tail keeps
    what was read before it.
    """
    cells: list[Cell] = []
    wifi: list[WifiAccessPoint] = []
    try:
        count, index = int(values[0]), 1
        if count > 0:
            mcc, mnc, index = int(values[2] or 0), int(values[3] or 0), 4
            for _ in range(count):
                lac, cid, rssi = values[index : index + 3]
                index += 3
                cells.append(
                    Cell(mcc=mcc, mnc=mnc, lac=_number(lac), cid=_number(cid),
                         rssi=int(rssi) if rssi else None)
                )  # fmt: skip
        if index < len(values) and values[index]:
            count, index = int(values[index]), index + 1
            for _ in range(count):
                _name, mac, rssi = values[index : index + 3]
                index += 3
                if _MAC.fullmatch(mac) and rssi:
                    wifi.append(WifiAccessPoint(mac=mac.decode().lower(), rssi=int(rssi)))
    except (ValueError, IndexError):
        pass  # truncated or vendor-specific tail
    return tuple(cells), tuple(wifi)


def _number(value: bytes) -> int:
    return int(value, 16) if value.strip(b"0123456789") else int(value)


def _unescape(data: bytes) -> bytes:
    if b"}" not in data:
        return data
    for escaped, plain in _ESCAPES:
        data = data.replace(escaped, plain)
    return data.replace(b"}\x01", b"}")  # last, so "}" "\x01" "\x02" cannot become "["


def _frame(maker: bytes, device: bytes, index: bytes | None, content: bytes) -> bytes:
    head = b"[%s*%s*" % (maker, device) + (index + b"*" if index is not None else b"")
    return b"%s%04X*%s]" % (head, len(content), content)


# -- commands -----------------------------------------------------------------------------------


def _command_content(command: Command) -> str:
    if command.kind is CommandKind.LOCATE:
        return "CR"
    if command.kind is CommandKind.SET_INTERVAL:
        if command.interval is None or command.interval < 1:
            raise CommandError("SET_INTERVAL needs an interval of at least one second")
        return f"UPLOAD,{command.interval}"
    if command.kind is CommandKind.RAW and command.text:
        return command.text
    if command.is_relay:
        raise CommandError("the Watch protocol has no relay command")
    if command.kind is CommandKind.RAW:
        raise CommandError("RAW needs a command text")
    raise CommandError(f"the Watch protocol cannot send {command.kind.value}")


def encode_command(command: Command, ctx: Context) -> EncodedCommand:
    """Encode `[maker*id*len*CONTENT]`; the device answers by echoing the command word."""
    if not ctx.device_id:
        raise CommandError("the device has not identified itself yet")
    content = _command_content(command)
    if not content.isascii() or any(char in content for char in "[]*"):
        raise CommandError("Watch commands are ASCII text without [ ] *")
    maker = ctx.watch_maker or DEFAULT_MAKER
    index = b"0001" if ctx.watch_indexed else None
    data = _frame(
        (DEFAULT_MAKER if maker == "3G" else maker).encode(),
        ctx.device_id.encode(),
        index,
        content.encode(),
    )
    return EncodedCommand(data)


def command_outcome(
    command: Command, sent: EncodedCommand, message: Message
) -> CommandOutcome | None:
    """An echo of the command word (`[SG*id*0002*CR]`) means the device accepted it."""
    if message.reply is None or message.reply.command is None:
        return None
    try:
        word = _command_content(command).partition(",")[0]
    except CommandError:  # a relay or empty command was never sent: nothing can answer it
        return None
    if message.reply.command.upper() != word.upper():
        return None
    return CommandOutcome(CommandResult.SUCCESS, message.text)


FAMILY = Family(decode, encode_command, command_outcome)
