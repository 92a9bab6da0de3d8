"""Tests for the H02 family: every line of h02.jsonl, the splitter, replies and commands."""

from __future__ import annotations

from collections.abc import Callable
import contextlib
from datetime import UTC, datetime
import random
from typing import Any

import pytest

from custom_components.tk970.protocol import h02
from custom_components.tk970.protocol.commands import (
    Command,
    CommandKind,
    CommandOutcome,
    EncodedCommand,
    RelayDialect,
)
from custom_components.tk970.protocol.context import Context
from custom_components.tk970.protocol.errors import CommandError, FrameError
from custom_components.tk970.protocol.framing import Cut, Mode, split_h02
from custom_components.tk970.protocol.messages import (
    Alarm,
    Cell,
    CommandResult,
    Message,
    MessageType,
    Protocol,
)
from custom_components.tk970.protocol.session import Decoded, Session

from .helpers import NOW, decode_datagram, decode_stream
from .vectors import Vector, load, params

# ---------------------------------------------------------------------------------------------
# The vectors' vocabulary, mapped to ours once
# ---------------------------------------------------------------------------------------------

#: `kind` of a vector -> the message types that satisfy it.
KINDS: dict[str, set[MessageType]] = {
    "location": {MessageType.LOCATION, MessageType.ALARM},
    "heartbeat": {MessageType.HEARTBEAT},
    "lbs": {MessageType.LBS},
    "command-reply": {MessageType.COMMAND_REPLY},
    "other": {MessageType.OTHER},
}
#: Vectors whose `kind` is broader than our types: VP1 `V` carries cells and no GNSS block,
#: which interfaces.md §2 calls `lbs`.
KIND_OVERRIDES: dict[int, MessageType] = {10: MessageType.LBS}
#: traccar alarm names -> ours.
ALARMS: dict[str, Alarm] = {
    "vibration": Alarm.VIBRATION,
    "sos": Alarm.SOS,
    "overspeed": Alarm.OVERSPEED,
    "powerCut": Alarm.POWER_CUT,
}
#: traccar `decodeBattery` for the raw levels in the vectors.
POWER_LEVELS: dict[int, float | None] = {0: None, 6: 100.0, 96: 96.0}
#: Expectation keys checked elsewhere: `speed_knots` through `speed_kmh`, `maker` by
#: test_maker_is_kept.
COVERED_ELSEWHERE = {"speed_knots", "maker"}

#: The downlink vectors' command names -> our commands (SCF arm/disarm is a raw code for us).
DOWNLINK_COMMANDS: dict[str, Command] = {
    "engine_stop": Command(kind=CommandKind.RELAY_CUT),
    "engine_resume": Command(kind=CommandKind.RELAY_RESTORE),
    "arm": Command(kind=CommandKind.RAW, text="SCF,0,0"),
    "disarm": Command(kind=CommandKind.RAW, text="SCF,1,1"),
    "report_interval_10s": Command(kind=CommandKind.SET_INTERVAL, interval=10),
}

