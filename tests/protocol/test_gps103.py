"""GPS103 / TK103-2: every line of gps103.jsonl, message types, acks, framing and commands."""

from __future__ import annotations

from datetime import UTC, datetime
import random

import pytest

from custom_components.tk970.protocol import gps103
from custom_components.tk970.protocol.commands import (
    RELAY_DIALECTS,
    Command,
    CommandKind,
    RelayDialect,
)
from custom_components.tk970.protocol.context import Context
from custom_components.tk970.protocol.errors import CommandError, FrameError
from custom_components.tk970.protocol.framing import Mode, split_gps103
from custom_components.tk970.protocol.messages import (
    Alarm,
    Cell,
    Message,
    MessageType,
    PositionSource,
    Protocol,
)
from custom_components.tk970.protocol.session import Session

from .helpers import NOW, decode_datagram, decode_stream
from .vectors import Vector, load, params

# -- the vectors' vocabulary, mapped to ours once -----------------------------------------------

KIND_TYPES = {
    "login": MessageType.LOGIN,
    "heartbeat": MessageType.HEARTBEAT,
    "location": MessageType.LOCATION,
    "alarm": MessageType.ALARM,
    "lbs": MessageType.LBS,
    "other": MessageType.OTHER,
}
#: traccar alarm names; bonnet and foot-brake have no shared name and become `other`.
ALARMS = {
    "sos": Alarm.SOS,
    "vibration": Alarm.VIBRATION,
    "powerCut": Alarm.POWER_CUT,
    "lowBattery": Alarm.LOW_BATTERY,
    "geofence": Alarm.GEOFENCE,
    "movement": Alarm.MOVEMENT,
    "bonnet": Alarm.OTHER,
    "footBrake": Alarm.OTHER,
}
#: Documented deviations from a vector's `kind`: the alternative `*` layout carries a full
#: position (traccar's test asserts it with verifyPosition), so we report it as a location.
TYPE_DEVIATIONS = {9: MessageType.LOCATION, 10: MessageType.LOCATION}
#: `expect` keys with no counterpart in our model (raw text fields, fuel and temperature).
UNMODELLED = {
    "keyword",
    "local_time_field",
    "utc_time_field",
    "speed_knots",
    "fuel1",
    "temp1",
    "frame",
}
CHECKED = {
    "imei",
    "alarm",
    "fix",
    "validity_flag",
    "valid",
    "latitude",
    "longitude",
    "speed_kmh",
    "course",
    "acc_field",
    "ignition",
    "lac_hex",
    "cid_hex",
    "time_utc",
    "leading_heartbeat_id",
    "traccar_returns_no_position",
}


def expected_type(vector: Vector) -> MessageType:
    return TYPE_DEVIATIONS.get(vector.line, KIND_TYPES[vector.data["kind"]])


def report_of(vector: Vector) -> tuple[Message, bytes | None]:
    """The message a vector stands for, and its ack (a glued heartbeat is checked apart)."""
    decoded, skipped = decode_datagram(vector.raw)
    assert not skipped
    expect = vector.expect
    if "leading_heartbeat_id" in expect:
        heartbeat, report = decoded
        assert heartbeat.message.type is MessageType.HEARTBEAT
        assert heartbeat.message.device_id == expect["leading_heartbeat_id"]
        assert report.ack is None
        return report.message, heartbeat.ack
    (only,) = decoded
    return only.message, only.ack


