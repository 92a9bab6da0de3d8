"""Per-tracker state in Home Assistant: the shared tracker rules, entities, timers and storage.

One `TrackerCoordinator` per config entry (per tracker). The hub hands it the messages of one read
whose identity matches; it folds them in with the tracker rules it shares with the MQTT gateway
(`tracking.Tracker`: positions, device clocks, alarms, the relay) into a `TrackerState` that every
entity of the device renders, and tells the entities only when something they show changed (each
entity then writes its state only if its own value changed: a parked tracker that keeps
reporting writes nothing). Home Assistant's side is here: the relay command and its errors, the
alarm hold and offline timers, events, the device registry. The state is saved
(`store.TrackerStore`) at most `SAVE_DELAY` after a change, so a restart or a crash brings back
the map position, the relay and the alarm state, and a replayed alarm is recognised as one
already reported.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.event import async_call_later
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator
from homeassistant.util import dt as dt_util

from .clock import FixTime
from .const import (
    COMMAND_TIMEOUT,
    CONF_ALARM_HOLD,
    CONF_IMEI,
    CONF_OFFLINE_AFTER,
    CONF_RELAY_DIALECT,
    CONF_RELAY_MAX_SPEED,
    CONF_RELAY_PASSWORD,
    DEFAULT_ALARM_HOLD,
    DEFAULT_OFFLINE_AFTER,
    DEFAULT_RELAY_MAX_SPEED,
    DIALECT_AUTO,
    DOMAIN,
    EVENT_TK970,
    LOGGER,
    RELAY_TIMEOUT,
)
from .fallback import TrackerPositioning
from .listener import (
    CommandEncodeError,
    CommandRejectedError,
    CommandTimeoutError,
    Link,
    NotConnectedError,
)
from .positioning import Estimate
from .protocol import (
    Alarm,
    Command,
    CommandKind,
    CommandResult,
    Message,
    Protocol,
    RelayDialect,
)
from .protocol.commands import DEFAULT_DYD_PASSWORD, CommandOutcome, supports
from .store import async_get_tracker_store
from .tracking import PROTOCOL_NAMES, AlarmState, Tracker, TrackerState

__all__ = ["AlarmState", "TrackerCoordinator", "TrackerState"]

if TYPE_CHECKING:
    from .hub import Hub

type TK970ConfigEntry = ConfigEntry[TrackerCoordinator]
type AlarmListener = Callable[[Alarm, Message], None]

# What changed, so that only the entities showing it are told (each entity's listener context).
#: the shown position and what a fix brings along (speed, course, altitude, satellites)
POSITION = "position"
#: battery, voltages, signal, ignition, charging, relay
STATUS = "status"
#: SOS and vibration
ALARMS = "alarms"
#: connected, and the link commands go over
LINK = "link"
#: online or offline (live values' availability)
ONLINE = "online"
LAST_SEEN = "last_seen"
#: protocol and device description
INFO = "info"


class TrackerCoordinator(DataUpdateCoordinator[TrackerState]):
    """Fold one tracker's messages into its state; send its relay commands."""

    config_entry: TK970ConfigEntry

    def __init__(self, hass: HomeAssistant, entry: TK970ConfigEntry, hub: Hub) -> None:
        """Start with an empty state; `async_restore` loads the saved one."""
        super().__init__(hass, LOGGER, config_entry=entry, name=f"{DOMAIN} {entry.data[CONF_IMEI]}")
        self.identity: str = entry.data[CONF_IMEI]
        self.hub = hub
        self.link: Link | None = None
        #: the tracker rules, shared with the MQTT gateway; `data` is its state
        self.core = Tracker(self.identity, hold=self.hold_time)
        self.data = self.core.state
        self._store = async_get_tracker_store(hass)
        self._hold_timers: dict[Alarm, CALLBACK_TYPE] = {}
        self._offline_timer: CALLBACK_TYPE | None = None
        #: set at shutdown: nothing is applied, shown or saved any more (a removed entry's file
        #: must not come back when a relay command still pending answers)
        self._closed = False
        #: what changed since the entities were last told (see `async_update_listeners`)
        self._changed: set[str] = set()
        self._relay_busy = False
        self._alarm_listeners: list[AlarmListener] = []
        #: fallback positioning (cells, Wi-Fi), attached at setup (`fallback.py`)
        self.positioning: TrackerPositioning[FixTime] | None = None

    # -- lifecycle --------------------------------------------------------------------------

    async def async_restore(self) -> None:
        """Load the saved state, re-arm the alarm hold and offline timers."""
        saved = await self._store.async_load(self.config_entry.entry_id)
        if saved:
            self.core = Tracker(self.identity, TrackerState.from_store(saved), hold=self.hold_time)
            self.data = self.core.state
        state = self.data
        now = dt_util.utcnow()
        state.last_heard = state.last_seen
        if state.last_seen is not None and now - state.last_seen < self.offline_after:
            state.online = True
            self._arm_offline_timer((state.last_seen + self.offline_after - now).total_seconds())
        for alarm, tracked in self.data.alarms.items():
            if tracked.on:
                self._arm_hold(alarm, now)

    async def _async_update_data(self) -> TrackerState:
        """Nothing to fetch: the tracker pushes (an entity update request just re-renders)."""
        return self.data

    @callback
    def async_options_updated(self) -> None:
        """Apply new hold and offline times at once (other options are read when used)."""
        now = dt_util.utcnow()
        self.core.hold = self.hold_time
        for alarm, tracked in self.data.alarms.items():
            if tracked.on:
                self._arm_hold(alarm, now)
        if self.data.online:
            self._arm_offline_timer(0)  # checks against the new time, re-arms if still online

    async def async_shutdown(self) -> None:
        """Cancel timers and hand the state to the store; nothing changes or saves after this."""
        self._closed = True
        for cancel in self._hold_timers.values():
            cancel()
        self._hold_timers.clear()
        if self._offline_timer is not None:
            self._offline_timer()
            self._offline_timer = None
        self._store.async_unloaded(self.config_entry.entry_id, self.data.as_store())
        await super().async_shutdown()

    @property
    def hold_time(self) -> timedelta:
        """How long an alarm sensor stays on without a clearing status."""
        return timedelta(minutes=self.config_entry.options.get(CONF_ALARM_HOLD, DEFAULT_ALARM_HOLD))

    @property
    def offline_after(self) -> timedelta:
        """How long a silent tracker stays online."""
        return timedelta(
            minutes=self.config_entry.options.get(CONF_OFFLINE_AFTER, DEFAULT_OFFLINE_AFTER)
        )

    @property
    def model(self) -> str:
        """The model to show: the device's own word where it gave one, with the protocol."""
        return self.data.model

    # -- saving -----------------------------------------------------------------------------

    @callback
    def _schedule_save(self) -> None:
        """Save within SAVE_DELAY (the store writes every tracker's changes together)."""
        if not self._closed:
            self._store.async_changed(self.config_entry.entry_id, self.data.as_store)

    # -- online and offline -----------------------------------------------------------------

    def _heard(self) -> None:
        """A message arrived (the rules noted it): back online."""
        state = self.data
        if not state.online:
            state.online = True
            self._changed.add(ONLINE)
            LOGGER.info("Tracker %s is online", self.identity)
        if self._offline_timer is None:
            self._arm_offline_timer(self.offline_after.total_seconds())

    def _arm_offline_timer(self, delay: float) -> None:
        if self._offline_timer is not None:
            self._offline_timer()
        # One timer per silence, not one per report: when it fires early it re-arms itself.
        self._offline_timer = async_call_later(self.hass, max(0.0, delay), self._offline_due)

    @callback
    def _offline_due(self, now: datetime) -> None:
        self._offline_timer = None
        state = self.data
        if self._closed or not state.online:
            return
        heard = state.last_heard
        if heard is not None and heard + self.offline_after > now:
            self._arm_offline_timer((heard + self.offline_after - now).total_seconds())
            return
        state.online = False
        LOGGER.info(
            "Tracker %s is offline: nothing heard for %d minutes",
            self.identity,
            self.offline_after.total_seconds() // 60,
        )
        self._changed.add(ONLINE)
        self._settle_last_seen()
        self._notify()

    def _settle_last_seen(self) -> None:
        """The tracker went quiet: "Last seen" takes the exact time of its last message."""
        if self.core.settle_last_seen():
            self._changed.add(LAST_SEEN)
            self._schedule_save()

    # -- telling the entities ---------------------------------------------------------------

    @callback
    def _notify(self) -> None:
        """Tell the entities what changed, if anything did."""
        if self._changed:
            self.async_set_updated_data(self.data)

    @callback
    def async_update_listeners(self) -> None:
        """Call the entities whose part of the state changed (all, when nothing says which).

        Every entity would find out for itself that its value did not change; not asking the
        others keeps a report that moves the tracker to a few calls instead of one per entity.
        """
        changed, self._changed = self._changed, set()
        for update_callback, context in list(self._listeners.values()):
            if not changed or not isinstance(context, frozenset) or not changed.isdisjoint(context):
                update_callback()

    # -- from the hub -----------------------------------------------------------------------

    @callback
    def async_link_changed(self, link: Link | None) -> None:
        """Commands now go over `link` (the device connected, or has a UDP address); None: the
        device is unreachable."""
        if self._closed:
            return
        self.link = link
        if link is not None:
            self._use_link(link)
        state = self.data
        self._changed.add(LINK)  # the relay switch follows the link itself
        if state.connected != (link is not None):
            state.connected = link is not None
            if link is not None:
                LOGGER.info(
                    "Tracker %s connected from %s over %s",
                    self.identity,
                    link.host,
                    link.transport,
                )
            else:
                LOGGER.info("Tracker %s disconnected", self.identity)
                self._settle_last_seen()
        self._notify()

    def _use_link(self, link: Link) -> None:
        """Note a new link, and hand its JT808 session the clock offset learned before."""
        state = self.data
        state.transport = link.transport
        state.address = link.host
        state.reported_id = link.identity
        if link.protocol is Protocol.JT808:
            context = link.session.context
            context.jt808_utc_offset = self.core.session_offset(context.jt808_utc_offset)

    @callback
    def async_handle_messages(self, link: Link, messages: list[Message]) -> None:
        """Apply the messages of one read in order, then tell the entities once.

        Entities are told only when something they show changed, and each writes its state
        only when its own value changed.
        """
        if self._closed:
            return
        state = self.data
        changed = self._changed
        if self.link is not link:
            self.link = link
            self._use_link(link)
            changed.add(LINK)
        if not state.connected:
            state.connected = True
            LOGGER.info(
                "Tracker %s connected from %s over %s", self.identity, link.host, link.transport
            )
        now = dt_util.utcnow()
        applied = self.core.apply(
            messages,
            now,
            locate=self.positioning.handle if self.positioning is not None else None,
            jt808_utc_offset=(
                link.session.context.jt808_utc_offset if link.protocol is Protocol.JT808 else None
            ),
        )
        self._heard()
        # What the rules changed, for the entities that show it.
        if applied.last_seen:
            changed.add(LAST_SEEN)
        if applied.info:
            changed.add(INFO)
            self._update_device()
        if applied.status:
            changed.add(STATUS)
        if applied.position:
            changed.add(POSITION)
        if applied.alarms:
            changed.add(ALARMS)
        for alarm in applied.cleared:
            self._clear(alarm)
        for alarm in applied.latched:  # on again counts too: its hold time starts again
            self._arm_hold(alarm, now)
        if changed or applied.learned:
            self._schedule_save()
        self._notify()
        for alarm, message in applied.events:
            self._fire(alarm, message)

    def _arm_hold(self, alarm: Alarm, now: datetime) -> None:
        if (cancel := self._hold_timers.pop(alarm, None)) is not None:
            cancel()
        end = self.core.hold_ends().get(alarm, now + self.hold_time)

        @callback
        def _expired(_now: datetime) -> None:
            self._hold_timers.pop(alarm, None)
            self._clear(alarm)
            self._changed.add(ALARMS)
            self._notify()
            self._schedule_save()

        self._hold_timers[alarm] = async_call_later(
            self.hass, max(0.0, (end - now).total_seconds()), _expired
        )

    def _clear(self, alarm: Alarm) -> None:
        """Turn the alarm off (if it is not already) and stop its hold timer."""
        self.core.clear_alarm(alarm)
        if (cancel := self._hold_timers.pop(alarm, None)) is not None:
            cancel()

    def find_device(self) -> dr.DeviceEntry | None:
        """This tracker's device (the lookup that works on every supported release)."""
        registry = dr.async_get(self.hass)
        for device in dr.async_entries_for_config_entry(registry, self.config_entry.entry_id):
            if (DOMAIN, self.identity) in device.identifiers:
                return device
        return None

    def _fire(self, alarm: Alarm, message: Message) -> None:
        device = self.find_device()
        self.hass.bus.async_fire(
            EVENT_TK970,
            {
                "device_id": device.id if device else None,
                "imei": self.identity,
                "type": alarm.value,
                "time": (message.time or dt_util.utcnow()).isoformat(),
                "latitude": message.latitude if message.valid else None,
                "longitude": message.longitude if message.valid else None,
            },
        )
        for listener in list(self._alarm_listeners):
            listener(alarm, message)

    @callback
    def async_add_alarm_listener(self, listener: AlarmListener) -> CALLBACK_TYPE:
        """Call `listener(alarm, message)` for every new alarm (the event entity)."""
        self._alarm_listeners.append(listener)
        return lambda: self._alarm_listeners.remove(listener)

    def _update_device(self) -> None:
        device = self.find_device()
        if device is None:
            return
        dr.async_get(self.hass).async_update_device(
            device.id, model=self.model, sw_version=self.data.info.get("firmware")
        )

    # -- fallback positioning (cells and Wi-Fi, fallback.py) ---------------------------------

    @callback
    def async_show_fallback(self, estimate: Estimate, fix: FixTime) -> None:
        """A fallback resolved in the background (cell database, online provider)."""
        if not self._closed and self.core.show_fallback(estimate, fix):
            self._changed.add(POSITION)
            self._notify()
            self._schedule_save()

    # -- the relay --------------------------------------------------------------------------

    async def async_set_relay(self, engage: bool) -> None:
        """Cut (engage) or restore the relay, and return once the device confirmed it."""
        options = self.config_entry.options
        state = self.data
        limit = options.get(CONF_RELAY_MAX_SPEED, DEFAULT_RELAY_MAX_SPEED)
        if engage and limit and state.speed_kmh is not None and state.speed_kmh > limit:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="relay_too_fast",
                translation_placeholders={"speed": f"{state.speed_kmh:.0f}", "limit": str(limit)},
            )
        link = self.link
        if link is None:
            raise self._not_connected()
        if self._relay_busy:
            raise HomeAssistantError(translation_domain=DOMAIN, translation_key="relay_busy")
        dialect_option = options.get(CONF_RELAY_DIALECT, DIALECT_AUTO)
        command = Command(
            kind=CommandKind.RELAY_CUT if engage else CommandKind.RELAY_RESTORE,
            dialect=None if dialect_option == DIALECT_AUTO else RelayDialect(dialect_option),
            password=options.get(CONF_RELAY_PASSWORD) or DEFAULT_DYD_PASSWORD,
        )
        self._relay_busy = True
        reports_before = self.core.relay_reports
        try:
            outcome = await self.hub.listener.send_command(
                link.identity, command, answer_timeout=RELAY_TIMEOUT
            )
        except NotConnectedError as err:
            raise self._not_connected() from err
        except CommandTimeoutError as err:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="relay_no_answer",
                translation_placeholders={"seconds": f"{RELAY_TIMEOUT:.0f}"},
            ) from err
        except CommandEncodeError as err:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="relay_unsupported",
                translation_placeholders={"reason": str(err)},
            ) from err
        except CommandRejectedError as err:
            key = (
                "relay_unsupported"
                if err.outcome.result is CommandResult.UNSUPPORTED
                else "relay_refused"
            )
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key=key,
                translation_placeholders={"reason": err.outcome.text or err.outcome.result.value},
            ) from err
        finally:
            self._relay_busy = False
        if outcome is None:
            # The protocol has no confirmation (GPS103): the command went out, and that is all
            # anyone knows. Not an error the device made, but never shown as done either.
            LOGGER.info("Tracker %s: relay command sent, unconfirmable", self.identity)
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="relay_unconfirmable",
                translation_placeholders={"protocol": PROTOCOL_NAMES[link.protocol]},
            )
        # Unless something newer than this answer stated the relay, the answer is the state.
        self.core.relay_confirmed(
            outcome.relay if outcome.relay is not None else engage, reports_before
        )
        LOGGER.info(
            "Tracker %s: relay %s (confirmed)", self.identity, "cut" if engage else "restored"
        )
        if not self._closed:
            self._changed.add(STATUS)
            self._notify()
            self._schedule_save()

    def _not_connected(self) -> HomeAssistantError:
        """The error for a command when the tracker has no live session."""
        return HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="not_connected",
            translation_placeholders={"imei": self.identity},
        )

    # -- other commands (actions and buttons, services.py and button.py) ---------------------

    async def async_send_command(self, command: Command) -> CommandOutcome | None:
        """Send `command` over the tracker's live session; the device's successful answer.

        The listener settles it only from the session that owns the identity. None: the
        protocol never answers (GPS103), the command went out. A family without the command
        or text it cannot carry is the caller's mistake (ServiceValidationError); no session,
        a refusal or no answer within COMMAND_TIMEOUT is the device's (HomeAssistantError).
        """
        link = self.link
        if link is None:
            raise self._not_connected()
        protocol = PROTOCOL_NAMES[link.protocol]
        if not supports(link.protocol, command.kind):
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="command_unsupported",
                translation_placeholders={"protocol": protocol, "command": command.kind.value},
            )
        try:
            return await self.hub.listener.send_command(
                link.identity, command, answer_timeout=COMMAND_TIMEOUT
            )
        except NotConnectedError as err:
            raise self._not_connected() from err
        except CommandEncodeError as err:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="command_invalid",
                translation_placeholders={"protocol": protocol, "reason": str(err)},
            ) from err
        except CommandTimeoutError as err:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="command_no_answer",
                translation_placeholders={"seconds": f"{COMMAND_TIMEOUT:.0f}"},
            ) from err
        except CommandRejectedError as err:
            unsupported = err.outcome.result is CommandResult.UNSUPPORTED
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key=(
                    "command_not_supported_by_device" if unsupported else "command_refused"
                ),
                translation_placeholders={"reason": err.outcome.text or err.outcome.result.value},
            ) from err

    async def async_clear_sos(self) -> None:
        """Turn the SOS alarm off; first answer the device where its protocol acknowledges SOS.

        A connected tracker whose protocol has an acknowledgement must take it (an error keeps
        the alarm on: the device would keep sending it); otherwise the alarm is cleared here
        only, which also works while the tracker is away.
        """
        link = self.link
        if link is not None and supports(link.protocol, CommandKind.CLEAR_SOS):
            await self.async_send_command(Command(kind=CommandKind.CLEAR_SOS))
        if self._closed or not self.data.alarms[Alarm.SOS].on:
            return
        self._clear(Alarm.SOS)
        LOGGER.info("Tracker %s: SOS cleared", self.identity)
        self._changed.add(ALARMS)
        self._notify()
        self._schedule_save()


async def async_remove_saved_state(hass: HomeAssistant, entry_id: str) -> None:
    """Delete the state a removed tracker left in Home Assistant's storage."""
    await async_get_tracker_store(hass).async_remove(entry_id)