ACK_TIME = f"{NOW:%Y%m%d%H%M%S}"


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _check(vector: Vector, message: Message) -> None:
    """Compare a decoded message with the vector's `expect`, key by key."""
    expect = vector.expect
    checks: dict[str, Callable[[Any], bool]] = {
        # An empty id field (`*HQ,,V1,...`) is no identity: None, not "".
        "device_id": lambda v: message.device_id == (v or None),
        "latitude": lambda v: message.latitude == pytest.approx(v, abs=1e-5),
        "longitude": lambda v: message.longitude == pytest.approx(v, abs=1e-5),
        "speed_kmh": lambda v: message.speed_kmh == pytest.approx(v, abs=1e-3),
        "course": lambda v: message.course == pytest.approx(v),
        "time_utc": lambda v: message.time == _utc(v),
        "valid": lambda v: message.valid is v,
        # A digit is the "coding scheme" of V2/VI1 firmware, which traccar reads as a fix.
        "validity_flag": lambda v: message.valid is (v == "A" or v.isdigit()),
        "status_hex": lambda v: message.alarm_states == h02.STATUS_ALARMS,
        "traccar_status_interpretation": lambda v: (
            message.ignition is v["ignition"]
            and message.alarms == ((ALARMS[v["alarm"]],) if "alarm" in v else ())
        ),
        "battery_level": lambda v: message.battery_percent == v,
        "power_level_raw": lambda v: message.battery_percent == POWER_LEVELS[v],
        "frame_length": lambda v: len(message.raw) == v,
        "traccar_returns_no_position": lambda v: message.latitude is None,
        "result": lambda v: message.text == v,
        "mcc": lambda v: all(cell.mcc == v for cell in message.cells),
        "mnc": lambda v: all(cell.mnc == v for cell in message.cells),
        "cell_count": lambda v: len(message.cells) == v,
        "first_cell": lambda v: message.cells[0] == Cell(mcc=expect["mcc"], mnc=expect["mnc"], **v),
        "marker": lambda v: message.raw[:1] == v.encode(),
        # The H02 type: only V4 confirmations and SMS texts answer commands.
        "command": lambda v: (message.reply is not None) is (v in ("V4", "SMS")),
    }
    unknown = set(expect) - set(checks) - COVERED_ELSEWHERE
    assert not unknown, f"unmapped expectation keys {unknown}"
    failed = [key for key, check in checks.items() if key in expect and not check(expect[key])]
    assert not failed, f"{failed} differ: {message}"
    kind = KIND_OVERRIDES.get(vector.line)
    assert message.type in ({kind} if kind else KINDS[vector.data["kind"]])
    if message.type in KINDS["location"]:
        # A position frame whose status word shows an alarm is an alarm frame.
        assert (message.type is MessageType.ALARM) is bool(message.alarms)
    text = vector.raw[:1] == b"*"
    assert message.raw == (vector.raw.rstrip(b"\r\n") if text else vector.raw)
    assert message.protocol is Protocol.H02
    assert message.checksum_ok is None  # H02 has no checksum


def _expected_ack(vector: Vector) -> bytes | None:
    if "ack_hex" in vector.data:
        return bytes.fromhex(vector.data["ack_hex"])
    expect = vector.expect
    # traccar answers V1 and NBR with the time (`ack_note`); other types get no reply.
    if expect.get("command") not in ("V1", "NBR"):
        return None
    maker = expect.get("maker", "HQ")
    return f"*{maker},{expect['device_id']},V4,{expect['command']},{ACK_TIME}#".encode()


# ---------------------------------------------------------------------------------------------
# Every vector
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("vector", params("h02"))
def test_uplink_vector(vector: Vector) -> None:
    decoded, skipped = decode_datagram(vector.raw)
    assert not skipped
    assert len(decoded) == 1
    _check(vector, decoded[0].message)
    assert decoded[0].ack == _expected_ack(vector)


@pytest.mark.parametrize("vector", params("h02"))
def test_uplink_vector_one_byte_at_a_time(vector: Vector) -> None:
    whole = decode_datagram(vector.raw)[0]
    chunks = [vector.raw[i : i + 1] for i in range(len(vector.raw))]
    assert decode_stream(chunks)[0] == whole


@pytest.mark.parametrize("vector", [v for v in params("h02") if "maker" in v.values[0].expect])
def test_maker_is_kept(vector: Vector) -> None:
    session = Session(datagram=True)
    session.feed(vector.raw, NOW)
    assert session.context.h02_maker == vector.expect["maker"]


@pytest.mark.parametrize("vector", params("h02", uplink=False))
def test_downlink_vector(vector: Vector) -> None:
    expect = vector.expect
    stamp = expect["time_field"]
    now = NOW.replace(hour=int(stamp[:2]), minute=int(stamp[2:4]), second=int(stamp[4:]))
    ctx = Context(now=now, device_id=vector.data["ascii"].split(",")[1])
    encoded = h02.encode_command(DOWNLINK_COMMANDS[expect["command"]], ctx)
    assert encoded.data == vector.raw
    assert encoded.reference == int(stamp)
    assert encoded.confirmable


def _vector(line: int) -> Vector:
    return next(vector for vector in load("h02") if vector.line == line)


# ---------------------------------------------------------------------------------------------
# Framing (framing.split_h02)
# ---------------------------------------------------------------------------------------------

RECORD_32 = _vector(70).raw  # 4106011660, 2016-11-13
TEXT_AFTER_32 = b"*HQ,4106011660,V1,124552,A,5035.3129,N,00431.8211,E,000.20,000,131116,FFFFFBFF#"
RECORD_45 = bytes.fromhex(
    "2442061191301024031101175540227006012321670c000095fffffbffff001f00000001f800ee010000000032"
)
X_RECORD = _vector(86).raw


