"""Entry lifecycle: the shared port, port errors and repairs, unload, restart and restore."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
import socket

from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import STATE_OFF, STATE_ON
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.tk970.const import DOMAIN
from custom_components.tk970.hub import HUBS, identity_matches, port_issue_id
from custom_components.tk970.protocol import Protocol
from custom_components.tk970.store import SAVE_DELAY
from simulator import SimulatedTracker

from .common import (
    IMEI,
    IMEI_2,
    entity_id,
    make_entry,
    saved_state,
    wait_for,
    wait_for_state,
)

pytestmark = pytest.mark.usefixtures("socket_enabled")


def port_is_free(port: int) -> bool:
    """True when both TCP and UDP can bind the port on all interfaces."""
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as sock:
            if kind == socket.SOCK_STREAM:
                # As any server does: connections we closed may linger in TIME_WAIT.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("0.0.0.0", port))
            except OSError:
                return False
    return True


@pytest.fixture
async def tracker(port: int) -> AsyncIterator[SimulatedTracker]:
    """A JT808 tracker for IMEI on the port (not yet connected)."""
    device = SimulatedTracker(IMEI, protocol="jt808", port=port)
    yield device
    await device.close()


async def setup(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Add and set up an entry."""
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()


async def test_setup_opens_and_unload_closes_the_port(hass: HomeAssistant, port: int) -> None:
    """TCP and UDP are bound while loaded, and released after unload."""
    entry = make_entry(port=port)
    await setup(hass, entry)
    assert entry.state is ConfigEntryState.LOADED
    assert not port_is_free(port)
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.NOT_LOADED
    assert port_is_free(port)
    assert not hass.data.get(HUBS)


async def test_two_entries_share_one_port(hass: HomeAssistant, port: int) -> None:
    """One listener serves both; it closes only when the last entry unloads."""
    first, second = make_entry(IMEI, port), make_entry(IMEI_2, port, name="Car")
    await setup(hass, first)
    await setup(hass, second)
    assert first.state is second.state is ConfigEntryState.LOADED
    assert len(hass.data[HUBS]) == 1
    assert await hass.config_entries.async_unload(first.entry_id)
    await hass.async_block_till_done()
    assert not port_is_free(port)
    car = SimulatedTracker(IMEI_2, protocol="gt06", port=port)
    await car.connect()
    await car.login()
    await car.report(latitude=5.0, longitude=6.0)
    await wait_for_state(
        hass,
        entity_id(hass, "device_tracker", IMEI_2),
        lambda s: s.attributes.get("latitude") == pytest.approx(5.0),
    )
    await car.close()
    assert await hass.config_entries.async_unload(second.entry_id)
    await hass.async_block_till_done()
    assert port_is_free(port)


async def test_port_in_use_retries_with_a_repair_issue(
    hass: HomeAssistant, port: int, issue_registry: ir.IssueRegistry
) -> None:
    """A port held by another program: setup retries and a repair issue explains it."""
    blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    blocker.bind(("0.0.0.0", port))
    blocker.listen()
    entry = make_entry(port=port)
    await setup(hass, entry)
    assert entry.state is ConfigEntryState.SETUP_RETRY
    issue = issue_registry.async_get_issue(DOMAIN, port_issue_id(port))
    assert issue is not None
    assert issue.translation_key == "port_in_use"
    assert issue.translation_placeholders["port"] == str(port)
    blocker.close()
    await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert issue_registry.async_get_issue(DOMAIN, port_issue_id(port)) is None


async def test_unload_is_prompt_with_a_tracker_connected(
    hass: HomeAssistant, port: int, tracker: SimulatedTracker
) -> None:
    """A connected tracker does not hold up unloading, and is disconnected."""
    entry = make_entry(port=port)
    await setup(hass, entry)
    await tracker.connect()
    await tracker.login()
    async with asyncio.timeout(5):
        assert await hass.config_entries.async_unload(entry.entry_id)
    # The simulator's reader task ends when the server hangs up on it.
    reading = tracker._task
    assert reading is not None
    async with asyncio.timeout(5):
        await reading
    assert port_is_free(port)


