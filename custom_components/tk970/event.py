"""The alarm event entity: one event per alarm the tracker reports.

Each SOS, vibration, power cut ... frame fires one event carrying the device's own time of the
alarm, not the moment it was received. Alarms the tracker re-sends from its buffer after a
reconnect, or that were already reported before a restart, do not fire again.
"""

from __future__ import annotations

from homeassistant.components.event import EventEntity
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import TK970ConfigEntry, TrackerCoordinator
from .entity import TK970Entity
from .protocol import Alarm, Message

PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant,
    entry: TK970ConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the alarm event entity."""
    async_add_entities([TK970AlarmEvent(entry.runtime_data)])


class TK970AlarmEvent(TK970Entity, EventEntity):
    """Alarms reported by the tracker."""

    _attr_translation_key = "alarm"

    def __init__(self, coordinator: TrackerCoordinator) -> None:
        """Bind to the tracker."""
        # Written by its own alarm listener; no part of the tracker state changes what it shows.
        super().__init__(coordinator, "alarm", aspects=())
        self._attr_event_types = [alarm.value for alarm in Alarm]

    async def async_added_to_hass(self) -> None:
        """Listen for alarms."""
        await super().async_added_to_hass()
        self.async_on_remove(self.coordinator.async_add_alarm_listener(self._on_alarm))

    @callback
    def _on_alarm(self, alarm: Alarm, message: Message) -> None:
        attributes: dict[str, object] = {"protocol": message.protocol.value}
        if message.time is not None:
            attributes["alarm_time"] = message.time.isoformat()
        # No latitude/longitude attributes: the map would draw the event as a second marker.
        # The position is on the tracker entity, and in the tk970_event bus event.
        self._trigger_event(alarm.value, attributes)
        self.async_write_ha_state()
