"""Watch protocol: frames, replies, status bits, framing and commands.

No capture vectors exist for this family (vectors/README.md). The frames below are the example in
protocols.md §7 and frames from traccar's WatchProtocolDecoderTest (snapshot of protocols.md §0),
which come from real watches; each test says what it checks.
"""

from __future__ import annotations

from datetime import UTC, datetime
import random

import pytest

from custom_components.tk970.protocol import watch
from custom_components.tk970.protocol.commands import (
    RELAY_DIALECTS,
    Command,
    CommandKind,
    RelayDialect,
)
from custom_components.tk970.protocol.context import Context
from custom_components.tk970.protocol.errors import CommandError, FrameError
from custom_components.tk970.protocol.framing import Mode, split_watch
from custom_components.tk970.protocol.messages import (
    Alarm,
    Cell,
    CommandResult,
    Message,
    MessageType,
    PositionSource,
    Protocol,
    WifiAccessPoint,
)
from custom_components.tk970.protocol.session import Decoded, Session

from .helpers import NOW, decode_datagram, decode_stream

#: protocols.md §7 (traccar commit 2c5d65c30, TK-Star TK915-4GSA).
TK915_UD2 = (
    b"[SG*9159059735*0066*UD2,230322,082138,A,59.55285,N,016.66185,E,0.0,000,26,14,80,70,0,50,"
    b"00000000,1,1,240,7,34505,80806406,,00]"
)
UD_LTE_WIFI = (
    b"[3G*2104326058*00E9*UD_LTE,300621,135101,A,32.162652,N,34.888748,E,30.84,265.158,65.621,"
    b"18,100,83,0,0,00000000,1,1,425,01,10223,8012811,100,3,ES4104,22:74:1d:39:64:ff,-46,"
    b"metropoline-wifi,a8:3f:a1:e0:66:ba,-89,Egged.co.il,00:0c:42:51:cf:cd,-81,1.7055488]"
)
AL_LTE_SOS = b"[3G*6907919734*003e*AL_LTE,170525,214118,V,0,N,0,E,0,0,0,0,0,22,0,0,00010000,0,0,0]"
AL_INDEXED_REMOVED = (
    b"[ZJ*689466020014198*0003*0113*AL,221121,085515,V,00.000000,N,000.000000,E,0,0,0,0,0,44,0,"
    b"0,00100000,1,255,460,0,16399,234887445,0,6,WIFI00,68:77:24:1b:e7:a7,-59,WIFI01,"
    b"68:77:24:1b:e3:30,-75,WIFI02,68:77:24:1b:e3:27,-75,WIFI03,00:41:d2:c0:f2:f1,-76,WIFI04,"
    b"00:41:d2:c0:f2:f0,-77,WIFI05,68:77:24:1b:e3:d8,-82]"
)
AL_HEX_CELL = (
    b"[SG*9059011020*0067*AL,240123,181628,V,54.427538,N,6.409275,W,0.00,0,0,0,19,90,0,0,"
    b"00000000,1,1,234,10,55C0,3B882A2,132,,10]"
)
UD2_SIGNED_WEST = (
    b"[3G*6430073509*00E7*UD2,241016,081622,V,09.951861,N,-84.1422119,W,0.00,0.0,0.0,0,39,94,0,"
    b"0,00000000,1,0,712,3,2007,18961,123,4,Luz,00:23:6a:34:ee:76,-70,familia,b0:c5:54:b9:90:ef,"
    b"-78,fam salas delgado,fc:b4:e6:5d:50:ea,-81,QWERTY,c8:3a:35:43:0f:e8,-93]"
)
UD_SOUTH_NO_EW = (
    b"[SG*9081000548*00A9*UD,110116,113639,V,16.479064,S,68.119072,,0.7593,000,99,00,80,80,0,50,"
    b"00000000,5,1,736,2,10103,10732,153,10103,11061,152,10103,11012,152,10103,10151,150,10103,"
    b"10731,143,,00]"
)
AL_FALL = (
    b"[3G*8308373902*0080*AL,230817,095346,A,47.083950,N,15.4821850,E,7.60,273.8,0.0,4,15,44,0,0,"
    b"00200010,2,255,232,1,7605,42530,118,7605,58036,119,0,65.8]"
)
WT_POSITION = (
    b"[3G*6005412902*011F*WT,170517,133811,V,18.512200,N,73.7750283,E,0.00,0.0,0.0,0,92,82,4262,"
    b"0,00000010,2,1,404,22,10125,8301,141,10125,13921,122,5,Skynet,28:c6:8e:be:87:c0,-60,"
    b"Intel Wi-Fi,4c:60:de:32:3d:38,-70,Nirvanic-2,40:e3:d6:4a:d9:c2,-73,A4-Guest,"
    b"40:e3:d6:4a:d9:c4,-73,A4Idatix,40:e3:d6:4a:d9:c3,-73,13.8]"
)
LK_PLAIN = b"[SG*8800000015*0002*LK]"
LK_STATUS = b"[3G*4700186508*000B*LK,0,10,100]"
TKQ = b"[3G*8800000015*0003*TKQ]"
PULSE = b"[CS*8800000015*0008*PULSE,72]"
#: Voice upload whose binary content holds a raw `]` (traccar testDecodeVoiceMessage).
VOICE = b"[CS*1234567890*000e*TK,#!AMR" + bytes.fromhex("7d5b5d2c2aff") + b"]"
#: Written from the protocol description (traccar's test has none): the device starts a session.
INIT = b"[SG*8800000015*0004*INIT]"
TKQ2 = b"[SG*8800000015*0004*TKQ2]"
#: Command echoes, as the device answers `CR` (locate now) and `UPLOAD,600`.
CR_REPLY = b"[SG*8800000015*0002*CR]"
UPLOAD_REPLY = b"[SG*8800000015*0006*UPLOAD]"

