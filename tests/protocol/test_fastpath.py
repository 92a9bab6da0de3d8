"""The fast path (`Family.fast`) against the general path: identical results, always.

A `Session` tries its family's fast decoder on a read that is one whole frame, and only falls
back to detection, splitting and the family's `decode` when that declines. These tests feed the
same bytes to a session with the fast path and to one without, and require the same items,
counters and session state: on every captured vector of every family, on frames of the fast
layouts built with random field values, and on random mutations of both.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime, timedelta
import os

from hypothesis import HealthCheck, given, settings, strategies as st
import pytest

from custom_components.tk970.protocol import gt06, jt808
from custom_components.tk970.protocol.codec import (
    crc_itu,
    jt808_escape,
    jt808_unescape,
    xor_checksum,
)
from custom_components.tk970.protocol.context import Context
from custom_components.tk970.protocol.messages import Protocol
from custom_components.tk970.protocol.session import Item, Session
from simulator import frames, radio
from simulator.frames import Fix

from .helpers import NOW
from .vectors import FAMILIES, load

EXAMPLES = int(os.environ.get("TK970_FUZZ_EXAMPLES", "400"))
GT06_LOGIN = bytes.fromhex("78780d01086471700328358100093f040d0a")


def _state(session: Session) -> tuple[object, ...]:
    """What a read may change besides its items: counters and what the context learned."""
    ctx = session.context
    return (
        asdict(session.stats),
        session.protocol,
        session.buffered,
        ctx.device_id,
        ctx.gt06_utc_offset,
        ctx.jt808_terminal,
        ctx.jt808_2019,
        ctx.jt808_version,
        ctx.jt808_utc_offset,
        dict(ctx.info),
        ctx.next_serial(),  # the server serial both sessions will use next
    )


def _compare(
    reads: list[bytes], *, datagram: bool = False, now: datetime = NOW, learn: bool = True
) -> list[Item]:
    """Feed `reads` to a fast and a general session; require the same outcome. The fast
    session's items are returned."""
    fast = Session(datagram=datagram, learn_jt808_offset=learn)
    general = Session(datagram=datagram, learn_jt808_offset=learn, fast_path=False)
    items: list[Item] = []
    for number, data in enumerate(reads):
        when = now + timedelta(seconds=number)
        got, want = fast.feed(data, when), general.feed(data, when)
        assert got == want, data.hex()
        items += got
    assert fast.close(now) == general.close(now)
    assert _state(fast) == _state(general)
    return items


def _took_fast_path(data: bytes, protocol: Protocol, ctx: Context | None = None) -> bool:
    decoder = {Protocol.GT06: gt06.decode_fast, Protocol.JT808: jt808.decode_fast}[protocol]
    return decoder(data, ctx or Context(now=NOW)) is not None


# ---------------------------------------------------------------------------------------------
# Every vector
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_every_vector_alone(family: str) -> None:
    """Each uplink vector as a datagram, and as the first read of a TCP connection."""
    for vector in load(family):
        if vector.uplink:
            _compare([vector.raw], datagram=True)
            _compare([vector.raw])


@pytest.mark.parametrize("family", FAMILIES)
def test_every_vector_in_one_connection(family: str) -> None:
    """All uplink vectors of a family, one per read, on one connection (GT06 after a login, so
    the identity and the login's time zone apply)."""
    reads = [vector.raw for vector in load(family) if vector.uplink]
    if family == "gt06":
        reads.insert(0, GT06_LOGIN)
    _compare(reads)
    _compare(reads, learn=False)


def test_the_fast_path_is_taken() -> None:
    """The layouts the fast path claims are decoded by it (else the comparisons above would
    only compare the general path with itself)."""
    fix = Fix(time=NOW, latitude=52.52, longitude=13.405, speed_kmh=30.0)
    assert _took_fast_path(frames.gt06_login("359600000000001", 1), Protocol.GT06)
    assert _took_fast_path(frames.gt06_location(fix, 2), Protocol.GT06)  # 0x22
    assert _took_fast_path(frames.gt06_heartbeat(fix, 3), Protocol.GT06)
    assert _took_fast_path(_gt06_report(0x12, fix, 4), Protocol.GT06)
    assert _took_fast_path(_gt06_report(0xA0, fix, 5), Protocol.GT06)
    terminal = "009590068983"
    assert _took_fast_path(frames.jt808_location(terminal, 1, fix), Protocol.JT808)
    assert _took_fast_path(frames.jt808_heartbeat(terminal, 2), Protocol.JT808)
    taken = sum(
        _took_fast_path(v.raw, Protocol[v.family.upper()])
        for family in ("gt06", "jt808")
        for v in load(family)
        if v.uplink and v.raw[:1] in (b"\x78", b"\x79", b"\x7e")
    )
    assert taken >= 240, "most captured frames are whole frames (247 of 297 when written)"