def _types(decoded: list[Decoded]) -> list[MessageType]:
    return [item.message.type for item in decoded]


def test_record_then_text_in_one_read() -> None:
    """traccar H02FrameDecoderTest: a 32-byte record immediately followed by a `*HQ` frame."""
    for chunks in ([RECORD_32 + TEXT_AFTER_32], [bytes([b]) for b in RECORD_32 + TEXT_AFTER_32]):
        decoded, skipped = decode_stream(chunks)
        assert not skipped
        assert [item.message.raw for item in decoded] == [RECORD_32, TEXT_AFTER_32]
        assert decoded[1].message.time == datetime(2016, 11, 13, 12, 45, 52, tzinfo=UTC)


def test_record_then_text_in_one_datagram() -> None:
    decoded, skipped = decode_datagram(RECORD_32 + TEXT_AFTER_32)
    assert not skipped
    assert [item.message.raw for item in decoded] == [RECORD_32, TEXT_AFTER_32]


def test_x_record_in_stream() -> None:
    """traccar testDecodeAlternative: NBR, a 45-byte record, the X record, NBR, one read."""
    nbr = _vector(87).raw
    data = nbr + RECORD_45 + X_RECORD + nbr
    for chunks in ([data], [bytes([b]) for b in data]):
        decoded, skipped = decode_stream(chunks)
        assert not skipped
        assert _types(decoded) == [
            MessageType.LBS,
            MessageType.LOCATION,
            MessageType.OTHER,
            MessageType.LBS,
        ]
        record, x_record = decoded[1].message, decoded[2].message
        assert record.device_id == "4206119130"
        assert record.cells == ()  # its cell fields are zero: padding, not a cell
        # The X record's id field is not the device's: it must not rebind the connection.
        assert x_record.device_id is None
        assert x_record.raw == X_RECORD


def test_51_byte_record_followed_by_text() -> None:
    """The 4G unit of traccar issue 5417 sends 51-byte records."""
    record = RECORD_32 + bytes.fromhex("041f000000000001cc00ff000015007d0000000035")[:19]
    assert len(record) == 51
    decoded, skipped = decode_stream([record + TEXT_AFTER_32])
    assert not skipped
    assert [item.message.raw for item in decoded] == [record, TEXT_AFTER_32]
    assert decoded[0].message.latitude == pytest.approx(50.58855, abs=1e-5)


@pytest.mark.parametrize(
    ("buf", "mode", "cut"),
    [
        # a text frame, with the CR LF after it skipped silently
        (b"*HQ,1,V0#\r\n", Mode.STREAM, Cut(9)),
        (b"\r\n*HQ", Mode.STREAM, Cut(2, "")),
        # a start that is still arriving: wait, unless nothing more comes
        (b"*H", Mode.STREAM, None),
        (b"*H", Mode.FINAL, Cut(2, "incomplete H02 frame start")),
        (b"$41060116", Mode.STREAM, None),
        (b"*HQ,1,V1,12", Mode.STREAM, None),
        (b"*HQ,1,V1,12", Mode.FINAL, Cut(11, "incomplete frame")),
        # GPS103 downlinks and other junk are skipped up to a plausible start
        (b"**,imei:1,J*HQ,1,V0#", Mode.STREAM, Cut(11, "bytes before an H02 frame start")),
        (b"junk$123*HQ,1", Mode.STREAM, Cut(8, "bytes before an H02 frame start")),
        (b"junk$12", Mode.STREAM, Cut(4, "bytes before an H02 frame start")),
        (b"$", Mode.STREAM, None),
        (b"$\x41\x06\xaa", Mode.STREAM, Cut(4, "bytes before an H02 frame start")),
        # a record alone: its length is only known once the peer is quiet
        (RECORD_32, Mode.STREAM, None),
        (RECORD_32, Mode.IDLE, Cut(32)),
        (RECORD_45, Mode.STREAM, None),
        (RECORD_45, Mode.IDLE, Cut(45)),
        (RECORD_45 + b"$", Mode.STREAM, None),
        (RECORD_45 + RECORD_32, Mode.STREAM, Cut(45)),
        (RECORD_32 + b"*H", Mode.STREAM, None),
        (RECORD_32 + b"*H", Mode.FINAL, Cut(32)),
        (RECORD_32 + b"\x00" * 30, Mode.STREAM, Cut(32)),
        (RECORD_32[:20], Mode.FINAL, Cut(20, "incomplete H02 binary record")),
        (X_RECORD[:20], Mode.STREAM, None),
        (X_RECORD[:20], Mode.FINAL, Cut(20, "incomplete H02 binary record")),
        (X_RECORD + RECORD_32, Mode.STREAM, Cut(32)),
        # a text frame that lost its `#`: the 0x23 bytes of the next record must not end it
        (b"*HQ,1,V1,12" + RECORD_32, Mode.STREAM, Cut(11, "H02 text frame without its #")),
    ],
)
def test_split_h02(buf: bytes, mode: Mode, cut: Cut | None) -> None:
    assert split_h02(buf, mode) == cut