ALL_FRAMES = [
    TK915_UD2, UD_LTE_WIFI, AL_LTE_SOS, AL_INDEXED_REMOVED, AL_HEX_CELL, UD2_SIGNED_WEST,
    UD_SOUTH_NO_EW, AL_FALL, WT_POSITION, LK_PLAIN, LK_STATUS, TKQ, PULSE, VOICE, INIT, TKQ2,
    CR_REPLY, UPLOAD_REPLY,
]  # fmt: skip


def decode_one(frame: bytes) -> tuple[Message, bytes | None]:
    decoded, skipped = decode_datagram(frame)
    assert not skipped
    (only,) = decoded
    assert only.message.protocol is Protocol.WATCH
    assert only.message.raw == frame
    assert only.message.checksum_ok is None
    return only.message, only.ack


# -- message types and replies -----------------------------------------------------------------


def test_position_from_protocols_md() -> None:
    message, ack = decode_one(TK915_UD2)
    assert message.type is MessageType.LOCATION
    assert message.device_id == "9159059735"
    assert message.time == datetime(2022, 3, 23, 8, 21, 38, tzinfo=UTC)
    assert (message.valid, message.latitude, message.longitude) == (True, 59.55285, 16.66185)
    assert (message.speed_kmh, message.course, message.altitude_m) == (0.0, 0.0, 26.0)
    assert (message.satellites, message.gsm_signal, message.battery_percent) == (14, 80, 70)
    assert message.position_source is PositionSource.GNSS
    assert message.cells == (Cell(mcc=240, mnc=7, lac=34505, cid=80806406),)
    assert message.wifi == ()
    assert message.alarms == ()
    assert Alarm.SOS in message.alarm_states
    assert message.historical is True  # UD2: blind-area record
    assert ack is None


def test_position_with_wifi() -> None:
    message, ack = decode_one(UD_LTE_WIFI)
    assert message.type is MessageType.LOCATION
    assert message.historical is False
    assert message.speed_kmh == 30.84
    assert message.cells == (Cell(mcc=425, mnc=1, lac=10223, cid=8012811, rssi=100),)
    assert message.wifi == (
        WifiAccessPoint(mac="22:74:1d:39:64:ff", rssi=-46),
        WifiAccessPoint(mac="a8:3f:a1:e0:66:ba", rssi=-89),
        WifiAccessPoint(mac="00:0c:42:51:cf:cd", rssi=-81),
    )
    assert ack is None


@pytest.mark.parametrize(
    ("frame", "latitude", "longitude"),
    [(UD2_SIGNED_WEST, 9.951861, -84.1422119), (UD_SOUTH_NO_EW, -16.479064, 68.119072),
     (AL_HEX_CELL, 54.427538, -6.409275)],
)  # fmt: skip
def test_hemispheres(frame: bytes, latitude: float, longitude: float) -> None:
    message, _ = decode_one(frame)
    assert (message.latitude, message.longitude) == (latitude, longitude)
    assert message.valid is False


