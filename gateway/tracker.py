"""One tracker in the gateway: the integration's tracker rules, rendered as the state JSON.

The rules themselves (which fix moves the map, device clocks, alarm latching and replays, the
relay, values from live reports only) are the integration's own, `tracking.Tracker`, so the
gateway's device shows what the integration's does. This module adds what only MQTT needs.

The state JSON (`snapshot`) is what the gateway publishes, retained, for every entity of the
device. A key is absent only while its value has never been known, so a retained copy is
complete after a restart; `seed` reads such a copy back when a tracker moves to this instance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeGuard

from custom_components.tk970.clock import FixTime
from custom_components.tk970.positioning import Estimate, Kind, Method
from custom_components.tk970.protocol import Alarm, Message, PositionSource, Protocol
from custom_components.tk970.tracking import (
    DEFAULT_HOLD,
    STATE_ALARMS,
    AlarmState,
    GnssPosition,
    Locate,
    Tracker as Rules,
    TrackerState,
    parse_time,
    position_detail,
)

#: The state JSON's plain values: the state's attribute and the key it is published under.
VALUES = {
    "ignition": "ignition",
    "charging": "charging",
    "battery_percent": "battery",
    "battery_voltage": "battery_voltage",
    "power_voltage": "power_voltage",
    "gsm_signal": "signal",
    "odometer_km": "odometer",
    "speed_kmh": "speed",
    "course": "course",
    "altitude_m": "altitude",
    "satellites": "satellites",
}
_BOOLEANS = frozenset({"ignition", "charging"})
_INTEGERS = frozenset({"satellites"})


@dataclass(slots=True)
class AlarmEvent:
    """An alarm to publish as an event (once, with the device's own time)."""

    alarm: Alarm
    time: datetime | None
    protocol: Protocol


@dataclass(slots=True)
class Applied:
    """What folding one read's messages produced."""

    events: list[AlarmEvent] = field(default_factory=list)
    #: the device's model, firmware or protocol changed: its discovery config must follow
    device_changed: bool = False


class Tracker:
    """Everything the gateway knows about one tracker."""

    def __init__(self, identity: str, name: str, hold: timedelta = DEFAULT_HOLD) -> None:
        """`identity`: the configured (allow-listed) identity, or the reported one."""
        self.identity = identity
        self.name = name
        self.rules = Rules(identity, hold=hold)
        #: the retained state was read back (or there was none): `seed` has nothing more to add
        self.seeded = False

    @property
    def state(self) -> TrackerState:
        """What the rules keep."""
        return self.rules.state

    # -- what the device looks like -----------------------------------------------------------

    @property
    def protocol(self) -> Protocol | None:
        """The protocol the tracker speaks."""
        return self.state.protocol

    @protocol.setter
    def protocol(self, protocol: Protocol) -> None:
        self.state.protocol = protocol

    @property
    def model(self) -> str:
        """The model to show: the device's own word where it gave one, with the protocol."""
        return self.state.model

    @property
    def firmware(self) -> str | None:
        """The firmware version the device reported, if any."""
        return self.state.info.get("firmware")

    @property
    def relay(self) -> bool | None:
        """The relay as the device stated or confirmed it."""
        return self.state.relay

    @property
    def relay_reports(self) -> int:
        """How many reports stated the relay (for `relay_confirmed`)."""
        return self.rules.relay_reports

    @property
    def last_seen(self) -> datetime | None:
        """When the last message arrived."""
        return self.state.last_heard

    @property
    def values(self) -> dict[str, Any]:
        """The state JSON's plain values that are known."""
        state = self.state
        return {
            key: value
            for name, key in VALUES.items()
            if (value := getattr(state, name)) is not None
        }

    # -- folding messages ---------------------------------------------------------------------

    def apply(
        self,
        messages: list[Message],
        reported_id: str,
        now: datetime,
        *,
        locate: Locate | None = None,
        jt808_utc_offset: timedelta | None = None,
    ) -> Applied:
        """Fold one read's messages in, in order; say what to publish."""
        self.state.reported_id = reported_id
        changes = self.rules.apply(messages, now, locate=locate, jt808_utc_offset=jt808_utc_offset)
        return Applied(
            events=[
                AlarmEvent(alarm, message.time, message.protocol)
                for alarm, message in changes.events
            ],
            device_changed=changes.info,
        )

    def show_fallback(self, estimate: Estimate, fix: FixTime) -> bool:
        """A fallback position resolved later (online provider); True when the map moved."""
        return self.rules.show_fallback(estimate, fix)

    def settle_last_seen(self) -> bool:
        """The tracker went quiet: "Last seen" takes the exact time of its last message."""
        return self.rules.settle_last_seen()

    def expire(self, now: datetime) -> bool:
        """Clear the alarms whose hold time has passed; tell whether any was."""
        return self.rules.expire(now)

    @property
    def next_expiry(self) -> datetime | None:
        """When the next latched alarm runs out, if any is on."""
        return self.rules.next_expiry

    def relay_confirmed(self, relay: bool, reports_before: int) -> bool:
        """A relay command was confirmed: show it, unless a newer status already stated it."""
        return self.rules.relay_confirmed(relay, reports_before)

    # -- the state JSON ---------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The state JSON: everything known, for every entity of the device."""
        state = self.state
        out: dict[str, Any] = {}
        if state.latitude is not None and state.longitude is not None:
            out["latitude"] = state.latitude
            out["longitude"] = state.longitude
            out["gps_accuracy"] = state.accuracy
            if state.position_source is not None:
                out["position_source"] = state.position_source.value
                out["position_detail"] = position_detail(state.position_source, state.fallback)
            if state.position_time is not None:
                out["fix_time"] = state.position_time.isoformat()
            if (fallback := state.fallback) is not None:
                out["position_method"] = fallback.method.value
                if fallback.provider is not None:
                    out["position_provider"] = fallback.provider
        out.update(self.values)
        if state.relay is not None:
            out["relay"] = state.relay
        for alarm in STATE_ALARMS:
            out[alarm.value] = state.alarms[alarm].on
        since = {
            alarm.value: tracked.since.isoformat()
            for alarm, tracked in state.alarms.items()
            if tracked.on and tracked.since is not None
        }
        if since:
            out["alarm_since"] = since
        if state.last_alarm_events:
            out["alarm_times"] = {
                a.value: t.isoformat() for a, t in state.last_alarm_events.items()
            }
        if state.protocol is not None:
            out["protocol"] = state.protocol.value
        if state.reported_id is not None:
            out["reported_id"] = state.reported_id
        if state.last_seen is not None:
            out["last_seen"] = state.last_seen.isoformat()
        return out

    def seed(self, saved: dict[str, Any], now: datetime) -> bool:
        """Fill what is still unknown from a retained state JSON; tell whether anything was.

        Used when a tracker reaches this instance and another one (or this one, before a
        restart) published its state: the map position, relay, values and alarm bookkeeping
        carry over. What this instance already learned from the device wins.
        """
        self.seeded = True
        state = self.state
        changed = self._seed_position(saved)
        for name, key in VALUES.items():
            value = saved.get(key)
            if getattr(state, name) is None and _fits(name, value):
                setattr(state, name, value)
                changed = True
        if state.relay is None and isinstance(saved.get("relay"), bool):
            state.relay = saved["relay"]
            changed = True
        for alarm, when in _times(saved.get("alarm_times")).items():
            state.last_alarm_events.setdefault(alarm, when)
        for alarm, since in _times(saved.get("alarm_since")).items():
            tracked = state.alarms.get(alarm)
            if tracked is not None and not tracked.on and since + self.rules.hold > now:
                state.alarms[alarm] = AlarmState(True, since)
                changed = True
        return changed

    def _seed_position(self, saved: dict[str, Any]) -> bool:
        state = self.state
        latitude, longitude = saved.get("latitude"), saved.get("longitude")
        accuracy, when = saved.get("gps_accuracy"), parse_time(saved.get("fix_time"))
        if not _number(latitude) or not _number(longitude) or when is None:
            return False
        if state.position_time is not None and state.position_time >= when:
            return False
        try:
            source = PositionSource(saved.get("position_source", "gnss"))
        except ValueError:
            source = PositionSource.GNSS
        state.latitude, state.longitude = float(latitude), float(longitude)
        state.accuracy = int(accuracy) if _number(accuracy) else 0
        state.position_source = source
        state.position_time = when
        state.fallback = None
        if source is PositionSource.GNSS:
            state.last_gnss = GnssPosition(state.latitude, state.longitude, state.accuracy, when)
        else:
            try:
                method = Method(saved.get("position_method", Method.DEVICE.value))
            except ValueError:
                method = Method.DEVICE
            provider = saved.get("position_provider")
            state.fallback = Estimate(
                latitude=state.latitude,
                longitude=state.longitude,
                accuracy=state.accuracy,
                kind=Kind(source.value),
                method=method,
                provider=provider if isinstance(provider, str) else None,
            )
        return True


def _number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _fits(name: str, value: object) -> bool:
    """Whether a retained value has the type the state keeps under `name`."""
    if name in _BOOLEANS:
        return isinstance(value, bool)
    if name in _INTEGERS:
        return isinstance(value, int) and not isinstance(value, bool)
    return _number(value)


def _times(value: object) -> dict[Alarm, datetime]:
    out: dict[Alarm, datetime] = {}
    if isinstance(value, dict):
        for name, stamp in value.items():
            when = parse_time(stamp)
            if when is not None and name in Alarm.__members__.values():
                out[Alarm(name)] = when
    return out
