"""Saved tracker state: one file for every tracker, written at most SAVE_DELAY after a change.

Each tracker's coordinator says when its state changed; the states of all trackers are written
together, in one Home Assistant `Store`, at most `SAVE_DELAY` after the first change: what a crash
loses is never older than that, and a fleet costs one write per interval, not one per tracker.
(A file per tracker meant a task and a worker thread per tracker every interval; a thousand of
them at once held up the event loop, and the trackers' acknowledgements, for seconds.) Each
tracker's snapshot is taken in the event loop when the file is written; the worker thread only
serialises snapshots nobody changes any more. States saved by earlier versions, one file per
tracker, are read once and moved in.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any

from homeassistant.const import EVENT_HOMEASSISTANT_FINAL_WRITE
from homeassistant.core import CALLBACK_TYPE, Event, HomeAssistant, callback
from homeassistant.helpers.event import async_call_later
from homeassistant.helpers.storage import Store
from homeassistant.util.hass_dict import HassKey

from .const import DOMAIN

type Snapshot = dict[str, Any]

STORAGE_VERSION = 1
STORAGE_KEY = f"{DOMAIN}.trackers"
#: A change is on disk this long after it happened at the latest, whatever follows (under the
#: minute promised, with room for a busy event loop). Home Assistant's own delayed save starts
#: over on every call: trackers reporting every 10 s would never be saved.
SAVE_DELAY = 50.0

_DATA: HassKey[TrackerStore] = HassKey(f"{DOMAIN}_store")


@callback
def async_get_tracker_store(hass: HomeAssistant) -> TrackerStore:
    """The store of this Home Assistant (made on first use; it lives as long as it runs)."""
    if (store := hass.data.get(_DATA)) is None:
        store = hass.data[_DATA] = TrackerStore(hass)
    return store


class TrackerStore:
    """Every tracker's saved state, by config entry id, in one file."""

    def __init__(self, hass: HomeAssistant) -> None:
        """Nothing is read until the first tracker asks for its state."""
        self.hass = hass
        self._store: Store[dict[str, Snapshot]] = Store(hass, STORAGE_VERSION, STORAGE_KEY)
        self._states: dict[str, Snapshot] = {}
        #: trackers whose state changed since the last write, and how to snapshot it
        self._changed: dict[str, Callable[[], Snapshot]] = {}
        #: entries whose state came from an earlier version's own file, removed once written here
        self._moved: set[str] = set()
        self._loaded = False
        self._load_lock = asyncio.Lock()
        self._timer: CALLBACK_TYPE | None = None
        hass.bus.async_listen(EVENT_HOMEASSISTANT_FINAL_WRITE, self._async_final_write)

    async def async_load(self, entry_id: str) -> Snapshot | None:
        """The tracker's saved state, if it has one."""
        async with self._load_lock:
            if not self._loaded:
                saved = await self._store.async_load()
                if isinstance(saved, dict):
                    self._states = {k: v for k, v in saved.items() if isinstance(v, dict)}
                self._loaded = True
            if entry_id not in self._states:
                await self._async_move_in(entry_id)
        return self._states.get(entry_id)

    async def _async_move_in(self, entry_id: str) -> None:
        """Take over a state an earlier version saved in a file of its own."""
        saved = await _legacy_store(self.hass, entry_id).async_load()
        if isinstance(saved, dict):
            self._states[entry_id] = saved
            self._moved.add(entry_id)
            self.async_changed(entry_id, lambda: saved)

    @callback
    def async_changed(self, entry_id: str, snapshot: Callable[[], Snapshot]) -> None:
        """A tracker's state changed: write it within SAVE_DELAY (later changes ride along)."""
        self._changed[entry_id] = snapshot
        if self._timer is None:
            self._timer = async_call_later(self.hass, SAVE_DELAY, self._write_due)

    @callback
    def async_unloaded(self, entry_id: str, snapshot: Snapshot) -> None:
        """A tracker's entry unloads with this state; it is kept for its next setup."""
        self._states[entry_id] = snapshot
        self.async_changed(entry_id, lambda: snapshot)

    async def async_remove(self, entry_id: str) -> None:
        """Forget a removed tracker's state, on disk too."""
        self._changed.pop(entry_id, None)
        self._moved.discard(entry_id)
        if self._states.pop(entry_id, None) is not None:
            await self._async_write()
        await _legacy_store(self.hass, entry_id).async_remove()

    @callback
    def _write_due(self, _now: datetime) -> None:
        self._timer = None
        self.hass.async_create_task(self._async_write(), f"{DOMAIN} save state")

    async def _async_write(self) -> None:
        if self._timer is not None:
            self._timer()
            self._timer = None
        for entry_id, snapshot in self._changed.items():
            self._states[entry_id] = snapshot()
        self._changed.clear()
        moved, self._moved = self._moved, set()
        # A copy: the worker thread serialises it while new snapshots replace entries here.
        await self._store.async_save(dict(self._states))
        for entry_id in moved:
            await _legacy_store(self.hass, entry_id).async_remove()

    async def _async_final_write(self, _event: Event) -> None:
        """Home Assistant stops (it unloads no entries): write what changed."""
        if self._changed:
            await self._async_write()


def _legacy_store(hass: HomeAssistant, entry_id: str) -> Store[Snapshot]:
    """Where versions before the shared file saved a tracker's state."""
    return Store(hass, STORAGE_VERSION, f"{DOMAIN}.{entry_id}")
