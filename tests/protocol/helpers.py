"""Shared helpers for the protocol tests: decode bytes the way the listener and CLI do."""

from __future__ import annotations

from datetime import UTC, datetime

from custom_components.tk970.protocol.session import Decoded, Session, Skipped

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
