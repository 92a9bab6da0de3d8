"""End to end: simulated trackers over real TCP and UDP sockets into a real Home Assistant.

Each test configures a tracker on a free port, lets a `SimulatedTracker` speak its protocol
to 127.0.0.1 and checks what Home Assistant shows, and what the tracker received back.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
import time

from homeassistant.config_entries import SOURCE_INTEGRATION_DISCOVERY
from homeassistant.const import STATE_OFF, STATE_ON, STATE_UNAVAILABLE
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.event import EventStateChangedData, async_track_state_change_event
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.tk970 import coordinator as coordinator_module
from custom_components.tk970.const import DOMAIN
from simulator import SimulatedTracker

from .common import IMEI, IMEI_UNKNOWN, entity_id, wait_for, wait_for_state

pytestmark = pytest.mark.usefixtures("socket_enabled")

FAMILIES = ["jt808", "gt06", "h02", "gps103"]
#: Families whose relay commands the device confirms.
CONFIRMING = ["jt808", "gt06", "h02"]


@pytest.fixture
async def make_tracker(port: int) -> AsyncIterator[object]:
    """Build simulated trackers on the test port; all are closed at the end."""
    made: list[SimulatedTracker] = []

    async def _make(protocol: str, transport: str = "tcp", **kwargs: object) -> SimulatedTracker:
        tracker = SimulatedTracker(
            kwargs.pop("identity", IMEI),  # type: ignore[arg-type]
            protocol=protocol,
            transport=transport,
            port=port,
            **kwargs,  # type: ignore[arg-type]
        )
        await tracker.connect()
        made.append(tracker)
        return tracker

    yield _make
    for tracker in made:
        await tracker.close()


def ids(hass: HomeAssistant) -> dict[str, str]:
    """Entity ids of the configured tracker, by role."""
    return {
        "tracker": entity_id(hass, "device_tracker", IMEI),
        "sos": entity_id(hass, "binary_sensor", f"{IMEI}_sos"),
        "vibration": entity_id(hass, "binary_sensor", f"{IMEI}_vibration"),
        "relay": entity_id(hass, "switch", f"{IMEI}_relay"),
        "event": entity_id(hass, "event", f"{IMEI}_alarm"),
        "battery": entity_id(hass, "sensor", f"{IMEI}_battery"),
        "connected": entity_id(hass, "binary_sensor", f"{IMEI}_connected"),
    }


@pytest.mark.parametrize("protocol", FAMILIES)
async def test_tcp_position_and_alarms(
    hass: HomeAssistant, entry: MockConfigEntry, make_tracker, protocol: str
) -> None:
    """Login is answered, the position reaches the map, SOS and vibration turn on."""
    tracker: SimulatedTracker = await make_tracker(protocol)
    await tracker.login()
    entities = ids(hass)
    await tracker.report(latitude=48.8584, longitude=2.2945, speed_kmh=0.0)
    state = await wait_for_state(
        hass, entities["tracker"], lambda s: s.attributes.get("latitude") is not None
    )
    assert state.attributes["latitude"] == pytest.approx(48.8584, abs=1e-4)
    assert state.attributes["longitude"] == pytest.approx(2.2945, abs=1e-4)
    assert state.attributes["gps_accuracy"] > 0
    assert hass.states.get(entities["connected"]).state == STATE_ON
    assert hass.states.get(entities["sos"]).state == STATE_OFF

    await tracker.sos()
    await wait_for_state(hass, entities["sos"], lambda s: s.state == STATE_ON)
    event = await wait_for_state(
        hass, entities["event"], lambda s: s.attributes.get("event_type") == "sos"
    )
    assert event.attributes["protocol"] == protocol
    assert "latitude" not in event.attributes  # else the map draws the event as a marker
    await tracker.vibration()
    await wait_for_state(hass, entities["vibration"], lambda s: s.state == STATE_ON)


@pytest.mark.parametrize("protocol", ["jt808", "h02", "gps103"])
async def test_udp_position_and_sos(
    hass: HomeAssistant, entry: MockConfigEntry, make_tracker, protocol: str
) -> None:
    """The same over UDP: each datagram decoded alone, replies to its source."""
    tracker: SimulatedTracker = await make_tracker(protocol, "udp")
    await tracker.login()
    await tracker.report(latitude=-33.8568, longitude=151.2153)
    entities = ids(hass)
    state = await wait_for_state(
        hass, entities["tracker"], lambda s: s.attributes.get("latitude") is not None
    )
    assert state.attributes["latitude"] == pytest.approx(-33.8568, abs=1e-4)
    assert state.attributes["longitude"] == pytest.approx(151.2153, abs=1e-4)
    await tracker.sos()
    await wait_for_state(hass, entities["sos"], lambda s: s.state == STATE_ON)


@pytest.mark.parametrize("protocol", CONFIRMING)
async def test_relay_cut_and_restore_confirmed(
    hass: HomeAssistant, entry: MockConfigEntry, make_tracker, protocol: str
) -> None:
    """The switch sends the command, waits for the device and shows what it confirmed."""
    tracker: SimulatedTracker = await make_tracker(protocol)
    await tracker.login()
    await tracker.report()
    relay = ids(hass)["relay"]
    await wait_for_state(hass, relay, lambda s: s.state != STATE_UNAVAILABLE)
    await hass.services.async_call("switch", "turn_on", {"entity_id": relay}, blocking=True)
    assert tracker.relay is True
    assert hass.states.get(relay).state == STATE_ON
    assert not hass.states.get(relay).attributes.get("assumed_state")
    await hass.services.async_call("switch", "turn_off", {"entity_id": relay}, blocking=True)
    assert tracker.relay is False
    assert hass.states.get(relay).state == STATE_OFF


async def test_relay_gps103_cannot_be_confirmed(
    hass: HomeAssistant, entry: MockConfigEntry, make_tracker
) -> None:
    """GPS103 never confirms: the command goes out, the user gets an error, nothing moves.

    The switch says its state is assumed, and a relay state nobody confirmed is never shown.
    """
    tracker: SimulatedTracker = await make_tracker("gps103")
    await tracker.login()
    relay = ids(hass)["relay"]
    await wait_for_state(hass, relay, lambda s: s.state != STATE_UNAVAILABLE)
    assert hass.states.get(relay).attributes["assumed_state"] is True
    before = hass.states.get(relay).state
    with pytest.raises(HomeAssistantError) as err:
        await hass.services.async_call("switch", "turn_on", {"entity_id": relay}, blocking=True)
    assert err.value.translation_key == "relay_unconfirmable"
    assert err.value.translation_placeholders == {"protocol": "GPS103"}
    await wait_for(lambda: tracker.relay is True)  # the command did reach the device
    assert hass.states.get(relay).state == before


@pytest.mark.parametrize("protocol", CONFIRMING)
async def test_relay_unanswered_raises_and_keeps_state(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    make_tracker,
    protocol: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No answer within the deadline: a translated error, and the switch does not move."""
    monkeypatch.setattr(coordinator_module, "RELAY_TIMEOUT", 0.5)
    tracker: SimulatedTracker = await make_tracker(protocol, answer_commands=False)
    await tracker.login()
    relay = ids(hass)["relay"]
    await wait_for_state(hass, relay, lambda s: s.state != STATE_UNAVAILABLE)
    before = hass.states.get(relay).state
    with pytest.raises(HomeAssistantError) as err:
        await hass.services.async_call("switch", "turn_on", {"entity_id": relay}, blocking=True)
    assert err.value.translation_key == "relay_no_answer"
    assert err.value.translation_domain == DOMAIN
    assert hass.states.get(relay).state == before


