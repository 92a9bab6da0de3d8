"""Tests for the GT06 / Concox family: every line of gt06.jsonl, replies, commands, outcomes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
import random
from typing import Any

import pytest

from custom_components.tk970.protocol import gt06, session as session_module
from custom_components.tk970.protocol.codec import crc_itu
from custom_components.tk970.protocol.commands import (
    Command,
    CommandKind,
    CommandOutcome,
    EncodedCommand,
    RelayDialect,
)
from custom_components.tk970.protocol.context import Context
from custom_components.tk970.protocol.errors import CommandError, FrameError
from custom_components.tk970.protocol.framing import Cut, Mode, split_gt06
from custom_components.tk970.protocol.messages import (
    Alarm,
    CommandResult,
    Message,
    MessageType,
    PositionSource,
    Protocol,
)
from custom_components.tk970.protocol.session import Decoded, Session

from .helpers import NOW, decode_datagram, decode_stream
from .vectors import Vector, load, params

# ---------------------------------------------------------------------------------------------
# The vectors' vocabulary, mapped to ours once
# ---------------------------------------------------------------------------------------------

#: `kind` of a vector -> the message types that satisfy it (a position frame that carries
#: alarms may be either, interfaces.md §2).
KINDS: dict[str, set[MessageType]] = {
    "login": {MessageType.LOGIN},
    "location": {MessageType.LOCATION, MessageType.ALARM},
    "alarm": {MessageType.ALARM},
    "heartbeat": {MessageType.HEARTBEAT},
    "lbs": {MessageType.LBS},
    "wifi": {MessageType.WIFI},
    "command-reply": {MessageType.COMMAND_REPLY},
    "other": {MessageType.OTHER},
}
#: Vectors whose `kind` label does not follow interfaces.md §2 for what the frame carries.
KIND_OVERRIDES: dict[int, tuple[MessageType, str]] = {
    1: (MessageType.OTHER, "a 0x12 frame with no content: no GPS block to report"),
    6: (MessageType.OTHER, "0x70 without a GPS (0x33) module: no position in the frame"),
    49: (MessageType.OTHER, "0x70 without a GPS (0x33) module: no position in the frame"),
    9: (MessageType.HEARTBEAT, "0xA3 0x0C long is SeeWorld's status packet, no position"),
    10: (MessageType.HEARTBEAT, "0xA3 0x18 long is SeeWorld's status packet, no position"),
    18: (MessageType.HEARTBEAT, "0x36 (Jimi 4G status) carries status modules, no position"),
    13: (MessageType.LOCATION, "0xA2 0x40 long is LW4G's GPS + status report"),
    19: (MessageType.LOCATION, "0xA2 0x40 long is LW4G's GPS + status report"),
    23: (MessageType.LOCATION, "0x17 with a consistent length and CRC is the GPS + RFID report"),
    43: (MessageType.LOCATION, "0x24 0x2E long (SR411 mini) starts with a GPS block"),
    67: (MessageType.LOCATION, "0x34 (X1) carries a GPS block"),
    77: (MessageType.LOCATION, "0x34 (X1) carries a GPS block"),
    115: (MessageType.LOCATION, "0x34 (X1) carries a GPS block"),
    116: (MessageType.LOCATION, "0x34 (X1) carries a GPS block"),
    50: (MessageType.OTHER, "0x19 of 18+ bytes is SPACE10X's multi-cell layout, not decoded"),
    107: (MessageType.ALARM, "`79 79` 0x33 is the AZ735 alarm packet (no Wi-Fi data here)"),
    108: (MessageType.LBS, "AZ735 0x32 with GPS length 0: cells only"),
    109: (MessageType.LBS, "AZ735 0x32 with GPS length 0: cells only"),
    112: (MessageType.LBS, "AZ735 0x32 with GPS length 0: cells only"),
    155: (MessageType.LOCATION, "the 0x2A address request carries a GPS block"),
    88: (
        MessageType.LBS,
        "0xA7 (GK310 LBS address request) starts with a cell, as traccar reads it",
    ),
    168: (MessageType.OTHER, "0x25 is XT40's vendor layout (traccar needs the model)"),
}
#: traccar alarm names, and the VL03 names of `alarm_code_meaning`, -> ours.
ALARMS: dict[str, Alarm] = {
    "sos": Alarm.SOS,
    "vibration": Alarm.VIBRATION,
    "powerCut": Alarm.POWER_CUT,
    "lowBattery": Alarm.LOW_BATTERY,
    "lowInternalBattery": Alarm.LOW_BATTERY,
    "lowPower": Alarm.LOW_POWER,
    "geofence": Alarm.GEOFENCE,
    "geofenceEnter": Alarm.GEOFENCE_ENTER,
    "geofenceExit": Alarm.GEOFENCE_EXIT,
    "overspeed": Alarm.OVERSPEED,
    "tampering": Alarm.TAMPER,
    "removing": Alarm.TAMPER,
    "powerOn": Alarm.TAMPER,  # VL03 0x0C; traccar (and gt06:40) call it tampering
    "door": Alarm.DOOR,
    "powerOff": Alarm.POWER_OFF,
    "accident": Alarm.COLLISION,
    "fallDown": Alarm.FALL,
    "general": Alarm.OTHER,
    "hardAcceleration": Alarm.OTHER,
    "hardBraking": Alarm.OTHER,
    "hardCornering": Alarm.OTHER,
}
STATUS_STATES = frozenset(
    {
        Alarm.SOS,
        Alarm.VIBRATION,
        Alarm.POWER_CUT,
        Alarm.LOW_BATTERY,
        Alarm.GEOFENCE,
        Alarm.TAMPER,
    }
)
#: Expectation keys with no field in our Message (traccar attributes, raw bytes, or facts
#: about the vector itself that `check_frame_facts` covers).
NOT_MODELLED = frozenset(
    {
        "type",
        "extended_7979",
        "length_field_consistent",
        "note_framing",
        "terminal_info",
        "gps_tracking",
        "armed",
        "alarm_language",
        "timezone_field",
        "encoding",
        "temp1",
        "tag1Temp",
        "steps",
        "humidity",
        "eventFiles",
        "hours",
        "event",
        "adc1",
        "drivingTime",
    }
)
#: Keys folded into the alarm check.
ALARM_KEYS = frozenset({"alarm", "status_alarm", "alarm_code", "alarm_code_meaning"})

#: Where our value differs from `expect`, the value we produce and why (asserted as such).
DEVIATIONS: dict[int, dict[str, tuple[Any, str]]] = {
    25: {
        "ignition_from_course_word": (
            True,
            "0x22's ACC byte (0x03, VL03 §3) wins over traccar's course-word bit 15",
        )
    },
    30: {
        "ignition_from_course_word": (
            True,
            "the terminal-info ACC bit (0x62) wins over traccar's course-word bit 15",
        )
    },
    44: {"serial": (12, "`serial` here is traccar's RFID attribute; the packet serial is 12")},
    119: {"text": ("DYD=Success!", "command length 0: traccar reads no text, the frame has one")},
    129: {
        "text": (
            "Already in the state of fuel supply to resume,the command is not running!",
            "command length 0: traccar reads no text, the frame has one",
        )
    },
    154: {"serial": (None, "a 6-byte frame has no serial; the vector took the start bytes")},
    144: {"crc_ok": (True, "three frames with good CRCs, not one frame with a bad one")},
    190: {"time_utc": (None, "the date bytes are all zero: no time")},
    5: {"driverUniqueId": (None, "iButton id: not a field of our Message")},
    23: {"driverUniqueId": (None, "RFID id: not a field of our Message")},
    21: {"altitude": (None, "SL4X tail after the GPS block is not decoded")},
    22: {"altitude": (None, "SL4X tail after the GPS block is not decoded")},
    # traccar_model_override vectors: decoded with the standard layout, as a device with no
    # model configured (the vectors README: robustness inputs, not TK-Star behaviour).
    162: {"power_v": (None, "LW4G-4B puts volts in the language word (model-specific)")},
    163: {"alarm": (Alarm.LOW_BATTERY, "alarm 0x19 is harsh acceleration only on LW models")},
    164: {"power_v": (None, "SEEWORLD heartbeat layout (model-specific)")},
    165: {"power_v": (None, "R11 heartbeat layout (model-specific)")},
    166: {"battery_v": (None, "NT20 0x22 layout (model-specific)")},
    167: {"power_v": (None, "XT40 0x22 layout (model-specific)")},
    168: {"driverUniqueId": (None, "XT40 0x25 layout (model-specific)")},
    174: {"driverUniqueId": (None, "RFID id: not a field of our Message")},
    176: {"driverUniqueId": (None, "VL103 RFID tail: not a field of our Message")},
}

#: gt06:144 is three frames in one capture; the vector describes the bytes as one frame.
MULTI_FRAME = {144: 3}


def alarm_name(name: str | None) -> Alarm | None:
    return None if name is None else ALARMS[name]


def expected_alarms(expect: dict[str, Any]) -> set[Alarm]:
    """Alarms a frame states: the alarm byte's, the terminal-info bits', VL03's meaning."""
    found = {alarm_name(expect.get(key)) for key in ("alarm", "status_alarm")}
    if "alarm_code_meaning" in expect and "alarm" not in expect:
        found.add(ALARMS[expect["alarm_code_meaning"]])
    return {alarm for alarm in found if alarm is not None}


