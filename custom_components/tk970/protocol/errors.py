"""The protocol layer's exceptions: one base, a reason code for logs and the decoder CLI.

A decoder raises `FrameError` for a frame it cannot use; the session turns it into a `Skipped`
item and carries on with the next frame, so one bad frame never ends a connection. Anything
else escaping a decoder is a bug; the session still contains it (see `session.py`).
"""

from __future__ import annotations


class ProtocolError(Exception):
    """Base class of every error the protocol package raises on purpose."""

    def __init__(self, reason: str) -> None:
        """Store a short, human readable reason (it ends up in logs and CLI output)."""
        super().__init__(reason)
        self.reason = reason


class FrameError(ProtocolError):
    """A complete frame that cannot be decoded (truncated body, bad field, unknown layout)."""


class CommandError(ProtocolError):
    """A command cannot be encoded for this protocol, dialect or device."""