async def test_relay_refused_by_device(
    hass: HomeAssistant, entry: MockConfigEntry, make_tracker
) -> None:
    """The device refuses to cut while moving fast: the error names its reason."""
    hass.config_entries.async_update_entry(entry, options={"relay_max_speed": 0})
    await hass.async_block_till_done()
    tracker: SimulatedTracker = await make_tracker("gt06")
    await tracker.login()
    await tracker.report(speed_kmh=60.0)
    relay = ids(hass)["relay"]
    await wait_for_state(hass, relay, lambda s: s.state != STATE_UNAVAILABLE)
    with pytest.raises(HomeAssistantError) as err:
        await hass.services.async_call("switch", "turn_on", {"entity_id": relay}, blocking=True)
    assert err.value.translation_key == "relay_refused"
    assert "too fast" in err.value.translation_placeholders["reason"]
    assert tracker.relay is False
    assert hass.states.get(relay).state != STATE_ON


async def test_relay_speed_guard(hass: HomeAssistant, entry: MockConfigEntry, make_tracker) -> None:
    """Above the speed option (default 20 km/h) the cut is refused before anything is sent."""
    tracker: SimulatedTracker = await make_tracker("jt808")
    await tracker.login()
    await tracker.report(speed_kmh=45.0)
    relay = ids(hass)["relay"]
    speed = entity_id(hass, "sensor", f"{IMEI}_speed")
    await wait_for_state(hass, speed, lambda s: s.state not in ("unknown", STATE_UNAVAILABLE))
    received = len(tracker.received)
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call("switch", "turn_on", {"entity_id": relay}, blocking=True)
    assert err.value.translation_key == "relay_too_fast"
    assert [d for d in tracker.received[received:] if d.kind == "command"] == []