def battery_from_level(level: int) -> float | None:
    if level <= 6:
        return (0.0, 17.0, 33.0, 50.0, 67.0, 83.0, 100.0)[level]
    return float(level) if level <= 100 else None


def gsm_from_level(level: int) -> int | None:
    if level <= 4:
        return level * 25
    return level if level <= 100 else None


def info(message: Message) -> dict[str, str]:
    return dict(message.info)


def first_cell(message: Message) -> dict[str, int] | None:
    if not message.cells:
        return None
    cell = message.cells[0]
    return {"mcc": cell.mcc, "mnc": cell.mnc, "lac": cell.lac, "cid": cell.cid}


#: expect key -> (how to read our value, how to read the expected value).
OBSERVERS: dict[str, tuple[Callable[[Message], Any], Callable[[Any], Any]]] = {
    "imei": (lambda m: m.device_id, lambda v: v),
    "crc_ok": (lambda m: m.checksum_ok, lambda v: v),
    "serial": (lambda m: m.serial, lambda v: v),
    "time_utc": (
        lambda m: m.time,
        lambda v: datetime.fromisoformat(v.replace("Z", "+00:00")),
    ),
    "satellites": (lambda m: m.satellites, lambda v: v),
    "latitude": (lambda m: m.latitude, lambda v: pytest.approx(v, abs=1e-5)),
    "longitude": (lambda m: m.longitude, lambda v: pytest.approx(v, abs=1e-5)),
    "speed_kmh": (lambda m: m.speed_kmh, float),
    "course": (lambda m: m.course, float),
    "valid": (lambda m: m.valid, lambda v: v),
    "ignition": (lambda m: m.ignition, lambda v: v),
    "ignition_from_course_word": (lambda m: m.ignition, lambda v: v),
    "charging": (lambda m: m.charging, lambda v: v),
    "blocked": (lambda m: m.relay, lambda v: v),
    "voltage_level": (lambda m: m.battery_percent, battery_from_level),
    "battery_level": (lambda m: m.battery_percent, float),
    "gsm_level": (lambda m: m.gsm_signal, gsm_from_level),
    "power_v": (lambda m: m.power_voltage, lambda v: v),
    "battery_v": (lambda m: m.battery_voltage, lambda v: v),
    "altitude": (lambda m: m.altitude_m, lambda v: v),
    # a cell of all zeros identifies nothing and is not kept
    "cell": (first_cell, lambda v: v if any(v.values()) else None),
    "text": (lambda m: m.text, lambda v: v),
    "result": (lambda m: m.text, lambda v: v),
    "server_flag": (lambda m: m.reply and m.reply.reference, lambda v: int(v, 16)),
    "iccid": (lambda m: info(m).get("iccid"), lambda v: v),
    "type_id": (lambda m: info(m).get("type_id"), lambda v: v),
    "timezone_minutes": (
        lambda m: info(m).get("timezone"),
        lambda v: f"{'-' if v < 0 else '+'}{abs(v) // 60:02d}:{abs(v) % 60:02d}",
    ),
    "networkTechnology": (lambda m: info(m).get("network"), lambda v: v),
    "driverUniqueId": (lambda m: info(m).get("rfid"), lambda v: v),
    "door": (lambda m: Alarm.DOOR in m.alarms, lambda v: v),
}


