"""JT/T 808: every line of jt808.jsonl, replies, commands and their outcomes, splits and fuzz."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, strategies as st
import pytest

from custom_components.tk970.protocol import jt808, session as session_module
from custom_components.tk970.protocol.codec import jt808_escape, jt808_unescape, xor_checksum
from custom_components.tk970.protocol.commands import (
    RELAY_DIALECTS,
    Command,
    CommandKind,
    CommandOutcome,
    EncodedCommand,
    RelayDialect,
)
from custom_components.tk970.protocol.context import Context
from custom_components.tk970.protocol.errors import CommandError, FrameError
from custom_components.tk970.protocol.framing import Cut, Mode, split_jt808
from custom_components.tk970.protocol.messages import (
    Alarm,
    Cell,
    CommandReply,
    CommandResult,
    Message,
    MessageType,
    Protocol,
    WifiAccessPoint,
)
from custom_components.tk970.protocol.session import Decoded, Session

from .helpers import NOW, decode_datagram, decode_stream
from .vectors import Vector, load, params

GMT8 = timedelta(hours=8)

# -- The vectors' vocabulary (traccar's) mapped to ours, once ---------------------------------

KIND_TYPES = {
    "login": MessageType.LOGIN,
    "heartbeat": MessageType.HEARTBEAT,
    "location": MessageType.LOCATION,
    "alarm": MessageType.ALARM,
    "command-reply": MessageType.COMMAND_REPLY,
    "other": MessageType.OTHER,
}
#: traccar alarm names. `lowBattery` comes from alarm bit 7 in these vectors ("main power
#: under-voltage"), which we call `low_power` (jt808.AlarmBit); harsh acceleration has no
#: shared name and is `other`.
TRACCAR_ALARMS = {
    "sos": Alarm.SOS,
    "vibration": Alarm.VIBRATION,
    "removing": Alarm.TAMPER,
    "tampering": Alarm.TAMPER,
    "lowBattery": Alarm.LOW_POWER,
    "movement": Alarm.MOVEMENT,
    "door": Alarm.DOOR,
    "hardAcceleration": Alarm.OTHER,
}
#: expect key -> Message field, for plain comparisons.
SAME_FIELDS = {
    "serial": "serial",
    "checksum_ok": "checksum_ok",
    "valid": "valid",
    "ignition": "ignition",
    "blocked": "relay",
    "satellites": "satellites",
    "battery_level": "battery_percent",
    "charging": "charging",
}
#: expect key -> Message field, compared as floats.
FLOAT_FIELDS = {
    "latitude": "latitude",
    "longitude": "longitude",
    "speed_kmh": "speed_kmh",
    "course": "course",
    "altitude_m": "altitude_m",
    "battery_v": "battery_voltage",
    "power_v": "power_voltage",
    "odometer_km": "odometer_km",
}
INFO_KEYS = ("iccid", "imei", "timezone")

# -- Documented deviations: (expect key, our value, why), asserted as such ---------------------

_LITERAL_7D = (
    "the firmware sends 7D unescaped: read literally the frame has the announced length and a "
    "matching checksum; traccar (and the vector) un-escape it and get a corrupt frame"
)
DEVIATIONS: dict[int, list[tuple[str, Any, str]]] = {
    35: [("checksum_ok", True, _LITERAL_7D), ("serial", 0x0138, _LITERAL_7D)],
    40: [
        ("checksum_ok", True, _LITERAL_7D),
        ("serial", 12, _LITERAL_7D),
        ("terminal_id_hex", "4f07788ef87d", _LITERAL_7D),
    ],
    45: [
        ("checksum_ok", True, _LITERAL_7D),
        (
            "odometer_km",
            8.6,
            (
                "item 0x01 holds 0x56 = 8.6 km; the vector read item 0xFE's sub-record 0x01 "
                "as mileage, which traccar decodes as the driving-event word"
            ),
        ),
    ],
    65: [
        (
            "kind",
            "alarm",
            (
                "traccar's own reading raises lowPower (product 1, alarm bit 0); the vector's "
                "kind only reflects that it is a position report"
            ),
        )
    ],
    92: [("kind", "heartbeat", "0x0210 with a 7-byte body is a battery report, no position")],
    97: [
        ("checksum_ok", True, _LITERAL_7D),
        (
            "alarm",
            "tampering",
            "alarm bit 16 is movement only for AL300 (traccar_model_override); generically tamper",
        ),
    ],
    98: [
        ("checksum_ok", True, _LITERAL_7D),
        ("longitude", 114.032486, _LITERAL_7D),
        ("latitude", 22.576385, _LITERAL_7D),
        ("course", 0.0, _LITERAL_7D),
        ("time_utc_if_gmt8", "2026-01-01T04:00:00Z", _LITERAL_7D),
    ],
}
_VENDOR_KIND = (
    "kind",
    "location",
    "the alarm comes from a vendor layout traccar applies only for a configured model",
)
for _line in (99, 100):
    DEVIATIONS[_line] = [*DEVIATIONS[98], _VENDOR_KIND]
DEVIATIONS[96] = [_VENDOR_KIND]
for _vector in load("jt808"):
    if _vector.expect.get("msg_id") in ("0x5501", "0x5502"):
        DEVIATIONS.setdefault(_vector.line, []).append(
            (
                "serial",
                _vector.raw[11],
                "JT600-style reports carry a 1-byte serial (traccar); the vector reads a WORD",
            )
        )

#: Vectors whose ack quotes another serial or id than ours (checked in test_literal_7d_acks).
ACK_DIFFERS = (35, 40)

#: Expected values we do not produce, with the reason: vendor layouts that traccar applies only
#: for a configured device model, or that have no field in our model.
NOT_DECODED: dict[int, dict[str, str]] = {
    68: {"battery_v": "lock status text in item 0x33 (E-lock vendor), not decoded"},
    96: {"alarm": "door from item 0x57 only for MV710G (traccar_model_override)"},
    98: {"battery_v": "item 0xE8 is JC-model specific (traccar_model_override JC371)"},
    99: {"alarm": "SOS from item 0xE8 is JC-model specific (traccar_model_override JC371)"},
    100: {"alarm": "vibration from item 0xE8 is JC-model specific (traccar_model_override)"},
    103: {"iccid": "item 0xF8 carries the ICCID only for AL300/GL100 (traccar_model_override)"},
}

#: Captured acknowledgements from a live session, where the server serial was not 0.
SERVER_SERIAL = {115: 1}

#: Vectors that are framing checks only (no message): their un-escaped content.
FRAMING_ONLY = (106, 107)


def _expected(vector: Vector) -> dict[str, Any]:
    """The vector's expectations with our documented deviations applied."""
    expect = dict(vector.expect)
    expect["kind"] = vector.data["kind"]
    expect.update({key: value for key, value, _why in DEVIATIONS.get(vector.line, ())})
    for key in NOT_DECODED.get(vector.line, {}):
        expect.pop(key, None)
    return expect