def test_simulated_radio_world() -> None:
    """The simulator's reports with cells and Wi-Fi (JT808 `0xEB` cell and access-point records,
    the `0xF0` cell list; GT06 `0x28` without a fix), with and without an odometer."""
    for number in range(40):
        lat, lon = 52.4 + number * 0.005, 13.3 + number * 0.003
        fix = Fix(
            time=NOW,
            latitude=lat,
            longitude=lon,
            valid=number % 2 == 0,
            cells=tuple(radio.cells_at(lat, lon))[: number % 8],
            wifi=tuple(radio.access_points_at(lat, lon))[: number % 7],
            odometer_km=None if number % 3 else 1234.5,
        )
        report = frames.jt808_location("013511221122", number + 2, fix)
        assert _took_fast_path(report, Protocol.JT808)
        _compare([frames.jt808_register("013511221122", 1), report])
        gt06_reads = [
            frames.gt06_location(fix, 2),
            frames.gt06_lbs(fix, 3),
            frames.gt06_heartbeat(fix, 4),
        ]
        _compare([GT06_LOGIN, *gt06_reads])
        _compare([GT06_LOGIN + b"".join(gt06_reads)])


# ---------------------------------------------------------------------------------------------
# Frames of the fast layouts with random values, and random mutations
# ---------------------------------------------------------------------------------------------


def _gt06_report(kind: int, fix: Fix, serial: int, tail: bytes = b"") -> bytes:
    """`0x12` / `0x22` / `0xA0` built here from the layout (VL03 §3, §10)."""
    time = fix.time.astimezone(UTC)
    course = round(fix.course) % 1024 | (0x1000 if fix.valid else 0)
    course |= (0x0400 if fix.latitude >= 0 else 0) | (0x0800 if fix.longitude < 0 else 0)
    gps = (
        bytes((time.year - 2000, time.month, time.day, time.hour, time.minute, time.second))
        + bytes((0xC0 | min(fix.satellites, 15),))
        + round(abs(fix.latitude) * 1_800_000).to_bytes(4, "big")
        + round(abs(fix.longitude) * 1_800_000).to_bytes(4, "big")
        + bytes((min(255, round(fix.speed_kmh)),))
        + course.to_bytes(2, "big")
    )
    if kind == 0xA0:
        cell = bytes.fromhex("01cc00") + (0x1A2B).to_bytes(4, "big") + (0x123456).to_bytes(8)
    else:
        cell = bytes.fromhex("01cc00") + (0x1A2B).to_bytes(2, "big") + (0x3456).to_bytes(3, "big")
    return frames.gt06_frame(kind, gps + cell + tail, serial)


fixes = st.builds(
    Fix,
    time=st.datetimes(
        # hypothesis takes naive bounds and adds the zone itself
        min_value=datetime(2000, 1, 1),  # noqa: DTZ001
        max_value=datetime(2099, 12, 31),  # noqa: DTZ001
        timezones=st.just(UTC),
    ),
    latitude=st.floats(-90, 90),
    longitude=st.floats(-180, 180),
    speed_kmh=st.floats(0, 255),
    course=st.floats(0, 359),
    satellites=st.integers(0, 15),
    valid=st.booleans(),
    ignition=st.booleans(),
    relay=st.booleans(),
    charging=st.booleans(),
    battery_percent=st.integers(0, 100),
    sos=st.booleans(),
    vibration=st.booleans(),
    odometer_km=st.one_of(st.none(), st.floats(0, 400_000_000)),
)


#: The layouts the fast path decodes, by name (each is also built with random values).
LAYOUTS = (
    "gt06_login",
    "gt06_heartbeat",
    "gt06_0x12",
    "gt06_0x22",
    "gt06_0x22_mileage",
    "gt06_0xa0",
    "gt06_0xa0_mileage",
    "jt808_heartbeat",
    "jt808_authentication",
    "jt808_location",
    "jt808_tkstar_location",
)


@st.composite
def layout_frames(draw: st.DrawFn, layout: str) -> bytes:
    """A frame of `layout` with random values."""
    fix = draw(fixes)
    serial = draw(st.integers(0, 0xFFFF))
    terminal = draw(st.sampled_from(["009590068983", "013511221122", "4eb6fb4ad628"]))
    tail = bytes((draw(st.integers(0, 255)), draw(st.integers(0, 255)), draw(st.integers(0, 1))))
    mileage = draw(st.binary(min_size=4, max_size=4))
    builders = {
        "gt06_login": lambda: frames.gt06_login(
            draw(st.from_regex(r"[0-9]{15}", fullmatch=True)), serial
        ),
        "gt06_heartbeat": lambda: frames.gt06_heartbeat(fix, serial),
        "gt06_0x12": lambda: _gt06_report(0x12, fix, serial),
        "gt06_0x22": lambda: _gt06_report(0x22, fix, serial, tail),
        "gt06_0x22_mileage": lambda: _gt06_report(0x22, fix, serial, tail + mileage),
        "gt06_0xa0": lambda: _gt06_report(0xA0, fix, serial, tail),
        "gt06_0xa0_mileage": lambda: _gt06_report(0xA0, fix, serial, tail + mileage),
        "jt808_heartbeat": lambda: frames.jt808_heartbeat(terminal, serial),
        "jt808_authentication": lambda: frames.jt808_authenticate(terminal, serial, "code"),
        "jt808_location": lambda: frames.jt808_location(
            terminal, serial, fix, timedelta(hours=draw(st.integers(-12, 14)))
        ),
        "jt808_tkstar_location": lambda: _tkstar_location(terminal, serial, fix, draw),
    }
    return builders[layout]()