def standard_ack(kind: int, serial: bytes) -> bytes:
    head = bytes((5, kind)) + serial
    return b"\x78\x78" + head + crc_itu(head).to_bytes(2, "big") + b"\r\n"


#: What traccar's Gt06ProtocolDecoder (the reference server) sends for the vectors that carry
#: no `ack_hex`, read from its source type by type: `78 78` frames of these types get no
#: reply (early returns before `sendResponse`, or the command types)...
TRACCAR_SILENT_SHORT = {0x21, 0x34, 0x35, 0x38, 0x80, 0x81, 0x82, 0x8C, 0x94, 0x9B, 0xF3}
#: ... `79 79` frames are answered only for these types, in the `78 78` form (the GPS, LBS and
#: status branch, plus the explicit replies to 0x40, 0x70, 0xF1, 0xF2) ...
TRACCAR_ANSWERED_LONG = {0x70, 0xF1, 0xF2, 0x40, 0x12, 0x13, 0x16, 0x22, 0x26, 0xA0, 0xA2}
#: ... or in the `79 79` form (AZ735 and multimedia).
TRACCAR_ANSWERED_LONG_FORM = {0x32, 0x33, 0x41}


def long_ack(kind: int, serial: bytes) -> bytes:
    head = (5).to_bytes(2) + bytes((kind,)) + serial
    return b"\x79\x79" + head + crc_itu(head).to_bytes(2) + b"\r\n"


def expected_ack(vector: Vector) -> bytes | None:
    """The vector's `ack_hex`, else the reply traccar sends for that frame."""
    if "ack_hex" in vector.data:
        return bytes.fromhex(vector.data["ack_hex"])
    raw = vector.raw
    kind = int(vector.expect["type"], 16)
    serial = raw[-6:-4]
    if vector.line == 23:  # 0x17 GPS + RFID report: answered like any location
        return standard_ack(kind, serial)
    if kind in (0x17, 0x69):  # Wi-Fi: the date echoed, length 0 (traccar)
        return b"\x78\x78\x00" + bytes((kind,)) + raw[4:10] + b"\r\n"
    if kind == 0x8A:
        stamp = bytes((NOW.year - 2000, NOW.month, NOW.day, NOW.hour, NOW.minute, NOW.second))
        head = bytes((0x0B, 0x8A)) + stamp + serial
        return b"\x78\x78" + head + crc_itu(head).to_bytes(2, "big") + b"\r\n"
    if kind == 0x2A:  # address request: a 0x97 with no address, serial 0
        head = bytes.fromhex("0015970b00000000") + b"NA&&NA&&0##" + bytes(2)
        return b"\x79\x79" + head + crc_itu(head).to_bytes(2) + b"\r\n"
    if raw[0] == 0x78:
        return None if kind in TRACCAR_SILENT_SHORT else standard_ack(kind, serial)
    if kind in TRACCAR_ANSWERED_LONG_FORM:
        return long_ack(kind, serial)
    return standard_ack(kind, serial) if kind in TRACCAR_ANSWERED_LONG else None


def check_frame_facts(vector: Vector) -> None:
    """The vector's own claims about the frame bytes (type, form, length) hold."""
    raw = vector.raw
    expect = vector.expect
    long_form = raw[0] == 0x79
    assert long_form == expect.get("extended_7979", long_form)
    assert raw[4 if long_form else 3] == int(expect["type"], 16)
    if "length_field_consistent" in expect:
        declared = (int.from_bytes(raw[2:4]) + 6) if long_form else raw[2] + 5
        consistent = declared == len(raw) and raw.endswith(b"\r\n")
        assert consistent == expect["length_field_consistent"]


# ---------------------------------------------------------------------------------------------
# Every uplink vector
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("vector", params("gt06"))
def test_uplink_vector(vector: Vector) -> None:
    check_frame_facts(vector)
    decoded, skipped = decode_datagram(vector.raw)
    assert not skipped
    assert len(decoded) == MULTI_FRAME.get(vector.line, 1)
    # the expectations of a packed capture describe its last frame (its serial)
    message, ack = decoded[-1].message, decoded[-1].ack
    assert message.protocol is Protocol.GT06
    assert b"".join(d.message.raw for d in decoded) == vector.raw
    override = KIND_OVERRIDES.get(vector.line)
    if override:
        assert message.type is override[0], override[1]
    else:
        assert message.type in KINDS[vector.data["kind"]]
    assert ack == expected_ack(vector)
    if message.type is not MessageType.LOGIN:
        assert message.device_id is None  # a new connection that has not logged in

    expect = vector.expect
    deviations = DEVIATIONS.get(vector.line, {})
    for key, value in expect.items():
        if key in NOT_MODELLED or key in ALARM_KEYS:
            continue
        assert key in OBSERVERS, f"unmapped expectation key {key!r}"
        observe, convert = OBSERVERS[key]
        if key in deviations:
            assert observe(message) == deviations[key][0], deviations[key][1]
        else:
            assert observe(message) == convert(value), key

    if ALARM_KEYS & expect.keys():
        if "alarm" in deviations:
            assert set(message.alarms) == {deviations["alarm"][0]}, deviations["alarm"][1]
        else:
            assert set(message.alarms) == expected_alarms(expect)
    if "status_alarm" in expect:
        assert message.alarm_states == STATUS_STATES


def test_packed_capture() -> None:
    """gt06:144 holds three consecutive 0xFD frames; each is cut and decoded on its own."""
    vector = vectors()[144]
    decoded, skipped = decode_datagram(vector.raw)
    assert not skipped
    assert [d.message.serial for d in decoded] == [42, 45, vector.expect["serial"]]
    assert all(d.message.checksum_ok for d in decoded)
    assert all(d.message.type is MessageType.OTHER and d.ack is None for d in decoded)
    assert info(decoded[0].message) == {"firmware": "GT06D_20_60DM2_B25E_V15_WM"}


def test_checksum_failures_are_decoded() -> None:
    """The vectors fail their CRC on purpose 29 times; every such frame still decodes."""
    bad = [v for v in vectors().values() if v.uplink and not v.expect["crc_ok"]]
    assert len(bad) == 29
    for vector in bad:
        decoded, _skipped = decode_datagram(vector.raw)
        assert decoded
        if vector.line not in MULTI_FRAME:
            assert decoded[0].message.checksum_ok is False


