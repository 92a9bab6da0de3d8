"""Pairing: a port held open for one config flow, and the unknown trackers heard on it.

The config flow's pairing path opens the port (or joins the hub already listening on it), lists
the trackers that report and are not configured, and lets the user pick one. What a stranger on
the open port can do to it is bounded: the listener's limits apply as always (connections,
identities per peer, message budgets), the list keeps the `MAX_CANDIDATES` trackers heard most
recently (a real tracker keeps reporting, so a flood of made-up IDs cannot keep it off the
list for long), and the port is held only while the flow runs and for `PAIRING_WINDOW` at most:
it is released when the flow ends, is aborted, or the window runs out, whatever the peers do.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers.event import async_call_later

from .hub import Hub, async_acquire_hub, async_release_hub
from .listener import Link
from .protocol import Protocol

#: How long the port stays open for one wait; "keep waiting" grants another.
PAIRING_WINDOW = timedelta(minutes=10)
#: Trackers listed at most; the ones heard longest ago drop off first.
MAX_CANDIDATES = 20


@dataclass(frozen=True, slots=True)
class Candidate:
    """An unknown tracker that reported during pairing."""

    identity: str
    protocol: Protocol
    address: str
    transport: str


class PairingWindow:
    """The port held open for one pairing flow, and the trackers heard on it."""

    def __init__(self, hass: HomeAssistant, port: int, owner: str) -> None:
        """Nothing is opened until `async_open`."""
        self.hass = hass
        self.port = port
        #: the hub user this window counts as (the flow's id), so the port outlives no flow
        self.owner = owner
        #: identity -> candidate, the most recently heard last
        self.candidates: OrderedDict[str, Candidate] = OrderedDict()
        self._hub: Hub | None = None
        self._unwatch: CALLBACK_TYPE | None = None
        self._expiry: CALLBACK_TYPE | None = None
        self._heard = asyncio.Event()

    @property
    def is_open(self) -> bool:
        """Whether the port is held for this flow now."""
        return self._hub is not None

    async def async_open(self) -> None:
        """Hold the port for PAIRING_WINDOW (again). Raises OSError when it cannot be opened."""
        if self._hub is None:
            hub = await async_acquire_hub(self.hass, self.port, self.owner, repair=False)
            self._hub = hub
            self._unwatch = hub.watch_unknown(self._on_unknown)
        if self._expiry is not None:
            self._expiry()
        self._expiry = async_call_later(self.hass, PAIRING_WINDOW.total_seconds(), self._on_expired)

    async def async_close(self) -> None:
        """Release the port (it closes unless configured trackers use it). Idempotent."""
        if self._expiry is not None:
            self._expiry()
            self._expiry = None
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None
        hub, self._hub = self._hub, None
        self._heard.set()  # a waiting flow learns the window closed
        if hub is not None:
            await async_release_hub(self.hass, hub, self.owner)

    async def async_wait(self, wanted: Callable[[Candidate], bool]) -> bool:
        """Wait until a candidate passes `wanted` (True), or the window closes (False)."""
        while True:
            if any(wanted(candidate) for candidate in self.candidates.values()):
                return True
            if self._hub is None:
                return False
            self._heard.clear()
            await self._heard.wait()

    @callback
    def _on_unknown(self, link: Link) -> None:
        identity = link.identity
        known = self.candidates.pop(identity, None)
        candidate = Candidate(identity, link.protocol, link.host, link.transport)
        self.candidates[identity] = candidate
        while len(self.candidates) > MAX_CANDIDATES:
            self.candidates.popitem(last=False)
        if known != candidate:
            self._heard.set()

    @callback
    def _on_expired(self, _now: datetime) -> None:
        self._expiry = None
        self.hass.async_create_task(self.async_close(), "tk970 pairing window closed")
