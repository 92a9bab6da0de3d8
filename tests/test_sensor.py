"""Snapshot of every sensor entity of a tracker of each family.

The snapshots are in `snapshots/test_sensor.ambr`.
"""

from __future__ import annotations

from homeassistant.core import HomeAssistant
import pytest
from syrupy.assertion import SnapshotAssertion

from .snapshot_common import FAMILIES, entity_snapshot, tracker_of

pytestmark = pytest.mark.usefixtures("socket_enabled")


@pytest.mark.parametrize("protocol", FAMILIES)
async def test_entities(
    hass: HomeAssistant,
    snapshot: SnapshotAssertion,
    protocol: str,
) -> None:
    """Registry entries and states after a login, a report and an SOS."""
    async with tracker_of(hass, protocol, "sensor") as (entry, _tracker):
        assert entity_snapshot(hass, entry) == snapshot
