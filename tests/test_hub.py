"""The hub in a real Home Assistant: which session commands go over, the duplicate repair,
discovery bookkeeping under floods, and the stop listener."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import logging
import socket

from homeassistant.config_entries import SOURCE_INTEGRATION_DISCOVERY
from homeassistant.const import EVENT_HOMEASSISTANT_STOP, STATE_ON, STATE_UNAVAILABLE
from homeassistant.core import CoreState, HomeAssistant
from homeassistant.helpers import issue_registry as ir
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.tk970 import hub as hub_module
from custom_components.tk970.const import DOMAIN, MAX_PENDING_DISCOVERIES
from custom_components.tk970.hub import HUBS, duplicate_issue_id
from simulator import SimulatedTracker, frames

from .common import IMEI, entity_id, wait_for, wait_for_state

pytestmark = pytest.mark.usefixtures("socket_enabled")


@pytest.fixture
async def devices(port: int) -> AsyncIterator[list[SimulatedTracker]]:
    """Simulated trackers made by a test; all closed at the end."""
    made: list[SimulatedTracker] = []
    yield made
    for device in made:
        await device.close()


async def connected(
    devices: list[SimulatedTracker], port: int, protocol: str, identity: str = IMEI
) -> SimulatedTracker:
    """A logged-in simulated tracker."""
    device = SimulatedTracker(identity, protocol=protocol, port=port)
    devices.append(device)
    await device.connect()
    await device.login()
    return device


def heartbeats(senders: list[socket.socket], port: int, first: int, count: int) -> None:
    """H02 heartbeats naming `count` made-up IDs from `first` on, spread over `senders`."""
    for number in range(count):
        heartbeat = frames.h02_heartbeat(f"{first + number}", 50)
        senders[number % len(senders)].sendto(heartbeat, ("127.0.0.1", port))


def flows(hass: HomeAssistant) -> list[str]:
    """Unique IDs of the discovery flows waiting."""
    return [
        flow["context"]["unique_id"]
        for flow in hass.config_entries.flow.async_progress_by_handler(
            DOMAIN, match_context={"source": SOURCE_INTEGRATION_DISCOVERY}
        )
    ]


async def test_tracker_under_two_identities_raises_the_repair_then_clears_it(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    port: int,
    devices: list[SimulatedTracker],
    issue_registry: ir.IssueRegistry,
) -> None:
    """The JT808 terminal ID and the IMEI both talk: one tracker, two live sessions.

    Commands follow the session that sent a valid frame last; when one hangs up the tracker
    stays connected over the other (no "disconnected" for a session that was not the last).
    """
    coordinator = entry.runtime_data
    connected_id = entity_id(hass, "binary_sensor", f"{IMEI}_connected")
    jt808 = await connected(devices, port, "jt808")
    await jt808.report(latitude=1.0, longitude=2.0)
    await wait_for(lambda: coordinator.link is not None and coordinator.link.identity != IMEI)
    gt06 = await connected(devices, port, "gt06")
    await wait_for(lambda: coordinator.link is not None and coordinator.link.identity == IMEI)
    issue_id = duplicate_issue_id(entry.entry_id)
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is None  # the first has not spoken
    await jt808.heartbeat()
    await wait_for(lambda: issue_registry.async_get_issue(DOMAIN, issue_id) is not None)
    issue = issue_registry.async_get_issue(DOMAIN, issue_id)
    assert issue.translation_key == "duplicate_session"
    assert issue.severity is ir.IssueSeverity.WARNING
    addresses = issue.translation_placeholders["addresses"]
    assert addresses.count("127.0.0.1 (TCP") == 2
    assert f"ID {IMEI}" in addresses
    assert f"ID {jt808.terminal}" in addresses
    await wait_for(lambda: coordinator.link.identity == jt808.terminal)  # it spoke last
    await gt06.close()
    await wait_for(lambda: issue_registry.async_get_issue(DOMAIN, issue_id) is None)
    assert coordinator.link is not None
    assert coordinator.link.identity == jt808.terminal
    assert hass.states.get(connected_id).state == STATE_ON
    relay = entity_id(hass, "switch", f"{IMEI}_relay")
    assert hass.states.get(relay).state != STATE_UNAVAILABLE
    await hass.services.async_call("switch", "turn_on", {"entity_id": relay}, blocking=True)
    assert jt808.relay is True


async def test_removing_the_entry_removes_its_duplicate_repair(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    port: int,
    devices: list[SimulatedTracker],
    issue_registry: ir.IssueRegistry,
) -> None:
    """A repair about a tracker that is no longer configured goes with it."""
    first = await connected(devices, port, "gt06")
    await connected(devices, port, "gt06")
    await first.heartbeat()
    issue_id = duplicate_issue_id(entry.entry_id)
    await wait_for(lambda: issue_registry.async_get_issue(DOMAIN, issue_id) is not None)
    assert await hass.config_entries.async_remove(entry.entry_id)
    await hass.async_block_till_done()
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is None


async def test_stop_event_then_unload_logs_no_error(
    hass: HomeAssistant, entry: MockConfigEntry, port: int, caplog: pytest.LogCaptureFixture
) -> None:
    """Home Assistant stopping closes the port; unloading afterwards does not unsubscribe twice."""
    hass.bus.async_fire(EVENT_HOMEASSISTANT_STOP)
    await hass.async_block_till_done()
    hub = hass.data[HUBS][port]
    assert hub.unsubscribe_stop is None
    with caplog.at_level(logging.ERROR):
        assert await hass.config_entries.async_unload(entry.entry_id)
        await hass.async_block_till_done()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_unknown_trackers_are_offered_only_once_home_assistant_runs(
    hass: HomeAssistant, entry: MockConfigEntry, port: int
) -> None:
    """Offers asked for while starting would queue unseen past the cap: they wait instead."""
    hass.set_state(CoreState.starting)
    senders = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(4)]

    def report_all() -> None:
        heartbeats(senders, port, 4300000000, MAX_PENDING_DISCOVERIES + 5)

    listener = hass.data[HUBS][port].listener
    report_all()
    await wait_for(lambda: len(listener.links) == MAX_PENDING_DISCOVERIES + 5)
    await hass.async_block_till_done()
    assert not flows(hass)
    hass.set_state(CoreState.running)
    report_all()  # every one arrives within the same moment
    await wait_for(lambda: len(flows(hass)) == MAX_PENDING_DISCOVERIES)
    await hass.async_block_till_done()
    assert len(flows(hass)) == MAX_PENDING_DISCOVERIES
    for sender in senders:
        sender.close()


async def test_offer_bookkeeping_and_its_log_are_bounded(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    port: int,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Made-up identities past the cap are remembered up to a bound, and logged once."""
    monkeypatch.setattr(hub_module, "MAX_OFFERS_REMEMBERED", 20)
    hub = hass.data[HUBS][port]
    senders = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(25)]
    with caplog.at_level(logging.INFO, logger="custom_components.tk970"):
        heartbeats(senders, port, 4400000000, 100)
        await wait_for(lambda: hub.listener.stats.messages == 100)
        await hass.async_block_till_done()
    assert len(hub._offered) == 20
    assert len(flows(hass)) == MAX_PENDING_DISCOVERIES
    capped = [r for r in caplog.records if "not offered because" in r.getMessage()]
    assert len(capped) == 1
    offered = [r for r in caplog.records if "offered for adding" in r.getMessage()]
    assert len(offered) == MAX_PENDING_DISCOVERIES
    for sender in senders:
        sender.close()