def test_sos_alarm_is_acknowledged() -> None:
    message, ack = decode_one(AL_LTE_SOS)
    assert message.type is MessageType.ALARM
    assert message.alarms == (Alarm.SOS,)
    assert (message.latitude, message.longitude, message.battery_percent) == (0.0, 0.0, 22)
    assert ack == b"[3G*6907919734*0002*AL]"


def test_indexed_frame_reply_repeats_the_index() -> None:
    message, ack = decode_one(AL_INDEXED_REMOVED)
    assert message.device_id == "689466020014198"
    assert message.alarms == (Alarm.TAMPER,)
    assert message.cells == (Cell(mcc=460, mnc=0, lac=16399, cid=234887445, rssi=0),)
    assert len(message.wifi) == 6
    assert ack == b"[ZJ*689466020014198*0003*0002*AL]"


def test_alarm_frame_without_status_bits_and_hex_cell() -> None:
    message, ack = decode_one(AL_HEX_CELL)
    assert message.type is MessageType.ALARM  # the frame's purpose, even with no bit set
    assert message.alarms == ()
    assert message.cells == (Cell(mcc=234, mnc=10, lac=0x55C0, cid=0x3B882A2, rssi=132),)
    assert ack == b"[SG*9059011020*0002*AL]"


def test_fall_alarm_and_wt_position() -> None:
    assert decode_one(AL_FALL)[0].alarms == (Alarm.FALL,)
    message, ack = decode_one(WT_POSITION)
    assert (message.type, message.alarms, ack) == (MessageType.LOCATION, (), None)
    assert len(message.cells) == 2
    assert len(message.wifi) == 5


@pytest.mark.parametrize(
    ("status", "alarms"),
    [
        ("00000000", ()),
        ("00010000", (Alarm.SOS,)),
        ("00020000", (Alarm.LOW_BATTERY,)),
        ("00000001", (Alarm.LOW_BATTERY,)),
        ("00040000", (Alarm.GEOFENCE_EXIT,)),
        ("00080000", (Alarm.GEOFENCE_ENTER,)),
        ("00004000", (Alarm.POWER_CUT,)),
        ("00100000", (Alarm.TAMPER,)),
        ("00600000", (Alarm.FALL,)),
        ("00000010", ()),  # motion: a state, not an alarm
        ("00030000", (Alarm.SOS, Alarm.LOW_BATTERY)),
        ("0001", (Alarm.LOW_BATTERY,)),  # old four-digit status word
    ],
)
def test_status_bits(status: str, alarms: tuple[Alarm, ...]) -> None:
    frame = TK915_UD2.replace(b"UD2", b"UD").replace(b",00000000,", f",{status},".encode())
    message, _ = decode_one(frame)
    assert message.alarms == alarms
    assert message.type is (MessageType.ALARM if alarms else MessageType.LOCATION)
    assert set(alarms) <= message.alarm_states


def test_heartbeats() -> None:
    message, ack = decode_one(LK_PLAIN)
    assert (message.type, message.device_id, message.battery_percent) == (
        MessageType.HEARTBEAT,
        "8800000015",
        None,
    )
    assert ack == LK_PLAIN
    message, ack = decode_one(LK_STATUS)
    assert (message.type, message.battery_percent) == (MessageType.HEARTBEAT, 100)
    assert ack == b"[3G*4700186508*0002*LK]"


@pytest.mark.parametrize(
    ("frame", "kind", "ack"),
    [
        (INIT, MessageType.LOGIN, b"[SG*8800000015*0006*INIT,1]"),
        (TKQ, MessageType.OTHER, TKQ),
        (TKQ2, MessageType.OTHER, TKQ2),
        (PULSE, MessageType.OTHER, None),
        (VOICE, MessageType.OTHER, None),
    ],
)
def test_other_frames(frame: bytes, kind: MessageType, ack: bytes | None) -> None:
    message, sent = decode_one(frame)
    assert (message.type, sent) == (kind, ack)