def _gsm(csq: int) -> int:
    """The vectors' `rssi` is the raw CSQ (0-31); a few devices send a percentage."""
    return round(csq * 100 / 31) if csq <= 31 else csq


def _device_id(terminal_hex: str) -> str:
    """Our identity for a terminal id: the BCD digits, or traccar's Luhn IMEI for binary ids."""
    if terminal_hex.isdigit():
        return terminal_hex
    body = str(int(terminal_hex, 16))
    digits = [int(c) for c in body]
    total = sum(d if i % 2 else (2 * d - 9 if d > 4 else 2 * d) for i, d in enumerate(digits[::-1]))
    return body + str((10 - total % 10) % 10)


def _check_message(message: Message, expect: dict[str, Any]) -> None:
    for key, field in SAME_FIELDS.items():
        if key in expect:
            assert getattr(message, field) == expect[key], key
    for key, field in FLOAT_FIELDS.items():
        if key in expect:
            assert getattr(message, field) == pytest.approx(expect[key], abs=1e-6), key
    if isinstance(expect.get("result"), str):  # a text reply (0x0001's result is a number)
        assert message.text == expect["result"]
    if "time_utc_if_gmt8" in expect:
        assert message.time == datetime.fromisoformat(expect["time_utc_if_gmt8"])
    if "rssi" in expect:
        assert message.gsm_signal == _gsm(expect["rssi"])
    if "terminal_id_hex" in expect:
        assert message.device_id == _device_id(expect["terminal_id_hex"])
    if "alarm" in expect:
        assert set(message.alarms) == {TRACCAR_ALARMS[a] for a in expect["alarm"].split(",")}
    if int(expect.get("alarm_flags", "0"), 16):
        assert message.alarms, "every alarm bit maps to some alarm"
    if "eb_0089" in expect:  # active low: bit 12 clear = removal
        assert Alarm.TAMPER in message.alarm_states
        if not int(expect["eb_0089"], 16) & 1 << 12:
            assert Alarm.TAMPER in message.alarms
    if "eb_00c5" in expect:  # active low: bit 6 clear = vibration
        assert Alarm.VIBRATION in message.alarm_states
        if not int(expect["eb_00c5"], 16) & 1 << 6:
            assert Alarm.VIBRATION in message.alarms
    info = dict(message.info)
    for key in INFO_KEYS:
        if key in expect:
            assert info.get(key) == expect[key], key
    if "eb_text" in expect:
        assert info.get("timezone") == expect["eb_text"]
    if "iccid_hex" in expect:
        iccid = expect["iccid_hex"].rstrip("f")
        assert info.get("iccid") == (iccid if iccid.strip("0") else None)
    if "cell" in expect:
        cells = [(c.mcc, c.mnc, c.lac, c.cid) for c in message.cells]
        assert tuple(expect["cell"].values()) in cells
    if "reply_serial" in expect:
        assert message.reply == CommandReply(
            reference=expect["reply_serial"],
            command=expect["reply_msg_id"][2:],
            result=CommandResult.SUCCESS if expect["result"] == 0 else CommandResult.FAILURE,
        )
    if "reply_to_serial" in expect:
        assert message.reply is not None
        assert message.reply.reference == expect["reply_to_serial"]


def _check_batch(messages: list[Message], expect: dict[str, Any]) -> None:
    if "batch_items" not in expect:  # vendor 0x0210: traccar only asserts positions came out
        assert all(m.type in (MessageType.LOCATION, MessageType.ALARM) for m in messages)
        return
    items = expect["batch_items"]
    assert len(messages) == len(items) == expect["batch_count"]
    for message, item in zip(messages, items, strict=True):
        assert message.type in (MessageType.LOCATION, MessageType.ALARM)
        assert message.historical is (expect["batch_type"] == 1)
        local = datetime.fromisoformat(item["device_time_local"]).replace(tzinfo=UTC)
        assert message.time == local - GMT8
        _check_message(message, {k: v for k, v in item.items() if k != "device_time_local"})


def _decode(vector: Vector) -> list[Decoded]:
    session = Session(datagram=True)
    for _ in range(SERVER_SERIAL.get(vector.line, 0)):
        session.context.next_serial()
    return [item for item in session.feed(vector.raw, NOW) if isinstance(item, Decoded)]