async def test_a_report_after_reconnecting_restores_the_link(
    hass: HomeAssistant, entry: MockConfigEntry, port: int, devices: list[SimulatedTracker]
) -> None:
    """Close and reconnect: disconnected in between, then connected over the new session."""
    connected_id = entity_id(hass, "binary_sensor", f"{IMEI}_connected")
    first = await connected(devices, port, "gt06")
    await wait_for_state(hass, connected_id, lambda s: s.state == STATE_ON)
    await first.close()
    await wait_for_state(hass, connected_id, lambda s: s.state != STATE_ON)
    second = await connected(devices, port, "gt06")
    await wait_for_state(hass, connected_id, lambda s: s.state == STATE_ON)
    link = entry.runtime_data.link
    assert link is not None
    assert link.session is hass.data[HUBS][port].listener.link(IMEI).session
    await second.close()
    await asyncio.sleep(0)


async def test_flows_still_starting_count_against_the_cap(
    hass: HomeAssistant, entry: MockConfigEntry, port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A discovery flow that has not shown its form yet is invisible to Home Assistant's
    progress list (its first step may wait for an import); it counts against the cap anyway."""
    from custom_components.tk970.config_flow import TK970ConfigFlow

    original = TK970ConfigFlow.async_step_integration_discovery

    async def slow(self: TK970ConfigFlow, discovery_info: dict[str, object]) -> object:
        await asyncio.sleep(0.5)
        return await original(self, discovery_info)  # type: ignore[arg-type]

    monkeypatch.setattr(TK970ConfigFlow, "async_step_integration_discovery", slow)
    senders = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(5)]
    heartbeats(senders, port, 4500000000, MAX_PENDING_DISCOVERIES + 8)
    listener = hass.data[HUBS][port].listener
    await wait_for(lambda: listener.stats.messages == MAX_PENDING_DISCOVERIES + 8)
    await wait_for(lambda: len(flows(hass)) >= MAX_PENDING_DISCOVERIES)
    # Flows started in the same moment finish their slow first step together: give any
    # extra one the same time again before counting.
    await asyncio.sleep(1.0)
    assert len(flows(hass)) == MAX_PENDING_DISCOVERIES
    for sender in senders:
        sender.close()


async def test_diagnostics_show_the_listener_limits_and_resources(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    port: int,
    devices: list[SimulatedTracker],
    hass_client: object,
) -> None:
    """Diagnostics carry the limits in force, what start found, and the tracker's sessions."""
    from pytest_homeassistant_custom_component.components.diagnostics import (
        get_diagnostics_for_config_entry,
    )

    await connected(devices, port, "gt06")
    await wait_for(lambda: entry.runtime_data.link is not None)
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    listener = diagnostics["listener"]
    assert listener["limits"]["identify_timeout"] == 60.0
    assert listener["resources"]["max_connections"] <= listener["limits"]["max_connections"]
    assert listener["sessions_for_this_tracker"] == 1
    assert listener["unidentified_connections"] == 0