async def test_relay_unavailable_without_connection(
    hass: HomeAssistant, entry: MockConfigEntry
) -> None:
    """Nobody connected: the switch is unavailable (and a call cannot reach a device)."""
    assert hass.states.get(ids(hass)["relay"]).state == STATE_UNAVAILABLE


async def test_unknown_tracker_is_offered_not_added(
    hass: HomeAssistant, entry: MockConfigEntry, make_tracker
) -> None:
    """An unknown IMEI gets its replies, one discovery flow, and no entity."""
    stranger: SimulatedTracker = await make_tracker("gt06", identity=IMEI_UNKNOWN)
    await stranger.login()  # the login ack arrived: the device stays connected
    for _ in range(3):
        await stranger.report()
        await stranger.heartbeat()
    await wait_for(lambda: bool(hass.config_entries.flow.async_progress_by_handler(DOMAIN)))
    await hass.async_block_till_done()
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert len(flows) == 1
    assert flows[0]["context"]["source"] == SOURCE_INTEGRATION_DISCOVERY
    assert flows[0]["context"]["unique_id"] == IMEI_UNKNOWN
    registry = er.async_get(hass)
    assert registry.async_get_entity_id("device_tracker", DOMAIN, IMEI_UNKNOWN) is None
    # Every frame was answered: login, three locations, three heartbeats.
    await wait_for(lambda: len([d for d in stranger.received if d.kind == "ack"]) == 7)


async def test_jt808_short_terminal_id_matches_imei(
    hass: HomeAssistant, entry: MockConfigEntry, make_tracker
) -> None:
    """A JT808 unit that reports only its IMEI's last 11 digits reaches the IMEI's entry."""
    tracker: SimulatedTracker = await make_tracker("jt808")
    assert tracker.terminal == "0" + IMEI[-11:]
    await tracker.login()
    await tracker.report(latitude=1.5, longitude=2.5)
    await wait_for_state(
        hass, ids(hass)["tracker"], lambda s: s.attributes.get("latitude") == pytest.approx(1.5)
    )
    assert not hass.config_entries.flow.async_progress_by_handler(DOMAIN)


async def test_late_and_invalid_fixes_do_not_move_the_tracker(
    hass: HomeAssistant, entry: MockConfigEntry, make_tracker
) -> None:
    """A buffered upload older than the shown fix, or an invalid fix, leaves the map alone."""
    tracker: SimulatedTracker = await make_tracker("jt808")
    await tracker.login()
    await tracker.report(latitude=10.0, longitude=20.0)
    entities = ids(hass)
    await wait_for_state(
        hass, entities["tracker"], lambda s: s.attributes.get("latitude") == pytest.approx(10.0)
    )
    old = tracker.fix.time - timedelta(minutes=30)
    await tracker.upload_buffered(
        [tracker.fix.__class__(time=old, latitude=11.0, longitude=21.0, relay=False)]
    )
    await tracker.report(latitude=12.0, longitude=22.0, valid=False)
    await tracker.report(latitude=13.0, longitude=23.0, valid=True)
    await wait_for_state(
        hass, entities["tracker"], lambda s: s.attributes.get("latitude") == pytest.approx(13.0)
    )


async def test_garbage_client_does_not_disturb_a_good_one(
    hass: HomeAssistant, entry: MockConfigEntry, make_tracker, port: int
) -> None:
    """A peer sending junk is logged and ignored; a real tracker on the same port works."""
    import asyncio

    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + bytes(range(256)) * 20)
    await writer.drain()
    tracker: SimulatedTracker = await make_tracker("h02")
    await tracker.report(latitude=40.0, longitude=-3.7)
    await wait_for_state(
        hass, ids(hass)["tracker"], lambda s: s.attributes.get("latitude") == pytest.approx(40.0)
    )
    writer.close()
    await writer.wait_closed()
    del reader


