"""End to end: the test Home Assistant's own MQTT integration, a real broker, the gateway, a
simulated tracker. The tracker appears on the map, its alarms and relay work from HA."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from homeassistant.const import STATE_OFF, STATE_ON, STATE_UNKNOWN
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr, entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from simulator import SimulatedTracker
from tests.common import IMEI, wait_for, wait_for_state
from tests.gateway.conftest import Mosquitto

pytestmark = pytest.mark.usefixtures("socket_enabled")


def _entity(hass: HomeAssistant, platform: str, unique_id: str) -> str:
    found = er.async_get(hass).async_get_entity_id(platform, "mqtt", unique_id)
    assert found is not None, f"no {platform} with unique ID {unique_id}"
    return found


@pytest.mark.timeout(180)
async def test_home_assistant_sees_the_tracker(
    hass: HomeAssistant,
    broker: Mosquitto,
    gateways: Any,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A plain HA with the MQTT integration shows the device; SOS and the relay work."""
    # The MQTT integration reads configuration.yaml: give the test HA an empty one.
    (tmp_path / "configuration.yaml").write_text("{}\n")
    hass.config.config_dir = str(tmp_path)
    gateway = await gateways("home", allow={IMEI: "Van"})
    tracker = SimulatedTracker(IMEI, protocol="gt06", port=gateway.settings.port)
    await tracker.connect()
    entry = MockConfigEntry(
        domain="mqtt",
        data={"broker": "127.0.0.1", "port": broker.port},
        version=1,
        minor_version=2,
    )
    entry.add_to_hass(hass)
    try:
        assert await hass.config_entries.async_setup(entry.entry_id)
        # Logged in, no position yet: what is not known yet shows as unknown, and no template
        # gives HA a state it warns about (an empty enum state or timestamp would).
        await tracker.login()
        registry = er.async_get(hass)
        await wait_for(
            lambda: all(
                registry.async_get_entity_id(platform, "mqtt", unique_id) is not None
                for platform, unique_id in (
                    ("device_tracker", f"tk970_{IMEI}"),
                    ("sensor", f"tk970_{IMEI}_position_detail"),
                    ("sensor", f"tk970_{IMEI}_protocol"),
                )
            ),
            within=60,
        )
        source = _entity(hass, "sensor", f"tk970_{IMEI}_position_detail")
        protocol = _entity(hass, "sensor", f"tk970_{IMEI}_protocol")
        await wait_for_state(hass, protocol, lambda s: s.state == "GT06", within=30)
        await wait_for_state(hass, source, lambda s: s.state == STATE_UNKNOWN, within=30)

        await tracker.report(latitude=52.5163, longitude=13.3777, speed_kmh=0.0)
        tracker_id = _entity(hass, "device_tracker", f"tk970_{IMEI}")
        state = await wait_for_state(
            hass, tracker_id, lambda s: s.attributes.get("latitude") == 52.5163, within=60
        )
        assert state.attributes["longitude"] == 13.3777
        assert state.attributes["source_type"] == "gps"
        assert state.attributes["position_source"] == "gnss"
        assert state.attributes["gps_accuracy"] > 0
        assert state.state == "not_home"
        assert state.name == "Van"

        # Looked up in a way every supported release allows (2026 deprecated async_get_device).
        device = next(
            d
            for d in dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id)
            if ("mqtt", f"tk970_{IMEI}") in d.identifiers
        )
        assert device.manufacturer == "TK-Star"
        assert device.model == "TK970 (GT06)"
        assert device.serial_number == IMEI

        # Enum states by the names the integration shows (MQTT entities have no translations).
        await wait_for_state(hass, source, lambda s: s.state == "GPS", within=30)

        sos = _entity(hass, "binary_sensor", f"tk970_{IMEI}_sos")
        await wait_for_state(hass, sos, lambda s: s.state == STATE_OFF, within=30)
        await tracker.sos()
        await wait_for_state(hass, sos, lambda s: s.state == STATE_ON, within=30)
        alarm = _entity(hass, "event", f"tk970_{IMEI}_alarm")
        await wait_for_state(
            hass, alarm, lambda s: s.attributes.get("event_type") == "sos", within=30
        )

        relay = _entity(hass, "switch", f"tk970_{IMEI}_relay")
        await wait_for_state(hass, relay, lambda s: s.state == STATE_OFF, within=30)
        await hass.services.async_call("switch", "turn_on", {"entity_id": relay}, blocking=True)
        await wait_for_state(hass, relay, lambda s: s.state == STATE_ON, within=30)
        assert tracker.relay is True
        outcome = _entity(hass, "event", f"tk970_{IMEI}_relay_command")
        await wait_for_state(
            hass, outcome, lambda s: s.attributes.get("event_type") == "confirmed", within=30
        )
        battery = _entity(hass, "sensor", f"tk970_{IMEI}_battery")
        await tracker.heartbeat()  # GT06 reports the battery in its status frames
        await wait_for_state(hass, battery, lambda s: s.state.replace(".", "").isdigit(), within=30)

        await tracker.close()
        # The relay needs the tracker's connection; the map keeps the last position.
        await wait_for_state(hass, relay, lambda s: s.state == "unavailable", within=30)
        assert hass.states.get(tracker_id).attributes["latitude"] == 52.5163  # type: ignore[union-attr]
        warned = [
            r.getMessage()
            for r in caplog.records
            if r.levelno >= logging.WARNING and r.name.startswith("homeassistant.components.mqtt")
        ]
        assert not warned
    finally:
        await tracker.close()
        assert await hass.config_entries.async_unload(entry.entry_id)
        await hass.async_block_till_done()
