"""The blueprints: imported by URL through Home Assistant's blueprint integration, an automation
made from each, fired by a real report from a simulated tracker through the listener.

The import goes through the blueprint integration's own websocket API (`blueprint/import` then
`blueprint/save`), fetching the repository's file from a local HTTP server as it would from
GitHub. The notification is recorded by a notify action registered with the test plugin's
`async_mock_service`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from homeassistant.components import automation
from homeassistant.core import HomeAssistant, ServiceCall
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_mock_service
from pytest_homeassistant_custom_component.typing import WebSocketGenerator
import yaml

from custom_components.tk970.const import DOMAIN
from simulator import SimulatedTracker, frames

from .common import IMEI, entity_id, free_port, logged_in, set_up_entry, wait_for, wait_for_state

BLUEPRINTS = Path(__file__).parent.parent / "blueprints" / "automation" / "tk970"
NAMES = ["power_cut_notify", "sos_notify", "zone_left_ignition_off"]


@pytest.fixture
async def blueprint_server(socket_enabled: None) -> AsyncIterator[str]:
    """The repository's blueprint folder over HTTP, as GitHub serves it raw."""
    app = web.Application()
    app.router.add_static("/", BLUEPRINTS)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.fixture
async def imported(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    blueprint_server: str,
    tmp_path: Path,
) -> None:
    """Each blueprint imported by its URL and saved, as the "Import blueprint" dialog does."""
    hass.config.config_dir = str(tmp_path)  # blueprints are saved under the config folder
    assert await async_setup_component(hass, automation.DOMAIN, {})
    client = await hass_ws_client()
    for number, name in enumerate(NAMES):
        url = f"{blueprint_server}/{name}.yaml"
        await client.send_json({"id": 2 * number + 1, "type": "blueprint/import", "url": url})
        response = await client.receive_json()
        assert response["success"], response
        result = response["result"]
        assert result["validation_errors"] is None
        assert result["blueprint"]["metadata"]["domain"] == "automation"
        # The file names its own place on GitHub (the README's import links point there).
        assert (
            f"source_url: https://github.com/tk970/tk970/blob/main/blueprints/automation/"
            f"tk970/{name}.yaml\n" in result["raw_data"]
        )
        await client.send_json(
            {
                "id": 2 * number + 2,
                "type": "blueprint/save",
                "domain": "automation",
                "path": f"tk970/{name}",
                "yaml": result["raw_data"],
                "source_url": url,
            }
        )
        response = await client.receive_json()
        assert response["success"], response
    await client.send_json({"id": 99, "type": "blueprint/list", "domain": "automation"})
    response = await client.receive_json()
    listed = response["result"]
    for name in NAMES:
        metadata = listed[f"tk970/{name}.yaml"]["metadata"]
        assert "error" not in listed[f"tk970/{name}.yaml"]
        # Every input that picks a tracker offers only this integration's devices/entities.
        for spec in metadata["input"].values():
            selector = spec["selector"]
            for kind in ("device", "entity"):
                if kind in selector and spec.get("default") != "zone.home":
                    assert selector[kind]["filter"][0]["integration"] == DOMAIN


@pytest.fixture
async def loaded(hass: HomeAssistant, socket_enabled: None) -> MockConfigEntry:
    """A configured tracker on a free port."""
    return await set_up_entry(hass)


@pytest.fixture
async def tracker(loaded: MockConfigEntry) -> AsyncIterator[SimulatedTracker]:
    """A connected, logged-in GT06 tracker for the entry."""
    async with logged_in(loaded) as device:
        yield device


async def _automation(hass: HomeAssistant, blueprint: str, inputs: dict[str, Any]) -> None:
    """Write an automation using the blueprint to configuration.yaml and reload automations."""
    config = {
        automation.DOMAIN: [
            {
                "alias": blueprint,
                "use_blueprint": {"path": f"tk970/{blueprint}.yaml", "input": inputs},
            }
        ]
    }
    path = Path(hass.config.path("configuration.yaml"))
    await hass.async_add_executor_job(path.write_text, yaml.safe_dump(config))
    await hass.services.async_call(automation.DOMAIN, "reload", blocking=True)
    await hass.async_block_till_done()
    state = hass.states.get(f"automation.{blueprint}")
    assert state is not None
    assert state.state == "on"