def test_text_frame_over_the_size_limit_is_skipped() -> None:
    buf = b"*HQ,1,V1," + b"0" * 2000
    cut = split_h02(buf, Mode.STREAM)
    assert cut is not None
    assert not cut.is_frame


# ---------------------------------------------------------------------------------------------
# Decoding details the vectors do not show
# ---------------------------------------------------------------------------------------------


def decode_one(frame: bytes, ctx: Context | None = None) -> tuple[Message, bytes | None]:
    result = h02.decode(frame, ctx or Context(now=NOW), None)
    assert len(result.messages) == 1
    return result.messages[0], result.ack


def test_v0_heartbeat_is_echoed() -> None:
    message, ack = decode_one(b"*HQ,4109179024,V0#")
    assert message.type is MessageType.HEARTBEAT
    assert ack == b"*HQ,4109179024,V0#"


def test_empty_id_takes_the_connection_identity() -> None:
    ctx = Context(now=NOW, device_id="4109179024")
    message, ack = decode_one(_vector(14).raw, ctx)
    assert message.device_id == "4109179024"
    assert ack == f"*HQ,,V4,V1,{ACK_TIME}#".encode()


def test_v19_iccid_is_reported() -> None:
    ctx = Context(now=NOW)
    message, _ = decode_one(_vector(18).raw, ctx)
    assert message.info == (("iccid", "89480610500392633029"),)
    assert ctx.info["iccid"] == "89480610500392633029"
    assert decode_one(_vector(45).raw)[0].info == (("iccid", "8944538530000543700"),)


def test_altitude_tail() -> None:
    frame = (
        b"*HQ,4210209006,V1,054048,A,2828.2297,N,07733.4332,E,000.5,047,080918,FFFFFBFF,"
        b"1234,21,52.5,312,1a2b,3c4d#"
    )
    message, _ = decode_one(frame)
    assert message.altitude_m == 312
    assert message.cells == ()


def test_all_status_alarms_are_reported() -> None:
    """traccar keeps the first alarm only; the word states each condition on its own."""
    frame = b"*HQ,1,V1,054048,A,2828.2297,N,07733.4332,E,0.0,0,080918,FFF3FBF8#"
    message, _ = decode_one(frame)
    assert set(message.alarms) == h02.STATUS_ALARMS
    assert message.type is MessageType.ALARM
    assert message.ignition is False


@pytest.mark.parametrize(
    ("level", "percent"),
    [
        (0x01, 0.0),
        (0x03, 20.0),
        (0x04, 60.0),
        (0x50, 80.0),
        (0xF5, 80.0),
        (0xF7, None),
        (0x65, None),
    ],
)
def test_record_power_level(level: int, percent: float | None) -> None:
    frame = RECORD_32[:16] + bytes([level]) + RECORD_32[17:]
    assert decode_one(frame)[0].battery_percent == percent


def test_record_with_42_bytes_uses_the_imei() -> None:
    message, _ = decode_one(_vector(11).raw)
    assert message.device_id == "352483084193293"


def test_record_with_an_impossible_date_has_no_time() -> None:
    frame = RECORD_32[:9] + b"\x00\x00\x00" + RECORD_32[12:]
    message, _ = decode_one(frame)
    assert message.time is None
    assert message.latitude is not None


def test_v4_short_echo_states_the_relay() -> None:
    message, ack = decode_one(b"*HQ,7340001234,V4,S20,034313,1,1#")
    assert message.type is MessageType.COMMAND_REPLY
    assert message.relay is True
    assert message.text == "S20,1,1"
    assert message.reply is not None
    assert (message.reply.command, message.reply.reference, message.reply.relay) == (
        "S20",
        34313,
        True,
    )
    assert message.reply.result is None
    assert message.latitude is None
    assert ack is None