@pytest.mark.parametrize("vector", params("jt808"))
def test_uplink_vector(vector: Vector) -> None:
    """Each uplink vector decodes to what it asserts (traccar's or the layout's values)."""
    if vector.line in FRAMING_ONLY:
        inner = bytes.fromhex(vector.expect["unescaped_hex"])[1:-1]
        start = vector.raw.index(b"\x7e")
        assert jt808_unescape(vector.raw[start + 1 : -1]) == inner
        decoded, skipped = decode_datagram(vector.raw)
        assert not decoded, "a 5-byte body is no JT808 header"
        prefix = bytes.fromhex(vector.expect.get("skipped_prefix_hex", ""))
        assert b"".join(s.raw for s in skipped).startswith(prefix)
        return
    expect = _expected(vector)
    decoded = _decode(vector)
    assert decoded, "the frame decodes"
    messages = [item.message for item in decoded]
    for key in NOT_DECODED.get(vector.line, {}):
        with pytest.raises(AssertionError):  # the documented gap is still there
            _check_message(messages[0], {key: vector.expect[key]})
    assert all(m.protocol is Protocol.JT808 and m.raw == vector.raw for m in messages)
    assert all(item.ack is None for item in decoded[1:]), "one ack per frame, on the first"
    if "ack_hex" in vector.data and vector.line not in ACK_DIFFERS:
        assert decoded[0].ack == bytes.fromhex(vector.data["ack_hex"])
    if expect["kind"] == "batch":
        _check_batch(messages, expect)
        _check_message(messages[0], {k: v for k, v in expect.items() if k != "batch_items"})
        return
    assert len(messages) == 1
    message = messages[0]
    assert message.type is KIND_TYPES[expect["kind"]]
    _check_message(message, expect)
    if message.type is MessageType.ALARM:
        assert message.alarms


@pytest.mark.parametrize("vector", params("jt808"))
def test_uplink_vector_byte_by_byte(vector: Vector) -> None:
    """Fed one byte per read on a TCP stream, a vector decodes as it does in one datagram.

    Except line 101: a raw 7E inside the body *and* a wrong checksum. In a datagram the length
    field alone may pick the closing flag; in a stream it must be confirmed by the checksum,
    so that a damaged length cannot swallow the next frame. There it is cut at the first flag.
    """
    whole, _ = decode_datagram(vector.raw)
    split, _ = decode_stream([bytes((byte,)) for byte in vector.raw])
    if vector.line == 101:
        assert whole[0].message.raw == vector.raw
        assert all(item.message.raw != vector.raw for item in split)
        return
    assert split == whole


def test_every_vector_is_covered() -> None:
    """The parametrized tests above and the downlink tests below cover all 119 lines."""
    vectors = load("jt808")
    assert len(vectors) == 119
    downlinks = {v.line for v in vectors if not v.uplink}
    assert downlinks == {108, 109, 110, 111, 112, 113, 116, 119}


def test_literal_7d_acks() -> None:
    """Frames with unescaped 7D are answered with the ids and serials they really carry."""
    vectors = {v.line: v for v in load("jt808")}
    ack = _decode(vectors[40])[0].ack
    assert ack == _frame(0x8001, "4f07788ef87d", 0, bytes.fromhex("000c090000"))
    ack = _decode(vectors[35])[0].ack
    assert ack == _frame(0x8001, "4f07788ef87d", 0, bytes.fromhex("0138090000"))


def test_deviation_reasons_are_documented() -> None:
    """Every deviation names its reason (the report lists them)."""
    for entries in DEVIATIONS.values():
        assert all(why for _key, _value, why in entries)
    assert all(all(reason for reason in fields.values()) for fields in NOT_DECODED.values())


# -- Downlink vectors and the encoder ----------------------------------------------------------


def _frame(
    message_id: int, terminal: str, serial: int, body: bytes, version: int | None = None
) -> bytes:
    """An escaped JT808 frame, built independently of the module under test."""
    attributes = len(body) | (0x4000 if version is not None else 0)
    head = message_id.to_bytes(2, "big") + attributes.to_bytes(2, "big")
    if version is not None:
        head += bytes((version,))
    plain = head + bytes.fromhex(terminal) + serial.to_bytes(2, "big") + body
    return b"\x7e" + jt808_escape(plain + bytes((xor_checksum(plain),))) + b"\x7e"


def _context(terminal: str = "0b3a73ce2ff2") -> Context:
    return Context(now=NOW, jt808_terminal=bytes.fromhex(terminal))


def _downlink(line: int) -> Vector:
    return next(v for v in load("jt808") if v.line == line)


@pytest.mark.parametrize(
    ("line", "command", "terminal"),
    [
        pytest.param(109, Command(kind=CommandKind.RELAY_CUT), "0b3a73ce2ff2", id="jt808:109"),
        pytest.param(110, Command(kind=CommandKind.RELAY_RESTORE), "0b3a73ce2ff2", id="jt808:110"),
        pytest.param(
            111,
            Command(kind=CommandKind.RAW, text="Test, Command, 123#"),
            "0b3a73ce2ff2",
            id="jt808:111",
        ),
        pytest.param(116, Command(kind=CommandKind.LOCATE), "024530313349", id="jt808:116"),
        pytest.param(
            119,
            Command(kind=CommandKind.SET_INTERVAL, interval=10),
            "024530313349",
            id="jt808:119",
        ),
    ],
)
def test_downlink_vector(line: int, command: Command, terminal: str) -> None:
    """Commands reproduce the captured / traccar frames byte for byte (server serial 0)."""
    encoded = jt808.encode_command(command, _context(terminal))
    assert encoded == EncodedCommand(_downlink(line).raw, reference=0)


@pytest.mark.parametrize(
    ("line", "message_id", "body", "terminal"),
    [
        pytest.param(112, 0x8900, b"\xf0TEST", "0b3a73ce2ff2", id="jt808:112"),
        pytest.param(113, 0x8105, b"\x04", "024530313349", id="jt808:113"),
    ],
)
def test_downlink_frame_vector(line: int, message_id: int, body: bytes, terminal: str) -> None:
    """Messages outside the command vocabulary still frame exactly (transparent data, reset)."""
    assert jt808.encode_frame(message_id, body, _context(terminal)) == (_downlink(line).raw, 0)


def test_escaping_vector() -> None:
    """jt808:108: the sender escapes 7E and 7D between the flags."""
    vector = _downlink(108)
    escaped = bytes.fromhex(vector.expect["escaped_hex"])
    assert b"\x7e" + jt808_escape(vector.raw[1:-1]) + b"\x7e" == escaped


