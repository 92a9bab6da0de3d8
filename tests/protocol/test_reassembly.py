"""JT808 sub-packaged messages: fragments reassembled in order, acknowledged, losses reported.

The fragments carry a real blind-area batch: a `0x0704` body made of the TK-Star reports of
jt808.jsonl lines 9-12 (terminal 009590068983, `0xEB` items), split the way a terminal splits a
long message (JT/T 808-2013 §4.4.3: header bit 13, total and index from 1, consecutive serials).
"""

from __future__ import annotations

from datetime import timedelta
import itertools

from hypothesis import given, settings, strategies as st
import pytest

from custom_components.tk970.protocol import reassembly
from custom_components.tk970.protocol.codec import jt808_unescape
from custom_components.tk970.protocol.messages import Message, MessageType
from custom_components.tk970.protocol.session import Decoded, Item, Session, Skipped

from .helpers import (
    FIRST_SERIAL,
    MAX_BODY,
    NOW,
    TERMINAL,
    jt808_fragments,
    jt808_frame,
    tkstar_batch,
)


def _ack(serial: int, message_id: int = 0x0704, server_serial: int = 0) -> bytes:
    body = serial.to_bytes(2, "big") + message_id.to_bytes(2, "big") + b"\x00"
    return jt808_frame(0x8001, body, server_serial)


def _feed(session: Session, chunks: list[bytes], gap: timedelta = timedelta(0)) -> list[Item]:
    items: list[Item] = []
    for number, chunk in enumerate(chunks):
        items += session.feed(chunk, NOW + gap * number)
    return items


def _positions(messages: list[Message]) -> list[tuple[object, ...]]:
    """What a batch must reproduce from its items: position, time, status and extras."""
    return [
        (m.latitude, m.longitude, m.time, m.speed_kmh, m.battery_percent, m.battery_voltage)
        for m in messages
    ]


def _expected_positions(bodies: list[bytes]) -> list[tuple[object, ...]]:
    """The same reports decoded one by one as plain 0x0200 frames."""
    session = Session(learn_jt808_offset=False)
    frames = [jt808_frame(0x0200, body, n) for n, body in enumerate(bodies)]
    return _positions([i.message for i in _feed(session, frames) if isinstance(i, Decoded)])


def _replies(items: list[Item]) -> list[tuple[int, bytes]]:
    """Every reply frame sent for `items`, as (message id, body)."""
    data = b"".join(item.ack or b"" for item in items if isinstance(item, Decoded))
    frames = [part for part in data.split(b"\x7e") if part]
    plain = [jt808_unescape(frame) for frame in frames]
    return [(int.from_bytes(p[:2], "big"), p[12:-1]) for p in plain]


def _answered(items: list[Item]) -> list[int]:
    """The device serials the 0x8001 replies quote, in order."""
    return [int.from_bytes(body[:2], "big") for kind, body in _replies(items) if kind == 0x8001]


def _decoded(items: list[Item]) -> list[Decoded]:
    return [item for item in items if isinstance(item, Decoded)]


def _batch(items: list[Item]) -> list[Message]:
    return [d.message for d in _decoded(items) if d.message.type is not MessageType.OTHER]


def test_fragments_in_order_give_the_whole_batch() -> None:
    body, bodies = tkstar_batch()
    frames = jt808_fragments(body)
    assert len(frames) == 3, "the batch is over two full fragments"
    session = Session(learn_jt808_offset=False)
    items = _feed(session, [b"".join(frames)])
    decoded = _decoded(items)
    assert not [i for i in items if isinstance(i, Skipped)]
    # the first two fragments: kept, each answered with its own 0x8001
    assert [d.message.type for d in decoded[:2]] == [MessageType.OTHER, MessageType.OTHER]
    acks = [d.ack for d in decoded if d.ack is not None]
    assert acks == [_ack(FIRST_SERIAL + n, server_serial=n) for n in range(3)]
    # the last one brings the batch, decoded as one message under the first serial
    batch = _batch(items)
    assert len(batch) == len(bodies) == 32
    assert _positions(batch) == _expected_positions(bodies)
    assert all(m.historical and m.serial == FIRST_SERIAL for m in batch)
    assert all(m.device_id == TERMINAL for m in batch)
    assert batch[0].raw == b"".join(frames)
    assert session.stats.fragments_lost == 0


