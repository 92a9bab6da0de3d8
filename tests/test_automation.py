"""Automating on alarms: device triggers, the bus event, the event entity; and diagnostics."""

from __future__ import annotations

from collections.abc import AsyncIterator

from homeassistant.components import automation
from homeassistant.components.device_automation import DeviceAutomationType
from homeassistant.core import HomeAssistant, ServiceCall, callback
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_get_device_automations,
)
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.tk970.const import DOMAIN, EVENT_TK970
from custom_components.tk970.protocol import Alarm
from simulator import SimulatedTracker

from .common import IMEI, free_port, make_entry, wait_for

pytestmark = pytest.mark.usefixtures("socket_enabled")


@pytest.fixture
async def loaded(hass: HomeAssistant) -> MockConfigEntry:
    """A configured tracker on a free port."""
    entry = make_entry(port=free_port())
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


@pytest.fixture
async def tracker(loaded: MockConfigEntry) -> AsyncIterator[SimulatedTracker]:
    """A connected, logged-in GT06 tracker for the entry."""
    device = SimulatedTracker(IMEI, protocol="gt06", port=loaded.data["port"])
    await device.connect()
    await device.login()
    yield device
    await device.close()


async def test_device_triggers_listed(hass: HomeAssistant, loaded: MockConfigEntry) -> None:
    """The automation editor offers one trigger per alarm kind for the tracker's device."""
    device = loaded.runtime_data.find_device()
    assert device is not None
    triggers = await async_get_device_automations(hass, DeviceAutomationType.TRIGGER, device.id)
    types = {t["type"] for t in triggers if t["domain"] == DOMAIN}
    assert types == {alarm.value for alarm in Alarm}


async def test_sos_runs_an_automation(
    hass: HomeAssistant, loaded: MockConfigEntry, tracker: SimulatedTracker
) -> None:
    """An SOS from the tracker fires the device trigger (and only the SOS one)."""
    device = loaded.runtime_data.find_device()
    assert device is not None
    calls: list[ServiceCall] = []

    @callback
    def _record(call: ServiceCall) -> None:
        calls.append(call)

    hass.services.async_register("test", "record", _record)
    assert await async_setup_component(
        hass,
        automation.DOMAIN,
        {
            automation.DOMAIN: [
                {
                    "trigger": {
                        "platform": "device",
                        "domain": DOMAIN,
                        "device_id": device.id,
                        "type": trigger_type,
                    },
                    "action": {
                        "service": "test.record",
                        "data": {"type": trigger_type},
                    },
                }
                for trigger_type in ("sos", "vibration")
            ]
        },
    )
    bus_events = []
    hass.bus.async_listen(EVENT_TK970, bus_events.append)
    await tracker.sos()
    await wait_for(lambda: bool(calls))
    await hass.async_block_till_done()
    assert [call.data["type"] for call in calls] == ["sos"]
    assert bus_events[0].data["type"] == "sos"
    assert bus_events[0].data["device_id"] == device.id
    assert bus_events[0].data["imei"] == IMEI


async def test_diagnostics_redact_location_and_identity(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    loaded: MockConfigEntry,
    tracker: SimulatedTracker,
) -> None:
    """Diagnostics show the connection and counters, never the IMEI or the position."""
    await tracker.report(latitude=51.5, longitude=-0.12)
    await wait_for(lambda: loaded.runtime_data.data.latitude is not None)
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, loaded)
    text = str(diagnostics)
    assert IMEI not in text
    assert "51.5" not in text
    assert diagnostics["connection"]["protocol"] == "gt06"
    assert diagnostics["connection"]["transport"] == "tcp"
    assert diagnostics["connection"]["session"]["messages"] >= 2
    assert diagnostics["listener"]["tcp_connections"] == 1
    assert diagnostics["state"]["latitude"] == "**REDACTED**"
    assert diagnostics["state"]["clock_offset"] == 0
    assert diagnostics["activity"]["online"] is True
