"""Logbook: alarms in words, read back through the logbook's own websocket API."""

from __future__ import annotations

from collections.abc import AsyncIterator

from homeassistant.components.recorder import Recorder
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.recorder.common import (
    async_wait_recording_done,
)
from pytest_homeassistant_custom_component.typing import WebSocketGenerator

from custom_components.tk970.const import DOMAIN, EVENT_TK970
from simulator import SimulatedTracker, frames

from .common import IMEI, entity_id, logged_in, set_up_entry, wait_for


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(
    recorder_mock: Recorder, enable_custom_integrations: None
) -> None:
    """The recorder the logbook reads from must start before Home Assistant does."""


@pytest.fixture
async def loaded(hass: HomeAssistant) -> MockConfigEntry:
    """A configured tracker on a free port, with the logbook (and its recorder) running."""
    # The logbook depends on the frontend only to register its panel (a dictionary entry);
    # the frontend's package is not part of the test stack, so it is counted as loaded.
    hass.config.components.add("frontend")
    assert await async_setup_component(hass, "logbook", {})
    return await set_up_entry(hass)


@pytest.fixture
async def tracker(loaded: MockConfigEntry) -> AsyncIterator[SimulatedTracker]:
    """A connected, logged-in GT06 tracker for the entry."""
    async with logged_in(loaded) as device:
        yield device


@pytest.mark.usefixtures("socket_enabled")
async def test_alarms_in_words(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    loaded: MockConfigEntry,
    tracker: SimulatedTracker,
) -> None:
    """An SOS and a power cut from the tracker read "SOS pressed" and "External power cut",
    under the tracker's name and its alarm entity."""
    start = dt_util.utcnow()
    fired: list[object] = []
    hass.bus.async_listen(EVENT_TK970, fired.append)
    await tracker.sos()
    await wait_for(lambda: len(fired) == 1)
    await tracker.send(frames.gt06_alarm(tracker.fix, 0x02, 7))  # GT06 alarm 0x02: power cut
    await wait_for(lambda: len(fired) == 2)
    await hass.async_block_till_done()
    await async_wait_recording_done(hass)

    client = await hass_ws_client()
    await client.send_json({"id": 1, "type": "logbook/get_events", "start_time": start.isoformat()})
    response = await client.receive_json()
    assert response["success"]
    ours = [row for row in response["result"] if row.get("domain") == DOMAIN]
    alarm_entity = entity_id(hass, "event", f"{IMEI}_alarm")
    assert [(row["name"], row["message"], row["entity_id"]) for row in ours] == [
        ("Van", "SOS pressed", alarm_entity),
        ("Van", "External power cut", alarm_entity),
    ]