def test_v4_long_form_reply() -> None:
    message, _ = decode_one(_vector(62).raw)
    assert message.reply is not None
    assert message.reply.command == "S20"
    assert message.reply.reference == 130305
    assert message.reply.result is CommandResult.SUCCESS
    # its status word F7FFFBFF has bit 27 clear: the relay is engaged after the cut
    assert message.reply.relay is True
    assert message.relay is True
    assert decode_one(_vector(61).raw)[0].reply.result is CommandResult.FAILURE  # type: ignore[union-attr]


def test_vp1_position_has_no_time() -> None:
    message, _ = decode_one(_vector(17).raw)
    assert message.time is None
    assert message.valid is True


def test_link_signal_is_a_percentage_of_csq() -> None:
    assert decode_one(_vector(43).raw)[0].gsm_signal == 65  # CSQ 20 of 31
    frame = b"*HQ,1600068860,LINK,112137,99,8,67,0,0,081116,FFFFFBFF#"
    assert decode_one(frame)[0].gsm_signal is None  # CSQ 99: unknown


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"#",
        b"*HQ,1,V1",  # no `#`
        b"*HQ#",
        b"*H1,1,V1#",  # maker not two letters
        b"*HQ,12a,V1#",  # id not numeric
        b"$4106",  # record too short
        RECORD_32[:12] + b"\xaa" + RECORD_32[13:],  # non-BCD latitude
        X_RECORD[:31],
        b"\x00" * 40,
    ],
)
def test_unusable_frames_raise_frame_error(frame: bytes) -> None:
    with pytest.raises(FrameError):
        h02.decode(frame, Context(now=NOW), None)


def test_random_and_mutated_frames_never_raise_anything_else() -> None:
    rng = random.Random(970)
    frames = [vector.raw for vector in load("h02") if vector.uplink]
    samples = [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 80))) for _ in range(500)]
    for frame in frames:
        for _ in range(40):
            mutated = bytearray(frame)
            for _ in range(rng.randrange(1, 4)):
                mutated[rng.randrange(len(mutated))] = rng.choice(b",#*$X0123456789ABCDEFNSEW.- ")
            samples.append(bytes(mutated))
            samples.append(frame[: rng.randrange(1, len(frame) + 1)])
    for sample in samples:
        for data in (sample, b"*HQ," + sample, b"$" + sample):
            with contextlib.suppress(FrameError):
                h02.decode(data, Context(now=NOW), None)
            decode_stream([data])


# ---------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------

CMD_NOW = NOW.replace(hour=1, minute=2, second=3)


def encode(command: Command, **context: Any) -> EncodedCommand:
    ctx = Context(now=CMD_NOW, device_id="4106011660", **context)
    return h02.encode_command(command, ctx)


@pytest.mark.parametrize(
    ("command", "data"),
    [
        (Command(kind=CommandKind.RELAY_CUT), b"*HQ,4106011660,S20,010203,1,1#"),
        (
            Command(kind=CommandKind.RELAY_CUT, dialect=RelayDialect.H02_S20),
            b"*HQ,4106011660,S20,010203,1,1#",
        ),
        (Command(kind=CommandKind.RELAY_RESTORE), b"*HQ,4106011660,S20,010203,1,0#"),
        (
            Command(kind=CommandKind.SET_INTERVAL, interval=30),
            b"*HQ,4106011660,S71,010203,22,30#",
        ),
        (Command(kind=CommandKind.RAW, text=" scf,0,0 "), b"*HQ,4106011660,SCF,010203,0,0#"),
        (Command(kind=CommandKind.RAW, text="S26"), b"*HQ,4106011660,S26,010203#"),
    ],
)
def test_encode_command(command: Command, data: bytes) -> None:
    assert encode(command).data == data


def test_commands_use_the_device_maker_code() -> None:
    assert encode(INTERVAL, h02_maker="TH").data.startswith(b"*TH,")


