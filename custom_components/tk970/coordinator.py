"""Per-tracker state: applies decoded messages, keeps alarms and the relay, survives restarts.

One `TrackerCoordinator` per config entry (per tracker). The hub hands it the messages whose
identity matches; it folds them into a `TrackerState` that every entity of the device renders.
It is also the one place that sends the relay command and decides what a confirmation means.
The state is saved with Home Assistant's `Store`, so a restart brings back the map position,
the relay and the alarm state, and a replayed alarm is recognised as one already reported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.event import async_call_later
from homeassistant.helpers.storage import Store
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator
from homeassistant.util import dt as dt_util

from .const import (
    ACCURACY_LBS,
    ACCURACY_WIFI,
    CONF_ALARM_HOLD,
    CONF_IMEI,
    CONF_RELAY_DIALECT,
    CONF_RELAY_MAX_SPEED,
    CONF_RELAY_PASSWORD,
    DEFAULT_ALARM_HOLD,
    DEFAULT_MODEL,
    DEFAULT_RELAY_MAX_SPEED,
    DIALECT_AUTO,
    DOMAIN,
    EVENT_TK970,
    LOGGER,
    RELAY_TIMEOUT,
)
from .fallback import GnssPosition, TrackerPositioning, device_estimate
from .listener import (
    CommandEncodeError,
    CommandRejectedError,
    CommandTimeoutError,
    Link,
    NotConnectedError,
)
from .positioning import Estimate, fallback_moves
from .protocol import (
    Alarm,
    Command,
    CommandKind,
    CommandResult,
    Message,
    MessageType,
    PositionSource,
    Protocol,
    RelayDialect,
)
from .protocol.commands import DEFAULT_DYD_PASSWORD
from .tracking import PROTOCOL_NAMES, gnss_accuracy

if TYPE_CHECKING:
    from .hub import Hub

type TK970ConfigEntry = ConfigEntry[TrackerCoordinator]
type AlarmListener = Callable[[Alarm, Message], None]

#: Alarms shown as binary sensors (interfaces.md §3); every alarm also fires an event.
STATE_ALARMS = (Alarm.SOS, Alarm.VIBRATION)
STORAGE_VERSION = 1
#: Saving is debounced: a tracker reporting every 10 s must not write the disk every 10 s.
SAVE_DELAY = 30.0


@dataclass(slots=True)
class AlarmState:
    """A state-like alarm (SOS, vibration): whether it is on, and since when.

    Replays are recognised by `TrackerState.last_alarm_events`, for every alarm kind.
    """

    on: bool = False
    #: when it came on, in Home Assistant's clock (the hold time counts from here)
    since: datetime | None = None


@dataclass(slots=True)
class TrackerState:
    """Everything known about one tracker; what the entities render."""

    protocol: Protocol | None = None
    reported_id: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    accuracy: int = 0
    position_source: PositionSource | None = None
    position_time: datetime | None = None
    speed_kmh: float | None = None
    course: float | None = None
    altitude_m: float | None = None
    satellites: int | None = None
    ignition: bool | None = None
    relay: bool | None = None
    charging: bool | None = None
    battery_percent: float | None = None
    battery_voltage: float | None = None
    power_voltage: float | None = None
    gsm_signal: int | None = None
    odometer_km: float | None = None
    last_seen: datetime | None = None
    connected: bool = False
    transport: str | None = None
    address: str | None = None
    alarms: dict[Alarm, AlarmState] = field(
        default_factory=lambda: {alarm: AlarmState() for alarm in STATE_ALARMS}
    )
    #: device time of the newest event per alarm kind, so a replay does not fire again
    last_alarm_events: dict[Alarm, datetime] = field(default_factory=dict)
    last_alarm: Alarm | None = None
    info: dict[str, str] = field(default_factory=dict)
    #: how the shown position was found when it is not a GNSS fix (cells or Wi-Fi)
    fallback: Estimate | None = None
    #: the last GNSS fix: a fallback never replaces it when it lies inside the fallback's circle
    last_gnss: GnssPosition | None = None

    def as_store(self) -> dict[str, Any]:
        """JSON-safe snapshot for the Store (connection facts are not kept)."""
        data = asdict(self)
        for key in ("connected", "transport", "address"):
            data.pop(key)
        data["fallback"] = self.fallback.as_dict() if self.fallback else None
        data["last_gnss"] = self.last_gnss.as_dict() if self.last_gnss else None
        data["alarms"] = {
            alarm.value: {
                "on": state.on,
                "since": _iso(state.since),
            }
            for alarm, state in self.alarms.items()
        }
        data["last_alarm_events"] = {
            a.value: t.isoformat() for a, t in self.last_alarm_events.items()
        }
        for key in ("position_time", "last_seen"):
            data[key] = _iso(getattr(self, key))
        return data

    @classmethod
    def from_store(cls, data: dict[str, Any]) -> TrackerState:
        """Rebuild from `as_store` output; unknown or malformed values are dropped."""
        state = cls()
        for key, kinds in _STORED_VALUES.items():
            value = data.get(key)
            if isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds):
                setattr(state, key, value)
        state.info = {str(k): str(v) for k, v in (data.get("info") or {}).items()}
        state.protocol = _enum(Protocol, data.get("protocol"))
        state.position_source = _enum(PositionSource, data.get("position_source"))
        state.last_alarm = _enum(Alarm, data.get("last_alarm"))
        state.position_time = _parse(data.get("position_time"))
        state.last_seen = _parse(data.get("last_seen"))
        state.fallback = Estimate.from_dict(data.get("fallback"))
        state.last_gnss = GnssPosition.from_dict(data.get("last_gnss"))
        for name, saved in (data.get("alarms") or {}).items():
            alarm = _enum(Alarm, name)
            if alarm in state.alarms and isinstance(saved, dict):
                state.alarms[alarm] = AlarmState(
                    bool(saved.get("on")),
                    _parse(saved.get("since")),
                )
        for name, stamp in (data.get("last_alarm_events") or {}).items():
            alarm, when = _enum(Alarm, name), _parse(stamp)
            if alarm is not None and when is not None:
                state.last_alarm_events[alarm] = when
        return state


#: Saved values restored as they are, with the types they may have.
_STORED_VALUES: dict[str, tuple[type, ...]] = {
    "reported_id": (str,),
    "latitude": (int, float),
    "longitude": (int, float),
    "accuracy": (int,),
    "speed_kmh": (int, float),
    "course": (int, float),
    "altitude_m": (int, float),
    "satellites": (int,),
    "ignition": (bool,),
    "relay": (bool,),
    "charging": (bool,),
    "battery_percent": (int, float),
    "battery_voltage": (int, float),
    "power_voltage": (int, float),
    "odometer_km": (int, float),
    "gsm_signal": (int,),
}
#: Accuracy shown for a position the tracker computed itself from cells or Wi-Fi.
_DEVICE_ACCURACY = {PositionSource.LBS: ACCURACY_LBS, PositionSource.WIFI: ACCURACY_WIFI}
#: A device time this far ahead of our clock is wrong (an unlearned time zone, a bad RTC):
#: trusting it would make every correct report after it look old.
MAX_CLOCK_AHEAD = timedelta(minutes=5)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _parse(value: object) -> datetime | None:
    return dt_util.parse_datetime(value) if isinstance(value, str) else None


def _enum[E: (Protocol, PositionSource, Alarm)](kind: type[E], value: object) -> E | None:
    try:
        return kind(str(value)) if value is not None else None
    except ValueError:
        return None


def _device_time(message: Message, now: datetime) -> datetime:
    """The device's time of a report, or `now` when it has none or one that cannot be right."""
    when = message.time
    if when is None or when > now + MAX_CLOCK_AHEAD:
        # Whole seconds, as device clocks have: a report in the same second is not "older".
        return now.replace(microsecond=0)
    return when