async def test_restart_restores_without_firing_again(hass: HomeAssistant, port: int) -> None:
    """After a restart the position and SOS come back; a replayed SOS is not new."""
    entry = make_entry(port=port)
    await setup(hass, entry)
    sos_time = dt_util.utcnow().replace(microsecond=0)
    clock = sos_time
    tracker = SimulatedTracker(IMEI, protocol="jt808", port=port, clock=lambda: clock)
    await tracker.connect()
    await tracker.login()
    await tracker.report(latitude=47.0, longitude=8.0)
    await tracker.sos()
    sos = entity_id(hass, "binary_sensor", f"{IMEI}_sos")
    event = entity_id(hass, "event", f"{IMEI}_alarm")
    tracker_id = entity_id(hass, "device_tracker", IMEI)
    await wait_for_state(hass, sos, lambda s: s.state == STATE_ON)
    fired = hass.states.get(event).state
    await tracker.close()

    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert hass.states.get(sos).state == STATE_ON
    assert hass.states.get(event).state == fired
    assert hass.states.get(tracker_id).attributes["latitude"] == pytest.approx(47.0)

    # The tracker reconnects and replays the SOS it buffered: same device time, no new event.
    replay = SimulatedTracker(IMEI, protocol="jt808", port=port, clock=lambda: clock)
    await replay.connect()
    await replay.login()
    await replay.sos()
    clock = sos_time + timedelta(seconds=2)
    await replay.report(latitude=47.5, longitude=8.0)
    await wait_for_state(
        hass, tracker_id, lambda s: s.attributes.get("latitude") == pytest.approx(47.5)
    )
    assert hass.states.get(event).state == fired
    await replay.close()


async def test_alarm_hold_time_and_clearing(
    hass: HomeAssistant, port: int, tracker: SimulatedTracker
) -> None:
    """SOS clears when a status shows it clear; vibration after the hold time."""
    entry = make_entry(port=port)
    await setup(hass, entry)
    await tracker.connect()
    await tracker.login()
    sos = entity_id(hass, "binary_sensor", f"{IMEI}_sos")
    vibration = entity_id(hass, "binary_sensor", f"{IMEI}_vibration")
    await tracker.sos()
    await wait_for_state(hass, sos, lambda s: s.state == STATE_ON)
    await tracker.clear_alarms()
    await wait_for_state(hass, sos, lambda s: s.state == STATE_OFF)

    # GPS103 reports vibration as an event with no status word: only the hold time clears it.
    gps103 = SimulatedTracker(IMEI, protocol="gps103", port=port)
    await gps103.connect()
    await gps103.login()
    await gps103.vibration()
    await wait_for_state(hass, vibration, lambda s: s.state == STATE_ON)
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(minutes=9))
    await hass.async_block_till_done()
    assert hass.states.get(vibration).state == STATE_ON
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(minutes=11))
    await hass.async_block_till_done()
    assert hass.states.get(vibration).state == STATE_OFF
    await gps103.close()


async def test_tracker_disconnect_makes_relay_unavailable(
    hass: HomeAssistant, port: int, tracker: SimulatedTracker
) -> None:
    """The relay switch follows the connection; the tracker keeps its last position."""
    entry = make_entry(port=port)
    await setup(hass, entry)
    relay = entity_id(hass, "switch", f"{IMEI}_relay")
    connected = entity_id(hass, "binary_sensor", f"{IMEI}_connected")
    await tracker.connect()
    await tracker.login()
    await wait_for_state(hass, relay, lambda s: s.state != "unavailable")
    await tracker.close()
    await wait_for_state(hass, relay, lambda s: s.state == "unavailable")
    assert hass.states.get(connected).state == STATE_OFF


@pytest.mark.parametrize(
    ("reported", "protocol", "configured", "matches"),
    [
        ("359586015829802", Protocol.GT06, "359586015829802", True),
        ("0359586015829802", Protocol.H02, "359586015829802", True),  # leading zero
        ("086015829802", Protocol.JT808, "359586015829802", True),  # last 11, zero-padded
        ("86015829802", Protocol.JT808, "359586015829802", True),  # last 11 exactly
        ("086015829802", Protocol.GT06, "359586015829802", False),  # only JT808 ids are short
        ("000000000001", Protocol.JT808, "359586015829802", False),
        ("00000866496077582164", Protocol.JT808, "866496077582164", True),  # 2019 header
        ("12345", Protocol.JT808, "359586015829802", False),
    ],
)
def test_identity_matching_rule(
    reported: str, protocol: Protocol, configured: str, matches: bool
) -> None:
    """The rule of interfaces.md §3, including a JT808 id that is the IMEI's tail."""
    assert identity_matches(reported, protocol, configured) is matches


async def test_wait_for_helper_times_out() -> None:
    """The polling helper gives up (so a broken test fails instead of hanging)."""
    with pytest.raises(TimeoutError):
        await wait_for(lambda: False, within=0.05)


