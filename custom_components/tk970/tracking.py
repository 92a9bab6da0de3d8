"""One tracker's rules, without Home Assistant: what its messages do to the device shown.

Shared by the integration's coordinator and the MQTT gateway, so both show the same device. A
`Tracker` holds a `TrackerState` (what the entities or the state JSON render) and the device's
clock (`clock.DeviceClock`); `Tracker.apply(messages, now)` folds one read in and returns
`Changes`: which parts of the state changed, the alarms to report as events, the alarms latched
(whose hold time the caller schedules) or cleared. The rules:

- the position moves only for a usable fix that is not a late upload (device clocks corrected:
  week rollover, learned offsets, times that cannot be right stamped on arrival); a cell or
  Wi-Fi position (the device's own, or one the fallback positioning found) moves it only when it
  is news and does not make the map worse (`positioning.fallback_moves`);
- values (battery, ignition, relay ...) come from live reports only, never from buffered ones;
- SOS and vibration latch until a status word shows them clear or the hold time passes; an
  alarm the device re-sends from its buffer is not reported twice;
- the relay state is the device's: its status, or its answer to a command when no newer status
  stated it (`relay_confirmed`).

Pure: no clock reads (the caller passes the time), no I/O, no timers. Callers own scheduling,
saving and publishing.
"""

from __future__ import annotations

from collections.abc import Sequence, Set as AbstractSet
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol as TypingProtocol

from .clock import LIVE_WINDOW, DeviceClock, FixTime
from .const import ACCURACY_LBS, ACCURACY_WIFI, DEFAULT_MODEL, LOGGER
from .positioning.estimate import Estimate, Kind, Method, fallback_moves
from .protocol import JT808_DEFAULT_OFFSET, Alarm, Message, MessageType, PositionSource, Protocol

PROTOCOL_NAMES = {
    Protocol.JT808: "JT/T 808",
    Protocol.GT06: "GT06",
    Protocol.H02: "H02",
    Protocol.GPS103: "GPS103",
    Protocol.WATCH: "Watch",
}

#: Alarms shown as binary sensors (interfaces.md §3, §5); every alarm is also an event.
STATE_ALARMS = (Alarm.SOS, Alarm.VIBRATION)
#: "Last seen" moves at most this often while a tracker keeps reporting (one recorder row per
#: step instead of one per report), and takes the exact time once the tracker goes quiet.
LAST_SEEN_STEP = timedelta(minutes=5)
DEFAULT_HOLD = timedelta(minutes=10)

#: Values a status report sets as they are (a buffered record says nothing about now).
STATUS_VALUES = (
    "ignition", "charging", "battery_percent", "battery_voltage", "power_voltage", "gsm_signal",
    "odometer_km",
)  # fmt: skip
#: Values a fix brings along; a fallback (LBS, Wi-Fi) position keeps the last ones, so that the
#: relay's speed guard never reads "unknown" as "stopped".
MOTION_VALUES = ("speed_kmh", "course", "altitude_m", "satellites")
_NO_ALARMS: frozenset[Alarm] = frozenset()
#: Accuracy shown for a position the tracker computed itself from cells or Wi-Fi.
DEVICE_ACCURACY = {PositionSource.LBS: ACCURACY_LBS, PositionSource.WIFI: ACCURACY_WIFI}

#: States of the position source sensor: what the shown position came from, and who made it.
POSITION_DETAILS = [
    "gnss",
    "lbs_device",
    "wifi_device",
    "lbs_learned",
    "wifi_learned",
    "lbs_imported",
    "lbs_online",
    "wifi_online",
]


class Locate(TypingProtocol):
    """Fallback positioning as the rules use it (`positioning.tracker.TrackerLocator.handle`):
    learn from a report's fix, or resolve a report without one at once (None: not now; a later
    answer goes through `Tracker.show_fallback`)."""

    def __call__(self, message: Message, when: FixTime, /, *, fix_accuracy: int) -> Estimate | None:
        """The estimate known at once, if any."""


def gnss_accuracy(message: Message) -> int:
    """A GNSS accuracy estimate in metres: from HDOP when sent, else from the satellite count."""
    if message.hdop is not None and message.hdop > 0:
        return max(5, round(message.hdop * 5))
    satellites = message.satellites
    if satellites is None:
        return 25
    if satellites >= 8:
        return 10
    if satellites >= 5:
        return 20
    return 50


def position_detail(source: PositionSource | None, fallback: Estimate | None) -> str | None:
    """The position source sensor's state: `gnss`, or the fallback's radio and method."""
    if source is None:
        return None
    if source is PositionSource.GNSS or fallback is None:
        return "gnss" if source is PositionSource.GNSS else f"{source.value}_device"
    return f"{fallback.kind.value}_{fallback.method.value}"