@pytest.mark.parametrize(
    "command",
    [
        Command(kind=CommandKind.RELAY_CUT, dialect=RelayDialect.GT06_RELAY),
        Command(kind=CommandKind.RELAY_RESTORE, dialect=RelayDialect.JT808_8105_F0F1),
        Command(kind=CommandKind.SET_INTERVAL),
        Command(kind=CommandKind.SET_INTERVAL, interval=0),
        Command(kind=CommandKind.RAW),
        Command(kind=CommandKind.RAW, text="S20,1#"),
        Command(kind=CommandKind.RAW, text="*HQ,1,S20"),
        Command(kind=CommandKind.RAW, text=",1,1"),
        Command(kind=CommandKind.RAW, text="S20,é"),
        # no position request and no SOS acknowledgement in H02 (protocols.md §4.4)
        Command(kind=CommandKind.LOCATE),
        Command(kind=CommandKind.CLEAR_SOS),
    ],
)
def test_commands_that_cannot_be_encoded(command: Command) -> None:
    with pytest.raises(CommandError):
        encode(command)


def test_command_needs_the_device_id() -> None:
    with pytest.raises(CommandError):
        h02.encode_command(INTERVAL, Context(now=CMD_NOW))


CUT = Command(kind=CommandKind.RELAY_CUT)
RESTORE = Command(kind=CommandKind.RELAY_RESTORE)
STATUS_QUERY = Command(kind=CommandKind.RAW, text="S26")
INTERVAL = Command(kind=CommandKind.SET_INTERVAL, interval=30)
RAW = Command(kind=CommandKind.RAW, text="SCF,0,0")
POSITION = b"010203,A,5035.3129,N,00431.8211,E,000.20,000,131116,FFFFFBFF"
#: The same with status bit 27 clear: the relay engaged.
POSITION_CUT = POSITION.replace(b"FFFFFBFF", b"F7FFFBFF")


@pytest.mark.parametrize(
    ("command", "reply", "outcome"),
    [
        # long form with a position, quoting our time
        (
            CUT,
            b"*HQ,4106011660,V4,S20,DONE,010203," + POSITION_CUT + b"#",
            CommandOutcome(CommandResult.SUCCESS, "S20,DONE", True),
        ),
        (
            RESTORE,
            b"*HQ,4106011660,V4,S20,DONE,010203," + POSITION + b"#",
            CommandOutcome(CommandResult.SUCCESS, "S20,DONE", False),
        ),
        # "DONE", but the status word shows the relay released: the state decides
        (
            CUT,
            b"*HQ,4106011660,V4,S20,DONE,010203," + POSITION + b"#",
            CommandOutcome(CommandResult.FAILURE, "S20,DONE", False),
        ),
        # the H02 document's result code: 80 done, 00 failed (the relay as the word says)
        (
            CUT,
            b"*HQ,4106011660,V4,S20,80,010203," + POSITION_CUT + b"#",
            CommandOutcome(CommandResult.SUCCESS, "S20,80", True),
        ),
        (
            CUT,
            b"*HQ,4106011660,V4,S20,00,010203," + POSITION + b"#",
            CommandOutcome(CommandResult.FAILURE, "S20,00", False),
        ),
        (
            CUT,
            b"*HQ,4106011660,V4,S20,01,010203," + POSITION + b"#",
            CommandOutcome(CommandResult.UNSUPPORTED, "S20,01", False),
        ),
        (
            CUT,
            b"*HQ,4106011660,V4,S20,ERROR,010203," + POSITION + b"#",
            CommandOutcome(CommandResult.FAILURE, "S20,ERROR", False),
        ),
        (
            CUT,
            b"*HQ,4106011660,V4,S20,NOT SUPPORT,010203," + POSITION + b"#",
            CommandOutcome(CommandResult.UNSUPPORTED, "S20,NOT SUPPORT", False),
        ),
        # the short echo of the parameters states the relay (traccar issue 5417)
        (
            CUT,
            b"*HQ,4106011660,V4,S20,010203,1,1#",
            CommandOutcome(CommandResult.SUCCESS, "S20,1,1", True),
        ),
        (
            RESTORE,
            b"*HQ,4106011660,V4,S20,010203,1,1#",
            CommandOutcome(CommandResult.FAILURE, "S20,1,1", True),
        ),
        (
            RESTORE,
            b"*HQ,4106011660,V4,S20,010203,1,0#",
            CommandOutcome(CommandResult.SUCCESS, "S20,1,0", False),
        ),
        (CUT, b"*HQ,4106011660,V4,S20#", CommandOutcome(CommandResult.SUCCESS, "S20", True)),
        (
            STATUS_QUERY,
            b"*HQ,4106011660,LINK,112137,20,8,67,0,0,081116,FFFFFBFF#",
            CommandOutcome(CommandResult.SUCCESS),
        ),
        (
            STATUS_QUERY,
            b"*HQ,4106011660,V4,S26,010203#",
            CommandOutcome(CommandResult.SUCCESS, "S26"),
        ),
        (
            INTERVAL,
            b"*HQ,4106011660,V4,S71,22,30,010203," + POSITION + b"#",
            CommandOutcome(CommandResult.SUCCESS, "S71,22,30"),
        ),
        (
            RAW,
            b"*HQ,4106011660,V4,SCF,0,0,010203," + POSITION + b"#",
            CommandOutcome(CommandResult.SUCCESS, "SCF,0,0"),
        ),
        (
            RAW,
            b"*HQ,4106011660,SMS,Fortified OK#",
            CommandOutcome(CommandResult.SUCCESS, "Fortified OK"),
        ),
        (
            RAW,
            b"*HQ,4106011660,SMS,Wrong password#",
            CommandOutcome(CommandResult.FAILURE, "Wrong password"),
        ),
        # not an answer to the command
        (CUT, b"*HQ,4106011660,V4,S20,DONE,235959," + POSITION + b"#", None),  # earlier S20
        (CUT, b"*HQ,4106011660,V4,S71,DONE,010203," + POSITION + b"#", None),
        (CUT, b"*HQ,4106011660,V1," + POSITION + b"#", None),
        (CUT, b"*HQ,4106011660,SMS,Cut off OK#", None),
        (CUT, b"*HQ,4106011660,LINK,112137,20,8,67,0,0,081116,FFFFFBFF#", None),
        (STATUS_QUERY, b"*HQ,4106011660,V1," + POSITION + b"#", None),
        (INTERVAL, b"*HQ,4106011660,HTBT,100#", None),
    ],
)
def test_command_outcome(command: Command, reply: bytes, outcome: CommandOutcome | None) -> None:
    sent = encode(command)
    message, _ = decode_one(reply)
    assert h02.command_outcome(command, sent, message) == outcome


