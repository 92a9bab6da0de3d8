"""Byte helpers: checksums against published check values and captured replies, BCD, escaping."""

from __future__ import annotations

import pytest

from custom_components.tk970.protocol.codec import (
    bcd_datetime,
    bcd_digits,
    crc_itu,
    jt808_escape,
    jt808_unescape,
    mac_text,
    make_utc,
    nmea_degrees,
    xor_checksum,
)
from custom_components.tk970.protocol.errors import FrameError


def test_crc_itu_check_value() -> None:
    """CRC-16/X-25 of the standard check string."""
    assert crc_itu(b"123456789") == 0x906E


@pytest.mark.parametrize(
    "reply",
    ["7878050100059FF80D0A", "787805130100E1A00D0A", "78780526001C9D860D0A"],
)
def test_crc_itu_matches_concox_replies(reply: str) -> None:
    """Replies printed in the Concox JM-VL03 document (protocols.md §5.1)."""
    frame = bytes.fromhex(reply)
    assert crc_itu(frame[2:-4]) == int.from_bytes(frame[-4:-2], "big")


def test_xor_checksum() -> None:
    """The captured 0x8001 reply of protocols.md §3.4 ends with its XOR checksum."""
    frame = bytes.fromhex("7e8001000502453031334900010001010200bb7e")
    assert xor_checksum(frame[1:-2]) == frame[-2]


def test_jt808_escaping_round_trip() -> None:
    """7E and 7D are escaped on the way out and restored on the way in (protocols.md §3.1)."""
    raw = bytes.fromhex("307e087d55")
    assert jt808_escape(raw) == bytes.fromhex("307d02087d0155")
    assert jt808_unescape(jt808_escape(raw)) == raw
    assert jt808_unescape(b"\x01\x02") == b"\x01\x02"


@pytest.mark.parametrize("bad", ["7d03", "7d", "307d7d02"])
def test_jt808_bad_escape(bad: str) -> None:
    """A 7D not followed by 01 or 02 cannot come from a JT808 sender."""
    with pytest.raises(FrameError):
        jt808_unescape(bytes.fromhex(bad))


def test_bcd() -> None:
    """Packed BCD digits and dates."""
    assert bcd_digits(bytes.fromhex("013511221122")) == "013511221122"
    assert bcd_datetime(bytes.fromhex("260615100115")) == (2026, 6, 15, 10, 1, 15)
    with pytest.raises(FrameError):
        bcd_digits(b"\x1a")


def test_make_utc_rejects_impossible_dates() -> None:
    """Month 13 is a decoding error, not an exception escaping the decoder."""
    assert make_utc(2026, 2, 28, 23, 59, 59).isoformat() == "2026-02-28T23:59:59+00:00"
    with pytest.raises(FrameError):
        make_utc(2026, 13, 1)


def test_nmea_degrees() -> None:
    """ddmm.mmmm to signed degrees."""
    assert nmea_degrees("3542.2043", "N") == pytest.approx(35.703405)
    assert nmea_degrees("11346.6574", "W") == pytest.approx(-113.777623, abs=1e-6)
    with pytest.raises(FrameError):
        nmea_degrees("12x4", "N")


def test_mac_text() -> None:
    """MAC addresses are lower case with colons."""
    assert mac_text(bytes.fromhex("A0B1C2D3E4F5")) == "a0:b1:c2:d3:e4:f5"
