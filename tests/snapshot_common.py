"""Snapshot tests' shared part: one tracker of each family, fed through the real listener.

Each platform's test module (`test_<platform>.py`, one `snapshots/test_<platform>.ambr` each, as
core lays them out) loads only its platform, connects a simulated tracker of every family with a
frozen clock and fixed positions, and snapshots every entity of the tracker.

What is snapshotted is a fixed projection of the entity registry entry and of the state (see
`entity_snapshot`), not the objects themselves: their representation gains fields from one Home
Assistant release to the next (the registry entry grew several since 2025.4), and the snapshot
must be the same on 2025.4.4 and on the newest release. The projection keeps everything this
integration sets. The port (free, so it changes per run) never reaches a snapshot, and times
(last seen, the alarm event's time, connection times) are written as `<timestamp>`: the run uses
the real clock. A frozen clock (freezegun) was tried: with it the simulated JT808 tracker never
got its authentication answered through the real sockets (the event loop and the listener read
the clock from different frames), so the times are masked instead of frozen; everything else the
trackers send is fixed (`FIX`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from enum import Enum
import re
from typing import Any
from unittest.mock import PropertyMock, patch

from homeassistant.const import STATE_ON
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.entity import Entity
from pytest_homeassistant_custom_component.common import MockConfigEntry
from syrupy.assertion import SnapshotAssertion

from custom_components import tk970
from simulator import SimulatedTracker
from simulator.frames import Fix

from .common import IMEI, entity_id, free_port, make_entry, wait_for, wait_for_state

FAMILIES = ["jt808", "gt06", "h02", "gps103", "watch"]
#: Where a time stood in a snapshot (see `_plain`).
TIMESTAMP = "<timestamp>"
_ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")
#: Where every simulated tracker is: the Brandenburg Gate, parked, with a full fix.
FIX = Fix(
    time=datetime(2026, 6, 15, 10, 30, tzinfo=UTC),  # replaced by the tracker's clock
    latitude=52.516275,
    longitude=13.377704,
    speed_kmh=0.0,
    course=90.0,
    altitude_m=34.0,
    satellites=9,
    battery_percent=80,
    odometer_km=1234.5,
    cells=(),
    wifi=(),
)

#: Registry entry fields snapshotted (those this integration sets or Home Assistant derives).
REGISTRY_FIELDS = (
    "entity_id",
    "unique_id",
    "platform",
    "translation_key",
    "original_name",
    "has_entity_name",
    "device_class",
    "original_device_class",
    "entity_category",
    "disabled_by",
    "hidden_by",
    "capabilities",
    "supported_features",
    "unit_of_measurement",
    "original_icon",
)


@asynccontextmanager
async def tracker_of(
    hass: HomeAssistant, protocol: str, platform: str
) -> AsyncIterator[tuple[MockConfigEntry, SimulatedTracker]]:
    """A tracker entry with only `platform` loaded, and its simulated tracker, logged in,
    reporting `FIX` (at the current time), then pressing SOS."""
    port = free_port()
    entry = make_entry(IMEI, port)
    entry.add_to_hass(hass)
    # Every entity enabled (as core's `entity_registry_enabled_by_default` fixture does): the
    # diagnostic ones disabled by default are snapshotted too, their `disabled_by` aside.
    with (
        patch.object(tk970, "PLATFORMS", [platform]),
        patch.object(
            Entity, "entity_registry_enabled_default", new_callable=PropertyMock, return_value=True
        ),
    ):
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
        tracker = SimulatedTracker(IMEI, protocol=protocol, port=port, fix=FIX, radio=False)
        await tracker.connect()
        try:
            await tracker.login()
            await tracker.report()
            coordinator = entry.runtime_data
            await wait_for(lambda: coordinator.data.latitude is not None)
            await tracker.sos()
            await wait_for(lambda: coordinator.data.last_alarm is not None)
            await hass.async_block_till_done()
            yield entry, tracker
        finally:
            await tracker.close()
            assert await hass.config_entries.async_unload(entry.entry_id)


async def check_platform(
    hass: HomeAssistant, snapshot: SnapshotAssertion, protocol: str, platform: str
) -> None:
    """Registry entries and states of the platform's entities after a login, a report and an
    SOS, against the platform module's snapshot."""
    async with tracker_of(hass, protocol, platform) as (entry, _tracker):
        assert entity_snapshot(hass, entry) == snapshot


def entity_snapshot(hass: HomeAssistant, entry: MockConfigEntry) -> dict[str, Any]:
    """Every entity of the entry: its registry entry (fixed fields) and its state."""
    registry = er.async_get(hass)
    result: dict[str, Any] = {}
    for entity in sorted(
        er.async_entries_for_config_entry(registry, entry.entry_id), key=lambda e: e.unique_id
    ):
        state = hass.states.get(entity.entity_id)
        result[entity.unique_id] = {
            "entry": {name: _plain(getattr(entity, name)) for name in REGISTRY_FIELDS}
            | {"capabilities": _capabilities(entity.capabilities)},
            "state": None
            if state is None
            else {
                "state": _plain(state.state),
                "attributes": _plain(
                    {k: v for k, v in state.attributes.items() if k not in RELEASE_ATTRIBUTES}
                ),
            },
        }
    return result


#: Capabilities Home Assistant itself adds in later releases, for every entity of a kind: left
#: out so that one snapshot holds on every supported release. The newest release gives every GPS
#: `device_tracker` `tracking_type: position` (2025.4.4 has no capabilities for it).
RELEASE_CAPABILITIES = {"tracking_type"}
#: State attributes the same: the newest release lists the zones a tracker is in (`in_zones`)
#: and repeats `tracking_type` there.
RELEASE_ATTRIBUTES = {"in_zones", "tracking_type"}


def _capabilities(capabilities: Any) -> Any:
    if not capabilities:
        return None
    kept = {k: v for k, v in capabilities.items() if k not in RELEASE_CAPABILITIES}
    return _plain(kept) or None


def _plain(value: Any) -> Any:
    """Enums as their values (keys too), mappings sorted: the same text on every release."""
    if isinstance(value, dict):
        # Newer releases key attributes by an enum (`EntityStateAttribute`): its value.
        items = ((k.value if isinstance(k, Enum) else str(k), v) for k, v in value.items())
        return {k: _plain(v) for k, v in sorted(items)}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime) or (isinstance(value, str) and _ISO.match(value)):
        return TIMESTAMP
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    return str(value)


async def sos_shown(hass: HomeAssistant) -> None:
    """Wait for the SOS sensor (when the binary sensors are loaded)."""
    sos = entity_id(hass, "binary_sensor", f"{IMEI}_sos")
    await wait_for_state(hass, sos, lambda s: s.state == STATE_ON)
