"""Framing: every family's splitter on whole, split, packed, junk-prefixed and endless input."""

from __future__ import annotations

import pytest

from custom_components.tk970.protocol.codec import crc_itu, jt808_escape, xor_checksum
from custom_components.tk970.protocol.framing import (
    MAX_FRAME,
    SPLITTERS,
    Cut,
    Mode,
    split_gps103,
    split_gt06,
    split_h02,
    split_jt808,
    split_watch,
)
from custom_components.tk970.protocol.messages import Protocol


def gt06(kind: int, content: bytes, serial: int = 1, *, long_form: bool = False) -> bytes:
    """A GT06 frame with a correct length and CRC."""
    body = bytes([kind]) + content + serial.to_bytes(2, "big")
    length = (len(body) + 2).to_bytes(2 if long_form else 1, "big")
    crc = crc_itu(length + body).to_bytes(2, "big")
    return (b"\x79\x79" if long_form else b"\x78\x78") + length + body + crc + b"\r\n"


def jt808(message_id: int, body: bytes, terminal: str = "013511221122", serial: int = 7) -> bytes:
    """An escaped JT808 frame with a correct checksum."""
    header = (
        message_id.to_bytes(2, "big")
        + len(body).to_bytes(2, "big")
        + bytes.fromhex(terminal)
        + serial.to_bytes(2, "big")
    )
    plain = header + body
    return b"\x7e" + jt808_escape(plain + bytes([xor_checksum(plain)])) + b"\x7e"


def cut_all(splitter: object, data: bytes, mode: Mode) -> list[tuple[bytes, str | None]]:
    """Apply a splitter until it needs more data; return (bytes, reason) per cut."""
    assert callable(splitter)
    out: list[tuple[bytes, str | None]] = []
    while data:
        cut = splitter(data, mode)
        if cut is None:
            break
        assert isinstance(cut, Cut)
        assert cut.length > 0, "a cut always makes progress"
        out.append((data[: cut.length], cut.reason))
        data = data[cut.length :]
    return out


# -- JT808 -------------------------------------------------------------------------------------


def test_jt808_whole_frame_and_payload() -> None:
    """The splitter un-escapes once and hands the payload on."""
    frame = jt808(0x0002, b"", serial=0x7E7D)  # serial bytes need escaping
    cut = split_jt808(frame, Mode.STREAM)
    assert cut == Cut(len(frame), None, cut.payload if cut else None)
    assert cut is not None
    assert cut.payload is not None
    assert cut.payload[10:12] == b"\x7e\x7d"


def test_jt808_waits_for_the_closing_flag() -> None:
    """Half a frame is kept, not reported."""
    frame = jt808(0x0200, bytes(28))
    assert split_jt808(frame[:10], Mode.STREAM) is None
    assert split_jt808(frame[:10], Mode.FINAL) == Cut(10, "incomplete frame")


def test_jt808_junk_before_and_double_flag() -> None:
    """Junk up to the first 7E is reported; a lone end flag is skipped silently."""
    frame = jt808(0x0002, b"")
    cuts = cut_all(split_jt808, b"$$" + b"\x7e" + frame, Mode.STREAM)
    assert cuts == [(b"$$", "bytes before a JT808 frame start"), (b"\x7e", ""), (frame, None)]


def test_jt808_short_garbage_keeps_the_next_frame() -> None:
    """A too-short 'frame' does not swallow the flag that opens the next one."""
    frame = jt808(0x0002, b"")
    cuts = cut_all(split_jt808, b"\x7e\x01\x02" + frame, Mode.STREAM)
    assert cuts[-1] == (frame, None)


def test_jt808_raw_flag_inside_body() -> None:
    """Firmware that forgets to escape a 7E in the body: the length field picks the real end."""
    plain_body = b"\x01\x7e\x02"
    header = (0x0900).to_bytes(2, "big") + (3).to_bytes(2, "big") + bytes(6) + b"\x00\x01"
    plain = header + plain_body
    frame = b"\x7e" + plain + bytes([xor_checksum(plain)]) + b"\x7e"
    assert cut_all(split_jt808, frame, Mode.FINAL) == [(frame, None)]


def test_jt808_text_frames() -> None:
    """Vendor '(...)' frames on the JT808 port are cut at ')'."""
    assert cut_all(split_jt808, b"(12345678,BASE,2)", Mode.STREAM) == [(b"(12345678,BASE,2)", None)]


# -- GT06 --------------------------------------------------------------------------------------


def test_gt06_by_length() -> None:
    """Short and long forms, packed in one read, each cut by its length field."""
    first = gt06(0x13, bytes(5))
    second = gt06(0x21, b"\x00\x00\x00\x01\x01ok", long_form=True)
    assert cut_all(split_gt06, first + second, Mode.STREAM) == [(first, None), (second, None)]


def test_gt06_content_with_crlf() -> None:
    """0D 0A inside the content does not end the frame when the length field is right."""
    frame = gt06(0x13, b"\r\n\r\n\x00")
    for size in range(1, len(frame)):
        assert split_gt06(frame[:size], Mode.STREAM) is None
    assert split_gt06(frame, Mode.STREAM) == Cut(len(frame))