def test_command_echo_is_a_reply() -> None:
    message, ack = decode_one(CR_REPLY)
    assert message.type is MessageType.COMMAND_REPLY
    assert message.text == "CR"
    assert message.reply is not None
    assert (message.reply.command, message.reply.result) == ("CR", CommandResult.SUCCESS)
    assert ack is None


def test_reply_text_is_unescaped() -> None:
    message, _ = decode_one(b"[SG*8800000015*0011*VERNO,G36}\x05V1}\x04}\x01]")
    assert message.text == "VERNO,G36*V1,}"


def test_malformed_position_is_kept_as_other() -> None:
    message, ack = decode_one(b"[SG*8800000015*000A*AL,garbage]")
    assert message.type is MessageType.OTHER
    assert ack == b"[SG*8800000015*0002*AL]"  # still acknowledged: the watch stops resending
    message, _ = decode_one(TK915_UD2.replace(b"230322", b"320322"))
    assert message.time is None  # impossible date
    assert message.latitude == 59.55285


@pytest.mark.parametrize(
    "frame", [b"[SG]", b"[SG*8800000015*LK]", b"[SG*8800000015*0002*LK", b"[S*1*0002*LK]"]
)
def test_unusable_frames(frame: bytes) -> None:
    with pytest.raises(FrameError):
        watch.decode(frame, Context(), None)


def test_mutated_frames_never_raise_anything_else() -> None:
    rng = random.Random(7)
    for frame in ALL_FRAMES:
        for _ in range(200):
            data = bytearray(frame)
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            try:
                result = watch.decode(bytes(data[: rng.randrange(1, len(data))]) + b"]",
                                      Context(), None)  # fmt: skip
            except FrameError:
                continue
            assert result.messages


# -- framing -----------------------------------------------------------------------------------


@pytest.mark.parametrize("frame", ALL_FRAMES)
def test_stream_split_anywhere_after_the_header(frame: bytes) -> None:
    whole, _ = decode_datagram(frame)
    chunks = [frame[:40]] + [frame[i : i + 1] for i in range(40, len(frame))]
    decoded, skipped = decode_stream(chunks)
    assert not skipped
    assert decoded == whole


def test_stream_one_byte_at_a_time() -> None:
    decoded, skipped = decode_stream([LK_PLAIN[i : i + 1] for i in range(len(LK_PLAIN))])
    assert not skipped
    assert [d.message.type for d in decoded] == [MessageType.HEARTBEAT]


def test_splitter_uses_the_length_for_a_raw_bracket() -> None:
    cut = split_watch(VOICE + LK_PLAIN, Mode.STREAM)
    assert cut is not None
    assert cut.length == len(VOICE)
    # the declared end has not arrived: a stream waits, a datagram takes the first `]`
    assert split_watch(VOICE[:-3], Mode.STREAM) is None
    cut = split_watch(VOICE[:-3], Mode.FINAL)
    assert cut is not None
    assert cut.length == VOICE.index(b"]") + 1


def test_splitter_ignores_a_wrong_length_on_text_frames() -> None:
    """Many watches send a wrong length (this one says 0x66, the content is 0x69 bytes)."""
    for data in (TK915_UD2, TK915_UD2 + LK_PLAIN, TK915_UD2 + b"\r\n"):
        cut = split_watch(data, Mode.STREAM)
        assert cut is not None
        assert cut.length == len(TK915_UD2)


def test_session_packed_frames() -> None:
    decoded, skipped = decode_stream([LK_PLAIN + TK915_UD2 + AL_LTE_SOS[:30], AL_LTE_SOS[30:]])
    assert not skipped
    assert [d.message.type for d in decoded] == [
        MessageType.HEARTBEAT,
        MessageType.LOCATION,
        MessageType.ALARM,
    ]


# -- commands ----------------------------------------------------------------------------------


def ctx_after(frame: bytes) -> Context:
    ctx = Context()
    message = watch.decode(frame, ctx, None).messages[0]
    ctx.device_id = message.device_id
    return ctx