@pytest.mark.parametrize("vector", params("gt06"))
def test_one_byte_chunks(vector: Vector) -> None:
    """Over TCP, byte by byte, a vector decodes as it does in one datagram."""
    raw = vector.raw
    whole, _ = decode_datagram(raw)
    chunked, skipped = decode_stream([raw[i : i + 1] for i in range(len(raw))])
    if vector.line == 67:
        # A capture one byte short of its length and without 0D 0A: over TCP the rest may
        # still come, so closing the connection reports it instead of guessing.
        assert not chunked
        assert [s.reason for s in skipped] == ["incomplete frame at the end of the stream"]
        return
    assert not skipped
    assert chunked == whole


def test_whole_capture_as_one_stream() -> None:
    """All uplink vectors back to back, read 7 bytes at a time, after a login: same frames,
    and every message carries the login's identity."""
    uplinks = [v for v in vectors().values() if v.uplink and v.line != 67]
    login = next(v for v in uplinks if v.line == 2)
    blob = login.raw + b"".join(v.raw for v in uplinks if v.data["kind"] != "login")
    decoded, skipped = decode_stream([blob[i : i + 7] for i in range(0, len(blob), 7)])
    assert not skipped
    frames = [login.raw]
    for vector in uplinks:
        if vector.data["kind"] != "login":
            frames += [d.message.raw for d in decode_datagram(vector.raw)[0]]
    assert [d.message.raw for d in decoded] == frames
    assert {d.message.device_id for d in decoded} == {"864717003283581"}


# ---------------------------------------------------------------------------------------------
# Splitter (framing.split_gt06) on frames whose length byte is wrong
# ---------------------------------------------------------------------------------------------

HEARTBEAT = bytes.fromhex("78780a134004040001000fdcee0d0a")  # VL03 §2's example


def wifi_frame(kind: int, macs: list[bytes], cells: int) -> bytes:
    """A 0x69/0x17 Wi-Fi frame as such firmware sends it: AP count in the length byte."""
    content = bytes.fromhex("171023110850")  # BCD date
    content += b"".join(mac + b"\x5a" for mac in macs)
    content += bytes((cells,)) + bytes.fromhex("00cc08") + bytes.fromhex("0c4e2fa564") * cells
    return b"\x78\x78" + bytes((len(macs), kind)) + content + b"\r\n"


@pytest.mark.parametrize("kind", [0x69, 0x17])
def test_wifi_frame_size_from_its_counts(kind: int) -> None:
    """Cut at once in a stream, even with 0D 0A inside a MAC address."""
    raw = wifi_frame(kind, [bytes.fromhex("0c0d0a0d0a01"), bytes.fromhex("112233445566")], 2)
    assert split_gt06(raw + HEARTBEAT, Mode.STREAM) == Cut(len(raw))
    assert split_gt06(raw[:12], Mode.STREAM) is None
    decoded, skipped = decode_stream([raw + HEARTBEAT])
    assert not skipped
    assert [d.message.type for d in decoded] == [MessageType.WIFI, MessageType.HEARTBEAT]
    assert [w.mac for w in decoded[0].message.wifi] == ["0c:0d:0a:0d:0a:01", "11:22:33:44:55:66"]


@pytest.mark.parametrize("line", [73, 74, 94, 95, 96, 97, 98, 99, 101, 102, 153])
def test_wifi_vectors_cut_without_waiting(line: int) -> None:
    raw = vector_raw(line)
    assert split_gt06(raw + HEARTBEAT, Mode.STREAM) == Cut(len(raw))


def test_wrong_length_with_a_good_crc_is_cut_at_once() -> None:
    raw = vector_raw(188)  # length byte one short, CRC right
    assert split_gt06(raw + b"\x00" + HEARTBEAT, Mode.STREAM) == Cut(len(raw))


def test_wrong_length_trusts_only_the_first_terminator() -> None:
    """A damaged frame after a wrong-length one must not be swallowed into it: a later 0D 0A
    followed by a frame start does not end the first frame (test_fuzz found this)."""
    raw = vector_raw(152)  # truncated login: no serial, bad CRC, length byte too big
    damaged = b"\x00" + HEARTBEAT[1:]
    buf = raw + damaged + HEARTBEAT
    assert split_gt06(buf, Mode.STREAM) is None  # wait: the first 0D 0A is not followed by 78 78
    assert split_gt06(buf, Mode.IDLE) == Cut(len(raw))
    assert split_gt06(raw + HEARTBEAT, Mode.STREAM) == Cut(len(raw))
    decoded, _skipped = decode_stream([buf])
    assert [d.message.raw for d in decoded] == [raw, HEARTBEAT]


# ---------------------------------------------------------------------------------------------
# Login, time zone, replies
# ---------------------------------------------------------------------------------------------


def vectors() -> dict[int, Vector]:
    """The gt06 vectors by line; skips the calling test where this checkout has none."""
    found = {vector.line: vector for vector in load("gt06")}
    if not found:
        pytest.skip("vectors not available")
    return found


def vector_raw(line: int) -> bytes:
    return vectors()[line].raw


def test_login_binds_identity_and_time_zone() -> None:
    """gt06:178 (GMT+8): the context learns the IMEI and the zone; classic 0x12 dates move by
    the zone, the UTC types (0x26) do not."""
    decoded, skipped = decode_stream([vector_raw(178), vector_raw(136), vector_raw(180)])
    assert not skipped
    login, location, alarm = (d.message for d in decoded)
    assert login.type is MessageType.LOGIN
    assert login.device_id == "752533678900242"
    assert info(login) == {"imei": "752533678900242", "type_id": "7000", "timezone": "+08:00"}
    assert location.device_id == alarm.device_id == "752533678900242"
    assert location.time == datetime(2015, 10, 20, 6, 21, 11, tzinfo=UTC)
    assert alarm.time == datetime(2015, 12, 29, 3, 11, 38, tzinfo=UTC)


