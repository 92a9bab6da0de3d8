"""Shared helpers for the protocol tests: decode bytes the way the listener and CLI do."""

from __future__ import annotations

from datetime import UTC, datetime
import itertools

from custom_components.tk970.protocol.codec import jt808_escape, jt808_unescape, xor_checksum
from custom_components.tk970.protocol.session import Decoded, Session, Skipped

from .vectors import load

#: A fixed clock for replies that carry the current time.
NOW = datetime(2026, 11, 24, 8, 0, 0, tzinfo=UTC)


def decode_datagram(raw: bytes, now: datetime = NOW) -> tuple[list[Decoded], list[Skipped]]:
    """Decode `raw` as one datagram from a new peer (the decoder CLI's default)."""
    items = Session(datagram=True).feed(raw, now)
    return [i for i in items if isinstance(i, Decoded)], [
        i for i in items if isinstance(i, Skipped)
    ]


def decode_stream(chunks: list[bytes], now: datetime = NOW) -> tuple[list[Decoded], list[Skipped]]:
    """Decode `chunks` as successive reads of one TCP connection, then its close."""
    session = Session()
    items = [item for chunk in chunks for item in session.feed(chunk, now)]
    items += session.close(now)
    return [i for i in items if isinstance(i, Decoded)], [
        i for i in items if isinstance(i, Skipped)
    ]


# -- JT808 sub-packaged messages, built independently of the module under test -----------------

#: The TK-Star 4G terminal of jt808.jsonl lines 9-12.
TERMINAL = "009590068983"
#: Serial of the first fragment of the batches below.
FIRST_SERIAL = 0x0130
#: Largest JT808 body (10-bit length field).
MAX_BODY = 1023


def jt808_frame(
    message_id: int,
    body: bytes,
    serial: int,
    packets: tuple[int, int] | None = None,
    terminal: str = TERMINAL,
    version: int | None = None,
) -> bytes:
    """An escaped frame, built here independently of the module under test."""
    attributes = len(body) | (0x2000 if packets else 0) | (0x4000 if version is not None else 0)
    head = message_id.to_bytes(2, "big") + attributes.to_bytes(2, "big")
    if version is not None:
        head += bytes((version,))
    head += bytes.fromhex(terminal) + serial.to_bytes(2, "big")
    if packets:
        head += packets[0].to_bytes(2, "big") + packets[1].to_bytes(2, "big")
    plain = head + body
    return b"\x7e" + jt808_escape(plain + bytes((xor_checksum(plain),))) + b"\x7e"


def tkstar_reports() -> list[bytes]:
    """The 0x0200 bodies of the four TK-Star reports (after the 12-byte header)."""
    vectors = {v.line: v for v in load("jt808")}
    return [jt808_unescape(vectors[line].raw[1:-1])[12:-1] for line in (9, 10, 11, 12)]


def tkstar_batch(points: int = 32) -> tuple[bytes, list[bytes]]:
    """A blind-area 0x0704 body of `points` items (the four real reports, repeated)."""
    bodies = [body for _, body in zip(range(points), itertools.cycle(tkstar_reports()))]
    items = b"".join(len(body).to_bytes(2, "big") + body for body in bodies)
    return len(bodies).to_bytes(2, "big") + b"\x01" + items, bodies


def jt808_fragments(
    body: bytes, size: int = MAX_BODY, first_serial: int = FIRST_SERIAL
) -> list[bytes]:
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    total = len(pieces)
    return [
        jt808_frame(0x0704, piece, first_serial + index, (total, index + 1))
        for index, piece in enumerate(pieces)
    ]
