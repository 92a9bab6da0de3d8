"""Sensors: battery, voltages, speed and the diagnostic values trackers report.

Values of the tracker now (battery, speed, signal ...) are unavailable while it is offline: a
speed from an hour ago is not the speed now. "Last seen" and the protocol stay available.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import (
    DEGREE,
    PERCENTAGE,
    EntityCategory,
    UnitOfElectricPotential,
    UnitOfLength,
    UnitOfSpeed,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import (
    INFO,
    LAST_SEEN,
    ONLINE,
    POSITION,
    STATUS,
    TK970ConfigEntry,
    TrackerCoordinator,
    TrackerState,
)
from .entity import TK970Entity
from .protocol import Protocol
from .tracking import POSITION_DETAILS, position_detail

PARALLEL_UPDATES = 0

type SensorValue = float | int | str | datetime | None


@dataclass(frozen=True, kw_only=True)
class TK970SensorDescription(SensorEntityDescription):
    """A sensor read from the tracker state."""

    value_fn: Callable[[TrackerState], SensorValue]
    #: the part of the tracker state the value belongs to (what a fix brings, or the status)
    aspect: str = STATUS
    #: a value of the tracker now: unavailable while the tracker is offline
    live: bool = True


SENSORS: tuple[TK970SensorDescription, ...] = (
    TK970SensorDescription(
        key="battery",
        device_class=SensorDeviceClass.BATTERY,
        native_unit_of_measurement=PERCENTAGE,
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda state: state.battery_percent,
    ),
    TK970SensorDescription(
        key="battery_voltage",
        translation_key="battery_voltage",
        device_class=SensorDeviceClass.VOLTAGE,
        native_unit_of_measurement=UnitOfElectricPotential.VOLT,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=2,
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
        value_fn=lambda state: state.battery_voltage,
    ),
    TK970SensorDescription(
        key="power_voltage",
        translation_key="power_voltage",
        device_class=SensorDeviceClass.VOLTAGE,
        native_unit_of_measurement=UnitOfElectricPotential.VOLT,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=1,
        value_fn=lambda state: state.power_voltage,
    ),
    TK970SensorDescription(
        key="speed",
        device_class=SensorDeviceClass.SPEED,
        native_unit_of_measurement=UnitOfSpeed.KILOMETERS_PER_HOUR,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=0,
        value_fn=lambda state: state.speed_kmh,
        aspect=POSITION,
    ),
    TK970SensorDescription(
        key="course",
        translation_key="course",
        native_unit_of_measurement=DEGREE,
        suggested_display_precision=0,
        entity_registry_enabled_default=False,
        value_fn=lambda state: state.course,
        aspect=POSITION,
    ),
    TK970SensorDescription(
        key="altitude",
        translation_key="altitude",
        device_class=SensorDeviceClass.DISTANCE,
        native_unit_of_measurement=UnitOfLength.METERS,
        state_class=SensorStateClass.MEASUREMENT,
        entity_registry_enabled_default=False,
        value_fn=lambda state: state.altitude_m,
        aspect=POSITION,
    ),
    TK970SensorDescription(
        # Disabled by default: many trackers never count distance (JT808 item 0x01, GT06
        # mileage, H02's odometer field), and the sensor would stay unknown for them.
        key="odometer",
        translation_key="odometer",
        device_class=SensorDeviceClass.DISTANCE,
        native_unit_of_measurement=UnitOfLength.KILOMETERS,
        state_class=SensorStateClass.TOTAL_INCREASING,
        suggested_display_precision=1,
        entity_registry_enabled_default=False,
        value_fn=lambda state: state.odometer_km,
    ),
    TK970SensorDescription(
        key="satellites",
        translation_key="satellites",
        state_class=SensorStateClass.MEASUREMENT,
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
        value_fn=lambda state: state.satellites,
        aspect=POSITION,
    ),
    TK970SensorDescription(
        key="signal",
        translation_key="signal",
        native_unit_of_measurement=PERCENTAGE,
        state_class=SensorStateClass.MEASUREMENT,
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
        value_fn=lambda state: state.gsm_signal,
    ),
    TK970SensorDescription(
        key="last_seen",
        translation_key="last_seen",
        device_class=SensorDeviceClass.TIMESTAMP,
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda state: state.last_seen,
        aspect=LAST_SEEN,
        live=False,
    ),
    TK970SensorDescription(
        key="position_source",
        translation_key="position_source",
        device_class=SensorDeviceClass.ENUM,
        options=POSITION_DETAILS,
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda state: position_detail(state.position_source, state.fallback),
        aspect=POSITION,
    ),
    TK970SensorDescription(
        key="protocol",
        translation_key="protocol",
        device_class=SensorDeviceClass.ENUM,
        options=[protocol.value for protocol in Protocol],
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda state: state.protocol.value if state.protocol else None,
        aspect=INFO,
        live=False,
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: TK970ConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the sensors."""
    coordinator = entry.runtime_data
    async_add_entities(TK970Sensor(coordinator, description) for description in SENSORS)


class TK970Sensor(TK970Entity, SensorEntity):
    """A sensor of the tracker."""

    entity_description: TK970SensorDescription

    def __init__(
        self, coordinator: TrackerCoordinator, description: TK970SensorDescription
    ) -> None:
        """Bind the description to the tracker."""
        aspects = {description.aspect, ONLINE} if description.live else {description.aspect}
        super().__init__(coordinator, description=description, aspects=aspects)

    @property
    def available(self) -> bool:
        """Live values only while the tracker is online (not silent for the offline time)."""
        return super().available and (
            self.coordinator.data.online or not self.entity_description.live
        )

    def _shown(self) -> object:
        return self.available, self.native_value

    @property
    def native_value(self) -> SensorValue:
        """The value from the tracker state."""
        return self.entity_description.value_fn(self.coordinator.data)