@pytest.mark.parametrize(
    ("frame", "command", "data"),
    [
        (LK_PLAIN, Command(kind=CommandKind.LOCATE), b"[SG*8800000015*0002*CR]"),
        (
            LK_PLAIN,
            Command(kind=CommandKind.SET_INTERVAL, interval=600),
            b"[SG*8800000015*000A*UPLOAD,600]",
        ),
        (
            LK_PLAIN,
            Command(kind=CommandKind.RAW, text="SOS1,13800138000"),
            b"[SG*8800000015*0010*SOS1,13800138000]",
        ),
        # traccar sends "3G" watches their commands as "SG"
        (LK_STATUS, Command(kind=CommandKind.LOCATE), b"[SG*4700186508*0002*CR]"),
        (PULSE, Command(kind=CommandKind.LOCATE), b"[CS*8800000015*0002*CR]"),
        (
            AL_INDEXED_REMOVED,
            Command(kind=CommandKind.LOCATE),
            b"[ZJ*689466020014198*0001*0002*CR]",
        ),
    ],
)
def test_encode(frame: bytes, command: Command, data: bytes) -> None:
    encoded = watch.encode_command(command, ctx_after(frame))
    assert encoded.data == data
    assert encoded.confirmable is True
    assert encoded.reference is None


def test_encode_before_any_frame_uses_the_default_maker() -> None:
    encoded = watch.encode_command(Command(kind=CommandKind.LOCATE), Context(device_id="1234"))
    assert encoded.data == b"[SG*1234*0002*CR]"


@pytest.mark.parametrize("kind", [CommandKind.RELAY_CUT, CommandKind.RELAY_RESTORE])
@pytest.mark.parametrize("dialect", [None, *(d for ds in RELAY_DIALECTS.values() for d in ds)])
def test_no_relay_command(kind: CommandKind, dialect: RelayDialect | None) -> None:
    with pytest.raises(CommandError, match="no relay"):
        watch.encode_command(Command(kind=kind, dialect=dialect), ctx_after(LK_PLAIN))


@pytest.mark.parametrize(
    "command",
    [
        Command(kind=CommandKind.SET_INTERVAL),
        Command(kind=CommandKind.SET_INTERVAL, interval=0),
        Command(kind=CommandKind.RAW),
        Command(kind=CommandKind.RAW, text="MESSAGE,[hi]"),
        Command(kind=CommandKind.RAW, text="MESSAGE,é"),
    ],
)
def test_commands_that_cannot_be_encoded(command: Command) -> None:
    with pytest.raises(CommandError):
        watch.encode_command(command, ctx_after(LK_PLAIN))


def test_command_needs_an_identified_device() -> None:
    with pytest.raises(CommandError):
        watch.encode_command(Command(kind=CommandKind.LOCATE), Context())


@pytest.mark.parametrize(
    ("command", "reply", "matches"),
    [
        (Command(kind=CommandKind.LOCATE), CR_REPLY, True),
        (Command(kind=CommandKind.SET_INTERVAL, interval=600), UPLOAD_REPLY, True),
        (Command(kind=CommandKind.RAW, text="upload,60"), UPLOAD_REPLY, True),
        (Command(kind=CommandKind.SET_INTERVAL, interval=600), CR_REPLY, False),
        (Command(kind=CommandKind.LOCATE), TK915_UD2, False),
        (Command(kind=CommandKind.LOCATE), LK_PLAIN, False),
        (Command(kind=CommandKind.RELAY_CUT), CR_REPLY, False),
    ],
)
def test_command_outcome(command: Command, reply: bytes, matches: bool) -> None:
    sent = watch.encode_command(Command(kind=CommandKind.LOCATE), ctx_after(LK_PLAIN))
    message, _ = decode_one(reply)
    outcome = watch.command_outcome(command, sent, message)
    if matches:
        assert outcome is not None
        assert outcome.result is CommandResult.SUCCESS
        assert outcome.text == message.text
        assert outcome.relay is None
    else:
        assert outcome is None


def test_session_round_trip() -> None:
    """The session learns the identity and maker from a frame, encodes, and matches the echo."""
    session = Session()
    session.feed(LK_PLAIN, NOW)
    command = Command(kind=CommandKind.LOCATE)
    sent = session.encode_command(command, NOW)
    assert sent.data == b"[SG*8800000015*0002*CR]"
    (item,) = session.feed(CR_REPLY, NOW)
    assert isinstance(item, Decoded)
    outcome = session.command_outcome(command, sent, item.message)
    assert outcome is not None
    assert outcome.result is CommandResult.SUCCESS


def test_family_export() -> None:
    assert watch.FAMILY.decode is watch.decode
    assert watch.FAMILY.encode_command is watch.encode_command
    assert watch.FAMILY.command_outcome is watch.command_outcome