def test_login_context() -> None:
    ctx = Context()
    result = gt06.decode(vector_raw(147), ctx, None)
    assert ctx.device_id == "864717003664467"
    assert ctx.gt06_utc_offset == timedelta(hours=-4)
    assert ctx.info["timezone"] == "-04:00"
    assert result.messages[0].info == (
        ("imei", "864717003664467"),
        ("type_id", "100f"),
        ("timezone", "-04:00"),
    )


def test_login_without_terminal_id_is_rejected() -> None:
    with pytest.raises(FrameError):
        gt06.decode(bytes.fromhex("78780501000955940d0a"), Context(), None)


def test_time_request_answers_with_the_callers_clock() -> None:
    ctx = Context(now=datetime(2031, 2, 3, 4, 5, 6, tzinfo=UTC))
    result = gt06.decode(vector_raw(156), ctx, None)
    assert result.ack is not None
    assert result.ack.hex() == "78780b8a1f02030405060006" + result.ack[-4:].hex()
    assert crc_itu(result.ack[2:-4]) == int.from_bytes(result.ack[-4:-2])


def test_status_packet_fields() -> None:
    """gt06:117: relay engaged (bit 7), charging, full battery, full signal, no alarm."""
    message = decode_datagram(vector_raw(117))[0][0].message
    assert message.type is MessageType.HEARTBEAT
    assert (message.relay, message.charging, message.ignition) == (True, True, False)
    assert (message.battery_percent, message.gsm_signal) == (100.0, 100)
    assert message.alarms == ()
    assert message.alarm_states == STATUS_STATES


def test_historical_flag() -> None:
    """gt06:106: 0x22 with re-upload byte 1 is a blind-area record; gt06:25 is live."""
    assert decode_datagram(vector_raw(106))[0][0].message.historical is True
    assert decode_datagram(vector_raw(25))[0][0].message.historical is False


def test_lbs_and_wifi_sources() -> None:
    lbs = decode_datagram(vector_raw(47))[0][0].message
    assert lbs.type is MessageType.LBS
    assert lbs.position_source is PositionSource.LBS
    assert [c.cid for c in lbs.cells] == [8049, 8050, 7715, 8000]
    wifi = decode_datagram(vector_raw(94))[0][0].message
    assert wifi.type is MessageType.WIFI
    assert wifi.position_source is PositionSource.WIFI
    assert [w.mac for w in wifi.wifi] == [
        "14:75:90:5b:d3:0e",
        "00:1e:10:bb:f7:63",
        "14:75:90:06:e6:26",
    ]
    assert len(wifi.cells) == 5


def test_info_frames() -> None:
    """0x94: ICCID (gt06:60), relay from DYD (gt06:32), external volts in 78 78 (gt06:78)."""
    iccid = decode_datagram(vector_raw(60))[0][0].message
    assert info(iccid) == {
        "imei": "359857082366758",
        "imsi": "520050218721401",
        "iccid": "8966051912408052452",
    }
    assert decode_datagram(vector_raw(32))[0][0].message.relay is False
    assert decode_datagram(vector_raw(78))[0][0].message.power_voltage == 12.59


def test_where_reply_position() -> None:
    """gt06:122: the `WHERE#` answer's text is a position (traccar PATTERN_LOCATION)."""
    message = decode_datagram(vector_raw(122))[0][0].message
    assert message.type is MessageType.COMMAND_REPLY
    assert (message.latitude, message.longitude) == (54.739332, 25.27327)
    assert message.time == datetime(2017, 5, 26, 10, 27, 47, tzinfo=UTC)
    assert message.reply is not None
    assert message.reply.result is CommandResult.SUCCESS


@pytest.mark.parametrize(
    ("line", "result", "relay"),
    [
        (130, CommandResult.SUCCESS, True),
        (131, CommandResult.SUCCESS, False),
        (129, CommandResult.SUCCESS, False),
        (119, CommandResult.SUCCESS, True),
        (93, CommandResult.FAILURE, None),
        (54, None, None),
    ],
    ids=["cut", "restore", "already-restored", "dyd", "error", "iccid"],
)
def test_command_reply_verdicts(
    line: int, result: CommandResult | None, relay: bool | None
) -> None:
    message = decode_datagram(vector_raw(line))[0][0].message
    assert message.type is MessageType.COMMAND_REPLY
    assert message.reply is not None
    assert message.reply.reference == 0
    assert message.reply.result is result
    assert message.reply.relay is relay
    assert message.relay is relay


def frame(kind: int, content: bytes, serial: int = 7, *, long_form: bool = False) -> bytes:
    """A GT06 frame with a correct length and CRC."""
    body = bytes((kind,)) + content + serial.to_bytes(2, "big")
    head = (len(body) + 2).to_bytes(2 if long_form else 1, "big") + body
    start = b"\x79\x79" if long_form else b"\x78\x78"
    return start + head + crc_itu(head).to_bytes(2, "big") + b"\r\n"


def decode_frame(raw: bytes) -> Message:
    result = gt06.decode(raw, Context(), None)
    assert len(result.messages) == 1
    return result.messages[0]


def reply_frame(text: str, *, flag: int = 0, new_form: bool = True) -> Message:
    """A device reply, decoded: 0x21 (79 79, ASCII) or 0x15 (78 78, English)."""
    raw = text.encode()
    if new_form:
        return decode_frame(frame(0x21, flag.to_bytes(4, "big") + b"\x01" + raw, long_form=True))
    content = bytes((4 + len(raw),)) + flag.to_bytes(4, "big") + raw + b"\x00\x02"
    return decode_frame(frame(0x15, content))


GPS_BLOCK = bytes.fromhex("0f0c1d0a2b21c8027ac8040c4658100014") + b"\x6f"
CELL_2G = bytes.fromhex("0901cc00287d001f71")


@pytest.mark.parametrize(
    ("info_byte", "alarm"),
    [
        (0x00, None),
        (0x08, Alarm.VIBRATION),
        (0x10, Alarm.POWER_CUT),
        (0x18, Alarm.LOW_BATTERY),
        (0x20, Alarm.SOS),
        (0x28, None),
        (0x30, Alarm.GEOFENCE),
        (0x38, Alarm.TAMPER),
    ],
)
def test_terminal_info_alarm_bits(info_byte: int, alarm: Alarm | None) -> None:
    """Bits 5-3 of the terminal-info byte (protocols.md §5.3) state the status alarm."""
    message = decode_frame(frame(0x13, bytes((info_byte | 0x83, 6, 4, 0, 2))))
    assert message.alarms == ((alarm,) if alarm else ())
    assert message.alarm_states == STATUS_STATES
    assert (message.relay, message.ignition, message.charging) == (True, True, False)


