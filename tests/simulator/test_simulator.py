"""The simulator's frames match the captured vectors; its drive and CLI behave as described."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from custom_components.tk970.config_flow import luhn_ok
from custom_components.tk970.listener import Link, Listener
from custom_components.tk970.protocol import Message, MessageType
from simulator import Fix, SimulatedTracker, frames
from simulator.__main__ import imeis, parse_args, run
from simulator.route import BUILTIN_LOOP, Drive, Route, Waypoint, distance_m, load_gpx
from tests.common import free_port, wait_for
from tests.protocol.helpers import decode_datagram
from tests.protocol.vectors import load

NOW = datetime(2026, 11, 24, 8, 0, 0, tzinfo=UTC)


def test_jt808_framing_rebuilds_captured_frames() -> None:
    """Header, checksum and escaping rebuilt from each consistent capture give its exact bytes."""
    rebuilt = 0
    for vector in load("jt808"):
        expect = vector.expect
        raw = vector.raw
        if not vector.uplink or not expect.get("checksum_ok") or raw[:1] != b"\x7e":
            continue
        message_id, serial, body = frames.jt808_unframe(raw)
        plain = raw[1:-1].replace(b"\x7d\x02", b"\x7e").replace(b"\x7d\x01", b"\x7d")
        attributes = int.from_bytes(plain[2:4], "big")
        if attributes & 0x6000 or len(plain) != 13 + len(body) or raw.count(b"\x7e") != 2:
            continue  # 2019 or sub-packaged headers, or captures with raw flags inside
        terminal = plain[4:10].hex()
        assert frames.jt808_frame(message_id, body, terminal, serial) == raw, vector.id
        rebuilt += 1
    assert rebuilt >= 40


def test_gt06_framing_rebuilds_captured_frames() -> None:
    """Length, serial and CRC-ITU rebuilt from each good 0x7878 capture give its exact bytes."""
    rebuilt = 0
    for vector in load("gt06"):
        raw = vector.raw
        if not vector.expect.get("crc_ok") or raw[:2] != b"\x78\x78" or raw[2] + 5 != len(raw):
            continue
        serial = int.from_bytes(raw[-6:-4], "big")
        assert frames.gt06_frame(raw[3], raw[4:-6], serial) == raw, vector.id
        rebuilt += 1
    assert rebuilt >= 80


@pytest.mark.parametrize(
    ("built", "captured"),
    [
        (frames.gps103_login("459710040537525"), "gps103:72"),
        (frames.gps103_heartbeat("359710040984446"), "gps103:78"),
        (frames.h02_heartbeat("135790246811220", 100), "h02:4"),
    ],
)
def test_text_frames_match_captures(built: bytes, captured: str) -> None:
    """Text messages are byte for byte what real devices sent."""
    family, line = captured.split(":")
    vector = next(v for v in load(family) if v.line == int(line))
    assert built == vector.raw


FIX = Fix(
    time=NOW,
    latitude=-33.8568,
    longitude=151.2153,
    speed_kmh=37.0,
    course=123.0,
    satellites=10,
    ignition=True,
    relay=True,
)


@pytest.mark.parametrize(
    "build",
    [
        lambda: frames.jt808_location("013511221122", 7, FIX),
        lambda: frames.gt06_location(FIX, 7),
        lambda: frames.h02_position("4109198974", FIX),
        lambda: frames.gps103_report("359586015829802", FIX),
    ],
    ids=["jt808", "gt06", "h02", "gps103"],
)
def test_location_round_trip(build) -> None:  # type: ignore[no-untyped-def]
    """What the simulator sends is what the integration reads (both sides tested above)."""
    decoded, skipped = decode_datagram(build())
    assert not skipped
    message: Message = decoded[0].message
    assert message.type is MessageType.LOCATION
    assert message.time == NOW
    assert message.latitude == pytest.approx(FIX.latitude, abs=1e-4)
    assert message.longitude == pytest.approx(FIX.longitude, abs=1e-4)
    assert message.speed_kmh == pytest.approx(37.0, abs=0.6)
    assert message.valid is True


def test_route_loop() -> None:
    """The loop starts standing at the Brandenburg Gate, moves at cruising speed, repeats."""
    route = Route(BUILTIN_LOOP, speed_kmh=36.0)
    start = route.at(0)
    assert (start.latitude, start.longitude, start.speed_kmh) == (52.51627, 13.37770, 0.0)
    moving = route.at(40)
    assert moving.speed_kmh == pytest.approx(36.0)
    assert route.at(route.period + 40) == moving
    stretches = {route.at(t).stretch for t in range(0, int(route.period), 5)}
    assert stretches == {"gnss", "lbs", "tunnel"}
    assert distance_m(Waypoint(0, 0), Waypoint(0, 1)) == pytest.approx(111_195, rel=1e-3)


def test_gpx(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """GPX track points become the route."""
    gpx = tmp_path / "route.gpx"
    gpx.write_text(
        '<gpx xmlns="http://www.topografix.com/GPX/1/1"><trk><trkseg>'
        '<trkpt lat="1.0" lon="2.0"/><trkpt lat="1.1" lon="2.1"/></trkseg></trk></gpx>'
    )
    assert load_gpx(gpx) == (Waypoint(1.0, 2.0), Waypoint(1.1, 2.1))
    gpx.write_text("<gpx/>")
    with pytest.raises(ValueError, match="fewer than two"):
        load_gpx(gpx)


def test_imeis_are_valid_and_distinct() -> None:
    """Several simulated trackers get consecutive, Luhn-valid IMEIs."""
    made = imeis("359586015829802", 5)
    assert made[0] == "359586015829802"
    assert len(set(made)) == 5
    assert all(luhn_ok(imei) for imei in made)


@pytest.mark.usefixtures("socket_enabled")
async def test_drive_against_a_listener() -> None:
    """The CLI's drive against a bare listener: reports arrive, a tunnel buffers, SOS on demand."""
    port = free_port()
    received: list[Message] = []

    def on_messages(link: Link, messages: list[Message]) -> None:
        received.extend(messages)

    listener = Listener(port, on_messages=on_messages, hosts=["127.0.0.1"])
    await listener.start()
    try:
        tracker = SimulatedTracker("359586015829802", protocol="jt808", port=port)
        # A short loop with every kind of stretch, driven fast: a few ticks each.
        loop = (
            Waypoint(0.0, 0.0),
            Waypoint(0.0, 0.0005, stretch="lbs"),
            Waypoint(0.0, 0.001, stretch="tunnel"),
            Waypoint(0.0, 0.0015),
        )
        # 1 km/s, a tick every 10 ms: 10 m per tick, each 55 m stretch five ticks long.
        drive = Drive(tracker, Route(loop, speed_kmh=3600.0), interval=0.01)
        task = asyncio.create_task(drive.run())
        await wait_for(lambda: any(m.historical for m in received))
        drive.request_sos()
        await wait_for(lambda: any(m.alarms for m in received))
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await tracker.close()
    finally:
        await listener.stop()
    assert any(m.valid is False for m in received)  # the LBS stretch
    assert received[0].type is MessageType.LOGIN