async def test_report_to_state_latency(
    hass: HomeAssistant, entry: MockConfigEntry, make_tracker
) -> None:
    """Time from a report's bytes being written to the tracker entity's new state.

    Printed for the record (run with -s), never asserted: timing depends on the machine.
    """
    tracker: SimulatedTracker = await make_tracker("jt808")
    await tracker.login()
    tracker_id = ids(hass)["tracker"]
    changed: list[float] = []

    @callback
    def _changed(event: Event[EventStateChangedData]) -> None:
        changed.append(time.perf_counter())

    unsubscribe = async_track_state_change_event(hass, [tracker_id], _changed)
    samples = []
    for step in range(50):
        before = len(changed)
        start = time.perf_counter()
        await tracker.report(latitude=30.0 + step / 100, longitude=10.0)
        await wait_for(lambda before=before: len(changed) > before)
        samples.append(changed[before] - start)
    unsubscribe()
    samples.sort()
    print(  # noqa: T201 - the figure is the point of this test
        f"\nreport bytes -> device_tracker state over TCP (50 reports): "
        f"median {samples[25] * 1000:.2f} ms, p90 {samples[45] * 1000:.2f} ms, "
        f"max {samples[-1] * 1000:.2f} ms"
    )
    assert len(samples) == 50


async def test_discovery_flood_is_capped(
    hass: HomeAssistant, entry: MockConfigEntry, make_tracker
) -> None:
    """Made-up IMEIs cannot bury the UI: at most MAX_PENDING_DISCOVERIES flows wait."""
    from custom_components.tk970.const import MAX_PENDING_DISCOVERIES

    strangers = [
        await make_tracker("h02", "udp", identity=f"{4100000000 + number}")
        for number in range(MAX_PENDING_DISCOVERIES + 5)
    ]
    for stranger in strangers:
        await stranger.report()
    await wait_for(
        lambda: (
            len(hass.config_entries.flow.async_progress_by_handler(DOMAIN))
            >= MAX_PENDING_DISCOVERIES
        )
    )
    for stranger in strangers:  # a second round changes nothing
        await stranger.report()
    await hass.async_block_till_done()
    assert len(hass.config_entries.flow.async_progress_by_handler(DOMAIN)) == (
        MAX_PENDING_DISCOVERIES
    )


async def test_ignored_tracker_stays_ignored(
    hass: HomeAssistant, entry: MockConfigEntry, make_tracker
) -> None:
    """A tracker the user chose to ignore is answered but never offered again."""
    MockConfigEntry(domain=DOMAIN, unique_id=IMEI_UNKNOWN, source="ignore").add_to_hass(hass)
    stranger: SimulatedTracker = await make_tracker("gt06", identity=IMEI_UNKNOWN)
    await stranger.login()
    await stranger.report()
    await wait_for(lambda: len([d for d in stranger.received if d.kind == "ack"]) == 2)
    await hass.async_block_till_done()
    assert not hass.config_entries.flow.async_progress_by_handler(DOMAIN)


async def test_a_wrong_clock_does_not_freeze_the_map_or_swallow_sos(
    hass: HomeAssistant, entry: MockConfigEntry, make_tracker
) -> None:
    """One report dated hours ahead (bad RTC, unlearned zone) must not make later ones 'old'."""
    from homeassistant.util import dt as dt_util

    ahead = dt_util.utcnow() + timedelta(hours=3)
    clock = [ahead]
    tracker: SimulatedTracker = await make_tracker("gt06", clock=lambda: clock[0])
    await tracker.login()
    entities = ids(hass)
    await tracker.sos()
    await wait_for_state(hass, entities["sos"], lambda s: s.state == STATE_ON)
    first = hass.states.get(entities["event"]).state
    clock[0] = dt_util.utcnow()
    await tracker.report(latitude=21.0, longitude=22.0)
    await wait_for_state(
        hass, entities["tracker"], lambda s: s.attributes.get("latitude") == pytest.approx(21.0)
    )
    clock[0] = dt_util.utcnow() + timedelta(seconds=2)  # a second press, moments later
    await tracker.sos()
    await wait_for_state(hass, entities["event"], lambda s: s.state != first)


