"""Snapshot of every device_tracker entity of a tracker of each family.

The snapshots are in `snapshots/test_device_tracker.ambr`; `snapshot_common` says what they hold.
"""

from __future__ import annotations

from homeassistant.core import HomeAssistant
import pytest
from syrupy.assertion import SnapshotAssertion

from .snapshot_common import FAMILIES, check_platform

pytestmark = pytest.mark.usefixtures("socket_enabled")


@pytest.mark.parametrize("protocol", FAMILIES)
async def test_entities(hass: HomeAssistant, snapshot: SnapshotAssertion, protocol: str) -> None:
    """After a login, a report and an SOS."""
    await check_platform(hass, snapshot, protocol, "device_tracker")