async def _device_automation(
    hass: HomeAssistant, entry: MockConfigEntry, blueprint: str
) -> list[ServiceCall]:
    """An automation from a blueprint that takes the tracker's device; its notifications."""
    calls: list[ServiceCall] = async_mock_service(hass, "notify", "test_phone")
    device = entry.runtime_data.find_device()
    assert device is not None
    await _automation(hass, blueprint, {"tracker": device.id, "notify_action": "notify.test_phone"})
    return calls


@pytest.mark.usefixtures("imported")
async def test_sos_blueprint(
    hass: HomeAssistant, loaded: MockConfigEntry, tracker: SimulatedTracker
) -> None:
    """An SOS notifies the phone with a map link to the alarm's fix."""
    calls = await _device_automation(hass, loaded, "sos_notify")
    await tracker.report(latitude=48.137, longitude=11.575)
    await tracker.sos()
    await wait_for(lambda: bool(calls))
    await hass.async_block_till_done()
    assert len(calls) == 1
    data = calls[0].data
    assert data["title"] == "SOS: Van"
    url = "https://www.openstreetmap.org/?mlat=48.137&mlon=11.575#map=17/48.137/11.575"
    assert data["message"].startswith("Van reported an SOS at ")
    assert data["message"].endswith(url)
    assert data["data"]["url"] == url
    assert data["data"]["priority"] == "high"

    # An SOS without a GPS fix: the link goes to the last known position.
    later = tracker.fix.time + timedelta(minutes=5)
    sos = replace(tracker.fix, time=later, valid=False, latitude=0.0, longitude=0.0)
    await tracker.send(frames.gt06_alarm(sos, 0x01, 41))
    await wait_for(lambda: len(calls) == 2)
    assert calls[1].data["data"]["url"] == url


@pytest.mark.usefixtures("imported")
async def test_power_cut_blueprint(
    hass: HomeAssistant, loaded: MockConfigEntry, tracker: SimulatedTracker
) -> None:
    """A power cut notifies; an SOS does not fire this one."""
    calls = await _device_automation(hass, loaded, "power_cut_notify")
    await tracker.sos()
    await tracker.report(latitude=48.2, longitude=11.6)
    await tracker.send(frames.gt06_alarm(tracker.fix, 0x02, 40))  # GT06 alarm 0x02: power cut
    await wait_for(lambda: bool(calls))
    await hass.async_block_till_done()
    assert len(calls) == 1
    assert calls[0].data["title"] == "Power cut: Van"
    assert "lost its external power" in calls[0].data["message"]
    assert "mlat=48.2&mlon=11.6" in calls[0].data["message"]


@pytest.mark.usefixtures("imported")
async def test_zone_left_with_ignition_off_blueprint(
    hass: HomeAssistant, loaded: MockConfigEntry, tracker: SimulatedTracker
) -> None:
    """Driven away (ignition on): nothing. Towed away (ignition off): notified."""
    calls: list[ServiceCall] = async_mock_service(hass, "notify", "test_phone")
    position = entity_id(hass, "device_tracker", IMEI)
    ignition = entity_id(hass, "binary_sensor", f"{IMEI}_ignition")
    await _automation(
        hass,
        "zone_left_ignition_off",
        {
            "tracker_entity": position,
            "ignition_entity": ignition,
            "zone": "zone.home",
            "notify_action": "notify.test_phone",
        },
    )
    home = (hass.config.latitude, hass.config.longitude)
    away = (home[0] + 0.05, home[1] + 0.05)

    async def _move(where: tuple[float, float], ignition_on: bool, state: str) -> None:
        await tracker.report(latitude=where[0], longitude=where[1], ignition=ignition_on)
        await wait_for_state(hass, position, lambda s: s.state == state)
        await hass.async_block_till_done()

    await _move(home, True, "home")
    await _move(away, True, "not_home")  # driven off by its owner
    await _move(home, False, "home")
    assert not calls
    assert hass.states.get(ignition).state == "off"
    await _move(away, False, "not_home")  # towed
    await wait_for(lambda: bool(calls))
    assert len(calls) == 1
    assert calls[0].data["title"] == f"Van left {hass.config.location_name}"
    assert "ignition off" in calls[0].data["message"]
    assert f"mlat={away[0]:.5f}" in calls[0].data["message"]