@pytest.mark.parametrize("vector", params("gps103"))
def test_uplink_vector(vector: Vector) -> None:
    message, ack = report_of(vector)
    expect = vector.expect
    assert set(expect) <= CHECKED | UNMODELLED, "a new expect key needs a mapping"
    assert message.protocol is Protocol.GPS103
    assert message.type is expected_type(vector)
    assert message.device_id == expect["imei"]
    assert message.checksum_ok is None
    assert vector.raw.endswith(message.raw)
    alarm = expect.get("alarm")
    assert message.alarms == ((ALARMS[alarm],) if alarm else ())
    assert message.alarm_states == frozenset()
    if "ack_hex" in vector.data:
        assert ack == bytes.fromhex(vector.data["ack_hex"])
        assert ack == vector.data["ack_ascii"].encode()
    else:
        assert ack is None
    if expect.get("fix") == "L" or expect.get("traccar_returns_no_position"):
        assert message.latitude is None
        assert message.time is None
    if "validity_flag" in expect:
        assert message.valid is (expect["validity_flag"] == "A")
        assert message.position_source is PositionSource.GNSS
    if "valid" in expect:
        assert message.valid is expect["valid"]
    for key in ("latitude", "longitude"):
        if key in expect:
            assert getattr(message, key) == pytest.approx(expect[key], abs=1e-5)  # traccar: 1e-5
    if "speed_kmh" in expect:
        assert message.speed_kmh == pytest.approx(expect["speed_kmh"], abs=1e-3)
        assert message.speed_kmh == pytest.approx(expect["speed_knots"] * 1.852)
    if "course" in expect:
        assert message.course == pytest.approx(expect["course"])
    if "ignition" in expect:
        assert message.ignition is expect["ignition"]
    elif "acc_field" in expect:
        assert message.ignition is (expect["acc_field"] == 1)
    if "lac_hex" in expect:
        cell = Cell(mcc=0, mnc=0, lac=int(expect["lac_hex"], 16), cid=int(expect["cid_hex"], 16))
        assert message.cells == (cell,)
        assert message.position_source is PositionSource.LBS
    if "time_utc" in expect:
        assert message.time == datetime.fromisoformat(expect["time_utc"])


@pytest.mark.parametrize("vector", params("gps103"))
def test_uplink_vector_byte_by_byte(vector: Vector) -> None:
    whole, _ = decode_datagram(vector.raw)
    decoded, skipped = decode_stream([vector.raw[i : i + 1] for i in range(len(vector.raw))])
    assert not skipped
    assert decoded == whole


@pytest.mark.parametrize("vector", params("gps103"))
def test_splitter_takes_each_vector_whole(vector: Vector) -> None:
    """One cut per frame (two for the glued heartbeat), covering every byte."""
    data, cuts = vector.raw, []
    while data:
        cut = split_gps103(data, Mode.FINAL)
        assert cut is not None
        assert cut.is_frame
        cuts.append(data[: cut.length])
        data = data[cut.length :]
    assert len(cuts) == (2 if "leading_heartbeat_id" in vector.expect else 1)


# -- details the vectors do not assert ---------------------------------------------------------


def decode_one(text: str) -> tuple[Message, bytes | None]:
    result = gps103.decode(text.encode(), Context(), None)
    (message,) = result.messages
    return message, result.ack


REPORT = (
    "imei:359586015829802,{},0809231429,13554900601,F,062947.294,A,2234.4026,N,11354.3277,E,0.00,;"
)


@pytest.mark.parametrize(("keyword", "alarm"), list(gps103.KEYWORD_ALARMS.items()))
def test_every_alarm_keyword(keyword: str, alarm: Alarm) -> None:
    message, ack = decode_one(REPORT.format(keyword))
    assert message.type is MessageType.ALARM
    assert message.alarms == (alarm,)
    assert message.latitude == pytest.approx(22.573377, abs=1e-6)
    assert (ack is not None) is (keyword == "help me")


@pytest.mark.parametrize(
    ("keyword", "ignition"),
    [("acc on", True), ("acc off", False), ("tracker", None), ("T:+28.0", None),
     ("oil 51.67", None), ("rfid", None), ("vt14", None), ("acc alarm", None)],
)  # fmt: skip
def test_keywords_without_alarm(keyword: str, ignition: bool | None) -> None:
    message, ack = decode_one(REPORT.format(keyword))
    assert message.type is MessageType.LOCATION
    assert message.alarms == ()
    assert message.ignition is ignition
    assert ack is None


def test_photo_start_frame_keeps_its_position() -> None:
    """`vt<n>` announces photo chunks but is a full report (traccar's Gps103ProtocolDecoderTest)."""
    message, _ = decode_one(
        "imei:864180034124375,vt14,190116192753,,F,172750.000,A,3649.2186,N,00235.8411,W,"
        "0.00,0,,0,0,51.93%,,+22;"
    )
    assert message.type is MessageType.LOCATION
    assert message.time == datetime(2019, 1, 16, 17, 27, 50, tzinfo=UTC)
    assert message.longitude == pytest.approx(-2.597352, abs=1e-6)


def test_hemisphere_before_the_number() -> None:
    """gps103:69 writes `N,5306.64155,E,00700.77848` (traccar HEM_DEG_MIN_HEM)."""
    (vector,) = [v for v in load("gps103") if v.line == 69]
    message, _ = report_of(vector)
    assert message.latitude == pytest.approx(53.110692, abs=1e-6)
    assert message.longitude == pytest.approx(7.012975, abs=1e-6)
    assert message.course is None
    assert message.altitude_m == 1.0


