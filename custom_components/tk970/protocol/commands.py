"""Commands we send to trackers: the vocabulary, relay dialects, and what a reply means.

Encoding lives with each family (`jt808.encode_command`, ...), because the bytes are the
family's; this module holds what every family shares: which commands exist, which relay dialect
each family uses by default, and the verdict types the session hands to the transport layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
import re

from .messages import CommandResult, Protocol


class CommandKind(StrEnum):
    """What a command asks the device to do."""

    RELAY_CUT = "relay_cut"  #: engage the relay: cut fuel/power (engine stop)
    RELAY_RESTORE = "relay_restore"  #: release the relay: restore fuel/power
    LOCATE = "locate"  #: report a position now
    SET_INTERVAL = "set_interval"  #: report every `interval` seconds
    RAW = "raw"  #: send `text` as the family's text/SMS command
    CLEAR_SOS = "clear_sos"  #: acknowledge an SOS alarm, so the device stops repeating it


class RelayDialect(StrEnum):
    """How a model wants the relay switched; differs by vendor firmware (protocols.md §3.8)."""

    #: JT808 0x8105 terminal control, command word 0xF0 stop / 0xF1 resume (traccar's default)
    JT808_8105_F0F1 = "jt808_8105_f0f1"
    #: JT808 0x8105, command word 0x64 cut / 0x65 restore (G10LS document, SeeWorld W15L)
    JT808_8105_6465 = "jt808_8105_6465"
    #: JT808 vendor message 0xA006 "oil control", 1 = stop, 0 = resume
    JT808_A006 = "jt808_a006"
    #: JT808 0x8300 text message carrying the SMS command (`RELAY,1#` / `RELAY,0#`)
    JT808_TEXT = "jt808_8300_text"
    #: GT06 0x80 online command `Relay,1#` / `Relay,0#` (traccar default, Concox manuals)
    GT06_RELAY = "gt06_relay"
    #: GT06 0x80 online command `DYD,<password>#` / `HFYD,<password>#`
    GT06_DYD = "gt06_dyd"
    #: H02 `S20,<hhmmss>,1,1` / `S20,<hhmmss>,1,0`
    H02_S20 = "h02_s20"
    #: GPS103 `J` (stop) / `K` (resume); the protocol has no confirmation
    GPS103_JK = "gps103_jk"


#: The dialects each family can speak, the first being the default.
RELAY_DIALECTS: dict[Protocol, tuple[RelayDialect, ...]] = {
    Protocol.JT808: (
        RelayDialect.JT808_8105_F0F1,
        RelayDialect.JT808_8105_6465,
        RelayDialect.JT808_A006,
        RelayDialect.JT808_TEXT,
    ),
    Protocol.GT06: (RelayDialect.GT06_RELAY, RelayDialect.GT06_DYD),
    Protocol.H02: (RelayDialect.H02_S20,),
    Protocol.GPS103: (RelayDialect.GPS103_JK,),
}

_RELAY = frozenset((CommandKind.RELAY_CUT, CommandKind.RELAY_RESTORE))
_TEXT = frozenset((CommandKind.SET_INTERVAL, CommandKind.RAW))

#: The commands each family's protocol has. LOCATE only where the device answers with a
#: position (H02 has no such request: its `S26` status query can still be sent as RAW);
#: CLEAR_SOS only where the protocol has an SOS acknowledgement (JT808 `0x8203`, GPS103 `E`).
COMMANDS: dict[Protocol, frozenset[CommandKind]] = {
    Protocol.JT808: _RELAY | _TEXT | {CommandKind.LOCATE, CommandKind.CLEAR_SOS},
    Protocol.GT06: _RELAY | _TEXT | {CommandKind.LOCATE},
    Protocol.H02: _RELAY | _TEXT,
    Protocol.GPS103: _RELAY | _TEXT | {CommandKind.LOCATE, CommandKind.CLEAR_SOS},
    Protocol.WATCH: _TEXT | {CommandKind.LOCATE},
}


def supports(protocol: Protocol, kind: CommandKind) -> bool:
    """Tell whether a family's protocol has the command `kind`."""
    return kind in COMMANDS.get(protocol, frozenset())


#: Default password for the GT06 `DYD` dialect (traccar `gt06.alternative`, vendor default).
DEFAULT_DYD_PASSWORD = "123456"  # noqa: S105 - a documented factory default, not a secret


@dataclass(frozen=True, slots=True, kw_only=True)
class Command:
    """A command to encode for one device."""

    kind: CommandKind
    interval: int | None = None  #: seconds, for SET_INTERVAL
    text: str | None = None  #: for RAW
    dialect: RelayDialect | None = None  #: None: the family's default
    password: str = DEFAULT_DYD_PASSWORD  #: for dialects that need one

    @property
    def is_relay(self) -> bool:
        """Tell whether this command switches the relay."""
        return self.kind in (CommandKind.RELAY_CUT, CommandKind.RELAY_RESTORE)


@dataclass(frozen=True, slots=True)
class EncodedCommand:
    """Bytes to send, and what ties the device's answer to them.

    `reference` is what the answer quotes (JT808 platform serial, GT06 server flag) or None.
    `confirmable` is False where the protocol never answers (GPS103): the caller must not wait.
    """

    data: bytes
    reference: int | None = None
    confirmable: bool = True


@dataclass(frozen=True, slots=True)
class CommandOutcome:
    """The device's answer to a command: the verdict, its text if any, the relay state if stated."""

    result: CommandResult
    text: str | None = None
    relay: bool | None = None


def default_dialect(protocol: Protocol) -> RelayDialect | None:
    """Return the relay dialect a family uses unless told otherwise (None: no relay command)."""
    dialects = RELAY_DIALECTS.get(protocol)
    return dialects[0] if dialects else None


_FAILURE_WORDS = re.compile(
    r"fail|error|invalid|not (?:allowed|running|executed)|refus|denied|wrong|overspeed|too fast"
    r"|speed is|no gps|unable",
    re.IGNORECASE,
)
_UNSUPPORTED_WORDS = re.compile(r"unknown|not support|unsupported|unrecogni[sz]", re.IGNORECASE)
_ALREADY_WORDS = re.compile(r"already", re.IGNORECASE)
_SUCCESS_WORDS = re.compile(r"success|\bok\b|done|executed", re.IGNORECASE)


def text_verdict(text: str) -> CommandResult | None:
    """Judge a free-text command reply ("Cut off the fuel supply: Success!").

    "Already in the state ..., the command is not running!" means the relay already is where we
    asked: that is a success for the caller, whose goal was the state, not the action.
    """
    if _ALREADY_WORDS.search(text):
        return CommandResult.SUCCESS
    if _UNSUPPORTED_WORDS.search(text):
        return CommandResult.UNSUPPORTED
    if _FAILURE_WORDS.search(text):
        return CommandResult.FAILURE
    if _SUCCESS_WORDS.search(text):
        return CommandResult.SUCCESS
    return None
