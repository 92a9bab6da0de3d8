"""A tracker session, sans I/O: bytes in, decoded messages with their replies (or skips) out.

One `Session` per TCP connection, or per UDP peer in datagram mode. It owns what survives
between frames: the buffered tail, the detected family (latched for a TCP connection, detected
per datagram for UDP), the `Context` the decoders share (login identity, JT808 serials and time
offset) and the counters shown in diagnostics. The caller supplies every byte and the clock;
nothing here reads a socket or the time.

    items = session.feed(chunk, now)      # Decoded(message, ack) and Skipped(reason, raw)
    items = session.flush(now)            # the peer went quiet for IDLE_FLUSH_SECONDS
    items = session.close(now)            # the peer closed: an incomplete rest is reported

A read that is exactly one whole frame, which is how trackers send their reports, goes to the
family's fast decoder (`Family.fast`) first; detection, splitting and the general decoder run
for anything else. Both give the same items (tests/protocol/test_fastpath.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
import logging
from typing import NamedTuple

from . import gps103, gt06, h02, jt808, watch
from .commands import Command, CommandOutcome, EncodedCommand
from .context import JT808_DEFAULT_OFFSET, Context, Family, FrameResult
from .detect import detect
from .errors import CommandError, FrameError
from .framing import MAX_FRAME, SPLITTERS, Mode
from .messages import Message, MessageType, Protocol

_LOGGER = logging.getLogger(__name__)

FAMILIES: dict[Protocol, Family] = {
    Protocol.JT808: jt808.FAMILY,
    Protocol.GT06: gt06.FAMILY,
    Protocol.H02: h02.FAMILY,
    Protocol.GPS103: gps103.FAMILY,
    Protocol.WATCH: watch.FAMILY,
}

#: After this long without new bytes, a buffered tail that only more data could settle (a GT06
#: frame with a wrong length byte, an H02 binary record, a GPS103 line without `;`) is decoded
#: on what there is. TCP segments of one frame arrive within milliseconds, even over GPRS.
IDLE_FLUSH_SECONDS = 2.0

#: JT808 clock learning (protocols.md §3.10): a live report whose time is off from the receive
#: time by a whole number of hours, within this many seconds, votes for a new device offset...
OFFSET_TOLERANCE = 600.0
#: ... and this many consecutive votes for the same offset make it the session's.
OFFSET_VOTES = 2

#: Bytes kept before detection when nothing looks like a frame start yet.
_MAX_UNDETECTED = 64

#: Unknown message types are logged once per process: the (family, type) pairs seen so far,
#: bounded so that a peer inventing types costs at most this many log lines.
_MAX_UNKNOWN_LOGGED = 256
_unknown_logged: set[tuple[Protocol, str]] = set()


class Decoded(NamedTuple):
    """A decoded message, and the bytes to send back at once (None when no reply is due)."""

    message: Message
    ack: bytes | None = None


class Skipped(NamedTuple):
    """Bytes that were not a usable frame, and why (for a rate-limited log line)."""

    reason: str
    raw: bytes
    protocol: Protocol | None = None


type Item = Decoded | Skipped

#: First byte of a frame that a family's fast path may take, when detection has not run.
_FAST_START = {b"\x78": Protocol.GT06, b"\x79": Protocol.GT06, b"\x7e": Protocol.JT808}
#: What a splitter's None ("need more data") unpacks to in the loop.
_NEED_MORE = (0, None, None)
#: Building a NamedTuple through tuple.__new__ skips its Python-level __new__ (per message).
_new_tuple = tuple.__new__


@dataclass(slots=True)
class SessionStats:
    """Counters for diagnostics."""

    bytes_in: int = 0
    frames: int = 0
    messages: int = 0
    skipped: int = 0
    junk_bytes: int = 0
    checksum_failures: int = 0
    decoder_errors: int = 0
    #: frames of a message type the decoder does not know (answered where the protocol can)
    unknown_types: int = 0
    #: JT808 fragments that never came, of sub-packaged messages given up
    fragments_lost: int = 0


class Session:
    """Decode one connection's (or one UDP peer's) byte stream."""

    def __init__(
        self,
        *,
        datagram: bool = False,
        protocol: Protocol | None = None,
        jt808_utc_offset: timedelta = JT808_DEFAULT_OFFSET,
        learn_jt808_offset: bool = True,
        fast_path: bool = True,
    ) -> None:
        """Start a session; `datagram` decodes each `feed` on its own (UDP).

        `learn_jt808_offset` lets live JT808 reports correct the clock offset; the decoder CLI
        turns it off, since pasted frames are not live and its output must not depend on when
        it runs. `fast_path` off sends every read through the general path (the differential
        test compares the two).
        """
        self.datagram = datagram
        self.protocol = protocol
        self.context = Context(jt808_utc_offset=jt808_utc_offset)
        self.stats = SessionStats()
        self._buffer = b""
        self._latched = protocol is not None
        self._learn = learn_jt808_offset
        self._fast = fast_path
        #: the latched family's fast decoder (a TCP connection, once its family is known)
        self._fast_decode = FAMILIES[protocol].fast if fast_path and protocol else None
        self._offset_candidate: timedelta | None = None
        self._offset_votes = 0

    # -- public API -------------------------------------------------------------------------

    @property
    def device_id(self) -> str | None:
        """Identity the device reported (or logged in with), None before its first report."""
        return self.context.device_id

    @property
    def buffered(self) -> int:
        """Bytes waiting for the rest of their frame."""
        return len(self._buffer)

    def feed(self, data: bytes, now: datetime) -> list[Item]:
        """Take the next bytes of the stream (or one whole datagram) and decode what is complete."""
        self.stats.bytes_in += len(data)
        context = self.context
        context.now = now
        if not self._buffer:
            fast = self._fast_decode
            if fast is not None:
                # The common case, kept short: a connection whose family is known sends one
                # report per read.
                try:
                    result = fast(data, context)
                except Exception:  # noqa: BLE001  # the general path decides the rest
                    result = None
                if result is not None:
                    messages, ack, unknown = result
                    if len(messages) == 1 and unknown is None and context.jt808_fragments is None:
                        # `_fast_items` for one report, spelled out: this runs for each one
                        return [_new_tuple(Decoded, (self._one(messages[0], context), ack))]
                    return self._fast_items(result, data)
            elif self._fast:
                items = self._feed_fast(data)
                if items is not None:
                    return items
        if self.datagram:
            # Each datagram stands alone: its own detection, nothing carried to the next.
            self._buffer = b""
            if not self._latched:
                self.protocol = None
            return self._run(data, Mode.FINAL)
        buffered = self._buffer + data if self._buffer else data
        return self._run(buffered, Mode.STREAM)

    def flush(self, now: datetime) -> list[Item]:
        """Decode a tail that waited for data that did not come (call after a quiet period)."""
        if not self._buffer:
            return []
        self.context.now = now
        return self._run(self._buffer, Mode.IDLE)

    def close(self, now: datetime) -> list[Item]:
        """End of stream: decode what the quiet peer finished, report an incomplete rest.

        Sub-packaged JT808 messages still missing fragments are reported as lost.
        """
        items = self.flush(now)
        if self._buffer:
            self._junk(items, self._buffer, "incomplete frame at the end of the stream")
            self._buffer = b""
        if self.context.jt808_fragments is not None:
            self.context.now = now
            self._settle(items, final=True)
        return items

    def encode_command(self, command: Command, now: datetime) -> EncodedCommand:
        """Encode `command` for this session's device; raises CommandError when impossible."""
        if self.protocol is None or self.context.device_id is None:
            raise CommandError("the device has not identified itself yet")
        self.context.now = now
        return FAMILIES[self.protocol].encode_command(command, self.context)

    def command_outcome(
        self, command: Command, sent: EncodedCommand, message: Message
    ) -> CommandOutcome | None:
        """Tell whether `message` answers `sent`, and what it says."""
        if message.protocol is not self.protocol:
            return None
        return FAMILIES[message.protocol].command_outcome(command, sent, message)

    # -- the loop ---------------------------------------------------------------------------

    def _run(self, buf: bytes, mode: Mode) -> list[Item]:
        # The hot path of the whole integration (bench/decode.py): one call per TCP read.
        items: list[Item] = []
        pos = 0
        end = len(buf)
        while pos < end:
            view = buf[pos:] if pos else buf
            if self.protocol is None:
                found = detect(view, final=mode is not Mode.STREAM)
                if found.skip:
                    self._junk(items, view[: found.skip], "bytes before any known frame start")
                    pos += found.skip
                    continue
                if found.protocol is None:
                    if mode is Mode.STREAM and found.need_more and len(view) <= _MAX_UNDETECTED:
                        break
                    self._junk(items, view, "bytes before any known frame start")
                    pos = end
                    break
                self.protocol = found.protocol
                if not self.datagram:
                    self._latch()
            length, reason, payload = SPLITTERS[self.protocol](view, mode) or _NEED_MORE
            if not length:
                break
            pos += length
            if reason is None:
                self._decode(items, view[:length] if length < len(view) else view, payload)
            elif reason:
                self._junk(items, view[:length], reason)
        self._buffer = buf[pos:] if pos < end else b""
        if len(self._buffer) > MAX_FRAME.get(self.protocol or Protocol.JT808, 0) + 1:
            # Splitters never ask to keep more than a frame; this guards the invariant.
            self._junk(items, self._buffer, "buffer over the frame size limit")
            self._buffer = b""
        fragments = self.context.jt808_fragments
        if fragments is not None and fragments.busy:
            self._settle(items, final=False)
        return items

    def _settle(self, items: list[Item], *, final: bool) -> None:
        """Report sub-packaged JT808 messages given up; ask for missing fragments.

        A retransmission request rides with the last reply of this read, so it goes out after
        the acknowledgements of the fragments that did come.
        """
        last = next(
            (i for i in range(len(items) - 1, -1, -1) if isinstance(items[i], Decoded)), None
        )
        settled = jt808.settle(self.context, final=final, can_request=last is not None)
        if settled.request is not None and last is not None:
            item = items[last]
            assert isinstance(item, Decoded)
            items[last] = Decoded(item.message, (item.ack or b"") + settled.request)
        for lost in settled.lost:
            self.stats.fragments_lost += lost.missing
            self._junk(items, lost.frames, lost.reason)

    def _feed_fast(self, data: bytes) -> list[Item] | None:
        """Decode a read that is one whole frame of a common layout straight (`Family.fast`);
        None when it is not, or when anything is unusual: the general path then takes it.

        The steps of `_run` it skips (detection, splitting) would have found exactly this
        frame; the bookkeeping after decoding is the same code (`_deliver`).
        """
        protocol = self.protocol
        if protocol is None or (self.datagram and not self._latched):
            protocol = _FAST_START.get(data[:1])
            if protocol is None or (protocol is Protocol.GT06 and data[1:2] != data[:1]):
                return None
        fast = FAMILIES[protocol].fast
        if fast is None:
            return None
        try:
            result = fast(data, self.context)
        except Exception:  # noqa: BLE001  # the general path decides (and contains) the rest
            return None
        if result is None:
            return None
        self.protocol = protocol
        if not self.datagram:
            self._latch()
        return self._fast_items(result, data)

    def _fast_items(self, result: FrameResult, data: bytes) -> list[Item]:
        """What `_run` returns for a read that was this one frame.

        The usual case, one message of a known type with no fragments pending, is `_deliver`
        spelled out (it runs for every report).
        """
        messages, ack, unknown = result
        context = self.context
        if len(messages) == 1 and unknown is None and context.jt808_fragments is None:
            return [_new_tuple(Decoded, (self._one(messages[0], context), ack))]
        self.stats.frames += 1
        items: list[Item] = []
        self._deliver(items, result, data)
        fragments = context.jt808_fragments
        if fragments is not None and fragments.busy:
            self._settle(items, final=False)
        return items

    def _one(self, message: Message, context: Context) -> Message:
        """`_deliver`'s bookkeeping for a read that was one frame of one known message."""
        stats = self.stats
        stats.frames += 1
        stats.messages += 1
        if message.checksum_ok is False:
            stats.checksum_failures += 1
        if self._learn and message.protocol is _JT808 and message.time is not None:
            message = self._learn_jt808_offset(message)
        device_id = message.device_id
        if device_id and device_id != context.device_id:
            context.device_id = device_id
        return message

    def _latch(self) -> None:
        """Keep the detected family for the rest of the connection."""
        self._latched = True
        if self._fast and self.protocol is not None:
            self._fast_decode = FAMILIES[self.protocol].fast

    def _junk(self, items: list[Item], raw: bytes, reason: str) -> None:
        self.stats.skipped += 1
        self.stats.junk_bytes += len(raw)
        items.append(Skipped(reason, raw, self.protocol))

    def _decode(self, items: list[Item], frame: bytes, payload: bytes | None) -> None:
        assert self.protocol is not None
        self.stats.frames += 1
        try:
            result = FAMILIES[self.protocol].decode(frame, self.context, payload)
        except FrameError as err:
            self.stats.skipped += 1
            items.append(Skipped(err.reason, frame, self.protocol))
            return
        except Exception as err:  # one frame's decoder bug must not end the session
            self.stats.decoder_errors += 1
            _LOGGER.debug("Decoder error on %s frame %s", self.protocol, frame.hex(), exc_info=True)
            items.append(Skipped(f"decoder error: {err!r}", frame, self.protocol))
            return
        self._deliver(items, result, frame)

    def _deliver(self, items: list[Item], result: FrameResult, frame: bytes) -> None:
        """Count, log an unknown type, learn the JT808 clock, bind the identity, add items."""
        messages = result.messages
        stats = self.stats
        if messages and messages[0].checksum_ok is False:
            stats.checksum_failures += 1
        if result.unknown is not None:
            stats.unknown_types += 1
            self._log_unknown(result.unknown, frame, result.ack is not None)
        ack = result.ack
        context = self.context
        for message in messages:
            if self._learn and message.protocol is Protocol.JT808 and message.time is not None:
                message = self._learn_jt808_offset(message)  # noqa: PLW2901
            stats.messages += 1
            if message.device_id and message.device_id != context.device_id:
                context.device_id = message.device_id
            items.append(_new_tuple(Decoded, (message, ack)))
            ack = None

    def _log_unknown(self, kind: str, frame: bytes, answered: bool) -> None:
        """Log a message type the decoder does not know, once per process and type."""
        assert self.protocol is not None
        seen = (self.protocol, kind)
        if seen in _unknown_logged or len(_unknown_logged) >= _MAX_UNKNOWN_LOGGED:
            return
        _unknown_logged.add(seen)
        _LOGGER.info(
            "Unknown %s message type %s from %s (%s); frame %s",
            self.protocol.value,
            kind,
            self.context.device_id or "a device not yet identified",
            "answered with the protocol's generic acknowledgement" if answered else "not answered",
            frame[:64].hex(),
        )

    def _learn_jt808_offset(self, message: Message) -> Message:
        """Learn the device's clock offset from live reports; return the message corrected.

        JT808 says GMT+8, but export firmware often reports UTC or local time. Buffered and
        batch records are old by nature, so only live location reports vote.
        """
        if message.historical or message.time is None or message.type not in _LIVE_TYPES:
            return message
        delta = (self.context.now - message.time).total_seconds()
        if -1800.0 < delta < 1800.0:  # the clock agrees (the usual case): no vote
            self._offset_votes = 0
            return message
        hours = round(delta / 3600)
        proposal = self.context.jt808_utc_offset - timedelta(hours=hours)
        plausible = timedelta(hours=-12) <= proposal <= timedelta(hours=14)
        if hours == 0 or abs(delta - hours * 3600) > OFFSET_TOLERANCE or not plausible:
            self._offset_votes = 0
            return message
        if proposal == self._offset_candidate:
            self._offset_votes += 1
        else:
            self._offset_candidate, self._offset_votes = proposal, 1
        if self._offset_votes < OFFSET_VOTES:
            return message
        _LOGGER.debug(
            "JT808 device %s reports times %+d h off GMT+8 rules: using UTC%+g",
            self.context.device_id,
            hours,
            proposal.total_seconds() / 3600,
        )
        self.context.jt808_utc_offset = proposal
        self._offset_votes = 0
        return message._replace(time=message.time + timedelta(hours=hours))


_LIVE_TYPES = frozenset({MessageType.LOCATION, MessageType.ALARM})
_JT808 = Protocol.JT808
