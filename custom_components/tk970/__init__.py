"""TK-Star TK970 GPS trackers, served locally: set up and unload one tracker's config entry.

Each entry is one tracker. Setting it up joins the hub of its port (opening the port for the
first entry), restores the tracker's saved state and forwards the platforms.
"""

from __future__ import annotations

from homeassistant.const import EVENT_HOMEASSISTANT_STOP, Platform
from homeassistant.core import Event, HomeAssistant
from homeassistant.exceptions import ConfigEntryNotReady
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.typing import ConfigType

from .const import CONF_PORT, DEFAULT_PORT, DOMAIN
from .coordinator import TK970ConfigEntry, TrackerCoordinator
from .hub import async_acquire_hub, async_release_hub, async_stop_all

PLATFORMS = [
    Platform.BINARY_SENSOR,
    Platform.DEVICE_TRACKER,
    Platform.EVENT,
    Platform.SENSOR,
    Platform.SWITCH,
]

CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Nothing to set up outside config entries."""
    return True


async def async_setup_entry(hass: HomeAssistant, entry: TK970ConfigEntry) -> bool:
    """Join the port's hub and create the tracker's entities."""
    port = entry.data.get(CONF_PORT, DEFAULT_PORT)
    try:
        hub = await async_acquire_hub(hass, port)
    except OSError as err:
        raise ConfigEntryNotReady(
            translation_domain=DOMAIN,
            translation_key="port_unavailable",
            translation_placeholders={"port": str(port), "error": str(err)},
        ) from err
    coordinator = TrackerCoordinator(hass, entry, hub)
    try:
        await coordinator.async_restore()
    except Exception:
        await async_release_hub(hass, hub)
        raise
    entry.runtime_data = coordinator
    hub.add(coordinator)

    async def _stop(_event: Event) -> None:
        await async_stop_all(hass)

    entry.async_on_unload(hass.bus.async_listen_once(EVENT_HOMEASSISTANT_STOP, _stop))
    entry.async_on_unload(entry.add_update_listener(_async_options_updated))
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    return True


async def _async_options_updated(hass: HomeAssistant, entry: TK970ConfigEntry) -> None:
    """Options change the hold time and relay settings: reload to apply them."""
    await hass.config_entries.async_reload(entry.entry_id)


async def async_unload_entry(hass: HomeAssistant, entry: TK970ConfigEntry) -> bool:
    """Remove the tracker's entities; close the port if it was the last tracker on it."""
    unload_ok = await hass.config_entries.async_unload_platforms(entry, PLATFORMS)
    if unload_ok:
        coordinator = entry.runtime_data
        coordinator.hub.remove(coordinator)
        await coordinator.async_shutdown()
        await async_release_hub(hass, coordinator.hub)
    return unload_ok
