"""Placeholder while the h02 decoder is written (replaced by the real module before commit)."""

from __future__ import annotations

from .commands import Command, CommandOutcome, EncodedCommand
from .context import Context, Family, FrameResult
from .errors import CommandError, FrameError
from .messages import Message


def decode(frame: bytes, ctx: Context, payload: bytes | None = None) -> FrameResult:
    raise FrameError("not implemented")


def encode_command(command: Command, ctx: Context) -> EncodedCommand:
    raise CommandError("not implemented")


def command_outcome(command: Command, sent: EncodedCommand, message: Message) -> CommandOutcome | None:
    return None


FAMILY = Family(decode, encode_command, command_outcome)