@pytest.mark.parametrize(
    ("dialect", "cut", "message_id", "body"),
    [
        (RelayDialect.JT808_8105_F0F1, True, 0x8105, b"\xf0"),
        (RelayDialect.JT808_8105_F0F1, False, 0x8105, b"\xf1"),
        (RelayDialect.JT808_8105_6465, True, 0x8105, b"\x64"),
        (RelayDialect.JT808_8105_6465, False, 0x8105, b"\x65"),
        # BCD device-local time: NOW (08:00 UTC) at GMT+8
        (RelayDialect.JT808_A006, True, 0xA006, bytes.fromhex("01261124160000")),
        (RelayDialect.JT808_A006, False, 0xA006, bytes.fromhex("00261124160000")),
        (RelayDialect.JT808_TEXT, True, 0x8300, b"\x01RELAY,1#"),
        (RelayDialect.JT808_TEXT, False, 0x8300, b"\x01RELAY,0#"),
    ],
)
def test_relay_dialects(dialect: RelayDialect, cut: bool, message_id: int, body: bytes) -> None:
    """Every JT808 relay dialect, both ways."""
    assert dialect in RELAY_DIALECTS[Protocol.JT808]
    kind = CommandKind.RELAY_CUT if cut else CommandKind.RELAY_RESTORE
    encoded = jt808.encode_command(Command(kind=kind, dialect=dialect), _context())
    assert encoded == EncodedCommand(_frame(message_id, "0b3a73ce2ff2", 0, body), reference=0)


def test_default_relay_dialect_is_f0f1() -> None:
    assert RELAY_DIALECTS[Protocol.JT808][0] is RelayDialect.JT808_8105_F0F1


def test_command_serials_count_up_and_follow_the_2019_header() -> None:
    """Each command takes the next server serial; a 2019 device gets a 2019 header."""
    ctx = Context(now=NOW)
    jt808.decode(_frame(0x0002, "00000866496077582164", 5, b"", version=1), ctx)
    assert ctx.jt808_2019
    assert ctx.jt808_terminal == bytes.fromhex("00000866496077582164")
    first = jt808.encode_command(Command(kind=CommandKind.LOCATE), ctx)
    second = jt808.encode_command(Command(kind=CommandKind.LOCATE), ctx)
    assert first.reference == 1  # serial 0 went to the heartbeat's 0x8001
    assert second.data == _frame(0x8201, "00000866496077582164", 2, b"", version=1)


@pytest.mark.parametrize(
    "command",
    [
        Command(kind=CommandKind.RELAY_CUT, dialect=RelayDialect.GT06_RELAY),
        Command(kind=CommandKind.SET_INTERVAL),
        Command(kind=CommandKind.SET_INTERVAL, interval=0),
        Command(kind=CommandKind.SET_INTERVAL, interval=1 << 32),
        Command(kind=CommandKind.RAW),
        Command(kind=CommandKind.RAW, text="x" * 1023),
        Command(kind=CommandKind.RAW, text="\U0001f600"),
    ],
)
def test_commands_that_cannot_be_encoded(command: Command) -> None:
    ctx = _context()
    with pytest.raises(CommandError):
        jt808.encode_command(command, ctx)
    assert ctx.next_serial() == 0, "a refused command does not use a serial"


def test_command_before_identification() -> None:
    with pytest.raises(CommandError):
        jt808.encode_command(Command(kind=CommandKind.LOCATE), Context(now=NOW))


# -- Replies -----------------------------------------------------------------------------------

T = "013511221122"


def _one(frame: bytes, ctx: Context | None = None) -> tuple[Message, bytes | None]:
    result = jt808.decode(frame, ctx or Context(now=NOW))
    assert len(result.messages) == 1
    return result.messages[0], result.ack


def test_registration_reply_2013() -> None:
    """0x8100: reply serial, result 0, auth code = terminal id digits (vector 79's layout)."""
    body = bytes(4) + b"70107" + b"HB-R03GBD".ljust(20, b"\x00") + b"2366104" + b"\x02" + b"BA"
    message, ack = _one(_frame(0x0100, T, 5, body))
    assert message.type is MessageType.LOGIN
    assert dict(message.info) == {"manufacturer": "70107", "model": "HB-R03GBD"}
    assert ack == _frame(0x8100, T, 0, b"\x00\x05\x00" + T.encode())


def test_authentication_2019_info() -> None:
    """The 2019 authentication adds the IMEI and the firmware version."""
    body = b"\x04code" + b"866496077582164" + b"V1.2.3".ljust(20, b"\x00")
    message, ack = _one(_frame(0x0102, "00000866496077582164", 9, body, version=1))
    assert message.type is MessageType.LOGIN
    assert dict(message.info) == {"imei": "866496077582164", "firmware": "V1.2.3"}
    assert ack == _frame(0x8001, "00000866496077582164", 0, bytes.fromhex("0009010200"), version=1)


def test_bsj_heartbeat_and_logout() -> None:
    message, ack = _one(_frame(0x0002, T, 3, bytes((76, 31, 0))))
    assert (message.type, message.battery_percent, message.gsm_signal) == (
        MessageType.HEARTBEAT,
        76,
        100,
    )
    assert ack == _frame(0x8001, T, 0, bytes.fromhex("0003000200"))
    message, ack = _one(_frame(0x0003, T, 4, b""))
    assert message.type is MessageType.OTHER
    assert ack == _frame(0x8001, T, 0, bytes.fromhex("0004000300"))


def test_no_reply_to_replies() -> None:
    """0x0001 and 0x1300 are answers themselves; unknown uplinks get nothing either."""
    for message_id, body in ((0x0001, bytes.fromhex("00008105 00")), (0x1300, b"\x00\x00")):
        assert _one(_frame(message_id, T, 1, body))[1] is None
    message, ack = _one(_frame(0x0104, T, 1, b"\x00\x00\x00"))
    assert (message.type, ack) == (MessageType.OTHER, None)


def test_jt600_ack() -> None:
    """JT600-style reports with attribute bit 15 get traccar's 0x4401 (1-byte serial 1)."""
    vector = next(v for v in load("jt808") if v.line == 29)
    _message, ack = _one(vector.raw)
    plain = bytes.fromhex("44010003856009001017015501") + b"\x00"
    assert ack == b"\x7e" + jt808_escape(plain + bytes((xor_checksum(plain),))) + b"\x7e"