def test_fragments_split_across_reads() -> None:
    """Byte by byte over TCP, the same batch comes out of the last byte."""
    body, bodies = tkstar_batch()
    stream = b"".join(jt808_fragments(body))
    session = Session(learn_jt808_offset=False)
    items = _feed(session, [stream[i : i + 1] for i in range(len(stream))])
    assert _positions(_batch(items)) == _expected_positions(bodies)
    assert len([d for d in _decoded(items) if d.ack is not None]) == 3


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_fragments_reordered_within_a_read(order: tuple[int, ...]) -> None:
    """Whatever the order inside one read, the batch comes out once, in index order, and
    nothing is asked again (the read held every fragment)."""
    body, bodies = tkstar_batch()
    frames = jt808_fragments(body)
    session = Session(learn_jt808_offset=False)
    items = _feed(session, [b"".join(frames[i] for i in order)])
    assert _positions(_batch(items)) == _expected_positions(bodies)
    assert 0x8003 not in [kind for kind, _body in _replies(items)], "nothing asked again"
    assert sorted(_answered(items)) == [FIRST_SERIAL + index for index in range(3)]
    assert session.close(NOW) == []


@settings(max_examples=60, deadline=None)
@given(
    order=st.permutations(range(4)),
    cuts=st.lists(st.integers(min_value=1, max_value=4000), max_size=6),
)
def test_any_order_and_any_split(order: list[int], cuts: list[int]) -> None:
    """Four fragments in any order, cut into reads anywhere: one batch, every fragment
    answered, nothing lost."""
    body, bodies = tkstar_batch(40)
    frames = jt808_fragments(body)
    assert len(frames) == 4
    stream = b"".join(frames[i] for i in order)
    edges = sorted({0, len(stream), *(c for c in cuts if c < len(stream))})
    session = Session(learn_jt808_offset=False)
    items = _feed(session, [stream[a:b] for a, b in itertools.pairwise(edges)])
    items += session.close(NOW)
    assert not [i for i in items if isinstance(i, Skipped)]
    assert _positions(_batch(items)) == _expected_positions(bodies)
    assert sorted(_answered(items)) == [FIRST_SERIAL + index for index in range(4)]


def test_missing_fragment_is_asked_for_then_completed() -> None:
    """The last fragment came, the middle one did not: one 0x8003 asks for it (original
    serial, count, index) with that read's replies; its retransmission completes the batch."""
    body, bodies = tkstar_batch()
    first, middle, last = jt808_fragments(body)
    session = Session(learn_jt808_offset=False)
    items = _feed(session, [first + last])
    decoded = _decoded(items)
    assert [d.message.type for d in decoded] == [MessageType.OTHER, MessageType.OTHER]
    request = FIRST_SERIAL.to_bytes(2, "big") + b"\x01" + (2).to_bytes(2, "big")
    assert decoded[-1].ack == _ack(FIRST_SERIAL + 2, server_serial=1) + jt808_frame(
        0x8003, request, 2
    )
    items = session.feed(middle, NOW + timedelta(seconds=5))
    assert _positions(_batch(items)) == _expected_positions(bodies)
    assert session.close(NOW + timedelta(seconds=6)) == []
    assert session.stats.fragments_lost == 0


def test_lost_fragment_is_reported_after_the_timeout() -> None:
    """A fragment that never comes: the message is given up after `TIMEOUT` without progress,
    reported once (a Skipped item with the fragments that did come), and counted."""
    body, _bodies = tkstar_batch()
    first, _middle, last = jt808_fragments(body)
    session = Session(learn_jt808_offset=False)
    _feed(session, [first + last])
    heartbeat = jt808_frame(0x0002, b"", 0x0200)
    later = NOW + reassembly.TIMEOUT + timedelta(seconds=1)
    items = session.feed(heartbeat, later)
    lost = [i for i in items if isinstance(i, Skipped)]
    assert len(lost) == 1
    assert "0x0704" in lost[0].reason
    assert "1 of 3 fragments missing" in lost[0].reason
    assert lost[0].raw == first + last
    assert session.stats.fragments_lost == 1
    again = session.feed(heartbeat, later + timedelta(seconds=1))
    assert not [i for i in again if isinstance(i, Skipped)], "reported once"
    assert session.close(later) == []