@pytest.mark.parametrize(
    ("code", "alarm"),
    [
        (0x00, None),
        (0x01, Alarm.SOS),
        (0x02, Alarm.POWER_CUT),
        (0x03, Alarm.VIBRATION),
        (0x04, Alarm.GEOFENCE_ENTER),
        (0x05, Alarm.GEOFENCE_EXIT),
        (0x06, Alarm.OVERSPEED),
        (0x0A, None),
        (0x0E, Alarm.LOW_POWER),
        (0x11, Alarm.POWER_OFF),
        (0x13, Alarm.TAMPER),
        (0x14, Alarm.DOOR),
        (0x19, Alarm.LOW_BATTERY),
        (0x23, Alarm.FALL),
        (0x2C, Alarm.COLLISION),
        (0x30, Alarm.OTHER),
        (0xFE, None),
    ],
)
def test_alarm_byte(code: int, alarm: Alarm | None) -> None:
    """The 0x26 alarm byte (protocols.md §5.5) in our vocabulary."""
    status = bytes((0x40, 4, 4, code, 2))
    message = decode_frame(frame(0x26, GPS_BLOCK + CELL_2G + status))
    assert message.type is MessageType.ALARM
    assert message.alarms == ((alarm,) if alarm else ())
    assert message.cells[0].cid == 8049


# ---------------------------------------------------------------------------------------------
# Robustness
# ---------------------------------------------------------------------------------------------


def decode_or_reject(raw: bytes) -> None:
    """Decode must return at least one GT06 message or raise FrameError, nothing else."""
    try:
        result = gt06.decode(raw, Context(), None)
    except FrameError:
        return
    assert result.messages
    assert all(m.protocol is Protocol.GT06 and m.raw == raw for m in result.messages)


def test_truncated_and_mutated_vectors() -> None:
    rng = random.Random(0x6706)
    for vector in vectors().values():
        raw = vector.raw
        for end in range(len(raw) + 1):
            decode_or_reject(raw[:end])
        for _ in range(40):
            mutated = bytearray(raw)
            for _flip in range(rng.randint(1, 4)):
                mutated[rng.randrange(2, len(raw))] = rng.randrange(256)
            decode_or_reject(bytes(mutated))


def test_random_frames() -> None:
    rng = random.Random(0x7878)
    for kind in range(256):
        for size in (0, 1, 5, 9, 13, 18, 26, 40, 80):
            content = bytes(rng.randrange(256) for _ in range(size))
            decode_or_reject(frame(kind, content))
            decode_or_reject(frame(kind, content, long_form=True))


def test_not_a_gt06_frame() -> None:
    for frame in (b"", b"\x78\x78", b"\x78\x79\x05\x01", b"*HQ,123#", b"\x79\x79\x00\x05"):
        with pytest.raises(FrameError):
            gt06.decode(frame, Context(), None)


# ---------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------

#: The downlink vectors' command texts -> our commands.
DOWNLINK_COMMANDS: dict[str, Command] = {
    "Relay,1#": Command(kind=CommandKind.RELAY_CUT),
    "Relay,0#": Command(kind=CommandKind.RELAY_RESTORE),
    "DYD,123456#": Command(kind=CommandKind.RELAY_CUT, dialect=RelayDialect.GT06_DYD),
    "HFYD,123456#": Command(kind=CommandKind.RELAY_RESTORE, dialect=RelayDialect.GT06_DYD),
    "WHERE#": Command(kind=CommandKind.LOCATE),
}


@pytest.mark.parametrize("vector", params("gt06", uplink=False))
def test_downlink_vector(vector: Vector) -> None:
    text = vector.expect["command_text"]
    if text == "sos#":
        # VL03's example: serial 1 (the vector's note reads that word as the language; the
        # length byte 0x0E leaves room for only one word before the CRC).
        assert gt06.encode_online_command(text, flag=0, serial=1) == vector.raw
        return
    encoded = gt06.encode_command(DOWNLINK_COMMANDS[text], Context())
    assert encoded.data == vector.raw
    assert encoded.reference == 0
    assert encoded.confirmable


def test_language_word() -> None:
    """VL03's optional language word goes between the text and the serial."""
    frame = gt06.encode_online_command("sos#", flag=0, serial=1, language=2)
    assert frame[:-4] == bytes.fromhex("78781080080000000073 6f7323 0002 0001")
    assert crc_itu(frame[2:-4]) == int.from_bytes(frame[-4:-2])


def test_commands_number_serial_and_flag() -> None:
    """Each command gets the next serial, used as packet serial and server flag."""
    ctx = Context()
    first = gt06.encode_command(Command(kind=CommandKind.LOCATE), ctx)
    second = gt06.encode_command(Command(kind=CommandKind.LOCATE), ctx)
    assert (first.reference, second.reference) == (0, 1)
    assert second.data[5:9] == (1).to_bytes(4, "big")
    assert second.data[-6:-4] == (1).to_bytes(2, "big")
    assert crc_itu(second.data[2:-4]) == int.from_bytes(second.data[-4:-2])


@pytest.mark.parametrize(
    ("command", "text"),
    [
        (Command(kind=CommandKind.SET_INTERVAL, interval=60), "TIMER,60#"),
        (Command(kind=CommandKind.RAW, text="PARAM#"), "PARAM#"),
        (
            Command(kind=CommandKind.RELAY_CUT, dialect=RelayDialect.GT06_DYD, password=""),
            "DYD#",
        ),
        (
            Command(kind=CommandKind.RELAY_RESTORE, dialect=RelayDialect.GT06_DYD, password="0"),
            "HFYD,0#",
        ),
    ],
)
def test_command_texts(command: Command, text: str) -> None:
    frame = gt06.encode_command(command, Context()).data
    assert frame[:2] == b"\x78\x78"
    assert frame[2] + 5 == len(frame)
    assert frame[3:5] == bytes((0x80, 4 + len(text)))
    assert frame[9 : 9 + len(text)] == text.encode()
    assert frame.endswith(b"\r\n")