def test_text_frame_time_request() -> None:
    """jt808:47: '(id,...,BASE,2,TIME)' is echoed with the UTC time, as traccar does."""
    vector = next(v for v in load("jt808") if v.line == 47)
    message, ack = _one(vector.raw)
    assert message.device_id == "794104004140"
    assert ack == b"(794104004140,1,001,BASE,2,20261124080000)"


# -- Location details --------------------------------------------------------------------------


def _location(
    alarm: int = 0, status: int = 0x02, items: bytes = b"", time: str = "261124160000"
) -> bytes:
    basic = (
        alarm.to_bytes(4, "big")
        + status.to_bytes(4, "big")
        + (22_500_000).to_bytes(4, "big")
        + (114_000_000).to_bytes(4, "big")
        + (-5 & 0xFFFF).to_bytes(2, "big")
        + (456).to_bytes(2, "big")
        + (90).to_bytes(2, "big")
        + bytes.fromhex(time)
    )
    return _frame(0x0200, T, 7, basic + items)


def _bsj(kind: int, data: bytes) -> bytes:
    return (len(data) + 2).to_bytes(2, "big") + kind.to_bytes(2, "big") + data


def _item(item_id: int, data: bytes) -> bytes:
    return bytes((item_id, len(data))) + data


def test_location_basics_and_time_zone() -> None:
    message, _ = _one(_location(status=0b1110 | 1 << 10 | 1 << 26))
    assert message.time == datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
    assert (message.latitude, message.longitude) == (-22.5, -114.0)
    assert (message.speed_kmh, message.course, message.altitude_m) == (45.6, 90.0, -5.0)
    assert (message.valid, message.relay, message.charging, message.ignition) == (
        True,
        True,
        True,
        False,
    )
    utc = Context(now=NOW, jt808_utc_offset=timedelta(0))
    assert _one(_location(), utc)[0].time == datetime(2026, 11, 24, 16, 0, tzinfo=UTC)
    assert _one(_location(time="000000000000"))[0].time is None


def test_alarm_word_states_and_mapping() -> None:
    """Every bit maps to one shared alarm; alarm_states covers all the word can say."""
    assert set(jt808.WORD_ALARM_STATES) == {
        Alarm.SOS,
        Alarm.OVERSPEED,
        Alarm.LOW_POWER,
        Alarm.POWER_CUT,
        Alarm.VIBRATION,
        Alarm.TAMPER,
        Alarm.LOW_BATTERY,
        Alarm.GEOFENCE,
        Alarm.MOVEMENT,
        Alarm.COLLISION,
        Alarm.DOOR,
        Alarm.OTHER,
    }
    message, _ = _one(_location(alarm=1 << 0 | 1 << 7 | 1 << 8 | 1 << 15 | 1 << 28 | 1 << 30))
    assert message.type is MessageType.ALARM
    assert message.alarms == (
        Alarm.SOS,
        Alarm.LOW_POWER,
        Alarm.POWER_CUT,
        Alarm.VIBRATION,
        Alarm.MOVEMENT,
        Alarm.COLLISION,
    )
    clear, _ = _one(_location())
    assert clear.type is MessageType.LOCATION
    assert not clear.alarms
    assert clear.alarm_states == jt808.WORD_ALARM_STATES


def test_bsj_extension_records() -> None:
    """0xEB: active-low words, voltages, battery alarm, cell, Wi-Fi, IMEI (protocols.md §3.6)."""
    eb = (
        _bsj(0x0089, bytes.fromhex("ffffefff"))
        + _bsj(0x00C5, bytes.fromhex("ffffbfbf"))
        + _bsj(0x002D, (14000).to_bytes(4, "big"))
        + _bsj(0x00C6, b"\x03")
        + _bsj(0x00D8, bytes.fromhex("01cc00262c04ba0102"))
        + _bsj(0x00B9, b"\x02" + b"24:69:68:5D:2C:A5,-30,bad,-1,2e:d0:5a:42:16:ad,x")
        + _bsj(0x00D5, b"866496077582164")
        + _bsj(0x00CE, (1234).to_bytes(2, "big"))
        + _bsj(0x9999, b"ignored")
    )
    message, _ = _one(_location(items=_item(0xEB, eb)))
    assert set(message.alarms) == {Alarm.TAMPER, Alarm.VIBRATION, Alarm.LOW_BATTERY}
    assert Alarm.LOW_BATTERY in message.alarm_states
    assert message.power_voltage == 12.34  # 0x00CE comes after 0x002D (14 V)
    assert message.cells == (Cell(mcc=460, mnc=0, lac=0x262C, cid=0x04BA0102),)
    assert message.wifi == (
        WifiAccessPoint(mac="24:69:68:5d:2c:a5", rssi=-30),
        WifiAccessPoint(mac="2e:d0:5a:42:16:ad", rssi=None),
    )
    assert dict(message.info) == {"imei": "866496077582164"}


def test_extension_cell_list_and_time_zone() -> None:
    cells = bytes.fromhex("01cc00") + bytes.fromhex("2535102601") + bytes.fromhex("263d11f92d")
    message, _ = _one(_location(items=_item(0xEB, cells)))
    assert [(c.lac, c.cid, c.rssi) for c in message.cells] == [
        (0x2535, 0x1026, 1),
        (0x263D, 0x11F9, 0x2D),
    ]
    message, _ = _one(_location(items=_item(0xEB, b"UTC-04:00")))
    assert dict(message.info) == {"timezone": "UTC-04:00"}