class TrackerCoordinator(DataUpdateCoordinator[TrackerState]):
    """Fold one tracker's messages into its state; send its relay commands."""

    config_entry: TK970ConfigEntry

    def __init__(self, hass: HomeAssistant, entry: TK970ConfigEntry, hub: Hub) -> None:
        """Start with an empty state; `async_restore` loads the saved one."""
        super().__init__(hass, LOGGER, config_entry=entry, name=f"{DOMAIN} {entry.data[CONF_IMEI]}")
        self.identity: str = entry.data[CONF_IMEI]
        self.hub = hub
        self.link: Link | None = None
        self.data = TrackerState()
        self._store: Store[dict[str, Any]] = Store(
            hass, STORAGE_VERSION, f"{DOMAIN}.{entry.entry_id}"
        )
        self._hold_timers: dict[Alarm, CALLBACK_TYPE] = {}
        self._relay_busy = False
        #: how many reports stated the relay (a command's answer must not overwrite a newer one)
        self._relay_reports = 0
        self._alarm_listeners: list[AlarmListener] = []
        #: fallback positioning (cells, Wi-Fi), attached at setup (`fallback.py`)
        self.positioning: TrackerPositioning[datetime] | None = None

    # -- lifecycle --------------------------------------------------------------------------

    async def async_restore(self) -> None:
        """Load the saved state and re-arm the alarm hold timers."""
        saved = await self._store.async_load()
        if saved:
            self.data = TrackerState.from_store(saved)
        now = dt_util.utcnow()
        for alarm, state in self.data.alarms.items():
            if state.on:
                self._arm_hold(alarm, state, now)

    async def _async_update_data(self) -> TrackerState:
        """Nothing to fetch: the tracker pushes (an entity update request just re-renders)."""
        return self.data

    @callback
    def async_options_updated(self) -> None:
        """Apply a new hold time to alarms already on (other options are read when used)."""
        now = dt_util.utcnow()
        for alarm, state in self.data.alarms.items():
            if state.on:
                self._arm_hold(alarm, state, now)

    async def async_shutdown(self) -> None:
        """Cancel timers and write the state now."""
        for cancel in self._hold_timers.values():
            cancel()
        self._hold_timers.clear()
        await self._store.async_save(self.data.as_store())
        await super().async_shutdown()

    @property
    def hold_time(self) -> timedelta:
        """How long an alarm sensor stays on without a clearing status."""
        return timedelta(minutes=self.config_entry.options.get(CONF_ALARM_HOLD, DEFAULT_ALARM_HOLD))

    @property
    def model(self) -> str:
        """The model to show: the device's own word where it gave one, with the protocol."""
        model = self.data.info.get("model") or DEFAULT_MODEL
        if self.data.protocol is not None:
            return f"{model} ({PROTOCOL_NAMES[self.data.protocol]})"
        return model

    # -- from the hub -----------------------------------------------------------------------

    @callback
    def async_link_changed(self, link: Link | None) -> None:
        """The device connected (or has a UDP address), or lost its link."""
        self.link = link
        state = self.data
        was = state.connected
        state.connected = link is not None
        if link is not None:
            state.transport = link.transport
            state.address = link.host
            state.reported_id = link.identity
        if was != state.connected:
            LOGGER.info(
                "Tracker %s %s",
                self.identity,
                f"connected from {link.host} over {link.transport}" if link else "disconnected",
            )
        self.async_set_updated_data(state)

    @callback
    def async_handle_messages(self, link: Link, messages: list[Message]) -> None:
        """Apply the messages of one read in order, then update the entities once."""
        if self.link is not link:
            self.link = link
            self.data.connected = True
            self.data.transport = link.transport
            self.data.address = link.host
        now = dt_util.utcnow()
        state = self.data
        state.last_seen = now
        state.reported_id = link.identity
        info_changed = False
        events: list[tuple[Alarm, Message]] = []
        for message in messages:
            info_changed |= self._apply_info(message)
            self._apply_values(message)
            self._apply_position(message)
            events.extend((alarm, message) for alarm in self._apply_alarms(message, now))
        if info_changed:
            self._update_device()
        self.async_set_updated_data(state)
        for alarm, message in events:
            self._fire(alarm, message)
        self._store.async_delay_save(self.data.as_store, SAVE_DELAY)

    def _apply_info(self, message: Message) -> bool:
        state = self.data
        changed = state.protocol is not message.protocol
        state.protocol = message.protocol
        for key, value in message.info:
            if state.info.get(key) != value:
                state.info[key] = value
                changed = True
        return changed

    def _apply_values(self, message: Message) -> None:
        state = self.data
        if message.historical:
            return  # a late record says nothing about the device's state now
        for name in (
            "ignition", "charging", "battery_percent", "battery_voltage", "power_voltage",
            "gsm_signal", "odometer_km",
        ):  # fmt: skip
            value = getattr(message, name)
            if value is not None:
                setattr(state, name, value)
        if message.relay is not None:
            state.relay = message.relay
            self._relay_reports += 1

    def _apply_position(self, message: Message) -> None:
        """Move the tracker only for a usable fix that is not older than the one shown."""
        state = self.data
        self._apply_fallback(message)
        if message.latitude is None or message.longitude is None:
            return
        source = message.position_source or PositionSource.GNSS
        usable = message.valid is True and source is PositionSource.GNSS
        if not usable or (message.latitude == 0 and message.longitude == 0):
            return
        when = _device_time(message, dt_util.utcnow())
        if state.position_time is not None and when < state.position_time:
            LOGGER.debug("Tracker %s: ignoring a fix older than the one shown", self.identity)
            return
        state.latitude = message.latitude
        state.longitude = message.longitude
        state.position_source = source
        state.position_time = when
        state.accuracy = gnss_accuracy(message)
        state.fallback = None
        state.last_gnss = GnssPosition(state.latitude, state.longitude, state.accuracy, when)
        # A cell or Wi-Fi position has no speed: keep the last one (the relay's speed guard
        # must not read "unknown" as "stopped").
        for name in ("speed_kmh", "course", "altitude_m", "satellites"):
            value = getattr(message, name)
            if value is not None:
                setattr(state, name, value)

    def _apply_alarms(self, message: Message, now: datetime) -> list[Alarm]:
        """Update SOS/vibration and return the alarms to report as events."""
        state = self.data
        when = _device_time(message, now)
        events: list[Alarm] = []
        for alarm in message.alarms:
            last = state.last_alarm_events.get(alarm)
            tracked = state.alarms.get(alarm)
            if last is not None and (when == last or (message.historical and when < last)):
                continue  # a replay of an alarm already reported (buffered upload, restart)
            if (
                tracked is not None
                and tracked.on
                and alarm in message.alarm_states
                and message.type is not MessageType.ALARM
            ):
                # A routine report whose status word still shows the alarm: the same one. An
                # alarm frame always counts: missing a second SOS is worse than one too many.
                state.last_alarm_events[alarm] = when
                continue
            state.last_alarm_events[alarm] = when
            events.append(alarm)
        for alarm, tracked in state.alarms.items():
            if alarm in message.alarms:
                if message.historical and when + self.hold_time < now:
                    continue  # an old alarm from the device's buffer: reported, not current
                tracked.on = True
                tracked.since = now
                self._arm_hold(alarm, tracked, now)
            elif alarm in message.alarm_states and not message.historical and tracked.on:
                self._clear(alarm)
        if events:
            state.last_alarm = events[-1]
        return events

    def _arm_hold(self, alarm: Alarm, tracked: AlarmState, now: datetime) -> None:
        if (cancel := self._hold_timers.pop(alarm, None)) is not None:
            cancel()
        since = tracked.since or now
        remaining = (since + self.hold_time - now).total_seconds()

        @callback
        def _expired(_now: datetime) -> None:
            self._hold_timers.pop(alarm, None)
            self._clear(alarm)
            self.async_set_updated_data(self.data)

        self._hold_timers[alarm] = async_call_later(self.hass, max(0.0, remaining), _expired)

    def _clear(self, alarm: Alarm) -> None:
        tracked = self.data.alarms[alarm]
        tracked.on = False
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

    def _apply_fallback(self, message: Message) -> bool:
        """Learn from a fix's cells and Wi-Fi, or place a report without a fix; True when the
        shown position changed.

        The learned table answers at once; the cell database and the online provider answer
        later, through `async_show_fallback`. A position the tracker computed itself from
        cells or Wi-Fi goes through the same rule.
        """
        if self.positioning is None:
            return False
        when = _device_time(message, dt_util.utcnow())
        estimate = self.positioning.handle(message, when, fix_accuracy=gnss_accuracy(message))
        source = message.position_source
        if estimate is None and source is not None and source in _DEVICE_ACCURACY:
            estimate = device_estimate(message, _DEVICE_ACCURACY[source])
        return estimate is not None and self._show_fallback(estimate, when)

    def _show_fallback(self, estimate: Estimate, when: datetime) -> bool:
        """Show a cell or Wi-Fi position if it is news and does not make the map worse.

        A GNSS fix of the same age wins. When the last GNSS fix lies inside the estimate's
        circle, the GNSS position stays (or comes back): it is the better estimate of a
        tracker that has not gone anywhere. Speed and course stay as the last fix left them
        (the relay's speed guard must not read "unknown" as "stopped").
        """
        state = self.data
        shown = state.position_time
        if shown is not None and (
            when < shown or (when == shown and state.position_source is PositionSource.GNSS)
        ):
            return False
        gnss = state.last_gnss
        if gnss is not None and not fallback_moves(estimate, gnss.latitude, gnss.longitude):
            if state.position_source is PositionSource.GNSS:
                return False
            state.latitude, state.longitude, state.accuracy = (
                gnss.latitude, gnss.longitude, gnss.accuracy,
            )  # fmt: skip
            state.position_source = PositionSource.GNSS
            state.fallback = None
            state.position_time = when
            return True
        state.latitude = estimate.latitude
        state.longitude = estimate.longitude
        state.accuracy = estimate.accuracy
        state.position_source = PositionSource(estimate.kind.value)
        state.fallback = estimate
        state.position_time = when
        return True

    @callback
    def async_show_fallback(self, estimate: Estimate, when: datetime) -> None:
        """A fallback resolved in the background (cell database, online provider)."""
        if self._show_fallback(estimate, when):
            self.async_set_updated_data(self.data)
            self._store.async_delay_save(self.data.as_store, SAVE_DELAY)

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
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="not_connected",
                translation_placeholders={"imei": self.identity},
            )
        if self._relay_busy:
            raise HomeAssistantError(translation_domain=DOMAIN, translation_key="relay_busy")
        dialect_option = options.get(CONF_RELAY_DIALECT, DIALECT_AUTO)
        command = Command(
            kind=CommandKind.RELAY_CUT if engage else CommandKind.RELAY_RESTORE,
            dialect=None if dialect_option == DIALECT_AUTO else RelayDialect(dialect_option),
            password=options.get(CONF_RELAY_PASSWORD) or DEFAULT_DYD_PASSWORD,
        )
        self._relay_busy = True
        reports_before = self._relay_reports
        try:
            outcome = await self.hub.listener.send_command(
                link.identity, command, answer_timeout=RELAY_TIMEOUT
            )
        except NotConnectedError as err:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="not_connected",
                translation_placeholders={"imei": self.identity},
            ) from err
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
        if self._relay_reports == reports_before:
            # Nothing newer than this answer stated the relay: the answer is the state.
            state.relay = outcome.relay if outcome.relay is not None else engage
        LOGGER.info(
            "Tracker %s: relay %s (confirmed)", self.identity, "cut" if engage else "restored"
        )
        self.async_set_updated_data(state)
        self._store.async_delay_save(self.data.as_store, SAVE_DELAY)


async def async_remove_saved_state(hass: HomeAssistant, entry_id: str) -> None:
    """Delete the state a removed tracker left in Home Assistant's storage."""
    await Store[dict[str, Any]](hass, STORAGE_VERSION, f"{DOMAIN}.{entry_id}").async_remove()
