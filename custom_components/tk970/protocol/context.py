"""Per-session state that family decoders read and update, and what a decoder returns.

The session owns one `Context` per connection (or per UDP peer) and passes it to every decode
and encode call. It is the only state a family module sees: the clock (`now`, injected by the
caller, never read here), the identity learned at login, the JT808 time offset, and the server
serial counter shared by JT808 acknowledgements and commands.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from .commands import Command, CommandOutcome, EncodedCommand
from .messages import Message
from .reassembly import Reassembly

#: JT/T 808 says terminals report GMT+8 (protocols.md §3.10); the transport may learn better.
JT808_DEFAULT_OFFSET = timedelta(hours=8)


@dataclass(slots=True)
class Context:
    """Mutable per-session state handed to the family decoders and encoders."""

    #: the current time, set by the session from the caller's clock before each call
    now: datetime = field(default_factory=lambda: datetime(2000, 1, 1, tzinfo=UTC))
    #: identity bound to the connection by a login (GT06 sends it only there)
    device_id: str | None = None
    #: offset of JT808 device clocks from UTC (device time = UTC + offset)
    jt808_utc_offset: timedelta = JT808_DEFAULT_OFFSET
    #: offset announced by a GT06 login (applied to that device's non-UTC packet types)
    gt06_utc_offset: timedelta | None = None
    #: H02 maker code the device uses ("HQ"), echoed in replies and commands
    h02_maker: str = "HQ"
    #: JT808 terminal id bytes exactly as the device sent them (echoed in replies/commands)
    jt808_terminal: bytes = b""
    #: the device uses the JT/T 808-2019 header (version byte, 10-byte terminal id)
    jt808_2019: bool = False
    #: JT808-2019 protocol version byte, echoed in our headers
    jt808_version: int = 1
    #: JT808 sub-packaged messages in progress (created by the first fragment)
    jt808_fragments: Reassembly | None = None
    #: Watch maker code the device frames with ("SG", "3G" ...) and whether it adds a frame index
    watch_maker: str | None = None
    watch_indexed: bool = False
    #: facts learned from logins (model, firmware ...), kept for the device description
    info: dict[str, str] = field(default_factory=dict)
    _serial: int = 0

    def next_serial(self) -> int:
        """Return the next server-side serial number (JT808 0x8001/0x8100/commands), from 0."""
        serial = self._serial
        self._serial = (serial + 1) & 0xFFFF
        return serial


class FrameResult(NamedTuple):
    """What one frame decodes to: zero or more messages (a batch gives several) and the reply.

    `ack` is the exact bytes to send back at once, or None when nothing is due. `unknown`
    names a message type the family does not know (`"0x08"`), so that the session can log it
    once; such a frame is still answered where the protocol has a generic acknowledgement.
    """

    messages: tuple[Message, ...]
    ack: bytes | None = None
    unknown: str | None = None


class Family(NamedTuple):
    """What each family module provides to the session (its module-level `FAMILY`).

    - `decode(frame, ctx, payload)`: one complete frame (as cut by `framing`) to messages and
      the reply; `payload` is work the splitter already did (JT808 un-escaped bytes) or None.
      Raises `FrameError` for a frame it cannot use; must return at least one message otherwise.
    - `encode_command(command, ctx)`: the bytes for a command to this device; raises
      `CommandError` when the family or dialect cannot express it.
    - `command_outcome(command, sent, message)`: whether `message` answers `sent`, and how; None
      when it is not an answer to it.
    - `fast(data, ctx)`, optional: a read that is exactly one complete frame of a layout the
      family sends most (a location, a heartbeat, a login) decoded straight, or None to let
      the general path (splitter, then `decode`) do it. It must give what the general path
      gives, to the byte, and change nothing when it returns None (tests/protocol/
      test_fastpath.py holds it to that on every vector and on random mutations).
    """

    decode: Callable[[bytes, Context, bytes | None], FrameResult]
    encode_command: Callable[[Command, Context], EncodedCommand]
    command_outcome: Callable[[Command, EncodedCommand, Message], CommandOutcome | None]
    fast: Callable[[bytes, Context], FrameResult | None] | None = None