def test_standard_and_vendor_items() -> None:
    items = (
        _item(0x01, bytes(4))
        + _item(0x25, bytes(4))
        + _item(0x2A, bytes(2))
        + _item(0x2B, bytes(4))
        + _item(0x30, b"\x1f")
        + _item(0x31, b"\x09")
        + _item(0x56, b"\x07\x00")
        + _item(0x61, (1234).to_bytes(2, "big"))
        + _item(0xE4, b"\x00\x63")
        + _item(0xEC, bytes.fromhex("aabbccddeeffc4"))
        + _item(0xF0, bytes.fromhex("01cc0001000012340000567814"))
        + _item(0xE1, bytes.fromhex("010c0006") + bytes.fromhex("00bbe4001ada1500"))
        + _item(0xE7, bytes.fromhex("0001000000000000"))
        + b"\x99\x10\x00"  # truncated last item: ignored
    )
    message, _ = _one(_location(items=items))
    assert (message.gsm_signal, message.satellites) == (100, 9)
    assert (message.battery_percent, message.power_voltage, message.charging) == (99, 12.34, True)
    assert message.wifi == (WifiAccessPoint(mac="aa:bb:cc:dd:ee:ff", rssi=-60),)
    assert message.cells == (
        Cell(mcc=460, mnc=1, lac=0x5678, cid=0x1234, rssi=0x14),
        Cell(mcc=268, mnc=6, lac=0xBBE4, cid=0x1ADA15, rssi=0),
    )
    assert message.alarms == (Alarm.VIBRATION,)


def test_out_of_range_coordinates_are_dropped() -> None:
    frame = bytearray(jt808_unescape(_location()[1:-1]))
    frame[20:24] = (200_000_000).to_bytes(4, "big")
    plain = bytes(frame[:-1])
    message, _ = _one(b"\x7e" + jt808_escape(plain + bytes((xor_checksum(plain),))) + b"\x7e")
    assert (message.valid, message.latitude, message.longitude) == (False, None, None)


def test_checksum_failure_is_flagged_not_dropped() -> None:
    frame = bytearray(_location())
    frame[-2] ^= 0x01
    message, ack = _one(bytes(frame))
    assert message.checksum_ok is False
    assert ack is not None


def test_subpackaged_piece_is_acknowledged_only() -> None:
    plain = (0x0200).to_bytes(2, "big") + (0x2000 | 3).to_bytes(2, "big") + bytes.fromhex(T)
    plain += bytes.fromhex("0009" + "0002" + "0001") + b"abc"
    frame = b"\x7e" + jt808_escape(plain + bytes((xor_checksum(plain),))) + b"\x7e"
    message, ack = _one(frame)
    assert message.type is MessageType.OTHER
    assert ack == _frame(0x8001, T, 0, bytes.fromhex("0009020000"))


@pytest.mark.parametrize(
    "frame",
    [
        b"\x7e\x02\x00\x7e",
        b"not a frame",
        _frame(0x0200, T, 1, bytes(10)),  # location body too short
        _frame(0x0001, T, 1, b"\x00"),
        _frame(0x0200, T, 1, b"").replace(b"\x00\x00\x01", b"\x04\x00\x01", 1),  # encrypted
        b"(123456,no closing",
    ],
)
def test_unusable_frames_raise_frame_error(frame: bytes) -> None:
    with pytest.raises(FrameError):
        jt808.decode(frame, Context(now=NOW))


def test_splitter_waits_for_a_raw_7e_inside_the_body() -> None:
    """jt808:39 has an unescaped 7E in its body: a stream must not cut there."""
    raw = next(v for v in load("jt808") if v.line == 39).raw
    inner = raw.index(b"\x7e", 1)
    assert split_jt808(raw[: inner + 1], Mode.STREAM) is None
    assert split_jt808(raw, Mode.STREAM) == Cut(len(raw), None, raw[1:-1])


# -- Command outcomes --------------------------------------------------------------------------

SENT = EncodedCommand(b"", reference=7)
CUT = Command(kind=CommandKind.RELAY_CUT)
TEXT_CUT = Command(kind=CommandKind.RELAY_CUT, dialect=RelayDialect.JT808_TEXT)
RAW = Command(kind=CommandKind.RAW, text="STATUS#")
LOCATE = Command(kind=CommandKind.LOCATE)


def _general(serial: int, answered: int, result: int) -> Message:
    body = serial.to_bytes(2, "big") + answered.to_bytes(2, "big") + bytes((result,))
    return _one(_frame(0x0001, T, 1, body))[0]


@pytest.mark.parametrize(
    ("result", "verdict"),
    [
        (0, CommandResult.SUCCESS),
        (1, CommandResult.FAILURE),
        (2, CommandResult.FAILURE),
        (3, CommandResult.UNSUPPORTED),
    ],
)
def test_general_response_outcome(result: int, verdict: CommandResult) -> None:
    message = _general(7, 0x8105, result)
    assert jt808.command_outcome(CUT, SENT, message) == CommandOutcome(verdict)


def test_general_response_for_another_command() -> None:
    assert jt808.command_outcome(CUT, SENT, _general(6, 0x8105, 0)) is None
    assert jt808.command_outcome(CUT, SENT, _general(7, 0x8201, 0)) is None


def test_locate_answered_by_0201() -> None:
    vector = next(v for v in load("jt808") if v.line == 117)
    message = _one(vector.raw)[0]
    sent = EncodedCommand(b"", reference=0)
    assert jt808.command_outcome(LOCATE, sent, message) == CommandOutcome(CommandResult.SUCCESS)
    assert jt808.command_outcome(LOCATE, SENT, message) is None


def test_text_relay_waits_for_the_text_verdict() -> None:
    """Accepting the 0x8300 is not switching the relay: only a refusal ends the wait."""
    assert jt808.command_outcome(TEXT_CUT, SENT, _general(7, 0x8300, 0)) is None
    refused = jt808.command_outcome(TEXT_CUT, SENT, _general(7, 0x8300, 3))
    assert refused == CommandOutcome(CommandResult.UNSUPPORTED)
    text = _one(_frame(0x6006, T, 2, b"\x00Relay cut: Success!"))[0]
    assert jt808.command_outcome(TEXT_CUT, SENT, text) == CommandOutcome(
        CommandResult.SUCCESS, "Relay cut: Success!", True
    )
    vague = _one(_frame(0x6006, T, 2, b"\x00<VER:1.0>"))[0]
    assert jt808.command_outcome(TEXT_CUT, SENT, vague) is None


