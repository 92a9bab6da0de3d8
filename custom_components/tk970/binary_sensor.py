"""Binary sensors: SOS and vibration alarms, connection, ignition and charging."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from homeassistant.components.binary_sensor import (  # type: ignore[attr-defined,unused-ignore]
    BinarySensorDeviceClass,
    BinarySensorEntity,
    BinarySensorEntityDescription,
)
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import (
    ALARMS,
    LINK,
    ONLINE,
    STATUS,
    TK970ConfigEntry,
    TrackerCoordinator,
    TrackerState,
)
from .entity import TK970Entity
from .protocol import Alarm

PARALLEL_UPDATES = 0


@dataclass(frozen=True, kw_only=True)
class TK970BinarySensorDescription(BinarySensorEntityDescription):
    """A binary sensor read from the tracker state."""

    value_fn: Callable[[TrackerState], bool | None]
    #: the part of the tracker state the value belongs to
    aspect: str = STATUS
    #: a value of the tracker now: unavailable while the tracker is offline
    live: bool = False


BINARY_SENSORS: tuple[TK970BinarySensorDescription, ...] = (
    TK970BinarySensorDescription(
        key="sos",
        translation_key="sos",
        device_class=BinarySensorDeviceClass.SAFETY,
        value_fn=lambda state: state.alarms[Alarm.SOS].on,
        aspect=ALARMS,
    ),
    TK970BinarySensorDescription(
        key="vibration",  # named by its device class
        device_class=BinarySensorDeviceClass.VIBRATION,
        value_fn=lambda state: state.alarms[Alarm.VIBRATION].on,
        aspect=ALARMS,
    ),
    TK970BinarySensorDescription(
        key="connected",
        translation_key="connected",
        device_class=BinarySensorDeviceClass.CONNECTIVITY,
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda state: state.connected,
        aspect=LINK,
    ),
    TK970BinarySensorDescription(
        key="ignition",
        translation_key="ignition",
        value_fn=lambda state: state.ignition,
        live=True,
    ),
    TK970BinarySensorDescription(
        key="charging",  # named by its device class
        device_class=BinarySensorDeviceClass.BATTERY_CHARGING,
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda state: state.charging,
        live=True,
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: TK970ConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the binary sensors."""
    coordinator = entry.runtime_data
    async_add_entities(
        TK970BinarySensor(coordinator, description) for description in BINARY_SENSORS
    )


class TK970BinarySensor(TK970Entity, BinarySensorEntity):
    """A binary sensor of the tracker."""

    entity_description: TK970BinarySensorDescription

    def __init__(
        self, coordinator: TrackerCoordinator, description: TK970BinarySensorDescription
    ) -> None:
        """Bind the description to the tracker."""
        aspects = {description.aspect, ONLINE} if description.live else {description.aspect}
        super().__init__(coordinator, description=description, aspects=aspects)

    @property
    def available(self) -> bool:
        """Ignition and charging only while the tracker is online; alarms and the connection
        always (an alarm stays on for its hold time, whether the tracker still reports or not)."""
        return super().available and (
            self.coordinator.data.online or not self.entity_description.live
        )

    def _shown(self) -> object:
        return self.available, self.is_on

    @property
    def is_on(self) -> bool | None:
        """The value from the tracker state."""
        return self.entity_description.value_fn(self.coordinator.data)