def _tkstar_location(terminal: str, serial: int, fix: Fix, draw: st.DrawFn) -> bytes:
    """A TK-Star 4G report (jt808.jsonl line 9's items) with random values in every field."""
    _message_id, _serial, body = frames.jt808_unframe(frames.jt808_location(terminal, 1, fix))
    basic = bytearray(body[:28])
    basic[:4] = draw(st.binary(min_size=4, max_size=4))  # any alarm bits
    basic[4:8] = draw(st.binary(min_size=4, max_size=4))  # any status bits
    word = st.binary(min_size=4, max_size=4)
    items = (
        b"\x01\x04" + draw(word)
        + b"\x30\x01" + bytes((draw(st.integers(0, 255)),))
        + b"\x31\x01" + bytes((draw(st.integers(0, 255)),))
        + b"\xeb\x29\x00\x0c\x00\xb2" + draw(st.binary(min_size=10, max_size=10))
        + b"\x00\x06\x00\x89" + draw(word)
        + b"\x00\x06\x00\xc5" + draw(word)
        + b"\x00\x04\x00\x2d" + draw(st.binary(min_size=2, max_size=2))
        + b"\x00\x03\x00\xa8" + bytes((draw(st.integers(0, 255)),))
    )  # fmt: skip
    return frames.jt808_frame(0x0200, bytes(basic) + items, terminal, serial)


@st.composite
def fast_layout_frames(draw: st.DrawFn) -> bytes:
    """A frame of any of the fast layouts, with random values."""
    return draw(layout_frames(draw(st.sampled_from(LAYOUTS))))


def _mutate(data: bytes, draw: st.DrawFn) -> bytes:
    """Flip, replace, drop or insert bytes; sometimes re-seal the CRC or checksum so that a
    changed field, not a checksum failure, is what the decoders see."""
    buffer = bytearray(data)
    for _ in range(draw(st.integers(1, 3))):
        action = draw(st.integers(0, 3))
        index = draw(st.integers(0, max(0, len(buffer) - 1)))
        if action == 0 and buffer:
            buffer[index] ^= 1 << draw(st.integers(0, 7))
        elif action == 1 and buffer:
            buffer[index] = draw(st.integers(0, 255))
        elif action == 2 and len(buffer) > 1:
            del buffer[index]
        else:
            buffer.insert(index, draw(st.integers(0, 255)))
    mutated = bytes(buffer)
    if draw(st.booleans()):
        mutated = _reseal(mutated)
    return mutated


def _reseal(data: bytes) -> bytes:
    """Recompute a GT06 CRC or a JT808 checksum (and escaping) over the mutated content."""
    if data[:2] == b"\x78\x78" and len(data) >= 10 and data.endswith(b"\r\n"):
        return data[:-4] + crc_itu(data[2:-4]).to_bytes(2, "big") + data[-2:]
    if data[:1] == b"\x7e" and data[-1:] == b"\x7e" and len(data) >= 4:
        inner = data[1:-2].replace(b"\x7d\x02", b"\x7e").replace(b"\x7d\x01", b"\x7d")
        return b"\x7e" + jt808_escape(inner + bytes((xor_checksum(inner),))) + b"\x7e"
    return data


@pytest.mark.parametrize("layout", LAYOUTS)
@settings(
    max_examples=max(10, EXAMPLES // 4), deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(data=st.data())
def test_random_fast_layout_frames(layout: str, data: st.DataObject) -> None:
    """Random values in each fast layout: alone, as a datagram, after a login."""
    frame = data.draw(layout_frames(layout))
    assert _took_fast_path(frame, Protocol.GT06 if layout.startswith("gt06") else Protocol.JT808)
    if layout == "jt808_tkstar_location":  # the one-unpack reading, not the items walk
        body = jt808_unescape(frame[1:-1])[12:-1]
        assert jt808._tkstar_markers(jt808._TKSTAR.unpack(body)) == jt808._TKSTAR_SKELETON
    _compare([frame])
    _compare([frame], datagram=True)
    _compare([GT06_LOGIN, frame])


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_mutations(data: st.DataObject) -> None:
    """Mutations of the fast layouts and of every captured vector: whatever the bytes, the
    fast path gives what the general path gives, or declines."""
    if data.draw(st.booleans()):
        frame = data.draw(fast_layout_frames())
    else:
        vectors = [v for family in FAMILIES for v in load(family) if v.uplink]
        frame = data.draw(st.sampled_from(vectors)).raw
    mutated = _mutate(frame, data.draw)
    _compare([mutated])
    _compare([mutated], datagram=True)
    _compare([GT06_LOGIN, mutated])
    _compare([frame, mutated, frame])