def test_text_response_1300_answers_raw() -> None:
    vector = next(v for v in load("jt808") if v.line == 63)
    message = _one(vector.raw)[0]
    assert message.reply == CommandReply(reference=0, command="8300", result=CommandResult.SUCCESS)
    sent = EncodedCommand(b"", reference=0)
    assert jt808.command_outcome(RAW, sent, message) == CommandOutcome(
        CommandResult.SUCCESS, "Set OK!"
    )
    assert jt808.command_outcome(RAW, SENT, message) is None
    assert jt808.command_outcome(RAW, sent, _general(0, 0x8300, 0)) == CommandOutcome(
        CommandResult.SUCCESS
    )


def test_raw_takes_any_text_report() -> None:
    text = _one(_frame(0x6006, T, 2, b"\x00<VER:1.0>"))[0]
    assert jt808.command_outcome(RAW, SENT, text) == CommandOutcome(
        CommandResult.SUCCESS, "<VER:1.0>"
    )
    unicode = _one(_frame(0x6006, T, 2, b"\x01" + "Fail".encode("utf-16-be")))[0]
    assert jt808.command_outcome(RAW, SENT, unicode) == CommandOutcome(
        CommandResult.FAILURE, "Fail"
    )
    assert jt808.command_outcome(CUT, SENT, text) is None


def test_status_report_confirms_the_relay_state() -> None:
    engaged = _one(_location(status=0x02 | 1 << 10))[0]
    released = _one(_location())[0]
    restore = Command(kind=CommandKind.RELAY_RESTORE)
    assert jt808.command_outcome(CUT, SENT, engaged) == CommandOutcome(
        CommandResult.SUCCESS, relay=True
    )
    assert jt808.command_outcome(CUT, SENT, released) is None
    assert jt808.command_outcome(restore, SENT, released) == CommandOutcome(
        CommandResult.SUCCESS, relay=False
    )
    assert jt808.command_outcome(LOCATE, SENT, engaged) is None


def test_unrelated_messages_answer_nothing() -> None:
    heartbeat = _one(_frame(0x0002, T, 3, b""))[0]
    for command in (CUT, TEXT_CUT, RAW, LOCATE):
        assert jt808.command_outcome(command, SENT, heartbeat) is None
    other = heartbeat._replace(protocol=Protocol.GT06, reply=CommandReply(reference=7))
    assert jt808.command_outcome(CUT, SENT, other) is None


# -- Robustness --------------------------------------------------------------------------------

_SAMPLES = [v.raw for v in load("jt808") if v.uplink]


def _decode_or_frame_error(frame: bytes) -> None:
    try:
        result = jt808.decode(frame, Context(now=NOW))
    except FrameError:
        return
    assert result.messages


@given(st.binary(max_size=300))
def test_fuzz_random_frames(body: bytes) -> None:
    """Random bytes between flags (escaped or not) decode or raise FrameError, nothing else."""
    _decode_or_frame_error(b"\x7e" + jt808_escape(body) + b"\x7e")
    plain = body + bytes((xor_checksum(body),))
    _decode_or_frame_error(b"\x7e" + plain + b"\x7e")


@given(
    st.sampled_from(_SAMPLES) if _SAMPLES else st.just(b"\x7e\x7e"),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=4),
    st.integers(0, 40),
)
def test_fuzz_mutated_vectors(sample: bytes, edits: list[tuple[int, int]], cut: int) -> None:
    """Vectors with bytes changed and their end cut off never raise anything but FrameError."""
    data = bytearray(sample)
    for position, value in edits:
        data[position % len(data)] = value
    mutated = bytes(data[: max(1, len(data) - cut)])
    session = Session()
    session.feed(mutated, NOW)
    session.close(NOW)
    assert session.stats.decoder_errors == 0


def test_splitter_reads_unescaped_7d_literally() -> None:
    """jt808:40 has a lone 7D 00; jt808:35 a 7D 01 that is not an escape: length and checksum
    only add up when the bytes are read as they are."""
    vectors = {v.line: v for v in load("jt808")}
    for line in (35, 40):
        raw = vectors[line].raw
        assert split_jt808(raw, Mode.STREAM) == Cut(len(raw), None, raw[1:-1])
    escaped = vectors[53].raw  # a properly escaped frame keeps its un-escaping
    assert split_jt808(escaped, Mode.STREAM) == Cut(
        len(escaped), None, jt808_unescape(escaped[1:-1])
    )


def test_splitter_does_not_swallow_the_next_flag() -> None:
    """A frame announcing one byte more than it has must not take the next frame's opening
    flag for its last byte."""
    plain = (0x0002).to_bytes(2, "big") + (1).to_bytes(2, "big") + bytes.fromhex(T) + b"\x00\x01"
    short = b"\x7e" + plain + bytes((xor_checksum(plain),)) + b"\x7e"
    following = _frame(0x0002, T, 2, b"")
    cut = split_jt808(short + following, Mode.STREAM)
    assert cut == Cut(len(short), None, short[1:-1])
    assert split_jt808(following, Mode.STREAM) == Cut(len(following), None, following[1:-1])


# -- Replies a server owes (issue 13): time sync, CC888 heartbeat, unknown types ----------------
# No capture of 0x0109 or 0x0506 exists in jt808.jsonl or traccar's tests: these frames are
# built on the layouts traccar answers (Jt808ProtocolDecoder), with a real terminal id.


def test_time_sync_is_answered_with_utc() -> None:
    """0x0109 gets 0x8109: year WORD, month, day, hour, minute, second (UTC), result 0."""
    session = Session()
    now = datetime(2026, 11, 24, 23, 59, 58, tzinfo=UTC)
    (item,) = session.feed(_frame(0x0109, "009590068983", 0x21, b""), now)
    assert isinstance(item, Decoded)
    assert item.message.type is MessageType.OTHER
    assert item.message.device_id == "009590068983"
    assert item.ack == _frame(0x8109, "009590068983", 0, bytes.fromhex("07ea0b18173b3a00"))


def test_cc888_heartbeat_is_acknowledged() -> None:
    message, ack = _one(_frame(0x0506, T, 0x0102, b""))
    assert message.type is MessageType.HEARTBEAT
    assert ack == _frame(0x8001, T, 0, bytes.fromhex("0102050600"))


