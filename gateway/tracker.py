"""One tracker's state in the gateway: decoded messages folded in, rendered as the state JSON.

The gateway's counterpart of the integration's coordinator, without Home Assistant: the same
rules decide what the device shows. A position moves only for a usable fix that is not older
than the one shown; SOS and vibration latch until a status word shows them clear or the hold
time passes; an alarm the device re-sends from its buffer is not reported twice; the relay state
is the device's own (its status, or its answer to a command). Pure: the caller passes the time.

The state JSON (`snapshot`) is what the gateway publishes, retained, for every entity of the
device. A key is absent only while its value has never been known, so a retained copy is
complete after a restart; `seed` reads such a copy back when a tracker moves to this instance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeGuard

from custom_components.tk970.const import ACCURACY_LBS, ACCURACY_WIFI, DEFAULT_MODEL
from custom_components.tk970.protocol import (
    Alarm,
    Message,
    MessageType,
    PositionSource,
    Protocol,
)
from custom_components.tk970.tracking import PROTOCOL_NAMES, gnss_accuracy

#: Alarms shown as binary sensors (as in the integration); every alarm is also an event.
STATE_ALARMS = (Alarm.SOS, Alarm.VIBRATION)
#: A device time this far ahead of ours is wrong (an unlearned time zone, a bad clock).
MAX_CLOCK_AHEAD = timedelta(minutes=5)
#: Values a report states outright, copied as they come (live reports only).
_VALUES = {
    "ignition": "ignition",
    "charging": "charging",
    "battery_percent": "battery",
    "battery_voltage": "battery_voltage",
    "power_voltage": "power_voltage",
    "gsm_signal": "signal",
}
#: Values that come with a position fix, kept from the last fix that had them.
_FIX_VALUES = {"speed_kmh": "speed", "course": "course", "altitude_m": "altitude"}


@dataclass(slots=True)
class Position:
    """The position shown on the map."""

    latitude: float
    longitude: float
    accuracy: int
    source: PositionSource
    time: datetime


@dataclass(slots=True)
class AlarmEvent:
    """An alarm to publish as an event (once, with the device's own time)."""

    alarm: Alarm
    time: datetime | None
    protocol: Protocol


@dataclass(slots=True)
class Tracker:
    """Everything the gateway knows about one tracker."""

    identity: str  #: the configured (allow-listed) identity, or the reported one
    name: str
    hold: timedelta = timedelta(minutes=10)
    protocol: Protocol | None = None
    reported_id: str | None = None
    position: Position | None = None
    #: the state JSON's plain values (battery, signal, speed ...): absent until known
    values: dict[str, Any] = field(default_factory=dict)
    satellites: int | None = None
    relay: bool | None = None
    last_seen: datetime | None = None
    #: when each latched alarm came on (our clock); absent = off
    alarms_on: dict[Alarm, datetime] = field(default_factory=dict)
    #: device time of the newest event per alarm kind, so a replay does not fire again
    alarm_times: dict[Alarm, datetime] = field(default_factory=dict)
    info: dict[str, str] = field(default_factory=dict)
    #: how many reports stated the relay (a command's answer must not overwrite a newer one)
    relay_reports: int = 0
    #: the retained state was read back (or there was none): `seed` has nothing more to add
    seeded: bool = False

    # -- what the device looks like -----------------------------------------------------------

    @property
    def model(self) -> str:
        """The model to show: the device's own word where it gave one, with the protocol."""
        model = self.info.get("model") or DEFAULT_MODEL
        if self.protocol is not None:
            return f"{model} ({PROTOCOL_NAMES[self.protocol]})"
        return model

    @property
    def firmware(self) -> str | None:
        """The firmware version the device reported, if any."""
        return self.info.get("firmware")

    # -- folding messages ---------------------------------------------------------------------

    def apply(self, messages: list[Message], reported_id: str, now: datetime) -> Applied:
        """Fold one read's messages in, in order; say what to publish."""
        self.last_seen = now
        self.reported_id = reported_id
        applied = Applied()
        for message in messages:
            applied.device_changed |= self._apply_info(message)
            self._apply_values(message)
            self._apply_position(message, now)
            applied.events.extend(self._apply_alarms(message, now))
        return applied

    def _apply_info(self, message: Message) -> bool:
        changed = self.protocol is not message.protocol
        self.protocol = message.protocol
        for key, value in message.info:
            if self.info.get(key) != value:
                self.info[key] = value
                changed = True
        return changed

    def _apply_values(self, message: Message) -> None:
        if message.historical:
            return  # a late record says nothing about the device's state now
        for attribute, key in _VALUES.items():
            value = getattr(message, attribute)
            if value is not None:
                self.values[key] = value
        odometer = getattr(message, "odometer_km", None)  # newer decoders carry it
        if odometer is not None:
            self.values["odometer"] = odometer
        if message.relay is not None:
            self.relay = message.relay
            self.relay_reports += 1

    def _apply_position(self, message: Message, now: datetime) -> None:
        """Move only for a usable fix that is not older than the one shown."""
        if message.latitude is None or message.longitude is None:
            return
        source = message.position_source or PositionSource.GNSS
        usable = message.valid is True or source is not PositionSource.GNSS
        if not usable or (message.latitude == 0 and message.longitude == 0):
            return
        when = device_time(message, now)
        if self.position is not None and when < self.position.time:
            return
        accuracy = {PositionSource.LBS: ACCURACY_LBS, PositionSource.WIFI: ACCURACY_WIFI}.get(
            source
        ) or gnss_accuracy(message)
        self.move(Position(message.latitude, message.longitude, accuracy, source, when))
        # A cell or Wi-Fi position has no speed: keep the last one (the relay's speed guard
        # must not read "unknown" as "stopped").
        for attribute, key in _FIX_VALUES.items():
            value = getattr(message, attribute)
            if value is not None:
                self.values[key] = value
        if message.satellites is not None:
            self.satellites = message.satellites

    def move(self, position: Position) -> None:
        """Show `position` (a fix, or a fallback estimate the gateway resolved)."""
        self.position = position

    def _apply_alarms(self, message: Message, now: datetime) -> list[AlarmEvent]:
        """Latch SOS/vibration, clear them on a status that says so; the new alarm events."""
        when = device_time(message, now)
        events: list[AlarmEvent] = []
        for alarm in message.alarms:
            last = self.alarm_times.get(alarm)
            if last is not None and (when == last or (message.historical and when < last)):
                continue  # a replay of an alarm already reported (buffered upload, restart)
            self.alarm_times[alarm] = when
            if (
                alarm in self.alarms_on
                and alarm in message.alarm_states
                and message.type is not MessageType.ALARM
            ):
                # A routine report whose status word still shows the alarm: the same one. An
                # alarm frame always counts: missing a second SOS is worse than one too many.
                continue
            events.append(AlarmEvent(alarm, message.time, message.protocol))
        for alarm in STATE_ALARMS:
            if alarm in message.alarms:
                if message.historical and when + self.hold < now:
                    continue  # an old alarm from the device's buffer: reported, not current
                self.alarms_on[alarm] = now
            elif alarm in message.alarm_states and not message.historical:
                self.alarms_on.pop(alarm, None)
        return events

    def expire(self, now: datetime) -> bool:
        """Clear the alarms whose hold time has passed; tell whether any was."""
        expired = [alarm for alarm, since in self.alarms_on.items() if since + self.hold <= now]
        for alarm in expired:
            del self.alarms_on[alarm]
        return bool(expired)

    @property
    def next_expiry(self) -> datetime | None:
        """When the next latched alarm runs out, if any is on."""
        if not self.alarms_on:
            return None
        return min(self.alarms_on.values()) + self.hold

    def relay_confirmed(self, relay: bool, reports_before: int) -> None:
        """A relay command was confirmed: show it, unless a newer status already stated it."""
        if self.relay_reports == reports_before:
            self.relay = relay

    # -- the state JSON ---------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The state JSON: everything known, for every entity of the device."""
        out: dict[str, Any] = {}
        if self.position is not None:
            position = self.position
            out["latitude"] = position.latitude
            out["longitude"] = position.longitude
            out["gps_accuracy"] = position.accuracy
            out["position_source"] = position.source.value
            out["fix_time"] = position.time.isoformat()
        out.update(self.values)
        if self.satellites is not None:
            out["satellites"] = self.satellites
        if self.relay is not None:
            out["relay"] = self.relay
        for alarm in STATE_ALARMS:
            out[alarm.value] = alarm in self.alarms_on
        if self.alarms_on:
            out["alarm_since"] = {a.value: t.isoformat() for a, t in self.alarms_on.items()}
        if self.alarm_times:
            out["alarm_times"] = {a.value: t.isoformat() for a, t in self.alarm_times.items()}
        if self.protocol is not None:
            out["protocol"] = self.protocol.value
        if self.reported_id is not None:
            out["reported_id"] = self.reported_id
        if self.last_seen is not None:
            out["last_seen"] = self.last_seen.isoformat()
        return out

    def seed(self, saved: dict[str, Any], now: datetime) -> bool:
        """Fill what is still unknown from a retained state JSON; tell whether anything was.

        Used when a tracker reaches this instance and another one (or this one, before a
        restart) published its state: the map position, relay, values and alarm bookkeeping
        carry over. What this instance already learned from the device wins.
        """
        self.seeded = True
        changed = False
        position = _position(saved)
        if position is not None and (self.position is None or self.position.time < position.time):
            self.position = position
            changed = True
        for key, value in saved.items():
            if key in _SEEDED_VALUES and key not in self.values and _number(value):
                self.values[key] = value
                changed = True
        for key in ("ignition", "charging"):
            if key not in self.values and isinstance(saved.get(key), bool):
                self.values[key] = saved[key]
                changed = True
        if self.satellites is None and isinstance(saved.get("satellites"), int):
            self.satellites = saved["satellites"]
            changed = True
        if self.relay is None and isinstance(saved.get("relay"), bool):
            self.relay = saved["relay"]
            changed = True
        for alarm, when in _times(saved.get("alarm_times")).items():
            if alarm not in self.alarm_times:
                self.alarm_times[alarm] = when
        for alarm, since in _times(saved.get("alarm_since")).items():
            if alarm in STATE_ALARMS and alarm not in self.alarms_on and since + self.hold > now:
                self.alarms_on[alarm] = since
                changed = True
        return changed


@dataclass(slots=True)
class Applied:
    """What folding one read's messages produced."""

    events: list[AlarmEvent] = field(default_factory=list)
    #: the device's model, firmware or protocol changed: its discovery config must follow
    device_changed: bool = False


def device_time(message: Message, now: datetime) -> datetime:
    """The device's time of a report, or `now` when it has none or one that cannot be right."""
    when = message.time
    if when is None or when > now + MAX_CLOCK_AHEAD:
        # Whole seconds, as device clocks have: a report in the same second is not "older".
        return now.replace(microsecond=0)
    return when


_SEEDED_VALUES = frozenset(
    {*(_VALUES.values()), *(_FIX_VALUES.values()), "odometer"} - {"ignition", "charging"}
)


def _number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _times(value: object) -> dict[Alarm, datetime]:
    out: dict[Alarm, datetime] = {}
    if isinstance(value, dict):
        for name, stamp in value.items():
            when = _parse_time(stamp)
            if when is not None and name in Alarm.__members__.values():
                out[Alarm(name)] = when
    return out


def _position(saved: dict[str, Any]) -> Position | None:
    latitude, longitude = saved.get("latitude"), saved.get("longitude")
    accuracy, when = saved.get("gps_accuracy"), _parse_time(saved.get("fix_time"))
    if not _number(latitude) or not _number(longitude) or when is None:
        return None
    try:
        source = PositionSource(saved.get("position_source", "gnss"))
    except ValueError:
        source = PositionSource.GNSS
    return Position(
        float(latitude), float(longitude), int(accuracy) if _number(accuracy) else 0, source, when
    )
