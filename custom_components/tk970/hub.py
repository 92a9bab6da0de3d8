"""One hub per port, shared by every tracker entry that uses it: listener, routing, discovery.

The only place that knows several config entries share a port. It owns the `Listener`, counts
the entries using it (the last one to leave closes the port), routes each message to the entry
whose identity matches (interfaces.md §3), offers unknown trackers as discovery flows, and
raises the repair issue when the port cannot be opened.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
import errno
from typing import TYPE_CHECKING

from homeassistant.config_entries import SOURCE_INTEGRATION_DISCOVERY
from homeassistant.const import EVENT_HOMEASSISTANT_STOP
from homeassistant.core import CALLBACK_TYPE, Event, HomeAssistant, callback
from homeassistant.helpers import discovery_flow, issue_registry as ir
from homeassistant.util import dt as dt_util
from homeassistant.util.hass_dict import HassKey

from .const import (
    CONF_IMEI,
    CONF_PORT,
    DOMAIN,
    LOGGER,
    MAX_PENDING_DISCOVERIES,
    REDISCOVERY_INTERVAL,
)
from .identity import identity_matches
from .listener import Link, Listener
from .protocol import Message, Protocol

if TYPE_CHECKING:
    from .coordinator import TrackerCoordinator

HUBS: HassKey[dict[int, Hub]] = HassKey(f"{DOMAIN}_hubs")
_LOCK: HassKey[asyncio.Lock] = HassKey(f"{DOMAIN}_hubs_lock")


_PORT_ISSUE_PREFIX = "port_unavailable_"


def port_issue_id(port: int) -> str:
    """Repair issue id for a port that cannot be opened."""
    return f"{_PORT_ISSUE_PREFIX}{port}"


@dataclass(eq=False)
class Hub:
    """A listening port and the trackers configured on it."""

    hass: HomeAssistant
    port: int
    listener: Listener = field(init=False)
    trackers: dict[str, TrackerCoordinator] = field(default_factory=dict)
    #: config entries using this port, counted from the start of their setup (under the lock)
    users: set[str] = field(default_factory=set)
    #: reported identity -> configured identity, once matched (routing is then a dict lookup)
    _routes: dict[str, str] = field(default_factory=dict)
    #: unknown identities already offered, and when
    _offered: dict[str, datetime] = field(default_factory=dict)
    unsubscribe_stop: CALLBACK_TYPE | None = None

    def __post_init__(self) -> None:
        """Build the listener (not started)."""
        self.listener = Listener(self.port, on_messages=self._on_messages, on_link=self._on_link)

    # -- entries ----------------------------------------------------------------------------

    @callback
    def add(self, coordinator: TrackerCoordinator) -> None:
        """Route a configured tracker's messages to its coordinator."""
        self.trackers[coordinator.identity] = coordinator
        self._routes.clear()
        for identity, link in self.listener.links.items():
            if identity_matches(identity, link.protocol, coordinator.identity):
                coordinator.async_link_changed(link)

    @callback
    def remove_entry(self, entry_id: str) -> None:
        """Stop routing to the tracker of a config entry (if it was added)."""
        for identity, coordinator in list(self.trackers.items()):
            if coordinator.config_entry.entry_id == entry_id:
                del self.trackers[identity]
        self._routes.clear()

    def _route(self, reported: str, protocol: Protocol) -> TrackerCoordinator | None:
        configured = self._routes.get(reported)
        if configured is None:
            configured = next(
                (c for c in self.trackers if identity_matches(reported, protocol, c)), None
            )
            if configured is None:
                return None
            self._routes[reported] = configured
        return self.trackers.get(configured)

    # -- from the listener ------------------------------------------------------------------

    @callback
    def _on_messages(self, link: Link, messages: list[Message]) -> None:
        coordinator = self._route(link.identity, link.protocol)
        if coordinator is None:
            self._offer(link)
            return
        coordinator.async_handle_messages(link, messages)

    @callback
    def _on_link(self, link: Link, connected: bool) -> None:
        coordinator = self._route(link.identity, link.protocol)
        if coordinator is not None:
            coordinator.async_link_changed(link if connected else None)

    def _offer(self, link: Link) -> None:
        """Offer an unknown tracker to the user once, never adding it on its own."""
        identity = link.identity
        now = dt_util.utcnow()
        offered = self._offered.get(identity)
        if offered is not None and now - offered < REDISCOVERY_INTERVAL:
            return
        flows = self.hass.config_entries.flow.async_progress_by_handler(
            DOMAIN, match_context={"source": SOURCE_INTEGRATION_DISCOVERY}
        )
        if any(flow["context"].get("unique_id") == identity for flow in flows):
            self._offered[identity] = now
            return
        if len(flows) >= MAX_PENDING_DISCOVERIES:
            LOGGER.warning(
                "Unknown tracker %s (%s) connected from %s on port %s; not offered because %d "
                "discovered trackers already wait in Settings > Devices & services",
                identity,
                link.protocol.value,
                link.host,
                self.port,
                len(flows),
            )
            self._offered[identity] = now
            return
        if len(self._offered) > 4 * MAX_PENDING_DISCOVERIES:
            # Keep this bounded under a flood of made-up identities.
            self._offered = {
                k: v for k, v in self._offered.items() if now - v < REDISCOVERY_INTERVAL
            }
        self._offered[identity] = now
        LOGGER.info(
            "Unknown tracker %s (%s) connected from %s on port %s: offered for adding",
            identity,
            link.protocol.value,
            link.host,
            self.port,
        )
        discovery_flow.async_create_flow(
            self.hass,
            DOMAIN,
            context={"source": SOURCE_INTEGRATION_DISCOVERY},
            data={
                CONF_IMEI: identity,
                "protocol": link.protocol.value,
                "address": link.host,
                CONF_PORT: self.port,
            },
        )