@pytest.mark.parametrize(
    ("local", "utc", "expected"),
    [
        ("151027025958", "235957.000", datetime(2015, 10, 26, 23, 59, 57, tzinfo=UTC)),
        ("151027041419", "011531.000", datetime(2015, 10, 27, 1, 15, 31, tzinfo=UTC)),
        ("13/02/27 23:40", "125952.000", datetime(2013, 2, 27, 12, 59, 52, tzinfo=UTC)),
        ("1301072224", "142411.077", datetime(2013, 1, 7, 14, 24, 11, tzinfo=UTC)),
        ("1512312350", "015030.000", datetime(2016, 1, 1, 1, 50, 30, tzinfo=UTC)),  # west of UTC
        ("150420051153", "0.0", datetime(2015, 4, 20, 5, 11, 53, tzinfo=UTC)),  # no UTC: local
        ("000000000", "235957.000", None),  # no date at all
        ("1500000000", "235957.000", None),  # impossible date
    ],
)
def test_time_reconstruction(local: str, utc: str, expected: datetime | None) -> None:
    message, _ = decode_one(
        f"imei:359710049092324,tracker,{local},,F,{utc},A,2429.5156,N,04424.5828,E,0.01,27.91;"
    )
    assert message.time == expected


def test_alternative_layout_fields() -> None:
    (vector,) = [v for v in load("gps103") if v.line == 9]
    message, _ = report_of(vector)
    assert message.time == datetime(2018, 10, 24, 21, 47, 34, tzinfo=UTC)
    assert message.valid is True
    assert (message.latitude, message.longitude) == (-33.42317, -70.6193)
    assert (message.speed_kmh, message.course, message.altitude_m) == (67.0, 229.0, 674.0)
    assert (message.satellites, message.hdop) == (8, 1.0)
    assert (message.ignition, message.charging) == (False, True)


def test_obd_line_supply_voltage() -> None:
    by_line = {v.line: v for v in load("gps103")}
    assert report_of(by_line[16])[0].power_voltage == 14.24
    assert report_of(by_line[12])[0].power_voltage is None  # "0.00": not read
    assert report_of(by_line[32])[0].power_voltage is None  # field empty


def test_unparsable_report_keeps_its_alarm() -> None:
    message, ack = decode_one("imei:359586015829802,help me,garbled")
    assert (message.type, message.alarms) == (MessageType.ALARM, (Alarm.SOS,))
    assert ack == b"**,imei:359586015829802,E;"
    message, ack = decode_one("imei:359586015829802,tracker,garbled")
    assert (message.type, message.alarms, ack) == (MessageType.OTHER, (), None)


def test_session_stream_of_mixed_frames() -> None:
    """Login, heartbeat, reports and a CR LF, packed into reads that split frames anywhere."""
    data = (
        b"##,imei:359586015829802,A;359586015829802;\r\n"
        b"imei:359586015829802,tracker,0809231429,13554900601,F,062947.294,A,2234.4026,N,"
        b"11354.3277,E,0.00,;imei:359586015829802,help me,,,L,,,113b,,558f,,,;"
    )
    decoded, skipped = decode_stream([data[:7], data[7:50], data[50:]])
    assert not skipped
    assert [d.message.type for d in decoded] == [
        MessageType.LOGIN,
        MessageType.HEARTBEAT,
        MessageType.LOCATION,
        MessageType.ALARM,
    ]
    assert [d.ack for d in decoded] == [b"LOAD", b"ON", None, b"**,imei:359586015829802,E;"]


@pytest.mark.parametrize(
    "frame", [b";", b"##,imei:,A;", b"12ab;", b"imei:;", b"hello;", b"1234567;"]
)
def test_unusable_frames(frame: bytes) -> None:
    with pytest.raises(FrameError):
        gps103.decode(frame, Context(), None)


def test_mutated_vectors_never_raise_anything_else() -> None:
    rng = random.Random(103)
    for vector in load("gps103"):
        for _ in range(40):
            data = bytearray(vector.raw)
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            cut = rng.randrange(1, len(data) + 1)
            for frame in (bytes(data), bytes(data[:cut])):
                try:
                    result = gps103.decode(frame, Context(), None)
                except FrameError:
                    continue
                assert result.messages


# -- commands ----------------------------------------------------------------------------------

