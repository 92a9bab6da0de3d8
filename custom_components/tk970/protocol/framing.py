"""Framing: where the next frame of each family ends in a byte stream, and the size limits.

A splitter looks at the bytes buffered so far, which always start where the previous frame ended,
and answers with a `Cut` (a frame, or junk to skip and report) or None ("need more data"). It
never decodes: the family modules only ever see one complete frame. The `Mode` says how much may
still arrive, which matters where a family has no reliable end marker (GT06 frames with a wrong
length byte, H02 binary records, GPS103 text without its `;`).

Limits: a splitter never asks to keep more than its family's `MAX_FRAME` bytes buffered. Past
that it cuts the buffer as junk, so a peer streaming bytes without a terminator costs bounded
memory, and since each call rescans at most `MAX_FRAME` bytes with C-speed `bytes.find`, a
peer trickling one byte at a time costs bounded work too.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import IntEnum
import re
from typing import NamedTuple

from .codec import crc_itu, is_bcd, jt808_unescape, xor_checksum
from .errors import FrameError
from .messages import Protocol

#: JT808: header (at most 17 bytes in the 2019 form, +4 when sub-packaged), body (the length
#: field has 10 bits: at most 1023 bytes) and checksum, every byte possibly escaped to two,
#: plus the two flags.
MAX_JT808 = 2 * (17 + 4 + 1023 + 1) + 2
#: GT06: 0x7979 has a 16-bit length, but the largest real frames (info 0x94, Wi-Fi lists) stay
#: under 300 bytes (gt06.jsonl); 4 KiB leaves room for long command replies and still stops a
#: peer that announces 64 KiB.
MAX_GT06 = 4096
#: H02 text frames are under 200 bytes in every capture; binary records are 32 to 51 bytes.
MAX_H02 = 1024
#: GPS103: "vr" photo/voice lines carry hex data (1049 bytes in gps103.jsonl).
MAX_GPS103 = 4096
#: Watch: positions are short, but voice and picture uploads are longer; we do not decode
#: those and skip anything bigger.
MAX_WATCH = 16384

MAX_FRAME: dict[Protocol, int] = {
    Protocol.JT808: MAX_JT808,
    Protocol.GT06: MAX_GT06,
    Protocol.H02: MAX_H02,
    Protocol.GPS103: MAX_GPS103,
    Protocol.WATCH: MAX_WATCH,
}

#: Largest junk run reported in one piece. Junk is skipped up to the next plausible frame
#: start; reporting it in bounded pieces keeps log lines and memory small.
MAX_JUNK_REPORT = 64


class Mode(IntEnum):
    """How much more data may still arrive after the buffered bytes."""

    #: more may arrive at any moment: wait where in doubt
    STREAM = 0
    #: the peer has gone quiet (see `session.IDLE_FLUSH_SECONDS`): resolve doubts that only
    #: more data could settle, but keep a frame that is plainly incomplete
    IDLE = 1
    #: nothing more will arrive (end of a UDP datagram, or the connection closed)
    FINAL = 2


class Cut(NamedTuple):
    """The splitter's answer: the next `length` bytes are a frame, or junk to skip.

    `reason` is None for a frame; for junk it says why (an empty string means a silent skip,
    such as the CR LF some firmware sends after a text frame). `payload` carries work the
    splitter already did, such as JT808 un-escaping, so the decoder need not repeat it.
    """

    length: int
    reason: str | None = None
    payload: bytes | None = None

    @property
    def is_frame(self) -> bool:
        """Tell whether the cut bytes are a frame (else junk)."""
        return self.reason is None


Splitter = Callable[[bytes, Mode], Cut | None]


def _junk(length: int, reason: str) -> Cut:
    return Cut(max(1, length), reason)


def _skip_to(buf: bytes, starts: tuple[bytes, ...], reason: str) -> Cut:
    """Junk from the beginning of `buf` up to the first of `starts` (or all of it)."""
    found = [index for start in starts if (index := buf.find(start, 1)) > 0]
    return _junk(min(found) if found else len(buf), reason)


# ---------------------------------------------------------------------------------------------
# JT/T 808: 7E ... 7E, escaped (protocols.md §3.1)
# ---------------------------------------------------------------------------------------------


def _jt808_expected_length(payload: bytes) -> int | None:
    """Unescaped frame length that the header announces, or None when too short to tell."""
    if len(payload) < 4:
        return None
    attributes = int.from_bytes(payload[2:4], "big")
    if payload[0] == 0x55 and payload[1] in (0x01, 0x02):
        # JT600-style 0x5501/0x5502: a 1-byte serial, and the upper attribute bits are the
        # vendor's own (jt808.jsonl line 39).
        return 11 + (attributes & 0x3FF) + 1
    header = 12
    if attributes & 0x4000:  # 2019 header: version byte and a 10-byte terminal id
        header += 5
    if attributes & 0x2000:  # sub-packaged: packet count and index
        header += 4
    return header + (attributes & 0x3FF) + 1


#: Vendor text frames on the JT808 port: "(" + id digits + printable text + ")" (jt808.jsonl 47).
_MAX_JT808_TEXT = 512
_JT808_TEXT = re.compile(rb"\([0-9][ -'*-~]{0,%d}\)" % (_MAX_JT808_TEXT - 3))
_JT808_TEXT_START = re.compile(rb"\((?:[0-9][ -'*-~]*)?")


def _jt808_consistent(payload: bytes) -> bool:
    """Tell whether un-escaped bytes have the announced length and a matching checksum."""
    return (
        len(payload) == _jt808_expected_length(payload)
        and xor_checksum(payload[:-1]) == payload[-1]
    )


def split_jt808(buf: bytes, mode: Mode) -> Cut | None:
    """Cut the next JT808 frame (flags included) or the junk before it."""
    first = buf[0]
    if first == 0x28:  # "(": vendor ASCII frames that traccar accepts on the JT808 port
        if (text := _JT808_TEXT.match(buf)) is not None:
            return Cut(text.end())
        if _JT808_TEXT_START.fullmatch(buf[:_MAX_JT808_TEXT]) and mode is Mode.STREAM:
            return None  # printable so far, its ")" may still come
        # A "(" in binary junk is not a text frame; it must not swallow the frames after it.
        return _skip_to(buf, (b"\x7e", b"("), "bytes before a JT808 frame start")
    if first != 0x7E:
        return _skip_to(buf, (b"\x7e", b"("), "bytes before a JT808 frame start")
    if buf[1:2] == b"(":
        # No message id starts with 0x28: this flag closed a frame and a text frame follows.
        return Cut(1, "")
    end = buf.find(b"\x7e", 1)
    if end < 0:
        expected = _jt808_expected_length(buf[1:5])
        if expected is not None and len(buf) > 2 * expected + 2:
            # Longer than the header's frame could be even fully escaped: its closing flag
            # was lost. Give up on this start so the bytes after it can be framed.
            return Cut(1, "JT808 frame without its closing flag")
        return _incomplete(buf, mode, MAX_JT808, ())
    if end == 1:
        # "7E 7E": the first flag ended a frame we never saw (we joined mid-stream).
        return Cut(1, "")
    raw = buf[1:end]
    try:
        payload = jt808_unescape(raw)
    except FrameError as err:
        if not _jt808_consistent(raw):
            return Cut(end, err.reason)
        payload = raw
    if payload is not raw and not _jt808_consistent(payload) and _jt808_consistent(raw):
        # Some firmware (Jimi) never escapes 7D: read literally, such a frame has the announced
        # length and a matching checksum, un-escaped it has neither (jt808.jsonl lines 35, 40,
        # 45, 97-100).
        payload = raw
    expected = _jt808_expected_length(payload)
    if expected is None or len(payload) < 13:
        # Too short for any header: junk, but the closing flag may open the next frame.
        return Cut(end, "JT808 frame too short")
    if len(payload) < expected:
        # Some firmware sends a raw 7E inside the body. Accept a later flag when it makes the
        # length field exact; otherwise stop at the first flag, as traccar does. "7E 7E" is a
        # frame boundary, never data: the second flag opens the next frame.
        later = end
        while (later := buf.find(b"\x7e", later + 1)) > 0 and buf[later - 1] != 0x7E:
            try:
                candidate = jt808_unescape(buf[1:later])
            except FrameError:
                break
            if len(candidate) == expected and (mode is Mode.FINAL or _jt808_consistent(candidate)):
                # In a stream the checksum must agree too, so that a damaged length field
                # cannot swallow the next frame; a datagram holds one frame (jt808.jsonl 101).
                return Cut(later + 1, None, candidate)
            if len(candidate) > expected:
                break
        else:
            if mode is Mode.STREAM and len(buf) < expected + 2:
                # The announced frame cannot have arrived yet: wait for its end (a peer that
                # sends a wrong length is resolved by the next frame or by the idle flush).
                return None
    return Cut(end + 1, None, payload)


# ---------------------------------------------------------------------------------------------
# GT06 / Concox: 78 78 | len | ... | CRC | 0D 0A, or 79 79 with a 16-bit length (protocols.md §5.1)
# ---------------------------------------------------------------------------------------------

_GT06_STARTS = (b"\x78\x78", b"\x79\x79")


def _gt06_crc_ok(frame: bytes, long_form: bool) -> bool:
    """Check the CRC of a candidate frame that ends in 0D 0A."""
    if len(frame) < (10 if long_form else 9):
        return False
    return crc_itu(frame[2:-4]) == int.from_bytes(frame[-4:-2], "big")


def split_gt06(buf: bytes, mode: Mode) -> Cut | None:
    """Cut the next GT06 frame: by its length field, its Wi-Fi layout, its CRC, else at 0D 0A."""
    if buf[:2] not in _GT06_STARTS:
        if len(buf) == 1 and buf in (b"\x78", b"\x79") and mode is Mode.STREAM:
            return None
        return _skip_to(buf, _GT06_STARTS, "bytes before a GT06 frame start")
    long_form = buf[0] == 0x79
    header = 4 if long_form else 3
    if len(buf) < header:
        return _incomplete(buf, mode, MAX_GT06, _GT06_STARTS)
    declared = int.from_bytes(buf[2:header], "big") + header + 2
    if declared > MAX_GT06:
        return _skip_to(buf, _GT06_STARTS, "GT06 length field over the frame size limit")
    # 0x69/0x17 Wi-Fi frames put the access-point count in the length byte and carry no serial
    # or CRC (gt06:73, gt06:101); a 0x17 whose length and CRC agree is a GPS report (gt06:23).
    wifi = not long_form and len(buf) > header and buf[header] in (0x69, 0x17)
    # 1. The length field, when it ends on 0D 0A: the normal case.
    if (
        len(buf) >= declared
        and buf[declared - 2 : declared] == b"\r\n"
        and (not wifi or _gt06_crc_ok(buf[:declared], long_form))
    ):
        return Cut(declared)
    # 2. A Wi-Fi frame's size follows from the counts it holds: date (6) + APs x 7 + cell count
    #    + MCC + MNC + cells x 5.
    if wifi:
        cell_count_at = header + 1 + 6 + buf[2] * 7
        if len(buf) > cell_count_at:
            end = cell_count_at + 1 + 3 + buf[cell_count_at] * 5 + 2
            if len(buf) >= end and buf[end - 2 : end] == b"\r\n":
                return Cut(end)
        elif mode is Mode.STREAM:
            return None
    # 3. Any other wrong length byte (gt06:188, gt06:37). Content is binary and may contain
    #    0D 0A, so a terminator is trusted when the CRC before it matches; else only the first
    #    one, as traccar does, once a frame start follows it or the peer has gone quiet.
    first_end = buf.find(b"\r\n", header + 1)
    end = first_end
    while end > 0:
        if _gt06_crc_ok(buf[: end + 2], long_form):
            return Cut(end + 2)
        end = buf.find(b"\r\n", end + 1)
    if first_end > 0 and (
        mode is not Mode.STREAM or buf[first_end + 2 : first_end + 4] in _GT06_STARTS
    ):
        return Cut(first_end + 2)
    if first_end < 0 and mode is Mode.FINAL and len(buf) >= 5:
        # A truncated last frame (no 0D 0A at all): decode what there is; the CRC flags it.
        return Cut(len(buf))
    return _incomplete(buf, mode, MAX_GT06, _GT06_STARTS)


# ---------------------------------------------------------------------------------------------
# H02: "*XX,...#" text and "$" binary records, interleaved (protocols.md §4)
# ---------------------------------------------------------------------------------------------

#: Binary record sizes: 32 (10-digit id), 42 (IMEI), 45, 46 and 48 (cell or extra data) in
#: h02.jsonl, 51 from a 4G unit (traccar issue 5417). Tried shortest first. Records have no
#: terminator and no checksum, so a length is taken when a plausible frame start follows it.
H02_BINARY_LENGTHS = (32, 42, 45, 46, 48, 51)
#: "*" text, "$" binary, "X" the 32-byte alternative record traccar frames but does not decode.
_H02_MARKERS = (b"*", b"$", b"X")
#: A binary record's marker is followed by this many BCD bytes: the id, then the time (or the
#: rest of an IMEI). The hour byte is at most 0x23, so a record never starts like ASCII digits.
_H02_BCD_HEAD = 11
_ASCII_LETTERS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


def _h02_frame_start(buf: bytes, index: int, stop: int | None = None) -> bool | None:
    """Tell whether a frame starts at `index`; None when the bytes before `stop` cannot tell.

    Binary data is full of 0x24 ("$"), 0x2A ("*") and 0x58 ("X") bytes, so a marker alone
    proves nothing: text needs `*` + two letters + `,`, a record needs BCD after its marker.
    """
    end = index + 1 + _H02_BCD_HEAD
    head = buf[index : end if stop is None else min(end, stop)]
    if not head:
        return None
    if head[0] == 0x2A:  # "*"
        head = head[:4]
        if any(byte not in _ASCII_LETTERS for byte in head[1:3]) or head[3:4] not in (b"", b","):
            return False
        return True if len(head) == 4 else None
    if head[0] in b"$X":
        if len(head) > 1 and not is_bcd(head[1:]):
            return False
        return True if len(head) == 1 + _H02_BCD_HEAD else None
    return False


def _h02_next_start(buf: bytes, begin: int, stop: int, *, partial: bool) -> int:
    """First index in [begin, stop) where a frame starts (or may, when `partial`), else -1."""
    found = {marker: buf.find(marker, begin, stop) for marker in _H02_MARKERS}
    while True:
        candidates = [index for index in found.values() if index >= 0]
        if not candidates:
            return -1
        index = min(candidates)
        verdict = _h02_frame_start(buf, index, None if partial else stop)
        if verdict or (partial and verdict is None):
            return index
        marker = buf[index : index + 1]
        found[marker] = buf.find(marker, index + 1, stop)


def _split_h02_text(buf: bytes, mode: Mode) -> Cut | None:
    """Cut the text frame at the start of `buf`, up to its `#`."""
    end = buf.find(b"#")
    # A frame start before the `#` means this frame lost its end (a device reset mid-frame):
    # the `#` found would be a 0x23 byte of a later binary record.
    inner = _h02_next_start(buf, 1, end if end > 0 else len(buf), partial=False)
    if inner > 0:
        return _junk(inner, "H02 text frame without its #")
    if end > 0:
        return Cut(end + 1)
    return _incomplete(buf, mode, MAX_H02, _H02_MARKERS)


def _split_h02_binary(buf: bytes, mode: Mode) -> Cut | None:
    """Cut the binary record at the start of `buf` (its marker and BCD head already checked)."""
    size = len(buf)
    shortest = H02_BINARY_LENGTHS[0]
    if buf[0] == 0x58:  # "X": always 32 bytes (traccar H02FrameDecoder)
        if size >= shortest:
            return Cut(shortest)
        return _junk(size, "incomplete H02 binary record") if mode is Mode.FINAL else None
    if mode is not Mode.STREAM and size in H02_BINARY_LENGTHS:
        return Cut(size)
    for length in H02_BINARY_LENGTHS:
        if length >= size:
            break
        verdict = _h02_frame_start(buf, length)
        if verdict:
            return Cut(length)
        if verdict is None:
            # The next frame's start is still arriving: wait for it, unless nothing more comes.
            return None if mode is Mode.STREAM else Cut(length)
    if size < shortest:
        return _junk(size, "incomplete H02 binary record") if mode is Mode.FINAL else None
    if mode is Mode.STREAM and size <= H02_BINARY_LENGTHS[-1]:
        return None
    # No record boundary is confirmed by a following frame start: fall back to the 32-byte
    # layout (traccar's default) once waiting cannot tell more.
    return Cut(shortest)


def split_h02(buf: bytes, mode: Mode) -> Cut | None:
    """Cut the next H02 text frame (up to `#`) or binary record, or the junk before one."""
    if buf[0] in b"\r\n":
        return Cut(len(buf) - len(buf.lstrip(b"\r\n")), "")
    start = _h02_frame_start(buf, 0)
    if start is None:
        return _junk(len(buf), "incomplete H02 frame start") if mode is Mode.FINAL else None
    if not start:
        # Skip to the next plausible start; one still arriving at the end is kept.
        skip = _h02_next_start(buf, 1, len(buf), partial=True)
        return _junk(skip if skip > 0 else len(buf), "bytes before an H02 frame start")
    if buf[0] == 0x2A:  # "*"
        return _split_h02_text(buf, mode)
    return _split_h02_binary(buf, mode)


# ---------------------------------------------------------------------------------------------
# GPS103: "imei:...;" text, "##,imei:...,A;" login, bare IMEI heartbeat (protocols.md §6.1)
# ---------------------------------------------------------------------------------------------

_GPS103_ENDS = b";\r\n*"


def split_gps103(buf: bytes, mode: Mode) -> Cut | None:
    """Cut the next GPS103 message at `;`, CR, LF or `*` (and a bare IMEI glued to a report)."""
    first = buf[0]
    if first in _GPS103_ENDS:
        run = len(buf) - len(buf.lstrip(_GPS103_ENDS))
        return Cut(run, "")
    if 0x30 <= first <= 0x39:
        # A bare IMEI heartbeat, possibly glued to the next report (`359...322imei:...`).
        glued = buf.find(b"imei:")
        digits = len(buf) - len(buf.lstrip(b"0123456789"))
        if 0 < glued == digits:
            return Cut(glued)
    end = min((i for i in (buf.find(bytes([c])) for c in _GPS103_ENDS) if i >= 0), default=-1)
    if end >= 0:
        return Cut(end + 1 if buf[end] in b";*" else end)
    if mode is not Mode.STREAM and len(buf) <= MAX_GPS103:
        # traccar's captures often omit the trailing `;`: a quiet peer has finished its line.
        return Cut(len(buf))
    return _incomplete(buf, mode, MAX_GPS103, ())


# ---------------------------------------------------------------------------------------------
# Watch: "[XX*ID*LLLL*content]" (protocols.md §7)
# ---------------------------------------------------------------------------------------------


def split_watch(buf: bytes, mode: Mode) -> Cut | None:
    """Cut the next Watch frame, from `[` to `]`.

    Binary content (voice, pictures) may hold a raw `]`. A first `]` followed by anything but
    the next frame, a line end or the end of the buffer is such a byte: the length field then
    decides where the frame ends, and a stream waits for it. The length is trusted nowhere else,
    since many text frames carry a wrong one (traccar's WatchProtocolDecoderTest).
    """
    if buf[0] != 0x5B:
        if buf[0] in b"\r\n":
            return Cut(len(buf) - len(buf.lstrip(b"\r\n")), "")
        return _skip_to(buf, (b"[",), "bytes before a Watch frame start")
    end = buf.find(b"]")
    if end < 0:
        return _incomplete(buf, mode, MAX_WATCH, (b"[",))
    star = buf.find(b"*", 4)  # after the id: `[index*]length*content`
    if end + 1 < len(buf) and buf[end + 1] not in b"[\r\n" and star > 0:
        length_at = -1  # the last of up to two `hhhh*` fields is the length
        for start in (star + 1, star + 6):
            field = buf[start : start + 5]  # four hex digits and `*`
            if len(field) < 5 or field[4] != 0x2A or field[:4].strip(b"0123456789abcdefABCDEF"):
                break
            length_at = start
        if length_at > 0:
            close = length_at + 5 + int(buf[length_at : length_at + 4], 16)
            if close < len(buf) and buf[close] == 0x5D:
                return Cut(close + 1)
            if len(buf) <= close <= MAX_WATCH and mode is Mode.STREAM:
                return None
    return Cut(end + 1)


# ---------------------------------------------------------------------------------------------


def _incomplete(buf: bytes, mode: Mode, limit: int, starts: tuple[bytes, ...]) -> Cut | None:
    """Wait for more data, or give up on the buffered bytes when waiting cannot help."""
    if len(buf) > limit:
        return (
            _skip_to(buf, starts, "frame over the size limit")
            if starts
            else _junk(len(buf), "frame over the size limit")
        )
    if mode is Mode.FINAL:
        return _junk(len(buf), "incomplete frame")
    return None


SPLITTERS: dict[Protocol, Splitter] = {
    Protocol.JT808: split_jt808,
    Protocol.GT06: split_gt06,
    Protocol.H02: split_h02,
    Protocol.GPS103: split_gps103,
    Protocol.WATCH: split_watch,
}