async def test_a_newer_status_wins_over_the_command_answer(
    hass: HomeAssistant, entry: MockConfigEntry, make_tracker
) -> None:
    """The device answers "Success" and, in the same read, a status with the relay off: off."""
    from simulator import frames

    tracker: SimulatedTracker = await make_tracker("gt06", answer_commands=False)
    await tracker.login()
    relay = ids(hass)["relay"]
    await wait_for_state(hass, relay, lambda s: s.state != STATE_UNAVAILABLE)

    async def answer() -> None:
        command = await tracker.wait_for(lambda d: d.kind == "command")
        parsed = frames.gt06_command(command.raw)
        assert parsed is not None
        reply = frames.gt06_command_reply(parsed[0], "Cut off the fuel supply: Success!", 50)
        status = frames.gt06_heartbeat(tracker.fix, 51)  # relay bit clear
        await tracker.send(reply + status)

    answering = asyncio.create_task(answer())
    await hass.services.async_call("switch", "turn_on", {"entity_id": relay}, blocking=True)
    await answering
    assert hass.states.get(relay).state == STATE_OFF


async def test_a_fallback_position_keeps_the_last_speed(
    hass: HomeAssistant, entry: MockConfigEntry, make_tracker
) -> None:
    """An LBS position carries no speed: the speed guard must not read it as 'stopped'."""
    from custom_components.tk970.protocol import Message, MessageType, PositionSource, Protocol

    tracker: SimulatedTracker = await make_tracker("jt808")
    await tracker.login()
    await tracker.report(speed_kmh=70.0)
    coordinator = entry.runtime_data
    await wait_for(lambda: coordinator.data.speed_kmh == pytest.approx(70.0))
    assert coordinator.link is not None
    coordinator.async_handle_messages(
        coordinator.link,
        [
            Message(
                protocol=Protocol.JT808,
                type=MessageType.LBS,
                time=tracker.fix.time + timedelta(seconds=10),  # a fix of the same age wins
                latitude=52.6,
                longitude=13.5,
                position_source=PositionSource.LBS,
            )
        ],
    )
    assert coordinator.data.latitude == pytest.approx(52.6)
    assert coordinator.data.accuracy == 1000
    assert coordinator.data.speed_kmh == pytest.approx(70.0)
    with pytest.raises(ServiceValidationError):
        await hass.services.async_call(
            "switch", "turn_on", {"entity_id": ids(hass)["relay"]}, blocking=True
        )


async def test_status_frames_do_not_rewrite_the_tracker_state(
    hass: HomeAssistant, entry: MockConfigEntry, make_tracker
) -> None:
    """Heartbeats change nothing on the map, so they record no new tracker state."""
    tracker: SimulatedTracker = await make_tracker("gt06")
    await tracker.login()
    await tracker.report(latitude=1.0, longitude=2.0)
    tracker_id = ids(hass)["tracker"]
    state = await wait_for_state(
        hass, tracker_id, lambda s: s.attributes.get("latitude") == pytest.approx(1.0)
    )
    for _ in range(3):
        await tracker.heartbeat()
    await wait_for(lambda: len([d for d in tracker.received if d.detail == "13"]) == 3)
    await hass.async_block_till_done()
    assert hass.states.get(tracker_id).last_updated == state.last_updated


async def test_odometer_sensor(hass: HomeAssistant, entry: MockConfigEntry, make_tracker) -> None:
    """The odometer comes disabled (many trackers never count distance); enabled, it shows
    what the tracker reports (JT808 item 0x01, in 0.1 km)."""
    registry = er.async_get(hass)
    odometer = entity_id(hass, "sensor", f"{IMEI}_odometer")
    assert registry.async_get(odometer).disabled_by is er.RegistryEntryDisabler.INTEGRATION
    registry.async_update_entity(odometer, disabled_by=None)
    await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    tracker: SimulatedTracker = await make_tracker("jt808")
    await tracker.login()
    await tracker.report(odometer_km=12345.6)
    state = await wait_for_state(
        hass, odometer, lambda s: s.state not in ("unknown", "unavailable")
    )
    assert float(state.state) == pytest.approx(12345.6)
    assert state.attributes["unit_of_measurement"] == "km"
