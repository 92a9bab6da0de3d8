"""Detection of the protocol family from the first bytes (protocols.md §2)."""

from __future__ import annotations

import pytest

from custom_components.tk970.protocol.detect import MAX_DETECT_SCAN, Detection, detect
from custom_components.tk970.protocol.messages import Protocol

from .vectors import FAMILIES, load


@pytest.mark.parametrize(
    ("data", "protocol"),
    [
        (b"\x7e\x01\x00\x00\x2d", Protocol.JT808),
        (b"\x78\x78\x0d\x01", Protocol.GT06),
        (b"\x79\x79\x00\x10", Protocol.GT06),
        (b"*HQ,4109198974,V1,", Protocol.H02),
        (b"*hq,4109198974,V1,", Protocol.H02),
        (b"*TH,2020916012,V4,", Protocol.H02),
        (b"$" + bytes.fromhex("4109198974121314220902"), Protocol.H02),
        (b"##,imei:359586015829802,A;", Protocol.GPS103),
        (b"imei:359586015829802,tracker,", Protocol.GPS103),
        (b"359586015829802;", Protocol.GPS103),
        (b"359769031878322imei:359769031878322,", Protocol.GPS103),
        (b"[SG*8800000015*0002*LK]", Protocol.WATCH),
        (b"(12345678,BASE,2)", Protocol.JT808),
    ],
)
def test_detects_each_family(data: bytes, protocol: Protocol) -> None:
    """Each family's first bytes, with no junk before them."""
    assert detect(data, final=True) == Detection(protocol, 0)


def test_gps103_downlink_is_not_h02() -> None:
    """`**,imei:` is what a server sends to GPS103 devices; no device starts with it."""
    assert detect(b"**,imei:359586015829802,B", final=True).protocol is Protocol.GPS103
    assert detect(b"**,imei:359586015829802,B", final=True).skip == 3


def test_junk_before_a_frame_is_counted() -> None:
    """Bytes that start no frame are skipped, and how many is reported."""
    assert detect(b"GET / HTTP/1.1\r\n\x78\x78\x0d\x01", final=True) == Detection(Protocol.GT06, 16)


def test_h02_binary_needs_bcd() -> None:
    """`$$~` is junk before a JT808 frame, not an H02 record: the id must be BCD."""
    assert detect(bytes.fromhex("24247e307d02087d01557e"), final=True) == Detection(
        Protocol.JT808, 2
    )


@pytest.mark.parametrize("prefix", [b"\x78", b"*H", b"##,im", b"3595", b"$\x41\x09"])
def test_truncated_start_waits(prefix: bytes) -> None:
    """A start cut short asks for more bytes in a stream."""
    assert detect(prefix) == Detection(None, 0, need_more=True)


def test_scan_is_bounded() -> None:
    """Garbage without any start is skipped in bounded steps."""
    found = detect(b"\x00" * (MAX_DETECT_SCAN * 3))
    assert found == Detection(None, MAX_DETECT_SCAN)


@pytest.mark.parametrize("family", FAMILIES)
def test_every_uplink_vector_is_detected(family: str) -> None:
    """Every captured uplink frame is recognised as its own family."""
    vectors = [vector for vector in load(family) if vector.uplink]
    assert vectors or not load(family)
    for vector in vectors:
        found = detect(vector.raw, final=True)
        assert found.protocol is Protocol(family), vector.id