def test_gt06_wrong_length_byte_resolved_by_crc() -> None:
    """A length byte one short: the CRC confirms the real 0D 0A at once."""
    frame = bytearray(gt06(0x13, bytes(5)))
    frame[2] -= 1
    # The CRC covers the length byte, so recompute it over the wrong value.
    crc = crc_itu(bytes(frame[2:-4])).to_bytes(2, "big")
    frame[-4:-2] = crc
    assert split_gt06(bytes(frame), Mode.STREAM) == Cut(len(frame))


def test_gt06_wrong_length_and_crc_waits_for_quiet() -> None:
    """No proof of the end (0x69 Wi-Fi frames): wait in a stream, cut when the peer is quiet."""
    frame = bytes.fromhex("787800690102030405060101020304050607") + b"\r\n"
    assert split_gt06(frame, Mode.STREAM) is None
    assert split_gt06(frame, Mode.IDLE) == Cut(len(frame))
    following = gt06(0x13, bytes(5))
    assert split_gt06(frame + following, Mode.STREAM) == Cut(len(frame))


def test_gt06_oversized_length_is_junk() -> None:
    """A 7979 length of 60000 is not waited for."""
    cut = split_gt06(b"\x79\x79\xea\x60" + bytes(10), Mode.STREAM)
    assert cut is not None
    assert not cut.is_frame


def test_gt06_junk_before_start() -> None:
    """Junk is skipped to the next 7878/7979."""
    frame = gt06(0x13, bytes(5))
    assert cut_all(split_gt06, b"hello" + frame, Mode.STREAM) == [
        (b"hello", "bytes before a GT06 frame start"),
        (frame, None),
    ]


# -- H02 ---------------------------------------------------------------------------------------

H02_TEXT = b"*HQ,4109198974,V1,121314,A,2212.8745,N,11346.6574,E,14.28,028,220902,FFFFFBFF#"
H02_BINARY = b"$" + bytes.fromhex("4109198974121314220902") + bytes(20)


def test_h02_interleaved_binary_and_text() -> None:
    """A 32-byte record followed by a text frame in one read (traccar's frame test)."""
    assert len(H02_BINARY) == 32
    assert cut_all(split_h02, H02_BINARY + H02_TEXT + b"\r\n", Mode.STREAM) == [
        (H02_BINARY, None),
        (H02_TEXT, None),
        (b"\r\n", ""),
    ]


def test_h02_binary_alone_waits_until_quiet() -> None:
    """A lone record could still be a 45-byte one; a quiet peer settles it."""
    assert split_h02(H02_BINARY, Mode.STREAM) is None
    assert split_h02(H02_BINARY, Mode.IDLE) == Cut(32)
    longer = H02_BINARY + bytes(13)
    assert split_h02(longer, Mode.FINAL) == Cut(45)


def test_h02_text_without_terminator_is_bounded() -> None:
    """A text frame that never ends is dropped past the size limit."""
    endless = b"*HQ," + b"9" * MAX_FRAME[Protocol.H02]
    cut = split_h02(endless, Mode.STREAM)
    assert cut is not None
    assert not cut.is_frame


# -- GPS103 ------------------------------------------------------------------------------------


def test_gps103_glued_heartbeat_and_terminators() -> None:
    """An IMEI heartbeat glued to a report, frames ending in ';', a login."""
    data = b"359769031878322imei:359769031878322,tracker,1602160718,,L,;##,imei:35958601,A;"
    assert [raw for raw, reason in cut_all(split_gps103, data, Mode.STREAM) if reason is None] == [
        b"359769031878322",
        b"imei:359769031878322,tracker,1602160718,,L,;",
        b"##,imei:35958601,A;",
    ]


def test_gps103_line_without_semicolon() -> None:
    """Waits in a stream; taken whole at the end of a datagram."""
    assert split_gps103(b"##,imei:359586015829802,A", Mode.STREAM) is None
    assert split_gps103(b"##,imei:359586015829802,A", Mode.FINAL) == Cut(25)


# -- Watch -------------------------------------------------------------------------------------


def test_watch_frames() -> None:
    """`[...]` frames, split anywhere."""
    frame = b"[SG*8800000015*0002*LK]"
    assert split_watch(frame[:5], Mode.STREAM) is None
    assert cut_all(split_watch, frame + frame, Mode.STREAM) == [(frame, None), (frame, None)]


# -- all families ------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", list(SPLITTERS))
def test_endless_garbage_is_bounded(protocol: Protocol) -> None:
    """No splitter waits for more than its family's frame limit."""
    splitter = SPLITTERS[protocol]
    start = {
        Protocol.JT808: b"\x7e",
        Protocol.GT06: b"\x79\x79\x0f\xff",
        Protocol.H02: b"*HQ,",
        Protocol.GPS103: b"imei:",
        Protocol.WATCH: b"[",
    }[protocol]
    data = start + b"A" * (MAX_FRAME[protocol] + 10)
    cut = splitter(data, Mode.STREAM)
    assert cut is not None
    assert not cut.is_frame
