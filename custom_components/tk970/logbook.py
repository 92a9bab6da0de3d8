"""Logbook: each alarm a tracker reports, in words ("SOS pressed", "External power cut").

The alarms reach the logbook as the `tk970_event` bus event the coordinator fires once per new
alarm (replays do not fire it). The alarm event entity's own state change is logged too, but
Home Assistant 2025.4's logbook shows it only as "detected an event", without saying which:
so the bus event is described here. Its words are the event entity's translated alarm types
(`entity.event.alarm.state_attributes.event_type.state` in the translations), in the language
Home Assistant is set to, so the logbook, the entity's history and the newest frontend's own
line for the event entity say the same thing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from homeassistant.components.logbook.const import (
    LOGBOOK_ENTRY_ENTITY_ID,
    LOGBOOK_ENTRY_MESSAGE,
    LOGBOOK_ENTRY_NAME,
)
from homeassistant.const import Platform
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.helpers.translation import async_get_cached_translations

from .const import DOMAIN, EVENT_TK970

_ALARM_KEY = f"component.{DOMAIN}.entity.event.alarm.state_attributes.event_type.state.{{}}"


@callback
def alarm_words(hass: HomeAssistant, alarm: str) -> str:
    """The alarm type as the event entity shows it, in Home Assistant's language."""
    translations = async_get_cached_translations(hass, hass.config.language, "entity", DOMAIN)
    # Loaded with the entities; English is the fallback Home Assistant merges in.
    return translations.get(_ALARM_KEY.format(alarm)) or alarm.replace("_", " ").capitalize()


@callback
def async_describe_events(
    hass: HomeAssistant,
    async_describe_event: Callable[[str, str, Callable[[Event], dict[str, Any]]], None],
) -> None:
    """Describe the alarm bus event."""

    @callback
    def _describe(event: Event) -> dict[str, Any]:
        data = event.data
        identity = str(data.get("imei"))
        name = f"TK970 {identity}"
        if isinstance(device_id := data.get("device_id"), str) and (
            device := dr.async_get(hass).async_get(device_id)
        ):
            name = device.name_by_user or device.name or name
        described: dict[str, Any] = {
            LOGBOOK_ENTRY_NAME: name,
            LOGBOOK_ENTRY_MESSAGE: alarm_words(hass, str(data.get("type"))),
        }
        alarm_entity = er.async_get(hass).async_get_entity_id(
            Platform.EVENT, DOMAIN, f"{identity}_alarm"
        )
        if alarm_entity is not None:
            described[LOGBOOK_ENTRY_ENTITY_ID] = alarm_entity
        return described

    async_describe_event(DOMAIN, EVENT_TK970, _describe)
