"""The "never connected" repair: a tracker added that has not reported within 30 minutes.

Counted from when the entry was created, so a restart neither restarts the count nor forgets
it. "Has reported" is the saved `last_seen` of the tracker's state (`store.TrackerStore`): a
tracker that reported once, before a restart, is never flagged again. The issue lists the
usual causes (translations: `issues.never_connected`), goes away on the tracker's first report,
and is deleted when the entry is unloaded or removed.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.event import async_track_point_in_utc_time
from homeassistant.util import dt as dt_util

from .const import CONF_PORT, DEFAULT_PORT, DOMAIN, LOGGER
from .coordinator import TrackerCoordinator

#: How long a new tracker may take to report before the repair says what to check.
NEVER_CONNECTED_AFTER = timedelta(minutes=30)


def issue_id(entry_id: str) -> str:
    """The repair issue's id for a config entry."""
    return f"never_connected_{entry_id}"


@callback
def async_delete_issue(hass: HomeAssistant, entry_id: str) -> None:
    """Remove the entry's repair, if there is one."""
    ir.async_delete_issue(hass, DOMAIN, issue_id(entry_id))


@callback
def async_watch_first_report(coordinator: TrackerCoordinator) -> CALLBACK_TYPE:
    """Raise the repair if the tracker has not reported by its deadline; clear it when it does.

    Returns the callback that stops watching and removes the repair (for the entry's unload).
    """
    hass = coordinator.hass
    entry = coordinator.config_entry
    entry_id = entry.entry_id
    if coordinator.data.last_seen is not None:
        async_delete_issue(hass, entry_id)
        return lambda: None
    cancels: list[CALLBACK_TYPE] = []

    def _stop() -> None:
        while cancels:
            cancels.pop()()

    @callback
    def _due(_now: datetime) -> None:
        if coordinator.data.last_seen is not None:
            return
        LOGGER.warning(
            "Tracker %s has not reported in the %d minutes since it was added: see Repairs",
            coordinator.identity,
            NEVER_CONNECTED_AFTER.total_seconds() // 60,
        )
        ir.async_create_issue(
            hass,
            DOMAIN,
            issue_id(entry_id),
            is_fixable=False,
            severity=ir.IssueSeverity.WARNING,
            translation_key="never_connected",
            translation_placeholders={
                "name": entry.title,
                "identity": coordinator.identity,
                "port": str(entry.data.get(CONF_PORT, DEFAULT_PORT)),
                "minutes": str(int(NEVER_CONNECTED_AFTER.total_seconds() // 60)),
            },
        )

    @callback
    def _updated() -> None:
        if coordinator.data.last_seen is None:
            return
        _stop()
        async_delete_issue(hass, entry_id)

    deadline = entry.created_at + NEVER_CONNECTED_AFTER
    if (now := dt_util.utcnow()) >= deadline:
        _due(now)  # silent since long before this start: say so at once
    else:
        cancels.append(async_track_point_in_utc_time(hass, _due, deadline))
    # The coordinator calls this on every change until the first report: then it stops.
    cancels.append(coordinator.async_add_listener(_updated))

    @callback
    def _unload() -> None:
        _stop()
        async_delete_issue(hass, entry_id)

    return _unload
