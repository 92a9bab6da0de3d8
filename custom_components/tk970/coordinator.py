"""Per-tracker state: applies decoded messages, keeps alarms and the relay, survives restarts.

One `TrackerCoordinator` per config entry (per tracker). The hub hands it the messages of one read
whose identity matches; it folds them into a `TrackerState` that every entity of the device
renders, and tells the entities only when something they show changed (each entity then writes
its state only if its own value changed: a parked tracker that keeps reporting writes nothing).
It is also the one place that sends the relay command and decides what a confirmation means,
that corrects the device's clock (`clock.DeviceClock`), and that decides when a tracker is
offline. The state is saved (`store.TrackerStore`) at most `SAVE_DELAY` after a change, so a restart
or a crash brings back the map position, the relay and the alarm state, and a replayed alarm is
recognised as one already reported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.event import async_call_later
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator
from homeassistant.util import dt as dt_util

from .clock import LIVE_WINDOW, DeviceClock, FixTime
from .const import (
    ACCURACY_LBS,
    ACCURACY_WIFI,
    COMMAND_TIMEOUT,
    CONF_ALARM_HOLD,
    CONF_IMEI,
    CONF_OFFLINE_AFTER,
    CONF_RELAY_DIALECT,
    CONF_RELAY_MAX_SPEED,
    CONF_RELAY_PASSWORD,
    DEFAULT_ALARM_HOLD,
    DEFAULT_MODEL,
    DEFAULT_OFFLINE_AFTER,
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
    JT808_DEFAULT_OFFSET,
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
from .protocol.commands import DEFAULT_DYD_PASSWORD, CommandOutcome, supports
from .store import async_get_tracker_store
from .tracking import PROTOCOL_NAMES, gnss_accuracy

if TYPE_CHECKING:
    from .hub import Hub

type TK970ConfigEntry = ConfigEntry[TrackerCoordinator]
type AlarmListener = Callable[[Alarm, Message], None]

#: Alarms shown as binary sensors (interfaces.md §3); every alarm also fires an event.
STATE_ALARMS = (Alarm.SOS, Alarm.VIBRATION)
#: "Last seen" moves at most this often while a tracker keeps reporting (one recorder row per
#: step instead of one per report), and takes the exact time once the tracker goes quiet.
LAST_SEEN_STEP = timedelta(minutes=5)

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
    #: time of the newest accepted fix (device time, corrected), or its arrival when `stamped`
    position_time: datetime | None = None
    position_stamped: bool = False
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
    #: what "Last seen" shows: within LAST_SEEN_STEP of the last message, exact once quiet
    last_seen: datetime | None = None
    #: when the last message arrived (not saved: `last_seen` stands in for it after a restart)
    last_heard: datetime | None = None
    #: heard from within the offline time (live values are unavailable otherwise)
    online: bool = False
    connected: bool = False
    transport: str | None = None
    address: str | None = None
    #: learned correction of the device's clock (`clock.DeviceClock.offset`)
    clock_offset: timedelta = timedelta(0)
    #: the JT808 session's learned clock offset, seeded into each new session of this tracker
    jt808_utc_offset: timedelta | None = None
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
        data: dict[str, Any] = {key: getattr(self, key) for key in _STORED_VALUES}
        data.update(
            protocol=_value(self.protocol),
            position_source=_value(self.position_source),
            position_time=_iso(self.position_time),
            position_stamped=self.position_stamped,
            last_seen=_iso(self.last_seen),
            last_alarm=_value(self.last_alarm),
            clock_offset=self.clock_offset.total_seconds(),
            jt808_utc_offset=(
                None if self.jt808_utc_offset is None else self.jt808_utc_offset.total_seconds()
            ),
            info=dict(self.info),
            alarms={
                alarm.value: {"on": state.on, "since": _iso(state.since)}
                for alarm, state in self.alarms.items()
            },
            last_alarm_events={a.value: t.isoformat() for a, t in self.last_alarm_events.items()},
            fallback=self.fallback.as_dict() if self.fallback else None,
            last_gnss=self.last_gnss.as_dict() if self.last_gnss else None,
        )
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
        state.position_stamped = data.get("position_stamped") is True
        state.last_seen = _parse(data.get("last_seen"))
        state.clock_offset = _seconds(data.get("clock_offset")) or timedelta(0)
        state.jt808_utc_offset = _seconds(data.get("jt808_utc_offset"))
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
#: Values a status report sets as they are (a buffered record says nothing about now).
_STATUS_VALUES = (
    "ignition", "charging", "battery_percent", "battery_voltage", "power_voltage", "gsm_signal",
    "odometer_km",
)  # fmt: skip
#: Values a fix brings along; a fallback (LBS, Wi-Fi) position keeps the last ones, so that the
#: relay's speed guard never reads "unknown" as "stopped".
_MOTION_VALUES = ("speed_kmh", "course", "altitude_m", "satellites")
#: Accuracy shown for a position the tracker computed itself from cells or Wi-Fi.
_DEVICE_ACCURACY = {PositionSource.LBS: ACCURACY_LBS, PositionSource.WIFI: ACCURACY_WIFI}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _value(value: Protocol | PositionSource | Alarm | None) -> str | None:
    return value.value if value is not None else None


def _parse(value: object) -> datetime | None:
    return dt_util.parse_datetime(value) if isinstance(value, str) else None


def _seconds(value: object) -> timedelta | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return timedelta(seconds=value)
    return None


def _enum[E: (Protocol, PositionSource, Alarm)](kind: type[E], value: object) -> E | None:
    try:
        return kind(str(value)) if value is not None else None
    except ValueError:
        return None


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
        self.clock = DeviceClock()
        self._store = async_get_tracker_store(hass)
        self._hold_timers: dict[Alarm, CALLBACK_TYPE] = {}
        self._offline_timer: CALLBACK_TYPE | None = None
        #: set at shutdown: nothing is applied, shown or saved any more (a removed entry's file
        #: must not come back when a relay command still pending answers)
        self._closed = False
        self._rollover_logged = False
        #: what changed since the entities were last told (see `async_update_listeners`)
        self._changed: set[str] = set()
        self._relay_busy = False
        #: how many reports stated the relay (a command's answer must not overwrite a newer one)
        self._relay_reports = 0
        self._alarm_listeners: list[AlarmListener] = []
        #: fallback positioning (cells, Wi-Fi), attached at setup (`fallback.py`)
        self.positioning: TrackerPositioning[FixTime] | None = None

    # -- lifecycle --------------------------------------------------------------------------

    async def async_restore(self) -> None:
        """Load the saved state, re-arm the alarm hold and offline timers."""
        saved = await self._store.async_load(self.config_entry.entry_id)
        if saved:
            self.data = TrackerState.from_store(saved)
        state = self.data
        self.clock.offset = state.clock_offset
        now = dt_util.utcnow()
        state.last_heard = state.last_seen
        if state.last_seen is not None and now - state.last_seen < self.offline_after:
            state.online = True
            self._arm_offline_timer((state.last_seen + self.offline_after - now).total_seconds())
        for alarm, alarm_state in state.alarms.items():
            if alarm_state.on:
                self._arm_hold(alarm, alarm_state, now)

    async def _async_update_data(self) -> TrackerState:
        """Nothing to fetch: the tracker pushes (an entity update request just re-renders)."""
        return self.data

    @callback
    def async_options_updated(self) -> None:
        """Apply new hold and offline times at once (other options are read when used)."""
        now = dt_util.utcnow()
        for alarm, state in self.data.alarms.items():
            if state.on:
                self._arm_hold(alarm, state, now)
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
        model = self.data.info.get("model") or DEFAULT_MODEL
        if self.data.protocol is not None:
            return f"{model} ({PROTOCOL_NAMES[self.data.protocol]})"
        return model

    # -- saving -----------------------------------------------------------------------------

    @callback
    def _schedule_save(self) -> None:
        """Save within SAVE_DELAY (the store writes every tracker's changes together)."""
        if not self._closed:
            self._store.async_changed(self.config_entry.entry_id, self.data.as_store)

    # -- online and offline -----------------------------------------------------------------

    def _heard(self, now: datetime) -> None:
        """A message arrived: last seen, back online."""
        state = self.data
        state.last_heard = now
        shown = state.last_seen
        if shown is None or now - shown >= LAST_SEEN_STEP or now < shown:
            state.last_seen = now
            self._changed.add(LAST_SEEN)
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
        state = self.data
        if state.last_heard is not None and state.last_seen != state.last_heard:
            state.last_seen = state.last_heard
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
        context = link.session.context
        if (
            link.protocol is Protocol.JT808
            and state.jt808_utc_offset is not None
            and context.jt808_utc_offset == JT808_DEFAULT_OFFSET
        ):
            # A session that learned nothing yet starts from what earlier sessions learned.
            context.jt808_utc_offset = state.jt808_utc_offset

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
        self._heard(now)
        save = self._learn_clock(link, messages, now)
        events: list[tuple[Alarm, Message]] = []
        for message in messages:
            fix = self.clock.correct(message.time, now)
            if self._apply_info(message):
                changed.add(INFO)
            if self._apply_values(message):
                changed.add(STATUS)
            if self._apply_position(message, fix):
                changed.add(POSITION)
            if self._apply_alarms(message, fix, now, events):
                changed.add(ALARMS)
        if changed or save:
            self._schedule_save()
        self._notify()
        for alarm, message in events:
            self._fire(alarm, message)

    def _learn_clock(self, link: Link, messages: list[Message], now: datetime) -> bool:
        """Learn the device clock's error from this read; True when there is more to save."""
        state = self.data
        learned = False
        for message in reversed(messages):
            if message.time is not None and not message.historical:
                if self.clock.observe(message.time, now):
                    LOGGER.info(
                        "Tracker %s: its clock is %s off; its times are corrected",
                        self.identity,
                        self.clock.offset,
                    )
                    state.clock_offset = self.clock.offset
                    learned = True
                break
        if self.clock.rolled_over and not self._rollover_logged:
            self._rollover_logged = True
            LOGGER.info(
                "Tracker %s reports dates 1024 weeks back (GPS week rollover); corrected",
                self.identity,
            )
        if link.protocol is Protocol.JT808:
            offset = link.session.context.jt808_utc_offset
            kept = state.jt808_utc_offset
            if offset != (JT808_DEFAULT_OFFSET if kept is None else kept):
                state.jt808_utc_offset = offset
                learned = True
        return learned

    def _apply_info(self, message: Message) -> bool:
        state = self.data
        changed = state.protocol is not message.protocol
        state.protocol = message.protocol
        for key, value in message.info:
            if state.info.get(key) != value:
                state.info[key] = value
                changed = True
        if changed:
            self._update_device()
        return changed

    def _apply_values(self, message: Message) -> bool:
        state = self.data
        if message.historical:
            return False  # a late record says nothing about the device's state now
        changed = False
        for name in _STATUS_VALUES:
            value = getattr(message, name)
            if value is not None and value != getattr(state, name):
                setattr(state, name, value)
                changed = True
        if message.relay is not None:
            self._relay_reports += 1
            if message.relay != state.relay:
                state.relay = message.relay
                changed = True
        return changed

    def _apply_position(self, message: Message, fix: FixTime) -> bool:
        """Move the tracker for a usable fix that is not a late one; True when it moved.

        The one place that decides the position shown: invalid fixes never move it, and a fix
        older than the one shown is a late upload that never moves it back. A fix stamped on
        arrival and one with the device's time are compared with `LIVE_WINDOW` of slack, since
        they come from different clocks (a timed report just behind an untimed one is live).
        """
        state = self.data
        changed = self._apply_fallback(message, fix)
        latitude, longitude = message.latitude, message.longitude
        if latitude is None or longitude is None:
            return changed
        source = message.position_source or PositionSource.GNSS
        usable = message.valid is True and source is PositionSource.GNSS
        if not usable or (latitude == 0 and longitude == 0):
            return changed
        if self._is_late(fix, message.historical):
            LOGGER.debug("Tracker %s: ignoring a fix older than the one shown", self.identity)
            return changed
        state.position_time = fix.time
        state.position_stamped = fix.stamped
        accuracy = gnss_accuracy(message)
        changed |= (latitude, longitude, accuracy, source) != (
            state.latitude, state.longitude, state.accuracy, state.position_source,
        )  # fmt: skip
        state.latitude = latitude
        state.longitude = longitude
        state.accuracy = accuracy
        state.position_source = source
        state.fallback = None
        state.last_gnss = GnssPosition(latitude, longitude, accuracy, fix.time)
        for name in _MOTION_VALUES:
            value = getattr(message, name)
            if value is not None and value != getattr(state, name):
                setattr(state, name, value)
                changed = True
        return changed

    def _apply_alarms(
        self, message: Message, fix: FixTime, now: datetime, events: list[tuple[Alarm, Message]]
    ) -> bool:
        """Update SOS/vibration, add the alarms to report as events; True when either changed."""
        if not message.alarms and not message.alarm_states:
            return False
        state = self.data
        # A replay carries the very time the device gave the alarm first; an arrival stamp
        # stands in where the device gave none, or one that cannot be right.
        when = message.time if message.time is not None and not fix.stamped else fix.time
        changed = False
        for alarm in message.alarms:
            last = state.last_alarm_events.get(alarm)
            tracked = state.alarms.get(alarm)
            if last is not None and (when == last or (message.historical and when < last)):
                continue  # a replay of an alarm already reported (buffered upload, restart)
            state.last_alarm_events[alarm] = when
            changed = True
            if (
                tracked is not None
                and tracked.on
                and alarm in message.alarm_states
                and message.type is not MessageType.ALARM
            ):
                # A routine report whose status word still shows the alarm: the same one. An
                # alarm frame always counts: missing a second SOS is worse than one too many.
                continue
            events.append((alarm, message))
            state.last_alarm = alarm
        for alarm, tracked in state.alarms.items():
            if alarm in message.alarms:
                if message.historical and fix.time + self.hold_time < now:
                    continue  # an old alarm from the device's buffer: reported, not current
                changed |= not tracked.on
                tracked.on = True
                tracked.since = now
                self._arm_hold(alarm, tracked, now)
            elif alarm in message.alarm_states and not message.historical and tracked.on:
                self._clear(alarm)
                changed = True
        return changed

    def _arm_hold(self, alarm: Alarm, tracked: AlarmState, now: datetime) -> None:
        if (cancel := self._hold_timers.pop(alarm, None)) is not None:
            cancel()
        since = tracked.since or now
        remaining = (since + self.hold_time - now).total_seconds()

        @callback
        def _expired(_now: datetime) -> None:
            self._hold_timers.pop(alarm, None)
            self._clear(alarm)
            self._changed.add(ALARMS)
            self._notify()
            self._schedule_save()

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

    def _apply_fallback(self, message: Message, fix: FixTime) -> bool:
        """Learn from a fix's cells and Wi-Fi, or place a report without a fix; True when the
        shown position changed.

        The learned table answers at once; the cell database and the online provider answer
        later, through `async_show_fallback`. A position the tracker computed itself from
        cells or Wi-Fi goes through the same rule.
        """
        if self.positioning is None:
            return False
        estimate = self.positioning.handle(message, fix, fix_accuracy=gnss_accuracy(message))
        source = message.position_source
        if estimate is None and source is not None and source in _DEVICE_ACCURACY:
            estimate = device_estimate(message, _DEVICE_ACCURACY[source])
        return estimate is not None and self._show_fallback(estimate, fix, message.historical)

    def _is_late(self, fix: FixTime, historical: bool) -> bool:
        """Whether a position at `fix` is older than the one shown (a late upload).

        A fix stamped on arrival and one with the device's time are compared with
        `LIVE_WINDOW` of slack, since they come from different clocks.
        """
        state = self.data
        shown = state.position_time
        if shown is None:
            return False
        floor = shown
        if (fix.stamped or state.position_stamped) and not historical:
            floor = shown - LIVE_WINDOW
        return fix.time < floor

    def _show_fallback(self, estimate: Estimate, fix: FixTime, historical: bool = False) -> bool:
        """Show a cell or Wi-Fi position if it is news and does not make the map worse.

        A GNSS fix of the same age wins. When the last GNSS fix lies inside the estimate's
        circle, the GNSS position stays (or comes back): it is the better estimate of a
        tracker that has not gone anywhere. Speed and course stay as the last fix left them
        (the relay's speed guard must not read "unknown" as "stopped").
        """
        state = self.data
        if self._is_late(fix, historical) or (
            fix.time == state.position_time and state.position_source is PositionSource.GNSS
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
        else:
            state.latitude = estimate.latitude
            state.longitude = estimate.longitude
            state.accuracy = estimate.accuracy
            state.position_source = PositionSource(estimate.kind.value)
            state.fallback = estimate
        state.position_time = fix.time
        state.position_stamped = fix.stamped
        return True

    @callback
    def async_show_fallback(self, estimate: Estimate, fix: FixTime) -> None:
        """A fallback resolved in the background (cell database, online provider)."""
        if not self._closed and self._show_fallback(estimate, fix):
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
        if not self._closed:
            self._changed.add(STATUS)
            self._notify()
            self._schedule_save()

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
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="not_connected",
                translation_placeholders={"imei": self.identity},
            )
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
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="not_connected",
                translation_placeholders={"imei": self.identity},
            ) from err
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