def test_fragments_left_at_close_are_lost() -> None:
    body, _bodies = tkstar_batch()
    first, _middle, _last = jt808_fragments(body)
    session = Session(learn_jt808_offset=False)
    items = session.feed(first, NOW)
    assert [d.ack for d in _decoded(items)] == [_ack(FIRST_SERIAL)]
    closing = session.close(NOW)
    assert [type(i) for i in closing] == [Skipped]
    assert "2 of 3 fragments missing" in closing[0].reason  # type: ignore[union-attr]
    assert session.stats.fragments_lost == 2


def test_retransmission_after_completion_is_only_acknowledged() -> None:
    body, _bodies = tkstar_batch()
    frames = jt808_fragments(body)
    session = Session(learn_jt808_offset=False)
    _feed(session, [b"".join(frames)])
    again = session.feed(frames[1], NOW + timedelta(seconds=2))
    assert [d.message.type for d in _decoded(again)] == [MessageType.OTHER]
    assert _decoded(again)[0].ack is not None
    assert session.close(NOW + timedelta(seconds=3)) == [], "no message started by it"


def test_oversized_message_is_answered_and_reported_once() -> None:
    """A message announcing more fragments than the limit is not kept: every fragment is still
    answered, and the message is reported once."""
    total = reassembly.MAX_FRAGMENTS + 1
    frames = [
        jt808_frame(0x0801, bytes(100), 0x0500 + index, (total, index + 1))
        for index in range(total)
    ]
    session = Session(learn_jt808_offset=False)
    items = _feed(session, [b"".join(frames)])
    assert len([d for d in _decoded(items) if d.ack is not None]) == total
    skipped = [i for i in items if isinstance(i, Skipped)]
    assert len(skipped) == 1
    assert "over the reassembly limit" in skipped[0].reason


def test_memory_stays_bounded_under_a_flood_of_firstjt808_fragments() -> None:
    """A stranger opening many large messages costs at most `MAX_BYTES`; older ones are given
    up and reported."""
    session = Session(learn_jt808_offset=False)
    frames = [jt808_frame(0x0704, bytes(MAX_BODY), 0x1000 + 10 * n, (4, 1)) for n in range(100)]
    items = _feed(session, [b"".join(frames)])
    fragments = session.context.jt808_fragments
    assert fragments is not None
    assert fragments._size <= reassembly.MAX_BYTES
    assert len(fragments._partials) <= reassembly.MAX_BYTES // MAX_BODY
    pushed_out = [i for i in items if isinstance(i, Skipped)]
    assert len(pushed_out) >= 100 - reassembly.MAX_BYTES // MAX_BODY
    assert all("pushed out" in i.reason for i in pushed_out)


def test_index_zero_is_refused() -> None:
    frame = jt808_frame(0x0704, b"\x00\x00\x01", 1, (2, 0))
    items = Session().feed(frame, NOW)
    assert [type(i) for i in items] == [Skipped]
    assert "indexes run from 1" in items[0].reason  # type: ignore[union-attr]


def test_retransmission_request_in_the_2019_header() -> None:
    """JT808-2019: the request counts its indexes in a WORD and the header has the version."""
    terminal = "00000866496077582164"
    body = bytes(600)
    frames = [
        jt808_frame(0x0900, body[:300], 7, (3, 1), terminal, version=1),
        jt808_frame(0x0900, body[300:], 9, (3, 3), terminal, version=1),
    ]
    session = Session()
    decoded = _decoded(_feed(session, [b"".join(frames)]))
    request = (7).to_bytes(2, "big") + (1).to_bytes(2, "big") + (2).to_bytes(2, "big")
    assert decoded[-1].ack is not None
    assert decoded[-1].ack.endswith(jt808_frame(0x8003, request, 2, terminal=terminal, version=1))
