"""The command table (which family has which command) agrees with the family encoders, and the
SOS acknowledgements are the bytes the protocols define."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from custom_components.tk970.protocol import (
    Command,
    CommandError,
    CommandKind,
    CommandOutcome,
    CommandResult,
    EncodedCommand,
    Protocol,
    Session,
    gps103,
    jt808,
)
from custom_components.tk970.protocol.commands import COMMANDS, supports
from custom_components.tk970.protocol.context import Context
from custom_components.tk970.protocol.session import FAMILIES

NOW = datetime(2026, 3, 4, 1, 2, 3, tzinfo=UTC)

#: A valid example of each command kind.
EXAMPLES = {
    CommandKind.RELAY_CUT: Command(kind=CommandKind.RELAY_CUT),
    CommandKind.RELAY_RESTORE: Command(kind=CommandKind.RELAY_RESTORE),
    CommandKind.LOCATE: Command(kind=CommandKind.LOCATE),
    CommandKind.SET_INTERVAL: Command(kind=CommandKind.SET_INTERVAL, interval=60),
    CommandKind.RAW: Command(kind=CommandKind.RAW, text="STATUS"),
    CommandKind.CLEAR_SOS: Command(kind=CommandKind.CLEAR_SOS),
}


def _context() -> Context:
    return Context(
        now=NOW, device_id="359586015829802", jt808_terminal=bytes.fromhex("015829802000")
    )


def test_every_family_and_kind_is_listed() -> None:
    assert set(COMMANDS) == set(Protocol)
    assert set(EXAMPLES) == set(CommandKind)


@pytest.mark.parametrize("protocol", list(Protocol))
@pytest.mark.parametrize("kind", list(CommandKind))
def test_the_table_matches_the_encoders(protocol: Protocol, kind: CommandKind) -> None:
    """A family encodes a command exactly when the table says it has it."""
    encode = FAMILIES[protocol].encode_command
    if supports(protocol, kind):
        assert encode(EXAMPLES[kind], _context()).data
    else:
        with pytest.raises(CommandError):
            encode(EXAMPLES[kind], _context())


def test_position_request_and_sos_acknowledgement_per_family() -> None:
    """What the buttons are offered for (protocols.md §3.7, §4.4, §5.7, §6.3, §7)."""
    locate = {p for p in Protocol if supports(p, CommandKind.LOCATE)}
    clear = {p for p in Protocol if supports(p, CommandKind.CLEAR_SOS)}
    assert locate == {Protocol.JT808, Protocol.GT06, Protocol.GPS103, Protocol.WATCH}
    assert clear == {Protocol.JT808, Protocol.GPS103}


def test_jt808_sos_confirmation_is_8203() -> None:
    """`0x8203`: alarm serial 0 (all), alarm types with bit 0 (emergency) set."""
    ctx = _context()
    sent = jt808.encode_command(EXAMPLES[CommandKind.CLEAR_SOS], ctx)
    message_id = int.from_bytes(sent.data[1:3])
    length = int.from_bytes(sent.data[3:5]) & 0x3FF
    body = sent.data[13 : 13 + length]
    assert (message_id, body) == (0x8203, bytes.fromhex("0000 00000001"))
    assert sent.confirmable


def test_jt808_sos_confirmation_answered_by_0001() -> None:
    """The device's `0x0001` quoting our serial and `0x8203` settles it; others do not."""
    session = Session()
    # The device logs in (heartbeat), which binds the terminal id.
    head = bytes.fromhex("0002 0000 015829802000 0001")
    session.feed(_jt808_frame(head), NOW)
    sent = session.encode_command(EXAMPLES[CommandKind.CLEAR_SOS], NOW)

    def answer(answered: int) -> object:
        body = sent.reference.to_bytes(2) + answered.to_bytes(2) + b"\x00"  # type: ignore[union-attr]
        frame = bytes.fromhex("0001 0005 015829802000 0002") + body
        [item] = session.feed(_jt808_frame(frame), NOW)
        return session.command_outcome(EXAMPLES[CommandKind.CLEAR_SOS], sent, item[0])  # type: ignore[index]

    assert answer(0x8203) == CommandOutcome(CommandResult.SUCCESS)
    assert answer(0x8105) is None


def test_gps103_sos_confirmation_is_e_and_unconfirmable() -> None:
    """`**,imei:<IMEI>,E`, the confirmation traccar sends on `help me` (protocols.md §6.2)."""
    sent = gps103.encode_command(EXAMPLES[CommandKind.CLEAR_SOS], _context())
    assert sent == EncodedCommand(b"**,imei:359586015829802,E", confirmable=False)


def _jt808_frame(content: bytes) -> bytes:
    """Checksum and escape a JT808 header + body (independent of the module under test)."""
    check = 0
    for byte in content:
        check ^= byte
    data = content + bytes((check,))
    data = data.replace(b"\x7d", b"\x7d\x01").replace(b"\x7e", b"\x7d\x02")
    return b"\x7e" + data + b"\x7e"
