"""Protocol detection: which family a connection (or datagram) speaks, from its first bytes.

Port 8888 is shared by every family, as on Plaspy's endpoint, so the first frame decides and the
session latches the answer for a TCP connection (protocols.md §2). Bytes before the first
plausible frame start are junk: `detect` says how many to skip so they can be reported.
"""

from __future__ import annotations

from dataclasses import dataclass
import re

from .codec import is_bcd
from .messages import Protocol

#: How far to look for a frame start before declaring the bytes junk. A real device starts with
#: a frame; this only bounds the work done on a peer that speaks something else.
MAX_DETECT_SCAN = 1024

# H02 text: "*" + two letters (maker code, any case) + ",". GPS103 downlinks start with "**,",
# which a device never sends, so the letters matter.
_H02_TEXT = re.compile(rb"\*[A-Za-z]{2},")
_GPS103_TEXT = re.compile(rb"(?:##,)?imei:\d", re.IGNORECASE)
# A bare 15-digit IMEI (heartbeat) followed by ";", "imei:" or the end of a datagram.
_GPS103_HEARTBEAT = re.compile(rb"\d{15}(?:;|imei:|\r?\n|$)")
_WATCH = re.compile(rb"\[[A-Za-z0-9]{2}\*[0-9A-Za-z]+\*[0-9A-Fa-f]{4}\*")
_JT808_TEXT = re.compile(rb"\(\d{6,}")

#: Bytes that can begin a frame of some family; anything else is skipped at once.
_START_BYTES = frozenset(b"\x7e\x78\x79*$X#i[(0123456789")


@dataclass(frozen=True, slots=True)
class Detection:
    """Outcome of looking at the start of a buffer.

    `protocol` is None when the buffered bytes do not (yet) show a frame start. `skip` bytes of
    junk come before the frame start (or, with no protocol, can be dropped now). `need_more`
    is True when more bytes could still turn the tail into a frame start.
    """

    protocol: Protocol | None
    skip: int = 0
    need_more: bool = False


def _match_at(buf: bytes, index: int, final: bool) -> Protocol | bool:
    """Family starting at `index`; False when it cannot be one; True when more bytes are needed."""
    rest = buf[index : index + 48]
    first = rest[0]
    if first == 0x7E:
        # A JT808 header is 12+ bytes; the message id's high byte is 0x00..0x0F for uplinks
        # in use, but vendors use others (0x6006, 0x5501): only reject the 7E 7E pair here.
        if len(rest) < 2:
            return True if not final else Protocol.JT808
        return Protocol.JT808
    if first in (0x78, 0x79):
        if len(rest) < 2:
            return not final
        return Protocol.GT06 if rest[1] == first else False
    if first == 0x2A:  # "*"
        if len(rest) < 4:
            return not final
        return Protocol.H02 if _H02_TEXT.match(rest) else False
    if first in (0x24, 0x58):  # "$" or "X": H02 binary records, BCD id and date/time follow
        if len(rest) < 12:
            return not final
        return Protocol.H02 if is_bcd(rest[1:12]) else False
    if first == 0x5B:  # "["
        # The header holds a 10 to 15 digit id and maybe a frame index: up to ~31 bytes.
        if len(rest) < 40 and b"]" not in rest:
            return not final
        return Protocol.WATCH if _WATCH.match(rest) else False
    if first == 0x28:  # "("
        if len(rest) < 8:
            return not final
        return Protocol.JT808 if _JT808_TEXT.match(rest) else False
    if first in b"#i":
        prefix = b"##,imei:" if first == 0x23 else b"imei:"
        if len(rest) <= len(prefix):
            return not final and prefix.startswith(rest.lower()[: len(prefix)])
        return Protocol.GPS103 if _GPS103_TEXT.match(rest) else False
    if 0x30 <= first <= 0x39:
        if _GPS103_HEARTBEAT.match(rest):
            return Protocol.GPS103
        digits = len(rest) - len(rest.lstrip(b"0123456789"))
        return not final and digits == len(rest) and digits < 15 + 5
    return False


def detect(buf: bytes, *, final: bool = False) -> Detection:
    """Find the first frame start in `buf` and the family it belongs to.

    `final` says that no more bytes will follow (a UDP datagram, or the end of a stream): a
    truncated start is then judged on what there is.
    """
    limit = min(len(buf), MAX_DETECT_SCAN)
    for index in range(limit):
        if buf[index] not in _START_BYTES:
            continue
        found = _match_at(buf, index, final)
        if found is True:
            return Detection(None, index, need_more=True)
        if found:
            return Detection(found, index)
    return Detection(None, limit, need_more=False)
