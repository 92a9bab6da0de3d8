"""One hub per port, shared by every tracker entry that uses it: listener, routing, discovery.

The only place that knows several config entries share a port. It owns the `Listener`, counts
the entries using it (the last one to leave closes the port), routes each message to the entry
whose identity matches (interfaces.md §3), tells each tracker's coordinator which session its
commands go over, offers unknown trackers as discovery flows (a bounded number at a time), or,
while a pairing flow watches the port (`pairing.py`), hands them to that flow instead, and raises
the repair issues: the port cannot be opened, or two live sessions speak for one tracker.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
import errno
from typing import TYPE_CHECKING

from homeassistant.config_entries import SOURCE_INTEGRATION_DISCOVERY
from homeassistant.const import EVENT_HOMEASSISTANT_STOP
from homeassistant.core import CALLBACK_TYPE, CoreState, Event, HomeAssistant, callback
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
from .identity import IMEI_LENGTH, identity_matches
from .limits import LOG_INTERVAL
from .listener import Link, Listener
from .protocol import Message, Protocol
from .ratelog import RateLimitedLog

if TYPE_CHECKING:
    from .coordinator import TrackerCoordinator

HUBS: HassKey[dict[int, Hub]] = HassKey(f"{DOMAIN}_hubs")
_LOCK: HassKey[asyncio.Lock] = HassKey(f"{DOMAIN}_hubs_lock")


_PORT_ISSUE_PREFIX = "port_unavailable_"


def port_issue_id(port: int) -> str:
    """Repair issue id for a port that cannot be opened."""
    return f"{_PORT_ISSUE_PREFIX}{port}"


def duplicate_issue_id(entry_id: str) -> str:
    """Repair issue id for a tracker that two live sessions speak for."""
    return f"duplicate_session_{entry_id}"


#: Unknown identities remembered as offered (or refused by the cap), oldest forgotten first: a
#: flood of made-up IMEIs cannot grow this, and a forgotten one is at worst considered again.
MAX_OFFERS_REMEMBERED = 1_024
#: A discovery flow asked for but not yet listed as in progress (Home Assistant starts it in a
#: background task) counts against the cap for this long.
LAUNCH_WINDOW = timedelta(seconds=60)


@dataclass(eq=False)
class Hub:
    """A listening port and the trackers configured on it."""

    hass: HomeAssistant
    port: int
    listener: Listener = field(init=False)
    trackers: dict[str, TrackerCoordinator] = field(default_factory=dict)
    #: config entries (and pairing flows) using this port, counted from the start of their
    #: setup (under the lock)
    users: set[str] = field(default_factory=set)
    unsubscribe_stop: CALLBACK_TYPE | None = None
    #: configured identity with leading zeros stripped -> configured identity
    _by_digits: dict[str, str] = field(default_factory=dict)
    #: an IMEI's last 11 digits -> the configured IMEI (JT808 terminal IDs are that tail)
    _by_tail: dict[str, str] = field(default_factory=dict)
    #: configured identity -> the reported identities that have a live session now
    _live: dict[str, set[str]] = field(default_factory=dict)
    #: configured identity -> the link its coordinator was last given (commands go over it)
    _current: dict[str, Link] = field(default_factory=dict)
    #: configured identity -> listener sequence when a second reported identity became live
    _live_since: dict[str, int] = field(default_factory=dict)
    #: reported identities the listener reports two talking sessions for
    _duplicates: set[str] = field(default_factory=set)
    #: configured identity -> the addresses shown in its open duplicate repair issue
    _duplicate_issues: dict[str, str] = field(default_factory=dict)
    #: unknown identities already offered (or refused by the cap), and when
    _offered: OrderedDict[str, datetime] = field(default_factory=OrderedDict)
    #: discovery flows asked for, and when, until Home Assistant lists them
    _launched: dict[str, datetime] = field(default_factory=dict)
    #: pairing flows watching this port: they are told of every unknown tracker that reports
    _pairing: list[Callable[[Link], None]] = field(default_factory=list)
    _log: RateLimitedLog = field(init=False)

    def __post_init__(self) -> None:
        """Build the listener (not started)."""
        self.listener = Listener(
            self.port,
            on_messages=self._on_messages,
            on_link=self._on_link,
            on_duplicate=self._on_duplicate,
        )
        self._log = RateLimitedLog(LOGGER, LOG_INTERVAL)

    # -- entries ----------------------------------------------------------------------------

    @callback
    def add(self, coordinator: TrackerCoordinator) -> None:
        """Route a configured tracker's messages to its coordinator."""
        configured = coordinator.identity
        self.trackers[configured] = coordinator
        self._by_digits[configured.lstrip("0")] = configured
        if len(configured) == IMEI_LENGTH:
            self._by_tail[configured[-11:]] = configured
        live = {
            identity
            for identity, link in self.listener.links.items()
            if identity_matches(identity, link.protocol, configured)
        }
        if live:
            self._live[configured] = live
            self._live_since[configured] = self.listener.sequence
            self._relink(coordinator)
            self._check_duplicates(coordinator)

    @callback
    def remove_entry(self, entry_id: str) -> None:
        """Stop routing to the tracker of a config entry (if it was added)."""
        for configured, coordinator in list(self.trackers.items()):
            if coordinator.config_entry.entry_id != entry_id:
                continue
            del self.trackers[configured]
            if self._by_digits.get(configured.lstrip("0")) == configured:
                del self._by_digits[configured.lstrip("0")]
            if self._by_tail.get(configured[-11:]) == configured:
                del self._by_tail[configured[-11:]]
            for table in (self._live, self._current, self._live_since):
                table.pop(configured, None)
            self._duplicate_issues.pop(configured, None)
        ir.async_delete_issue(self.hass, DOMAIN, duplicate_issue_id(entry_id))

    @callback
    def watch_unknown(self, watcher: Callable[[Link], None]) -> CALLBACK_TYPE:
        """Tell `watcher` of each report from an unknown tracker, instead of offering it.

        For a pairing flow: the user is picking a tracker there, so a discovery card for the
        same tracker would only compete with it. Trackers already connected are told at once.
        """
        self._pairing.append(watcher)
        for link in list(self.listener.links.values()):
            if self._route(link.identity, link.protocol) is None:
                watcher(link)
        return lambda: self._pairing.remove(watcher)

    def _route(self, reported: str, protocol: Protocol) -> TrackerCoordinator | None:
        """The configured tracker a reported identity is (interfaces.md §3), in O(1)."""
        configured = self._by_digits.get(reported.lstrip("0"))
        if configured is None:
            if protocol is not Protocol.JT808 or len(reported) not in (11, 12):
                return None
            configured = self._by_tail.get(reported[-11:])
            if configured is None:
                return None
        return self.trackers.get(configured)

    # -- from the listener ------------------------------------------------------------------

    @callback
    def _on_messages(self, link: Link, messages: list[Message]) -> None:
        coordinator = self._route(link.identity, link.protocol)
        if coordinator is None:
            if self._pairing:
                for watcher in list(self._pairing):
                    watcher(link)
            else:
                self._offer(link)
            return
        configured = coordinator.identity
        live = self._live.get(configured)
        if live is not None and len(live) > 1:
            # The tracker is live under two identities (an IMEI and its terminal ID): the one
            # that sent a valid frame last takes the commands, as within one identity.
            self._relink(coordinator)
            self._check_duplicates(coordinator)
        # The coordinator always holds the link commands go over, whichever session spoke.
        coordinator.async_handle_messages(self._current.get(configured, link), messages)

    @callback
    def _on_link(self, link: Link, connected: bool) -> None:
        coordinator = self._route(link.identity, link.protocol)
        if coordinator is None:
            return
        configured = coordinator.identity
        live = self._live.setdefault(configured, set())
        if connected:
            if link.identity not in live and live:
                self._live_since[configured] = self.listener.sequence
            live.add(link.identity)
        else:
            live.discard(link.identity)
            self._duplicates.discard(link.identity)
            if not live:
                del self._live[configured]
        self._relink(coordinator)
        self._check_duplicates(coordinator)

    @callback
    def _on_duplicate(self, identity: str, links: list[Link]) -> None:
        if len(links) > 1:
            self._duplicates.add(identity)
        else:
            self._duplicates.discard(identity)
        if links and (coordinator := self._route(identity, links[0].protocol)) is not None:
            self._check_duplicates(coordinator)

    def _relink(self, coordinator: TrackerCoordinator) -> None:
        """Tell the coordinator which link its commands go over, when that changed.

        None only when no session of the tracker is left: a session closing while another
        still serves the tracker moves the commands there instead.
        """
        configured = coordinator.identity
        best: Link | None = None
        for identity in self._live.get(configured, ()):
            link = self.listener.link(identity)
            if link is not None and (best is None or link.valid_seq > best.valid_seq):
                best = link
        if best is self._current.get(configured):
            return
        if best is None:
            del self._current[configured]
        else:
            self._current[configured] = best
        coordinator.async_link_changed(best)

    def _check_duplicates(self, coordinator: TrackerCoordinator) -> None:
        """Raise (or clear) the repair issue for a tracker that two live sessions speak for."""
        configured = coordinator.identity
        live = self._live.get(configured, set())
        sessions = [link for identity in sorted(live) for link in self.listener.claims(identity)]
        open_issue = self._duplicate_issues.get(configured)
        if len(sessions) < 2:
            if open_issue is not None:
                del self._duplicate_issues[configured]
                ir.async_delete_issue(
                    self.hass, DOMAIN, duplicate_issue_id(coordinator.config_entry.entry_id)
                )
            return
        if open_issue is None and not self._is_duplicate(configured, live):
            return
        addresses = ", ".join(
            f"{link.host} ({link.transport.upper()}, ID {link.identity})" for link in sessions
        )
        if addresses == open_issue:
            return
        self._duplicate_issues[configured] = addresses
        entry = coordinator.config_entry
        ir.async_create_issue(
            self.hass,
            DOMAIN,
            duplicate_issue_id(entry.entry_id),
            is_fixable=False,
            severity=ir.IssueSeverity.WARNING,
            translation_key="duplicate_session",
            translation_placeholders={
                "name": entry.title,
                "identity": configured,
                "addresses": addresses,
                "port": str(self.port),
            },
        )

    def _is_duplicate(self, configured: str, live: set[str]) -> bool:
        """Two sessions talk for one tracker: within one identity, or under two of its IDs."""
        if any(identity in self._duplicates for identity in live):
            return True
        since = self._live_since.get(configured, 0)
        talking = 0
        for identity in live:
            if any(link.heard_seq > since for link in self.listener.claims(identity)):
                talking += 1
        return talking >= 2

    def _offer(self, link: Link) -> None:
        """Offer an unknown tracker to the user once, never adding it on its own."""
        identity = link.identity
        now = dt_util.utcnow()
        offered = self._offered.get(identity)
        if offered is not None and now - offered < REDISCOVERY_INTERVAL:
            return
        if self.hass.state is not CoreState.running:
            # Flows asked for now would queue unseen until Home Assistant has started, past
            # the cap; the tracker keeps reporting and is offered then.
            return
        self._offered[identity] = now
        self._offered.move_to_end(identity)
        while len(self._offered) > MAX_OFFERS_REMEMBERED:
            self._offered.popitem(last=False)
        flows = self.hass.config_entries.flow.async_progress_by_handler(
            DOMAIN, match_context={"source": SOURCE_INTEGRATION_DISCOVERY}
        )
        waiting = {flow["context"].get("unique_id") for flow in flows}
        for launched, when in list(self._launched.items()):
            if launched in waiting or now - when > LAUNCH_WINDOW:
                del self._launched[launched]
        if identity in waiting or identity in self._launched:
            return
        pending = len(waiting) + len(self._launched)
        if pending >= MAX_PENDING_DISCOVERIES:
            self._log.warning(
                "discovery cap",
                "Unknown tracker %s (%s) connected from %s on port %s; not offered because %d "
                "discovered trackers already wait in Settings > Devices & services",
                identity,
                link.protocol.value,
                link.host,
                self.port,
                pending,
            )
            return
        self._launched[identity] = now
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


async def async_acquire_hub(
    hass: HomeAssistant, port: int, entry_id: str, *, repair: bool = True
) -> Hub:
    """Return the running hub for `port`, starting its listener for the first user.

    `entry_id` names the user: a config entry, or a pairing flow. Raises OSError when the port
    cannot be opened; a repair issue then tells the user why (unless `repair` is False: a
    pairing flow says so itself, and no entry needs the port yet).
    """
    hubs = hass.data.setdefault(HUBS, {})
    async with hass.data.setdefault(_LOCK, asyncio.Lock()):
        hub = hubs.get(port)
        if hub is None:
            hub = Hub(hass, port)
            try:
                await hub.listener.start()
            except OSError as err:
                if not repair:
                    raise
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
                hub.unsubscribe_stop = None  # fired: removing it again would log an error
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
            hub.unsubscribe_stop = None
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