@pytest.mark.parametrize(
    "command",
    [
        Command(kind=CommandKind.SET_INTERVAL),
        Command(kind=CommandKind.SET_INTERVAL, interval=0),
        Command(kind=CommandKind.RAW),
        Command(kind=CommandKind.RAW, text="température#"),
        Command(kind=CommandKind.RAW, text="X" * (gt06.MAX_COMMAND_TEXT + 1)),
        Command(kind=CommandKind.RELAY_CUT, dialect=RelayDialect.JT808_8105_F0F1),
        Command(kind=CommandKind.RELAY_CUT, dialect=RelayDialect.GT06_DYD, password="12#"),
    ],
    ids=["no-interval", "zero-interval", "no-text", "not-ascii", "too-long", "jt808", "password"],
)
def test_commands_that_cannot_be_sent(command: Command) -> None:
    ctx = Context()
    with pytest.raises(CommandError):
        gt06.encode_command(command, ctx)
    assert ctx.next_serial() == 0  # a refused command uses no serial


def test_longest_text_fits() -> None:
    command = Command(kind=CommandKind.RAW, text="X" * gt06.MAX_COMMAND_TEXT)
    assert len(gt06.encode_command(command, Context()).data) == 255 + 5


# ---------------------------------------------------------------------------------------------
# Command outcomes
# ---------------------------------------------------------------------------------------------


def sent(command: Command, *, serial: int = 0) -> EncodedCommand:
    ctx = Context()
    for _ in range(serial):
        ctx.next_serial()
    return gt06.encode_command(command, ctx)


CUT = Command(kind=CommandKind.RELAY_CUT)
RESTORE = Command(kind=CommandKind.RELAY_RESTORE)


@pytest.mark.parametrize(
    ("command", "serial", "message", "outcome"),
    [
        (
            CUT,
            0,
            reply_frame("Cut off the fuel supply: Success!", new_form=False),
            CommandOutcome(CommandResult.SUCCESS, "Cut off the fuel supply: Success!", True),
        ),
        (
            RESTORE,
            5,
            reply_frame("Restore fuel supply: Success!", flag=5),
            CommandOutcome(CommandResult.SUCCESS, "Restore fuel supply: Success!", False),
        ),
        (
            RESTORE,
            0,
            reply_frame(
                "Already in the state of fuel supply to resume,the command is not running!"
            ),
            CommandOutcome(
                CommandResult.SUCCESS,
                "Already in the state of fuel supply to resume,the command is not running!",
                False,
            ),
        ),
        (
            CUT,
            3,
            reply_frame("Already in the state of fuel supply to resume,ok", flag=3),
            CommandOutcome(
                CommandResult.FAILURE, "Already in the state of fuel supply to resume,ok", False
            ),
        ),
        (
            CUT,
            0,
            reply_frame("Command error!"),
            CommandOutcome(CommandResult.FAILURE, "Command error!"),
        ),
        (
            CUT,
            0,
            reply_frame("Cut off the fuel supply: Failed! Speed is too fast"),
            CommandOutcome(
                CommandResult.FAILURE, "Cut off the fuel supply: Failed! Speed is too fast"
            ),
        ),
        (
            RESTORE,
            2,
            reply_frame("Unknown command", flag=2),
            CommandOutcome(CommandResult.UNSUPPORTED, "Unknown command"),
        ),
        (
            Command(kind=CommandKind.LOCATE),
            0,
            reply_frame(
                "Current position!Lat:N54.739332,Lon:E25.273270,Course:126.53,Speed:0.0000,"
                "DateTime:2017-05-26  10:27:47"
            ),
            CommandOutcome(
                CommandResult.SUCCESS,
                "Current position!Lat:N54.739332,Lon:E25.273270,Course:126.53,Speed:0.0000,"
                "DateTime:2017-05-26  10:27:47",
            ),
        ),
        (
            Command(kind=CommandKind.SET_INTERVAL, interval=20),
            1,
            reply_frame("TIMER set ok. Now data upload period is 20 seconds.", flag=1),
            CommandOutcome(
                CommandResult.SUCCESS, "TIMER set ok. Now data upload period is 20 seconds."
            ),
        ),
        (
            Command(kind=CommandKind.RAW, text="PARAM#"),
            0,
            reply_frame(
                "Battery:5.56V,NORMAL; GPRS*Link Up GSM Signal Level:Strong; GPS:OFF;   "
                "LOCK:OFF; BT MAC:B4A828044462;"
            ),
            CommandOutcome(
                CommandResult.SUCCESS,
                "Battery:5.56V,NORMAL; GPRS*Link Up GSM Signal Level:Strong; GPS:OFF;   "
                "LOCK:OFF; BT MAC:B4A828044462;",
            ),
        ),
    ],
    ids=[
        "cut",
        "restore-flag",
        "already",
        "other-state-exact",
        "error",
        "too-fast",
        "unsupported",
        "where",
        "timer",
        "raw",
    ],
)
def test_command_outcome(
    command: Command, serial: int, message: Message, outcome: CommandOutcome
) -> None:
    assert gt06.command_outcome(command, sent(command, serial=serial), message) == outcome


@pytest.mark.parametrize(
    ("command", "serial", "message"),
    [
        (CUT, 4, reply_frame("Cut off the fuel supply: Success!", flag=9)),  # someone else's
        (CUT, 0, reply_frame("Restore fuel supply: Success!")),  # the other state, flag 0
        (CUT, 0, reply_frame("<ICCID:89882390000097302650>", new_form=False)),  # no verdict
        (Command(kind=CommandKind.LOCATE), 0, reply_frame("ICCID report")),
        (CUT, 0, decode_frame(frame(0x13, bytes.fromhex("c404000002")))),  # a heartbeat
        (CUT, 0, decode_frame(frame(0x9B, b"\x03OK\r\n", long_form=True))),  # no flag
    ],
    ids=["other-flag", "other-state", "no-verdict", "locate-no-verdict", "heartbeat", "serial"],
)
def test_messages_that_answer_nothing(command: Command, serial: int, message: Message) -> None:
    assert gt06.command_outcome(command, sent(command, serial=serial), message) is None


def test_outcome_ignores_other_protocols() -> None:
    message = reply_frame("Cut off the fuel supply: Success!")._replace(protocol=Protocol.H02)
    assert gt06.command_outcome(CUT, sent(CUT), message) is None


