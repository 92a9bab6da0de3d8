"""The tracker on the map: the last usable fix, never an invalid or an older one."""

from __future__ import annotations

# Re-exported without __all__ before HA 2026, hence the ignore for mypy on old releases.
from homeassistant.components.device_tracker import (  # type: ignore[attr-defined,unused-ignore]
    SourceType,
    TrackerEntity,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import POSITION, TK970ConfigEntry, TrackerCoordinator
from .entity import TK970Entity

PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant,
    entry: TK970ConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the tracker entity."""
    async_add_entities([TK970Tracker(entry.runtime_data)])


class TK970Tracker(TK970Entity, TrackerEntity):
    """Position of the tracker (GNSS, or the device's LBS/Wi-Fi fallback)."""

    _attr_name = None  # the device's name
    _attr_translation_key = "tracker"
    # A primary entity: shown on the map and on generated dashboards (the base class makes
    # trackers diagnostic by default).
    _attr_entity_category = None  # type: ignore[assignment]
    _attr_source_type = SourceType.GPS
    # A new time with every fix: recording it would make every history row unique (tens of
    # bytes per report) for a time the row's own timestamp nearly repeats.
    _unrecorded_attributes = frozenset({"fix_time"})

    def __init__(self, coordinator: TrackerCoordinator) -> None:
        """Bind to the tracker (its unique ID is the identity itself)."""
        super().__init__(coordinator, aspects=(POSITION,))

    def _shown(self) -> object:
        """The position only: a parked tracker's reports (a newer fix time, the same place)
        write nothing, so `fix_time` is the time of the fix that last moved it."""
        data = self.coordinator.data
        return data.latitude, data.longitude, data.accuracy, data.position_source

    @property
    def latitude(self) -> float | None:
        """Latitude of the last usable fix."""
        return self.coordinator.data.latitude

    @property
    def longitude(self) -> float | None:
        """Longitude of the last usable fix."""
        return self.coordinator.data.longitude

    @property
    def location_accuracy(self) -> int:
        """Accuracy in metres: from the fix for GNSS, wide for LBS and Wi-Fi positions."""
        return self.coordinator.data.accuracy

    @property
    def extra_state_attributes(self) -> dict[str, object]:
        """Where the position comes from and when it was taken.

        A cell or Wi-Fi position also says who found it (`position_method`: `device`,
        `learned`, `imported`, `online`) and, for imported or online data, from where.
        """
        data = self.coordinator.data
        attributes: dict[str, object] = {
            "position_source": data.position_source.value if data.position_source else None,
            "fix_time": data.position_time.isoformat() if data.position_time else None,
        }
        if (fallback := data.fallback) is not None:
            attributes["position_method"] = fallback.method.value
            if fallback.provider is not None:
                attributes["position_provider"] = fallback.provider
        return attributes

    @property
    def attribution(self) -> str | None:
        """Credit for third-party data behind the shown position (OpenCelliD's licence)."""
        fallback = self.coordinator.data.fallback
        return fallback.attribution if fallback is not None else None
