"""The demo dashboard names entities the integration really creates (the Locate now and Clear
SOS buttons among them), for the tracker the demo adds ("Demo car")."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
import pytest
import yaml

from custom_components.tk970 import PLATFORMS

from .common import IMEI, free_port, make_entry

pytestmark = pytest.mark.usefixtures("socket_enabled")

DASHBOARD = Path(__file__).parent.parent / "demo" / "dashboard.yaml"


def _entities(node: Any) -> Iterator[str]:
    """Every `entity:` value in the dashboard, however deeply its cards nest."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "entity" and isinstance(value, str):
                yield value
            else:
                yield from _entities(value)
    elif isinstance(node, list):
        for item in node:
            yield from _entities(item)


async def test_dashboard_entities_exist(hass: HomeAssistant) -> None:
    entry = make_entry(IMEI, free_port(), name="Demo car")
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    shown = set(_entities(yaml.safe_load(DASHBOARD.read_text())))
    assert {"button.demo_car_locate_now", "button.demo_car_clear_sos"} <= shown
    registry = er.async_get(hass)
    ours = {entity_id for entity_id in shown if entity_id.split(".")[0] in PLATFORMS}
    # The demo's own helpers (the simulated car's road, the SOS button) are not the tracker's.
    ours -= {"sensor.demo_car_road"}
    missing = {entity_id for entity_id in ours if registry.async_get(entity_id) is None}
    assert not missing
    assert await hass.config_entries.async_unload(entry.entry_id)