def test_family_exports() -> None:
    assert gt06.FAMILY.decode is gt06.decode
    assert gt06.FAMILY.encode_command is gt06.encode_command
    assert gt06.FAMILY.command_outcome is gt06.command_outcome


# ---------------------------------------------------------------------------------------------
# Replies a server owes and the types added for them (issue 13)
# ---------------------------------------------------------------------------------------------


def test_address_request_gets_an_empty_address() -> None:
    """gt06:155 (0x2A, VL03 §6): traccar's answer, a `79 79` 0x97 with server flag 0 and the
    address `NA&&NA&&0##`, which stops the device asking; the request's GPS block is read."""
    decoded, _ = decode_datagram(vector_raw(155))
    (item,) = decoded
    head = bytes.fromhex("0015970b00000000") + b"NA&&NA&&0##" + bytes(2)
    assert item.ack == b"\x79\x79" + head + crc_itu(head).to_bytes(2) + b"\r\n"
    assert item.message.latitude is not None


def test_lbs_address_request_carries_its_cell() -> None:
    """gt06:88 (0xA7): the cell traccar reads, and the general acknowledgement."""
    (item,), _ = decode_datagram(vector_raw(88))
    assert item.message.type is MessageType.LBS
    assert [(c.mcc, c.mnc) for c in item.message.cells] == [(460, 0)]
    assert item.ack == standard_ack(0xA7, vector_raw(88)[-6:-4])


@pytest.mark.parametrize(
    ("line", "answered"),
    [(154, True), (149, True), (125, False)],
)
def test_unknown_types_are_answered_where_the_protocol_allows(
    line: int, answered: bool, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Types nobody documents: a `78 78` frame gets the general acknowledgement (traccar's
    catch-all; gt06:154 has no room for a serial and quotes what traccar reads there), a
    `79 79` one nothing. Each is logged once."""
    monkeypatch.setattr(session_module, "_unknown_logged", set())
    raw = vector_raw(line)
    with caplog.at_level("INFO", logger="custom_components.tk970.protocol.session"):
        session = Session()
        items = session.feed(raw, NOW) + session.feed(raw, NOW)
    assert len(items) == 2
    kind = raw[4] if raw[0] == 0x79 else raw[3]
    for item in items:
        assert isinstance(item, Decoded)
        assert item.ack == (standard_ack(kind, raw[-6:-4]) if answered else None)
    logged = [r.getMessage() for r in caplog.records if "Unknown gt06" in r.getMessage()]
    assert len(logged) == 1
    assert f"{kind:#04x}" in logged[0]
    assert ("not answered" in logged[0]) is not answered


def test_alarm_module_4g() -> None:
    """0x39 (Jimi 4G, traccar `MSG_ALARM_MODULE`; no capture exists, built on its layout):
    GPS, cell type 3 (4G sizes) and its signal WORD, status, alarm with the language high
    nibble, language, then modules: battery 0x0018 and level 0x006A."""
    cell = bytes.fromhex("03 01cc 00 00001a2b 0000000001234567 0042")
    status = bytes.fromhex("86 05 04 01 02")  # relay + ACC + charging; SOS; English
    modules = bytes.fromhex("0018 02 0190 006a 01 4b")
    message = decode_frame(frame(0x39, GPS_BLOCK + cell + status + modules))
    assert message.type is MessageType.ALARM
    assert message.alarms == (Alarm.SOS,)
    assert (message.relay, message.ignition, message.charging) == (True, True, True)
    assert (message.cells[0].lac, message.cells[0].cid) == (0x1A2B, 0x1234567)
    assert message.battery_voltage == 4.0
    assert message.battery_percent == 75.0
    assert message.latitude is not None


def test_wifi_alarm_4g() -> None:
    """0xA9 (Jimi 4G, traccar `MSG_WIFI_ALARM`; built on its layout): date, MCC, MNC, 4G flag,
    counted cells, timing advance, Wi-Fi list, alarm + language (high nibble extends it)."""
    date = bytes.fromhex("1a0b18080000")
    cells = bytes.fromhex("01cc 00 01 02 00001a2b 0000000001234567 3c 00001a2c 0000000001234568 40")
    wifi = bytes.fromhex("ff 02 112233445566 c8 aabbccddeeff b0")
    alarm = bytes.fromhex("01 10")  # language 0x10: alarm 0x0101 is not SOS
    message = decode_frame(frame(0xA9, date + cells + wifi + bytes.fromhex("0102")))
    assert message.type is MessageType.ALARM
    assert message.alarms == (Alarm.SOS,)
    assert [c.cid for c in message.cells] == [0x1234567, 0x1234568]
    assert [w.mac for w in message.wifi] == ["11:22:33:44:55:66", "aa:bb:cc:dd:ee:ff"]
    assert message.time == datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
    jamming = decode_frame(frame(0xA9, date + cells + wifi + alarm))
    assert jamming.alarms == (), "0x0101 has no name of ours and no meaning in traccar"


@pytest.mark.parametrize(
    ("line", "odometer_km", "why"),
    [
        (13, 19.249, "0xA2 LW4G: odometer DWORD (m) after the language byte"),
        (25, 0.037, "0x22 SeeWorld (0x2F long): odometer after the three tail bytes"),
        (52, 32.89, "0x12 S5 (0x2B long): odometer in 10 m after oil and temperature"),
        (68, 62.045, "0x70 module 0x2E, big-endian (traccar reads it little-endian)"),
        (69, 61.633, "0x70 module 0x2E, three weeks before gt06:68: less distance"),
        (77, 1450.313, "0x34 X1: odometer after the terminal info word"),
    ],
)
def test_mileage(line: int, odometer_km: float, why: str) -> None:
    decoded, _ = decode_datagram(vector_raw(line))
    assert decoded[-1].message.odometer_km == pytest.approx(odometer_km), why


def test_mileage_after_the_report_tail() -> None:
    """VL03's 0x22 with its optional "mileage statistics" DWORD: gt06:106 with 4 bytes more."""
    raw = vector_raw(106)
    content = raw[4:-6] + (123_456).to_bytes(4, "big")
    message = decode_frame(frame(0x22, content, int.from_bytes(raw[-6:-4], "big")))
    assert message.odometer_km == pytest.approx(123.456)
    assert decode_frame(raw).odometer_km is None
