"""The "never connected" repair: raised 30 minutes after adding a tracker that never reported,
cleared by its first report, never raised for a tracker that reported before a restart.

Time is driven by the test plugin's `async_fire_time_changed`; the report comes from a simulated
tracker through the real listener.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.tk970.const import DOMAIN
from custom_components.tk970.never_connected import NEVER_CONNECTED_AFTER, issue_id
from custom_components.tk970.store import STORAGE_KEY, STORAGE_VERSION
from simulator import SimulatedTracker

from .common import IMEI, free_port, make_entry, set_up_entry, wait_for


def _issue(hass: HomeAssistant, entry: MockConfigEntry) -> ir.IssueEntry | None:
    return ir.async_get(hass).async_get_issue(DOMAIN, issue_id(entry.entry_id))


async def _pass(hass: HomeAssistant, delta: timedelta) -> None:
    async_fire_time_changed(hass, dt_util.utcnow() + delta)
    await hass.async_block_till_done()


@pytest.mark.usefixtures("socket_enabled")
async def test_repair_appears_after_30_minutes_and_clears_on_first_report(
    hass: HomeAssistant,
) -> None:
    """Silent for 29 minutes: nothing. At 30: the repair, with what to check. First report: gone."""
    entry = await set_up_entry(hass)
    await _pass(hass, NEVER_CONNECTED_AFTER - timedelta(minutes=1))
    assert _issue(hass, entry) is None

    await _pass(hass, NEVER_CONNECTED_AFTER + timedelta(seconds=1))
    issue = _issue(hass, entry)
    assert issue is not None
    assert issue.translation_key == "never_connected"
    assert issue.severity is ir.IssueSeverity.WARNING
    assert not issue.is_fixable
    assert issue.translation_placeholders == {
        "name": "Van",
        "identity": IMEI,
        "port": str(entry.data["port"]),
        "minutes": "30",
    }

    tracker = SimulatedTracker(IMEI, protocol="h02", port=entry.data["port"])
    try:
        await tracker.connect()
        await tracker.report()
        await wait_for(lambda: _issue(hass, entry) is None)
    finally:
        await tracker.close()
    assert await hass.config_entries.async_unload(entry.entry_id)


@pytest.mark.usefixtures("socket_enabled")
async def test_tracker_that_reported_before_a_restart_is_not_flagged(
    hass: HomeAssistant, hass_storage: dict[str, Any]
) -> None:
    """The saved state says the tracker reported once: no repair, however long it is silent."""
    entry = make_entry(IMEI, port=free_port())
    hass_storage[STORAGE_KEY] = {
        "version": STORAGE_VERSION,
        "key": STORAGE_KEY,
        "data": {entry.entry_id: {"last_seen": "2026-01-01T08:00:00+00:00"}},
    }
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await _pass(hass, NEVER_CONNECTED_AFTER * 3)
    assert _issue(hass, entry) is None
    assert await hass.config_entries.async_unload(entry.entry_id)


@pytest.mark.usefixtures("socket_enabled")
async def test_repair_goes_with_the_entry(hass: HomeAssistant) -> None:
    """Removing the tracker removes its repair."""
    entry = await set_up_entry(hass)
    await _pass(hass, NEVER_CONNECTED_AFTER + timedelta(seconds=1))
    assert _issue(hass, entry) is not None
    assert await hass.config_entries.async_remove(entry.entry_id)
    await hass.async_block_till_done()
    assert _issue(hass, entry) is None


@pytest.mark.usefixtures("socket_enabled")
async def test_long_silent_tracker_is_flagged_at_setup(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory
) -> None:
    """Counted from when the entry was added, not from this start: a tracker added two hours
    before a restart and never heard from is flagged as soon as it is set up again."""
    entry = make_entry(IMEI, port=free_port())
    entry.add_to_hass(hass)
    freezer.tick(NEVER_CONNECTED_AFTER * 4)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert _issue(hass, entry) is not None
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    assert _issue(hass, entry) is None  # unloading (disabling) the tracker takes it away