def device_estimate(message: Message, accuracy: int) -> Estimate | None:
    """A position the tracker computed itself from cells or Wi-Fi, as an estimate."""
    source = message.position_source
    if source not in (PositionSource.LBS, PositionSource.WIFI):
        return None
    if message.latitude is None or message.longitude is None:
        return None
    return Estimate(
        latitude=message.latitude,
        longitude=message.longitude,
        accuracy=accuracy,
        kind=Kind(source.value),
        method=Method.DEVICE,
    )


def parse_time(value: object) -> datetime | None:
    """An ISO 8601 time with an offset, or None for anything else."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


@dataclass(frozen=True, slots=True)
class GnssPosition:
    """The last GNSS fix, kept while a fallback is shown (the "never worse" rule needs it)."""

    latitude: float
    longitude: float
    accuracy: int
    time: datetime

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "latitude": self.latitude,
            "longitude": self.longitude,
            "accuracy": self.accuracy,
            "time": self.time.isoformat(),
        }

    @classmethod
    def from_dict(cls, data: object) -> GnssPosition | None:
        """Inverse of `as_dict`; None for anything malformed."""
        if not isinstance(data, dict):
            return None
        when = parse_time(data.get("time"))
        try:
            return (
                cls(float(data["latitude"]), float(data["longitude"]), int(data["accuracy"]), when)
                if when is not None
                else None
            )
        except (KeyError, TypeError, ValueError):
            return None


@dataclass(slots=True)
class AlarmState:
    """A state-like alarm (SOS, vibration): whether it is on, and since when.

    Replays are recognised by `TrackerState.last_alarm_events`, for every alarm kind.
    """

    on: bool = False
    #: when it came on, in the caller's clock (the hold time counts from here)
    since: datetime | None = None


@dataclass(slots=True)
class TrackerState:
    """Everything known about one tracker; what the entities (or the state JSON) render."""

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

    @property
    def model(self) -> str:
        """The model to show: the device's own word where it gave one, with the protocol."""
        model = self.info.get("model") or DEFAULT_MODEL
        if self.protocol is not None:
            return f"{model} ({PROTOCOL_NAMES[self.protocol]})"
        return model

    def as_store(self) -> dict[str, Any]:
        """JSON-safe snapshot for saving (connection facts are not kept)."""
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
        state.position_time = parse_time(data.get("position_time"))
        state.position_stamped = data.get("position_stamped") is True
        state.last_seen = parse_time(data.get("last_seen"))
        state.clock_offset = _seconds(data.get("clock_offset")) or timedelta(0)
        state.jt808_utc_offset = _seconds(data.get("jt808_utc_offset"))
        state.fallback = Estimate.from_dict(data.get("fallback"))
        state.last_gnss = GnssPosition.from_dict(data.get("last_gnss"))
        for name, saved in (data.get("alarms") or {}).items():
            alarm = _enum(Alarm, name)
            if alarm in state.alarms and isinstance(saved, dict):
                state.alarms[alarm] = AlarmState(
                    bool(saved.get("on")), parse_time(saved.get("since"))
                )
        for name, stamp in (data.get("last_alarm_events") or {}).items():
            alarm, when = _enum(Alarm, name), parse_time(stamp)
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


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _value(value: Protocol | PositionSource | Alarm | None) -> str | None:
    return value.value if value is not None else None


def _seconds(value: object) -> timedelta | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return timedelta(seconds=value)
    return None


def _enum[E: (Protocol, PositionSource, Alarm)](kind: type[E], value: object) -> E | None:
    try:
        return kind(str(value)) if value is not None else None
    except ValueError:
        return None


class Changes:
    """What one `Tracker.apply` did: the parts of the state that changed, and what is due."""

    # One is made per report: slots, and collections shared (empty) until something goes in.
    __slots__ = (
        "alarms", "cleared", "events", "info", "last_seen", "latched", "learned", "position",
        "status",
    )  # fmt: skip

    events: Sequence[tuple[Alarm, Message]]
    latched: AbstractSet[Alarm]
    cleared: AbstractSet[Alarm]

    def __init__(self) -> None:
        """Nothing changed yet."""
        #: the shown position, or what a fix brings along (speed, course, altitude, satellites)
        self.position = False
        #: battery, voltages, signal, ignition, charging, odometer, relay
        self.status = False
        #: SOS or vibration on or off
        self.alarms = False
        #: protocol, model or firmware
        self.info = False
        #: "Last seen" moved (it steps while the tracker reports)
        self.last_seen = False
        #: something worth saving that nothing shows (a learned clock offset)
        self.learned = False
        #: alarms to report as events, each with the message that carried it, in order
        self.events = ()
        #: alarms that came on or on again: their hold time starts now (schedule its end)
        self.latched = _NO_ALARMS
        #: alarms a status showed clear (cancel their hold timers)
        self.cleared = _NO_ALARMS

    @property
    def shown(self) -> bool:
        """Whether anything the device shows changed."""
        return self.position or self.status or self.alarms or self.info

    def fire(self, alarm: Alarm, message: Message) -> None:
        """Report `alarm` as an event."""
        self.events = (*self.events, (alarm, message))

    def latch(self, alarm: Alarm) -> None:
        """`alarm` came on (again): its hold time starts now."""
        self.latched = self.latched | {alarm}
        self.cleared = self.cleared - {alarm}

    def clear(self, alarm: Alarm) -> None:
        """A status showed `alarm` clear."""
        self.cleared = self.cleared | {alarm}
        self.latched = self.latched - {alarm}


