"""Base entity: one Home Assistant device per tracker, names from translation keys.

Entities write their state only when what they show changed. Each names the parts of the
tracker state it shows (`aspects`, its listener context: position, status, alarms ...), and the
coordinator calls only the entities whose parts changed; each of those compares the values its
state and attributes come from (`_shown`) with those of its last write. A report that moves the
tracker calls the tracker and the motion sensors and writes the tracker and the speed; a parked
tracker's report calls nobody.
"""

from __future__ import annotations

from collections.abc import Iterable

from homeassistant.core import callback
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import EntityDescription
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from .const import DOMAIN, MANUFACTURER
from .coordinator import TrackerCoordinator


class TK970Entity(CoordinatorEntity[TrackerCoordinator]):
    """An entity of one tracker's device."""

    _attr_has_entity_name = True
    #: the values the last written state came from
    _written: object = None

    def __init__(
        self,
        coordinator: TrackerCoordinator,
        key: str | None = None,
        *,
        description: EntityDescription | None = None,
        aspects: Iterable[str],
    ) -> None:
        """Set the unique ID (`IMEI`, or `IMEI_key` with the key or the description's key).

        `aspects`: the parts of the tracker state this entity shows (coordinator constants).
        """
        super().__init__(coordinator, context=frozenset(aspects))
        if description is not None:
            self.entity_description = description
            key = description.key
        identity = coordinator.identity
        self._attr_unique_id = identity if key is None else f"{identity}_{key}"
        self._attr_device_info = DeviceInfo(
            identifiers={(DOMAIN, identity)},
            name=coordinator.config_entry.title,
            manufacturer=MANUFACTURER,
            model=coordinator.model,
            serial_number=identity,
            sw_version=coordinator.data.info.get("firmware"),
        )

    def _shown(self) -> object:
        """Everything this entity's state, attributes and availability are made of."""
        return self.available

    async def async_added_to_hass(self) -> None:
        """Remember what the first state (written by Home Assistant next) is made of."""
        await super().async_added_to_hass()
        self._written = self._shown()

    @callback
    def _handle_coordinator_update(self) -> None:
        """Write the state only when what it shows changed."""
        shown = self._shown()
        if shown != self._written:
            self._written = shown
            self.async_write_ha_state()