def test_unknown_uplink_is_answered_and_logged_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A message id we do not know gets the standard's general response (so the terminal
    stops resending it), and one log line per process however often it comes."""
    monkeypatch.setattr(session_module, "_unknown_logged", set())
    session = Session()
    with caplog.at_level("INFO", logger="custom_components.tk970.protocol.session"):
        first = session.feed(_frame(0x0F42, T, 7, b"\x01\x02"), NOW)
        second = session.feed(_frame(0x0F42, T, 8, b"\x01\x02"), NOW)
    assert [item.ack for item in first + second] == [  # type: ignore[union-attr]
        _frame(0x8001, T, 0, bytes.fromhex("00070f4200")),
        _frame(0x8001, T, 1, bytes.fromhex("00080f4200")),
    ]
    lines = [r.getMessage() for r in caplog.records if "0x0f42" in r.getMessage()]
    assert len(lines) == 1
    assert all(word in lines[0] for word in ("jt808", "answered", T))
    assert session.stats.unknown_types == 2


def test_known_uplinks_are_not_logged_as_unknown(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(session_module, "_unknown_logged", set())
    with caplog.at_level("INFO", logger="custom_components.tk970.protocol.session"):
        for vector in load("jt808"):
            if vector.uplink:
                Session().feed(vector.raw, NOW)
    assert not [r for r in caplog.records if "Unknown" in r.getMessage()]


def test_driver_identity_and_acceleration_get_the_general_response() -> None:
    """0x0702 (standard) and 0x2070 (vendor) are known but have nothing for the model; the
    standard's general response answers them (jt808.jsonl lines 8 and 55)."""
    vectors = {v.line: v for v in load("jt808")}
    for line, message_id in ((8, 0x0702), (55, 0x2070)):
        (item,) = _decode(vectors[line])
        serial = vectors[line].expect["serial"]
        body = serial.to_bytes(2, "big") + message_id.to_bytes(2, "big") + b"\x00"
        terminal = vectors[line].expect["terminal_id_hex"]
        assert item.ack == _frame(0x8001, terminal, 0, body)


def test_captured_authentication_reply_in_its_session() -> None:
    """jt808:115's captured reply carries server serial 1: in that session our registration
    reply went first (serial 0). Replayed the same way, our reply is byte for byte the one
    captured."""
    vector = next(v for v in load("jt808") if v.line == 115)
    registration = _frame(0x0100, "024530313349", 0, bytes(4) + b"BSJGP" + bytes(20) + b"0313349")
    session = Session()
    session.feed(registration, NOW)
    (item,) = session.feed(vector.raw, NOW)
    assert isinstance(item, Decoded)
    assert item.ack == bytes.fromhex(vector.data["ack_hex"])


# -- Odometer: item 0x01 and the 18-byte non-item tail -------------------------------------------


def test_mileage_item_is_the_odometer() -> None:
    """Item 0x01 is a DWORD of 0.1 km (jt808:28, TK-Star 4G: 0x5b3f = 2335.9 km)."""
    vector = next(v for v in load("jt808") if v.line == 28)
    (item,) = _decode(vector)
    assert item.message.odometer_km == pytest.approx(2335.9)
    assert item.message.as_dict()["odometer_km"] == pytest.approx(2335.9)


def test_fixed_tail_is_not_read_as_items() -> None:
    """jt808:59 (Carscop) ends with 18 bytes that are not items: odometer DWORD km, battery
    WORD 0.1 V, area DWORD, signal; read as items they would be five empty 0x00 items and an
    overrun."""
    vector = next(v for v in load("jt808") if v.line == 59)
    (item,) = _decode(vector)
    message = item.message
    assert message.odometer_km == 0.0
    assert message.battery_voltage == 12.0
    assert message.gsm_signal == round(0x18 * 100 / 31)
    assert message.latitude == pytest.approx(vector.expect["latitude"])


def test_items_that_fit_eighteen_bytes_stay_items() -> None:
    """An 18-byte tail that reads as items ending exactly at the end is items (jt808:85)."""
    vector = next(v for v in load("jt808") if v.line == 85)
    (item,) = _decode(vector)
    assert item.message.odometer_km == pytest.approx(vector.expect["odometer_km"])


@pytest.mark.parametrize(
    ("line", "cells"),
    [
        (18, [(460, 0, 0x2626, 0x0FF1, 0x13)]),  # 0x53 with a DWORD cell id
        (34, [(639, 3, 0x45, 0x6F07, 0x3E)]),  # 0x53 as G10LS has it
        (26, [(724, 3, 0x79B8, 0x01142303, 0x3C)]),  # 0x5D, in Sao Paulo
        (66, []),  # 0x53 all zeros: no cell
    ],
)
def test_counted_cell_items(line: int, cells: list[tuple[int, ...]]) -> None:
    """Items 0x53 / 0x5D (G10LS Table 20): a count, then MCC, MNC, LAC, cell id, signal."""
    vector = next(v for v in load("jt808") if v.line == line)
    (item,) = _decode(vector)
    assert [(c.mcc, c.mnc, c.lac, c.cid, c.rssi) for c in item.message.cells] == cells


def test_six_4g_cells() -> None:
    """jt808:45 lists six 4G cells in item 0x5D (and three more in 0xE1)."""
    vector = next(v for v in load("jt808") if v.line == 45)
    (item,) = _decode(vector)
    assert len({(c.lac, c.cid) for c in item.message.cells if c.mcc == 460}) >= 6


def test_counted_wifi_item() -> None:
    """Item 0x54: a count, then MAC and signal per access point (no capture exists)."""
    body = bytes(28) + b"\x54\x0f\x02" + bytes.fromhex("112233445566c8aabbccddeeffb0")
    message, _ack = _one(_frame(0x0200, T, 1, body))
    assert [(w.mac, w.rssi) for w in message.wifi] == [
        ("11:22:33:44:55:66", -56),
        ("aa:bb:cc:dd:ee:ff", -80),
    ]