IMEI = "123456789012345"
#: How each downlink vector's code is asked for (cross-checked with its `expect.command`).
DOWNLINK_COMMANDS: dict[str, tuple[Command, str | None]] = {
    "J": (Command(kind=CommandKind.RELAY_CUT), "engine_stop"),
    "K": (Command(kind=CommandKind.RELAY_RESTORE), "engine_resume"),
    "B": (Command(kind=CommandKind.LOCATE), "locate_now (single report)"),
    "C,05m": (Command(kind=CommandKind.SET_INTERVAL, interval=300), None),
}


def ctx_for(device_id: str | None = IMEI) -> Context:
    return Context(device_id=device_id)


@pytest.mark.parametrize("vector", params("gps103", uplink=False))
def test_downlink_vector(vector: Vector) -> None:
    prefix = f"**,imei:{IMEI},"
    assert vector.data["ascii"].startswith(prefix)
    code = vector.data["ascii"][len(prefix) :]
    command, name = DOWNLINK_COMMANDS.get(code, (Command(kind=CommandKind.RAW, text=code), None))
    if name is not None:
        assert vector.expect["command"] == name
    encoded = gps103.encode_command(command, ctx_for())
    assert encoded.data == vector.raw
    assert encoded.confirmable is False
    assert encoded.reference is None


@pytest.mark.parametrize("dialect", [None, *RELAY_DIALECTS[Protocol.GPS103]])
def test_relay_dialects(dialect: RelayDialect | None) -> None:
    cut = gps103.encode_command(Command(kind=CommandKind.RELAY_CUT, dialect=dialect), ctx_for())
    restore = gps103.encode_command(
        Command(kind=CommandKind.RELAY_RESTORE, dialect=dialect), ctx_for()
    )
    assert (cut.data, restore.data) == (f"**,imei:{IMEI},J".encode(), f"**,imei:{IMEI},K".encode())


def test_foreign_relay_dialect_is_refused() -> None:
    with pytest.raises(CommandError):
        gps103.encode_command(
            Command(kind=CommandKind.RELAY_CUT, dialect=RelayDialect.H02_S20), ctx_for()
        )


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(1, "01s"), (30, "30s"), (99, "99s"), (120, "02m"), (300, "05m"), (150, "02m"),
     (3600, "01h"), (5400, "90m"), (7200, "02h"), (6000, "02h"), (356400, "99h")],
)  # fmt: skip
def test_interval_units(seconds: int, text: str) -> None:
    assert gps103.interval_text(seconds) == text
    command = Command(kind=CommandKind.SET_INTERVAL, interval=seconds)
    assert gps103.encode_command(command, ctx_for()).data == f"**,imei:{IMEI},C,{text}".encode()


@pytest.mark.parametrize(
    "command",
    [
        Command(kind=CommandKind.SET_INTERVAL),
        Command(kind=CommandKind.SET_INTERVAL, interval=0),
        Command(kind=CommandKind.SET_INTERVAL, interval=100 * 3600),
        Command(kind=CommandKind.RAW),
        Command(kind=CommandKind.RAW, text="é"),
    ],
)
def test_commands_that_cannot_be_encoded(command: Command) -> None:
    with pytest.raises(CommandError):
        gps103.encode_command(command, ctx_for())


def test_command_needs_an_identified_device() -> None:
    with pytest.raises(CommandError):
        gps103.encode_command(Command(kind=CommandKind.LOCATE), ctx_for(None))


@pytest.mark.parametrize("kind", list(CommandKind))
def test_no_reply_ever_answers_a_command(kind: CommandKind) -> None:
    command = Command(kind=kind, interval=60, text="B")
    sent = gps103.encode_command(command, ctx_for())
    for vector in load("gps103"):
        if vector.uplink:
            for decoded in decode_datagram(vector.raw)[0]:
                assert gps103.command_outcome(command, sent, decoded.message) is None


def test_session_learns_the_imei_for_commands() -> None:
    session = Session()
    session.feed(b"##,imei:359586015829802,A;", NOW)
    sent = session.encode_command(Command(kind=CommandKind.RELAY_CUT), NOW)
    assert (sent.data, sent.confirmable) == (b"**,imei:359586015829802,J", False)


def test_family_export() -> None:
    assert gps103.FAMILY.decode is gps103.decode
    assert gps103.FAMILY.encode_command is gps103.encode_command
    assert gps103.FAMILY.command_outcome is gps103.command_outcome