class Tracker:
    """One tracker's state and the rules that change it."""

    def __init__(
        self,
        identity: str,
        state: TrackerState | None = None,
        *,
        hold: timedelta = DEFAULT_HOLD,
    ) -> None:
        """Start from `state` (restored) or an empty one; `hold` is the alarm hold time."""
        self.identity = identity
        self.hold = hold
        self.state = state or TrackerState()
        self.clock = DeviceClock(self.state.clock_offset)
        #: how many reports stated the relay (a command's answer must not overwrite a newer one)
        self.relay_reports = 0
        self._rollover_logged = False

    # -- going quiet ----------------------------------------------------------------------------

    def settle_last_seen(self) -> bool:
        """The tracker went quiet: "Last seen" takes the exact time of its last message."""
        state = self.state
        if state.last_heard is not None and state.last_seen != state.last_heard:
            state.last_seen = state.last_heard
            return True
        return False

    # -- folding messages -----------------------------------------------------------------------

    def apply(
        self,
        messages: list[Message],
        now: datetime,
        *,
        locate: Locate | None = None,
        jt808_utc_offset: timedelta | None = None,
    ) -> Changes:
        """Note the read's arrival, fold its messages in, in order; say what changed and what
        is due.

        `jt808_utc_offset` is the JT808 session's current clock offset (kept to seed the next
        session); `locate` is the fallback positioning, if any.
        """
        changes = Changes()
        state = self.state
        state.last_heard = now
        shown = state.last_seen
        # "Last seen" steps while the tracker keeps reporting (`settle_last_seen` makes it exact).
        if shown is None or now - shown >= LAST_SEEN_STEP or now < shown:
            state.last_seen = now
            changes.last_seen = True
        changes.learned = self._learn_clock(messages, now, jt808_utc_offset)
        # Each part is looked at only when the message has something for it (most reports
        # are a status or a fix: this runs for every one of them).
        for message in messages:
            fix = self.clock.correct(message.time, now)
            if message.info or message.protocol is not state.protocol:
                changes.info |= self._apply_info(message)
            changes.status |= self._apply_values(message)
            if message.latitude is not None or message.cells or message.wifi:
                changes.position |= self._apply_position(message, fix, locate)
            if message.alarms or message.alarm_states:
                changes.alarms |= self._apply_alarms(message, fix, now, changes)
        return changes

    def _learn_clock(
        self, messages: list[Message], now: datetime, jt808_utc_offset: timedelta | None
    ) -> bool:
        """Learn the device clock's error from this read; True when there is more to save."""
        state = self.state
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
        if jt808_utc_offset is not None:
            kept = state.jt808_utc_offset
            if jt808_utc_offset != (JT808_DEFAULT_OFFSET if kept is None else kept):
                state.jt808_utc_offset = jt808_utc_offset
                learned = True
        return learned

    def session_offset(self, current: timedelta) -> timedelta:
        """The clock offset a new JT808 session should start from (`current`: its own)."""
        kept = self.state.jt808_utc_offset
        # A session that learned nothing yet starts from what earlier sessions learned.
        if kept is not None and current == JT808_DEFAULT_OFFSET:
            return kept
        return current

    def _apply_info(self, message: Message) -> bool:
        state = self.state
        changed = state.protocol is not message.protocol
        state.protocol = message.protocol
        for key, value in message.info:
            if state.info.get(key) != value:
                state.info[key] = value
                changed = True
        return changed

    def _apply_values(self, message: Message) -> bool:
        state = self.state
        if message.historical:
            return False  # a late record says nothing about the device's state now
        changed = False
        for name in STATUS_VALUES:
            value = getattr(message, name)
            if value is not None and value != getattr(state, name):
                setattr(state, name, value)
                changed = True
        if message.relay is not None:
            self.relay_reports += 1
            if message.relay != state.relay:
                state.relay = message.relay
                changed = True
        return changed

    def _apply_position(self, message: Message, fix: FixTime, locate: Locate | None) -> bool:
        """Move the tracker for a usable fix that is not a late one; True when it moved.

        The one place that decides the position shown: invalid fixes never move it, and a fix
        older than the one shown is a late upload that never moves it back. A fix stamped on
        arrival and one with the device's time are compared with `LIVE_WINDOW` of slack, since
        they come from different clocks (a timed report just behind an untimed one is live).
        """
        state = self.state
        changed = False
        if message.cells or message.wifi or message.position_source in DEVICE_ACCURACY:
            changed = self._apply_fallback(message, fix, locate)
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
        for name in MOTION_VALUES:
            value = getattr(message, name)
            if value is not None and value != getattr(state, name):
                setattr(state, name, value)
                changed = True
        return changed

    def _apply_fallback(self, message: Message, fix: FixTime, locate: Locate | None) -> bool:
        """Learn from a fix's cells and Wi-Fi, or place a report without a fix; True when the
        shown position changed. Called only for reports with cells, access points or a position
        the device computed from them (heartbeats and plain fixes skip the call).

        `locate` answers from what it knows at once; slower sources answer later, through
        `show_fallback`. A position the tracker computed itself from cells or Wi-Fi goes
        through the same rule.
        """
        estimate = None
        if locate is not None and (message.cells or message.wifi):
            estimate = locate(message, fix, fix_accuracy=gnss_accuracy(message))
        source = message.position_source
        if estimate is None and source in DEVICE_ACCURACY:
            estimate = device_estimate(message, DEVICE_ACCURACY[source])
        return estimate is not None and self.show_fallback(estimate, fix, message.historical)

    def _is_late(self, fix: FixTime, historical: bool) -> bool:
        """Whether a position at `fix` is older than the one shown (a late upload).

        A fix stamped on arrival and one with the device's time are compared with
        `LIVE_WINDOW` of slack, since they come from different clocks.
        """
        state = self.state
        shown = state.position_time
        if shown is None:
            return False
        floor = shown
        if (fix.stamped or state.position_stamped) and not historical:
            floor = shown - LIVE_WINDOW
        return fix.time < floor

    def show_fallback(self, estimate: Estimate, fix: FixTime, historical: bool = False) -> bool:
        """Show a cell or Wi-Fi position if it is news and does not make the map worse; True
        when the shown position changed.

        A GNSS fix of the same age wins. When the last GNSS fix lies inside the estimate's
        circle, the GNSS position stays (or comes back): it is the better estimate of a
        tracker that has not gone anywhere. Speed and course stay as the last fix left them
        (the relay's speed guard must not read "unknown" as "stopped").
        """
        state = self.state
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

    def _apply_alarms(
        self, message: Message, fix: FixTime, now: datetime, changes: Changes
    ) -> bool:
        """Update SOS/vibration, add the alarms to report as events; True when either changed."""
        state = self.state
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
            changes.fire(alarm, message)
            state.last_alarm = alarm
        for alarm, tracked in state.alarms.items():
            if alarm in message.alarms:
                if message.historical and fix.time + self.hold < now:
                    continue  # an old alarm from the device's buffer: reported, not current
                changed |= not tracked.on
                tracked.on = True
                tracked.since = now
                changes.latch(alarm)
            elif alarm in message.alarm_states and not message.historical and tracked.on:
                tracked.on = False
                changes.clear(alarm)
                changed = True
        return changed

    # -- alarm hold -----------------------------------------------------------------------------

    def hold_ends(self) -> dict[Alarm, datetime]:
        """When each latched alarm's hold time runs out (`since` missing: it counts from now)."""
        return {
            alarm: tracked.since + self.hold
            for alarm, tracked in self.state.alarms.items()
            if tracked.on and tracked.since is not None
        }

    @property
    def next_expiry(self) -> datetime | None:
        """When the next latched alarm runs out, if any is on."""
        ends = self.hold_ends()
        return min(ends.values()) if ends else None

    def clear_alarm(self, alarm: Alarm) -> bool:
        """The alarm's hold time passed (its timer fired): clear it; True when it was on."""
        tracked = self.state.alarms[alarm]
        was_on, tracked.on = tracked.on, False
        return was_on

    def expire(self, now: datetime) -> bool:
        """Clear the alarms whose hold time has passed by `now`; True when any was."""
        expired = [alarm for alarm, end in self.hold_ends().items() if end <= now]
        for alarm in expired:
            self.clear_alarm(alarm)
        return bool(expired)

    # -- the relay ------------------------------------------------------------------------------

    def relay_confirmed(self, relay: bool, reports_before: int) -> bool:
        """A relay command was confirmed: show it, unless a newer status stated the relay since
        (`reports_before`: `relay_reports` when the command went out); True when it was shown."""
        if self.relay_reports != reports_before:
            return False
        self.state.relay = relay
        return True
