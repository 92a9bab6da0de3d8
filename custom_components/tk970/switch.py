"""The relay switch (engine cut): on = relay engaged, only ever as the device confirms it."""

from __future__ import annotations

from typing import Any

from homeassistant.components.switch import SwitchEntity
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import INFO, LINK, STATUS, TK970ConfigEntry, TrackerCoordinator
from .entity import TK970Entity
from .protocol import Protocol

# One relay command at a time: the coordinator also refuses a second one per tracker.
PARALLEL_UPDATES = 1


async def async_setup_entry(
    hass: HomeAssistant,
    entry: TK970ConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the relay switch."""
    async_add_entities([TK970RelaySwitch(entry.runtime_data)])


class TK970RelaySwitch(TK970Entity, SwitchEntity):
    """Cut (on) or restore (off) the fuel/power relay.

    Turning it on or off returns only once the device confirmed the command; the state shown is
    the device's reply or its next status. A refusal, no answer or no connection raises, and the
    state stays as it was. GPS103 never confirms: its switch says its state is assumed, and a
    command is sent but reported as unconfirmable (an error), never as done.
    """

    _attr_translation_key = "relay"

    def __init__(self, coordinator: TrackerCoordinator) -> None:
        """Bind to the tracker."""
        super().__init__(coordinator, "relay", aspects=(STATUS, LINK, INFO))

    def _shown(self) -> object:
        return self.available, self.is_on, self.assumed_state

    @property
    def available(self) -> bool:
        """Only while the tracker can be reached (connected, or a recent UDP address)."""
        return super().available and self.coordinator.link is not None

    @property
    def is_on(self) -> bool | None:
        """Relay engaged, as the device last reported or confirmed."""
        return self.coordinator.data.relay

    @property
    def assumed_state(self) -> bool:
        """True where the protocol cannot confirm relay commands (GPS103)."""
        return self.coordinator.data.protocol is Protocol.GPS103

    async def async_turn_on(self, **kwargs: Any) -> None:
        """Cut the relay (engine stop)."""
        await self.coordinator.async_set_relay(True)

    async def async_turn_off(self, **kwargs: Any) -> None:
        """Restore the relay."""
        await self.coordinator.async_set_relay(False)
