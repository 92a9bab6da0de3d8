"""The session: latching, datagrams, idle flush, close, counters, containment, clock learning."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from custom_components.tk970.protocol import session as session_module
from custom_components.tk970.protocol.context import Family
from custom_components.tk970.protocol.messages import MessageType, Protocol
from custom_components.tk970.protocol.session import Decoded, Session, Skipped
from simulator import Fix, frames

NOW = datetime(2026, 11, 24, 8, 0, 0, tzinfo=UTC)
GT06_LOGIN = bytes.fromhex("78780d01086471700328358100093f040d0a")
H02 = b"*HQ,4109198974,V1,080000,A,2212.8745,N,11346.6574,E,14.28,028,241126,FFFFFBFF#"


def test_tcp_latches_the_first_family() -> None:
    """After a GT06 login, H02 bytes on the same connection are junk, not a new protocol."""
    session = Session()
    items = session.feed(GT06_LOGIN + H02, NOW)
    assert session.protocol is Protocol.GT06
    assert isinstance(items[0], Decoded)
    assert all(isinstance(item, Skipped) for item in items[1:])
    assert session.device_id == "864717003283581"


def test_datagrams_are_detected_one_by_one() -> None:
    """A UDP peer's datagrams each stand alone, whatever the previous one spoke."""
    session = Session(datagram=True)
    assert isinstance(session.feed(GT06_LOGIN, NOW)[0], Decoded)
    assert session.feed(H02, NOW)[0].message.protocol is Protocol.H02  # type: ignore[union-attr]
    assert session.buffered == 0


def test_idle_flush_and_close() -> None:
    """A line without its terminator waits; a quiet peer's flush decodes it; close reports rest."""
    session = Session()
    line = b"imei:359586015829802,tracker,2611240800,,F,080000.000,A,5231.0000,N,01322.0000,E,0,0"
    assert session.feed(line, NOW) == []
    assert session.buffered == len(line)
    flushed = session.flush(NOW)
    assert isinstance(flushed[0], Decoded)
    assert flushed[0].message.type is MessageType.LOCATION
    assert session.flush(NOW) == []
    session.feed(GT06_LOGIN[:5], NOW)
    # A GPS103 connection: GT06 bytes are nothing but junk, reported on feed or at close.
    assert all(isinstance(item, Skipped) for item in session.close(NOW))
    assert session.buffered == 0
    gt06 = Session()
    gt06.feed(GT06_LOGIN + GT06_LOGIN[:6], NOW)
    rest = gt06.close(NOW)
    assert rest == [
        Skipped("incomplete frame at the end of the stream", GT06_LOGIN[:6], Protocol.GT06)
    ]


def test_counters() -> None:
    """Frames, messages, skips, junk bytes and bad checksums are counted for diagnostics."""
    bad_crc = bytearray(GT06_LOGIN)
    bad_crc[-3] ^= 0xFF
    session = Session()
    session.feed(b"junk" + GT06_LOGIN + bytes(bad_crc), NOW)
    stats = session.stats
    assert (stats.frames, stats.messages, stats.checksum_failures) == (2, 2, 1)
    assert (stats.skipped, stats.junk_bytes, stats.bytes_in) == (1, 4, 4 + 2 * len(GT06_LOGIN))


def test_a_decoder_bug_costs_only_its_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    """An unexpected exception in a decoder becomes a skip; the next frame still decodes."""
    real = session_module.FAMILIES[Protocol.H02]
    calls = []

    def flaky(frame: bytes, ctx: object, payload: bytes | None) -> object:
        calls.append(frame)
        if len(calls) == 1:
            raise ZeroDivisionError("boom")
        return real.decode(frame, ctx, payload)  # type: ignore[arg-type]

    monkeypatch.setitem(session_module.FAMILIES, Protocol.H02, Family(flaky, *real[1:]))  # type: ignore[arg-type]
    session = Session()
    items = session.feed(H02 + H02, NOW)
    assert isinstance(items[0], Skipped)
    assert items[0].reason.startswith("decoder error: ZeroDivisionError")
    assert isinstance(items[1], Decoded)
    assert session.stats.decoder_errors == 1


def jt808_report(at: datetime, offset: timedelta) -> bytes:
    """A JT808 location whose device clock runs at UTC + offset."""
    fix = Fix(time=at, latitude=52.5, longitude=13.4)
    return frames.jt808_location("013511221122", 1, fix, utc_offset=offset)


def test_jt808_clock_offset_is_learned_from_live_reports() -> None:
    """A device reporting UTC (not GMT+8): two live reports teach the session its offset."""
    session = Session()
    first = session.feed(jt808_report(NOW, timedelta(0)), NOW)[0]
    assert first.message.time == NOW - timedelta(hours=8)  # type: ignore[union-attr]
    second = session.feed(jt808_report(NOW, timedelta(0)), NOW)[0]
    assert second.message.time == NOW  # type: ignore[union-attr]
    assert session.context.jt808_utc_offset == timedelta(0)
    later = NOW + timedelta(minutes=1)
    third = session.feed(jt808_report(later, timedelta(0)), later)[0]
    assert third.message.time == later  # type: ignore[union-attr]


def test_jt808_offset_ignores_odd_and_historical_times() -> None:
    """A report a few minutes old, or a batch of old fixes, teaches nothing."""
    session = Session()
    for _ in range(3):
        session.feed(jt808_report(NOW - timedelta(minutes=20), timedelta(hours=8)), NOW)
    batch = frames.jt808_batch(
        "013511221122", 2, [Fix(time=NOW - timedelta(hours=3), latitude=1, longitude=2)] * 3
    )
    for _ in range(3):
        session.feed(batch, NOW)
    assert session.context.jt808_utc_offset == timedelta(hours=8)
