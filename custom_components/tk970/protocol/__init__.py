"""TK-Star tracker protocols, sans I/O: detect, frame, decode, answer and command.

Bytes in, typed messages and reply bytes out; no sockets, no clock, no Home Assistant. The
transport (`..listener`) feeds a `Session` per connection and sends what it returns.
"""

from .commands import (
    RELAY_DIALECTS,
    Command,
    CommandKind,
    CommandOutcome,
    EncodedCommand,
    RelayDialect,
    default_dialect,
)
from .context import JT808_DEFAULT_OFFSET
from .detect import detect
from .errors import CommandError, FrameError, ProtocolError
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
from .session import IDLE_FLUSH_SECONDS, Decoded, Item, Session, SessionStats, Skipped

__all__ = [
    "IDLE_FLUSH_SECONDS",
    "JT808_DEFAULT_OFFSET",
    "RELAY_DIALECTS",
    "Alarm",
    "Cell",
    "Command",
    "CommandError",
    "CommandKind",
    "CommandOutcome",
    "CommandReply",
    "CommandResult",
    "Decoded",
    "EncodedCommand",
    "FrameError",
    "Item",
    "Message",
    "MessageType",
    "PositionSource",
    "Protocol",
    "ProtocolError",
    "RelayDialect",
    "Session",
    "SessionStats",
    "Skipped",
    "WifiAccessPoint",
    "default_dialect",
    "detect",
]
