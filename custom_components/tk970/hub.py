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
from homeassistant.core import HomeAssistant, callback
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
from .listener import Link, Listener
from .protocol import Message, Protocol

if TYPE_CHECKING:
    from .coordinator import TrackerCoordinator

HUBS: HassKey[dict[int, Hub]] = HassKey(f"{DOMAIN}_hubs")
_LOCK: HassKey[asyncio.Lock] = HassKey(f"{DOMAIN}_hubs_lock")


def identity_matches(reported: str, protocol: Protocol | None, configured: str) -> bool:
    """Tell whether a reported identity is the configured tracker (interfaces.md §3).

    Digits equal once leading zeros are stripped; or, for a JT808 terminal id of 12 digits or
    fewer (devices often put the IMEI's last 11 digits there, zero-padded), the last 11 digits
    of both are equal.
    """
    if reported.lstrip("0") == configured.lstrip("0"):
        return True
    return (
        protocol is Protocol.JT808
        and len(reported) <= 12
        and len(reported) >= 11
        and len(configured) >= 11
        and reported[-11:] == configured[-11:]
    )


def port_issue_id(port: int) -> str:
    """Repair issue id for a port that cannot be opened."""
    return f"port_unavailable_{port}"


@dataclass(eq=False)
class Hub:
    """A listening port and the trackers configured on it."""

    hass: HomeAssistant
    port: int
    listener: Listener = field(init=False)
    trackers: dict[str, TrackerCoordinator] = field(default_factory=dict)
    #: reported identity -> configured identity, once matched (routing is then a dict lookup)
    _routes: dict[str, str] = field(default_factory=dict)
    #: unknown identities already offered, and when
    _offered: dict[str, datetime] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Build the listener (not started)."""
        self.listener = Listener(self.port, on_message=self._on_message, on_link=self._on_link)

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
    def remove(self, coordinator: TrackerCoordinator) -> None:
        """Stop routing to a tracker."""
        self.trackers.pop(coordinator.identity, None)
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
    def _on_message(self, link: Link, message: Message) -> None:
        coordinator = self._route(link.identity, message.protocol)
        if coordinator is None:
            self._offer(link)
            return
        coordinator.async_handle_message(link, message)

    @callback
    def _on_link(self, identity: str, link: Link | None) -> None:
        protocol = link.protocol if link is not None else None
        coordinator = self._route(identity, protocol) if protocol else None
        if coordinator is None and link is None:
            coordinator = self.trackers.get(self._routes.get(identity, ""))
        if coordinator is not None:
            coordinator.async_link_changed(link)

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


async def async_acquire_hub(hass: HomeAssistant, port: int) -> Hub:
    """Return the running hub for `port`, starting its listener if this is the first entry.

    Raises OSError when the port cannot be opened; a repair issue then tells the user why.
    """
    hubs = hass.data.setdefault(HUBS, {})
    lock = hass.data.setdefault(_LOCK, asyncio.Lock())
    async with lock:
        if (hub := hubs.get(port)) is not None:
            return hub
        hub = Hub(hass, port)
        try:
            await hub.listener.start()
        except OSError as err:
            reason = "port_in_use" if err.errno == errno.EADDRINUSE else "port_error"
            ir.async_create_issue(
                hass,
                DOMAIN,
                port_issue_id(port),
                is_fixable=False,
                severity=ir.IssueSeverity.ERROR,
                translation_key=reason,
                translation_placeholders={"port": str(port), "error": str(err)},
            )
            raise
        ir.async_delete_issue(hass, DOMAIN, port_issue_id(port))
        hubs[port] = hub
        return hub


async def async_release_hub(hass: HomeAssistant, hub: Hub) -> None:
    """Close the hub's port once no tracker uses it any more."""
    hubs = hass.data.get(HUBS, {})
    lock = hass.data.setdefault(_LOCK, asyncio.Lock())
    async with lock:
        if hub.trackers or hubs.get(hub.port) is not hub:
            return
        del hubs[hub.port]
        await hub.listener.stop()


async def async_stop_all(hass: HomeAssistant) -> None:
    """Close every port (Home Assistant is stopping; entries are not unloaded then)."""
    for hub in list(hass.data.get(HUBS, {}).values()):
        await hub.listener.stop()
    hass.data.pop(HUBS, None)