async def test_permission_error_is_not_retried(
    hass: HomeAssistant, port: int, issue_registry: ir.IssueRegistry
) -> None:
    """No permission for the port (below 1024) will not fix itself: setup error, repair."""
    from unittest.mock import patch

    with patch(
        "custom_components.tk970.listener.Listener.start",
        side_effect=PermissionError(13, "Permission denied"),
    ):
        entry = make_entry(port=port)
        await setup(hass, entry)
    assert entry.state is ConfigEntryState.SETUP_ERROR
    issue = issue_registry.async_get_issue(DOMAIN, port_issue_id(port))
    assert issue is not None
    assert issue.translation_key == "port_error"
    # Removing the tracker removes the repair that only concerned its port.
    await hass.config_entries.async_remove(entry.entry_id)
    await hass.async_block_till_done()
    assert issue_registry.async_get_issue(DOMAIN, port_issue_id(port)) is None


async def test_removing_a_tracker_deletes_its_saved_state(
    hass: HomeAssistant, port: int, tracker: SimulatedTracker, hass_storage: dict
) -> None:
    """Nothing of a deleted tracker stays in Home Assistant's storage."""
    entry = make_entry(port=port)
    await setup(hass, entry)
    await tracker.connect()
    await tracker.login()
    await tracker.report(latitude=3.0, longitude=4.0)
    await wait_for(lambda: entry.runtime_data.data.latitude is not None)
    await tracker.close()
    assert await hass.config_entries.async_unload(entry.entry_id)
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=SAVE_DELAY + 1))
    await hass.async_block_till_done()
    saved = saved_state(hass_storage, entry.entry_id)
    assert saved is not None
    assert saved["latitude"] == 3.0
    await hass.config_entries.async_remove(entry.entry_id)
    await hass.async_block_till_done()
    assert saved_state(hass_storage, entry.entry_id) is None


async def test_options_apply_without_dropping_the_connection(
    hass: HomeAssistant, port: int
) -> None:
    """Changing options does not reload: the tracker stays connected; a new hold time applies."""
    entry = make_entry(port=port)
    await setup(hass, entry)
    # GPS103 reports vibration as an event only, so the hold time is what clears it.
    device = SimulatedTracker(IMEI, protocol="gps103", port=port)
    await device.connect()
    await device.login()
    await device.vibration()
    vibration = entity_id(hass, "binary_sensor", f"{IMEI}_vibration")
    await wait_for_state(hass, vibration, lambda s: s.state == STATE_ON)
    link = entry.runtime_data.link
    hass.config_entries.async_update_entry(entry, options={"alarm_hold_minutes": 1})
    await hass.async_block_till_done()
    assert entry.runtime_data.link is link  # the same connection: no reload happened
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(minutes=2))
    await hass.async_block_till_done()
    assert hass.states.get(vibration).state == STATE_OFF
    await device.close()


async def test_update_entity_is_harmless(hass: HomeAssistant, port: int) -> None:
    """`homeassistant.update_entity` on a pushed entity just re-renders it."""
    entry = make_entry(port=port)
    await setup(hass, entry)
    assert await async_setup_component(hass, "homeassistant", {})
    battery = entity_id(hass, "sensor", f"{IMEI}_battery")
    await hass.services.async_call(
        "homeassistant", "update_entity", {"entity_id": battery}, blocking=True
    )


async def test_disconnect_is_seen_after_another_entry_joins(
    hass: HomeAssistant, port: int, tracker: SimulatedTracker
) -> None:
    """Adding a second tracker on the port must not make the first one's hang-up go unseen."""
    first = make_entry(IMEI, port)
    await setup(hass, first)
    await tracker.connect()
    await tracker.login()
    connected = entity_id(hass, "binary_sensor", f"{IMEI}_connected")
    await wait_for_state(hass, connected, lambda s: s.state == STATE_ON)
    await setup(hass, make_entry(IMEI_2, port, name="Car"))
    await tracker.close()
    await wait_for_state(hass, connected, lambda s: s.state == STATE_OFF)
    assert first.runtime_data.link is None


async def test_state_saved_by_an_earlier_version_is_moved_in(
    hass: HomeAssistant, port: int, hass_storage: dict
) -> None:
    """Versions before the shared file saved one file per tracker: it is read, then removed."""
    entry = make_entry(port=port)
    legacy = f"{DOMAIN}.{entry.entry_id}"
    hass_storage[legacy] = {
        "version": 1,
        "minor_version": 1,
        "key": legacy,
        "data": {"latitude": 5.0, "longitude": 6.0, "accuracy": 10, "relay": True},
    }
    await setup(hass, entry)
    tracker_id = entity_id(hass, "device_tracker", IMEI)
    assert hass.states.get(tracker_id).attributes["latitude"] == pytest.approx(5.0)
    assert entry.runtime_data.data.relay is True
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=SAVE_DELAY + 1))
    await hass.async_block_till_done()
    assert (saved_state(hass_storage, entry.entry_id) or {})["latitude"] == 5.0
    assert legacy not in hass_storage