@pytest.mark.usefixtures("socket_enabled")
async def test_cli_run_stops_on_request() -> None:
    """`python -m simulator` drives until told to stop, then hangs up."""
    port = free_port()
    received: list[Message] = []
    listener = Listener(port, on_messages=lambda _, m: received.extend(m), hosts=["127.0.0.1"])
    await listener.start()
    stop = asyncio.Event()
    args = parse_args(
        ["--port", str(port), "--protocol", "gt06", "--count", "2", "--interval", "0.05"]
    )
    runner = asyncio.create_task(run(args, stop))
    try:
        await wait_for(lambda: len({m.device_id for m in received}) == 2)
        stop.set()
        async with asyncio.timeout(10):
            await runner
    finally:
        await listener.stop()
    assert {m.device_id for m in received} == set(imeis("359586015829802", 2))


async def test_relay_refused_when_fast() -> None:
    """The simulated device keeps its engine running above 20 km/h, like Concox firmware."""
    tracker = SimulatedTracker("359586015829802", protocol="gt06")
    sent: list[bytes] = []

    async def send(data: bytes) -> None:
        sent.append(data)

    tracker.send = send  # type: ignore[method-assign]
    command = frames.gt06_frame(0x80, b"\x0c\x00\x00\x00\x07Relay,1#", 1)
    tracker.fix = Fix(time=NOW, latitude=1, longitude=2, speed_kmh=50)
    await tracker._received(command)
    assert tracker.relay is False
    assert b"too fast" in sent[0]
    assert frames.gt06_command(sent[0]) is None  # an answer, not a command
    tracker.fix = Fix(time=NOW, latitude=1, longitude=2, speed_kmh=5)
    await tracker._received(command)
    assert tracker.relay is True
    assert b"Cut off the fuel supply: Success!" in sent[1]
