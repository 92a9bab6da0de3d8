"""Base entity: one Home Assistant device per tracker, names from translation keys."""

from __future__ import annotations

from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import EntityDescription
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from .const import DOMAIN, MANUFACTURER
from .coordinator import TrackerCoordinator


class TK970Entity(CoordinatorEntity[TrackerCoordinator]):
    """An entity of one tracker's device."""

    _attr_has_entity_name = True

    def __init__(
        self,
        coordinator: TrackerCoordinator,
        key: str | None = None,
        *,
        description: EntityDescription | None = None,
    ) -> None:
        """Set the unique ID (`IMEI`, or `IMEI_key` with the key or the description's key)."""
        super().__init__(coordinator)
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
