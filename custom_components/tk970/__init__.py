"""TK-Star TK970 GPS trackers, served locally: set up and unload one tracker's config entry.

Each entry is one tracker. Setting it up joins the hub of its port (opening the port for the
first entry), restores the tracker's saved state and forwards the platforms.

This file imports no Home Assistant module when it is imported: the protocol package, the
listener and the gateway live in this package too, and start without Home Assistant (the decoder
CLI answers in a fraction of a second). What the entry points need is imported when Home
Assistant calls them; by then Home Assistant is loaded, and its loader has already imported the
config flow (and with it the coordinator and the hub) in its import executor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .const import CONF_PORT, DEFAULT_PORT, DOMAIN

if TYPE_CHECKING:
    from homeassistant.core import HomeAssistant
    from homeassistant.helpers.typing import ConfigType

    from .coordinator import TK970ConfigEntry

#: Home Assistant's `Platform` values, as plain strings so that no enum has to be imported.
PLATFORMS = ["binary_sensor", "button", "device_tracker", "event", "sensor", "switch"]


def __getattr__(name: str) -> Any:
    """Build `CONFIG_SCHEMA` when Home Assistant's loader asks for it (it needs HA's helpers)."""
    if name == "CONFIG_SCHEMA":
        from homeassistant.helpers import config_validation as cv  # noqa: PLC0415

        schema = cv.config_entry_only_config_schema(DOMAIN)
        globals()[name] = schema
        return schema
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the actions (tracker commands, cell database import and removal)."""
    from .services import async_setup_services  # noqa: PLC0415

    async_setup_services(hass)
    return True


async def async_setup_entry(hass: HomeAssistant, entry: TK970ConfigEntry) -> bool:
    """Join the port's hub and create the tracker's entities."""
    from homeassistant.exceptions import ConfigEntryError, ConfigEntryNotReady  # noqa: PLC0415

    from .coordinator import TrackerCoordinator  # noqa: PLC0415
    from .fallback import (  # noqa: PLC0415
        TrackerPositioning,
        async_acquire_positioning,
        async_release_positioning,
    )
    from .hub import (  # noqa: PLC0415
        async_acquire_hub,
        async_prune_port_issues,
        async_release_hub,
        port_in_use,
    )
    from .never_connected import async_watch_first_report  # noqa: PLC0415

    port = entry.data.get(CONF_PORT, DEFAULT_PORT)
    try:
        hub = await async_acquire_hub(hass, port, entry.entry_id)
    except OSError as err:
        # Another program on the port may go away: retry. No permission (a port below 1024)
        # will not fix itself: the repair issue says what to change.
        error = ConfigEntryNotReady if port_in_use(err) else ConfigEntryError
        raise error(
            translation_domain=DOMAIN,
            translation_key="port_unavailable",
            translation_placeholders={"port": str(port), "error": str(err)},
        ) from err
    async_prune_port_issues(hass, _ports_in_use(hass))
    try:
        coordinator = TrackerCoordinator(hass, entry, hub)
        positioning = await async_acquire_positioning(hass, entry.entry_id)
        coordinator.positioning = TrackerPositioning(
            hass, entry, positioning, coordinator.async_show_fallback
        )
        await coordinator.async_restore()
        entry.runtime_data = coordinator
        hub.add(coordinator)
        entry.async_on_unload(async_watch_first_report(coordinator))
        entry.async_on_unload(entry.add_update_listener(_async_options_updated))
        await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    except BaseException:
        hub.remove_entry(entry.entry_id)
        await async_release_hub(hass, hub, entry.entry_id)
        await async_release_positioning(hass, entry.entry_id)
        raise
    return True


async def _async_options_updated(hass: HomeAssistant, entry: TK970ConfigEntry) -> None:
    """Options are read where they are used; alarms already on need the new hold time, and a
    provider problem the user may just have fixed is forgotten."""
    coordinator = entry.runtime_data
    coordinator.async_options_updated()
    if coordinator.positioning is not None:
        coordinator.positioning.clear_issues()


async def async_unload_entry(hass: HomeAssistant, entry: TK970ConfigEntry) -> bool:
    """Remove the tracker's entities; close the port if it was the last tracker on it."""
    from .fallback import async_release_positioning  # noqa: PLC0415
    from .hub import async_release_hub  # noqa: PLC0415

    unload_ok = await hass.config_entries.async_unload_platforms(entry, PLATFORMS)
    if unload_ok:
        # The coordinator saves its state and stops its timers when the entry unloads.
        coordinator = entry.runtime_data
        hub = coordinator.hub
        hub.remove_entry(entry.entry_id)
        await async_release_hub(hass, hub, entry.entry_id)
        if coordinator.positioning is not None:
            await coordinator.positioning.async_shutdown()
        await async_release_positioning(hass, entry.entry_id)
    return unload_ok


async def async_remove_entry(hass: HomeAssistant, entry: TK970ConfigEntry) -> None:
    """The tracker is gone for good: drop its saved state and any repair for its port; the
    last tracker also takes the learned positions and the imported cells with it."""
    from .coordinator import async_remove_saved_state  # noqa: PLC0415
    from .fallback import async_delete_issues, async_remove_positioning_data  # noqa: PLC0415
    from .hub import async_prune_port_issues  # noqa: PLC0415
    from .never_connected import async_delete_issue  # noqa: PLC0415

    await async_remove_saved_state(hass, entry.entry_id)
    async_delete_issues(hass, entry.entry_id)
    async_delete_issue(hass, entry.entry_id)
    async_prune_port_issues(hass, _ports_in_use(hass, excluding=entry.entry_id))
    if not any(
        other.entry_id != entry.entry_id
        for other in hass.config_entries.async_entries(DOMAIN, include_ignore=False)
    ):
        await async_remove_positioning_data(hass)


def _ports_in_use(hass: HomeAssistant, excluding: str | None = None) -> set[int]:
    return {
        other.data.get(CONF_PORT, DEFAULT_PORT)
        for other in hass.config_entries.async_entries(DOMAIN, include_ignore=False)
        if other.entry_id != excluding
    }
