"""Snapshots of the device registry entry and the diagnostics of a tracker of each family
(`snapshots/test_diagnostics.ambr`)."""

from __future__ import annotations

from typing import Any

from homeassistant.core import HomeAssistant
import pytest
from syrupy.assertion import SnapshotAssertion

from custom_components.tk970.diagnostics import async_get_config_entry_diagnostics

from .common import find_device
from .snapshot_common import FAMILIES, _plain, tracker_of

pytestmark = pytest.mark.usefixtures("socket_enabled")

#: Device registry fields snapshotted (those the integration sets), stable across releases.
DEVICE_FIELDS = (
    "name",
    "manufacturer",
    "model",
    "serial_number",
    "sw_version",
    "hw_version",
    "entry_type",
    "via_device_id",
    "name_by_user",
    "disabled_by",
)


@pytest.mark.parametrize("protocol", FAMILIES)
async def test_device(hass: HomeAssistant, snapshot: SnapshotAssertion, protocol: str) -> None:
    """The tracker's device: TK-Star, the model with the protocol the tracker speaks."""
    async with tracker_of(hass, protocol, "binary_sensor"):
        device = find_device(hass)
        assert device is not None
        shown = {name: _plain(getattr(device, name)) for name in DEVICE_FIELDS}
        shown["identifiers"] = sorted(map(list, device.identifiers))
        assert shown == snapshot


@pytest.mark.parametrize("protocol", FAMILIES)
async def test_diagnostics(hass: HomeAssistant, snapshot: SnapshotAssertion, protocol: str) -> None:
    """Diagnostics, redacted; the free port and the machine's resource figures left out."""
    async with tracker_of(hass, protocol, "binary_sensor") as (entry, _tracker):
        data = await async_get_config_entry_diagnostics(hass, entry)
    assert data["entry"]["data"]["imei"] == "**REDACTED**"
    assert data["listener"]["port"] == entry.data["port"]
    _drop(data, ("entry", "data", "port"), ("listener", "port"), ("listener", "resources"))
    _drop(data, ("listener", "limits"))  # the listener's bounds, tested in test_limits
    assert _plain(data) == snapshot


def _drop(data: dict[str, Any], *paths: tuple[str, ...]) -> None:
    for path in paths:
        node = data
        for key in path[:-1]:
            node = node[key]
        node.pop(path[-1], None)
