"""Helpers for the Home Assistant tests: free ports, entries, waiting for states."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
import contextlib
from datetime import UTC, datetime, timedelta
import itertools
import socket
from typing import Any

from homeassistant.core import HomeAssistant, State
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.tk970.const import CONF_IMEI, CONF_NAME, CONF_PORT, DOMAIN

#: Valid IMEIs (Luhn) for the simulated trackers.
IMEI = "359586015829802"
IMEI_2 = "864717003283581"
IMEI_UNKNOWN = "862106025092216"


def free_port() -> int:
    """A port free on every interface for both TCP and UDP (checked by binding both)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("0.0.0.0", 0))
            port = int(tcp.getsockname()[1])
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                    udp.bind(("0.0.0.0", port))
            except OSError:
                continue
            return port


def make_entry(
    identity: str = IMEI, port: int = 8888, *, name: str | None = "Van", **options: Any
) -> MockConfigEntry:
    """A tracker's config entry as the user step creates it."""
    return MockConfigEntry(
        domain=DOMAIN,
        unique_id=identity,
        title=name or f"TK970 {identity}",
        data={CONF_IMEI: identity, CONF_NAME: name, CONF_PORT: port},
        options=options,
    )


async def wait_for(predicate: Callable[[], bool], within: float = 10.0) -> None:
    """Let the event loop run until `predicate()` holds (sockets deliver asynchronously)."""
    async with asyncio.timeout(within):
        # Polling keeps this generic: the change may come from any socket callback.
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.005)


async def wait_for_state(
    hass: HomeAssistant, entity_id: str, check: Callable[[State], bool], within: float = 10.0
) -> State:
    """Wait until the entity's state passes `check`; return it."""

    def _ok() -> bool:
        state = hass.states.get(entity_id)
        return state is not None and check(state)

    await wait_for(_ok, within)
    state = hass.states.get(entity_id)
    assert state is not None
    return state


def saved_state(hass_storage: dict[str, Any], entry_id: str) -> dict[str, Any] | None:
    """The tracker state saved for a config entry (None: none on disk)."""
    from custom_components.tk970.store import STORAGE_KEY

    state = hass_storage.get(STORAGE_KEY, {}).get("data", {}).get(entry_id)
    return state if isinstance(state, dict) else None


def entity_id(hass: HomeAssistant, platform: str, unique_id: str) -> str:
    """The entity id registered for a unique ID (names may change; unique IDs may not)."""
    from homeassistant.helpers import entity_registry as er

    found = er.async_get(hass).async_get_entity_id(platform, DOMAIN, unique_id)
    assert found is not None, f"no {platform} entity with unique ID {unique_id}"
    return found


def stepping_clock() -> Callable[[], datetime]:
    """A simulated device's clock: ten minutes ago, then 10 s later on every report."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    steps = itertools.count()
    return lambda: start + timedelta(seconds=10 * next(steps))


def find_device(hass: HomeAssistant, identity: str = IMEI) -> Any:
    """The tracker's device entry (a lookup every supported release has), or None."""
    from homeassistant.helpers import device_registry as dr

    registry = dr.async_get(hass)
    for entry in hass.config_entries.async_entries(DOMAIN):
        for device in dr.async_entries_for_config_entry(registry, entry.entry_id):
            if (DOMAIN, identity) in device.identifiers:
                return device
    return None


async def set_up_entry(hass: HomeAssistant, identity: str = IMEI) -> MockConfigEntry:
    """A tracker's entry on a free port, set up (its listener open)."""
    entry = make_entry(identity, port=free_port())
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


@contextlib.asynccontextmanager
async def logged_in(entry: MockConfigEntry, protocol: str = "gt06") -> AsyncIterator[Any]:
    """A simulated tracker of the entry, connected and logged in for the `async with` block."""
    from simulator import SimulatedTracker

    device = SimulatedTracker(entry.data[CONF_IMEI], protocol=protocol, port=entry.data[CONF_PORT])
    await device.connect()
    try:
        await device.login()
        yield device
    finally:
        await device.close()