async def async_acquire_hub(hass: HomeAssistant, port: int, entry_id: str) -> Hub:
    """Return the running hub for `port`, starting its listener for the first entry.

    Raises OSError when the port cannot be opened; a repair issue then tells the user why.
    """
    hubs = hass.data.setdefault(HUBS, {})
    async with hass.data.setdefault(_LOCK, asyncio.Lock()):
        hub = hubs.get(port)
        if hub is None:
            hub = Hub(hass, port)
            try:
                await hub.listener.start()
            except OSError as err:
                ir.async_create_issue(
                    hass,
                    DOMAIN,
                    port_issue_id(port),
                    is_fixable=False,
                    severity=ir.IssueSeverity.ERROR,
                    translation_key="port_in_use" if port_in_use(err) else "port_error",
                    translation_placeholders={"port": str(port), "error": str(err)},
                )
                raise
            ir.async_delete_issue(hass, DOMAIN, port_issue_id(port))

            async def _stop(_event: Event) -> None:
                # Home Assistant does not unload entries when it stops: close the port here.
                await hub.listener.stop()

            hub.unsubscribe_stop = hass.bus.async_listen_once(EVENT_HOMEASSISTANT_STOP, _stop)
            hubs[port] = hub
        hub.users.add(entry_id)
        return hub


async def async_release_hub(hass: HomeAssistant, hub: Hub, entry_id: str) -> None:
    """Close the hub's port once no entry uses it any more."""
    hubs = hass.data.get(HUBS, {})
    async with hass.data.setdefault(_LOCK, asyncio.Lock()):
        hub.users.discard(entry_id)
        if hub.users or hubs.get(hub.port) is not hub:
            return
        del hubs[hub.port]
        if hub.unsubscribe_stop is not None:
            hub.unsubscribe_stop()
        await hub.listener.stop()


def port_in_use(err: OSError) -> bool:
    """Tell "another program has the port" (worth retrying) from other bind errors."""
    return err.errno == errno.EADDRINUSE


@callback
def async_prune_port_issues(hass: HomeAssistant, ports_in_use: set[int]) -> None:
    """Remove "port unavailable" repairs for ports no configured tracker uses any more."""
    registry = ir.async_get(hass)
    for domain, issue_id in list(registry.issues):
        if domain == DOMAIN and issue_id.startswith(_PORT_ISSUE_PREFIX):
            port = issue_id.removeprefix(_PORT_ISSUE_PREFIX)
            if port.isdigit() and int(port) not in ports_in_use:
                ir.async_delete_issue(hass, DOMAIN, issue_id)