def test_outcome_ignores_other_protocols() -> None:
    message = Message(protocol=Protocol.GT06, type=MessageType.COMMAND_REPLY, text="S20")
    assert h02.command_outcome(CUT, encode(CUT), message) is None


def test_relay_round_trip_through_a_session() -> None:
    session = Session()
    session.feed(_vector(59).raw, NOW)  # *TH, ... identifies the device and its maker code
    sent = session.encode_command(CUT, CMD_NOW)
    assert sent.data == b"*TH,2020916012,S20,010203,1,1#"
    items = session.feed(b"*TH,2020916012,V4,S20,010203,1,1#", CMD_NOW)
    assert isinstance(items[0], Decoded)
    outcome = session.command_outcome(CUT, sent, items[0].message)
    assert outcome == CommandOutcome(CommandResult.SUCCESS, "S20,1,1", True)


# ---------------------------------------------------------------------------------------------
# Relay state and odometer (issue 13)
# ---------------------------------------------------------------------------------------------


def test_relay_is_status_bit_27() -> None:
    """Bit 27 of the status word, active low, is the relay ("vehicle in the cut-off oil &
    engine state", H02 document V1.0.5): clear only in traccar's S20 confirmation test frame
    (h02:62, F7FFFBFF); set in every other status word of h02.jsonl."""
    for vector in load("h02"):
        if not vector.uplink:
            continue
        decoded, _ = decode_datagram(vector.raw)
        for item in decoded:
            message = item.message
            if message.alarm_states:  # the frame carries a status word
                assert message.relay is (vector.line == 62), vector.id


def test_relay_in_a_binary_record() -> None:
    """The same word ends binary records (h02:29 with bit 27 cleared)."""
    raw = bytearray(_vector(29).raw)
    assert raw[25:29] == bytes.fromhex("ffffdfff")
    raw[25] = 0xF7
    message, _ = decode_one(bytes(raw))
    assert message.relay is True
    assert decode_one(_vector(29).raw)[0].relay is False


def test_odometer_tail() -> None:
    """traccar's H02ProtocolDecoderTest line 107: `odometer,temperature,fuel,altitude,lac,cid`
    after the status word; the odometer in metres, as traccar stores it."""
    frame = (
        b"*HQ,2130510938,V1,012632,A,0520.0663,N,10028.6324,E,0.286,023,100317,FFFFDFFF,"
        b"69129336,0,100.0,18,5141,5A20#"
    )
    message, _ = decode_one(frame)
    assert message.odometer_km == pytest.approx(69129.336)
    assert message.altitude_m == 18
