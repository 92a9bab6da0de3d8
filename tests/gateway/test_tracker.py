"""The gateway's tracker state: the integration's rules for positions, alarms and the relay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
import json

from custom_components.tk970.protocol import (
    Alarm,
    Cell,
    Message,
    MessageType,
    PositionSource,
    Protocol,
)
from gateway.tracker import Tracker
from tests.common import IMEI

NOW = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)


def fix(**fields: object) -> Message:
    values: dict[str, object] = {
        "protocol": Protocol.GT06,
        "type": MessageType.LOCATION,
        "time": NOW,
        "valid": True,
        "latitude": 52.5,
        "longitude": 13.4,
        "satellites": 9,
        "speed_kmh": 30.0,
    }
    values.update(fields)
    return Message(**values)  # type: ignore[arg-type]


def test_positions_follow_the_integrations_rules() -> None:
    """Only usable fixes move the tracker, never backwards; LBS positions are wide."""
    tracker = Tracker(IMEI, "Van")
    assert "latitude" not in tracker.snapshot()
    tracker.apply([fix()], IMEI, NOW)
    state = tracker.snapshot()
    assert (state["latitude"], state["gps_accuracy"], state["speed"]) == (52.5, 10, 30.0)
    tracker.apply([fix(valid=False, latitude=1.0)], IMEI, NOW)
    tracker.apply([fix(latitude=0.0, longitude=0.0)], IMEI, NOW)
    tracker.apply([fix(latitude=2.0, time=NOW - timedelta(minutes=1))], IMEI, NOW)
    assert tracker.snapshot()["latitude"] == 52.5
    lbs = fix(
        type=MessageType.LBS,
        latitude=52.6,
        valid=None,
        speed_kmh=None,
        position_source=PositionSource.LBS,
        cells=(Cell(mcc=262, mnc=1, lac=1, cid=2),),
        time=NOW + timedelta(seconds=5),
    )
    # It arrives after its time: a fallback of the same age as the fix shown would lose to it.
    tracker.apply([lbs], IMEI, NOW + timedelta(seconds=5))
    state = tracker.snapshot()
    assert (state["latitude"], state["gps_accuracy"], state["position_source"]) == (
        52.6,
        1000,
        "lbs",
    )
    assert state["speed"] == 30.0  # an LBS position has no speed: the last one stays
    # A device clock far ahead is not trusted: stamped on arrival.
    arrival = NOW + timedelta(seconds=10)
    tracker.apply([fix(latitude=53.0, time=NOW + timedelta(hours=3))], IMEI, arrival)
    assert tracker.snapshot()["fix_time"] == arrival.isoformat()


def test_alarms_latch_clear_and_expire() -> None:
    """SOS latches; a status clears it, or the hold time; a replay is not a new event."""
    tracker = Tracker(IMEI, "Van", hold=timedelta(minutes=10))
    sos = fix(type=MessageType.ALARM, alarms=(Alarm.SOS,), alarm_states=frozenset({Alarm.SOS}))
    assert [e.alarm for e in tracker.apply([sos], IMEI, NOW).events] == [Alarm.SOS]
    assert tracker.snapshot()["sos"] is True
    assert tracker.apply([sos], IMEI, NOW).events == []  # the same frame again
    status = fix(alarm_states=frozenset({Alarm.SOS}), time=NOW + timedelta(seconds=30))
    tracker.apply([status], IMEI, NOW)
    assert tracker.snapshot()["sos"] is False
    later = NOW + timedelta(minutes=1)
    tracker.apply([sos._replace(time=later)], IMEI, later)
    assert tracker.next_expiry == later + timedelta(minutes=10)
    assert not tracker.expire(later + timedelta(minutes=9))
    assert tracker.expire(later + timedelta(minutes=10))
    assert tracker.snapshot()["sos"] is False
    assert tracker.next_expiry is None
    # An old alarm from the device's buffer is reported, but does not latch.
    old = sos._replace(historical=True, time=NOW - timedelta(hours=2), alarms=(Alarm.VIBRATION,))
    assert [e.alarm for e in tracker.apply([old], IMEI, later).events] == [Alarm.VIBRATION]
    assert tracker.snapshot()["vibration"] is False


def test_relay_and_values() -> None:
    """The relay is the device's; a command's answer does not overwrite a newer status."""
    tracker = Tracker(IMEI, "Van")
    tracker.apply([fix(relay=False, battery_percent=80.0, ignition=True)], IMEI, NOW)
    state = tracker.snapshot()
    assert (state["relay"], state["battery"], state["ignition"]) == (False, 80.0, True)
    before = tracker.relay_reports
    tracker.relay_confirmed(True, before)
    assert tracker.relay is True
    before = tracker.relay_reports
    tracker.apply([fix(relay=False)], IMEI, NOW)
    tracker.relay_confirmed(True, before)
    assert tracker.relay is False
    # Late records say nothing about the state now.
    tracker.apply([fix(relay=True, battery_percent=10.0, historical=True)], IMEI, NOW)
    assert (tracker.relay, tracker.values["battery"]) == (False, 80.0)


def test_odometer() -> None:
    """The decoders' odometer reaches the state (live reports only)."""
    tracker = Tracker(IMEI, "Van")
    tracker.apply([fix(odometer_km=1234.5)], IMEI, NOW)
    tracker.apply([fix(odometer_km=1000.0, historical=True)], IMEI, NOW)
    tracker.apply([fix()], IMEI, NOW)  # a report without one keeps the last
    assert tracker.snapshot()["odometer"] == 1234.5


def test_model_and_info() -> None:
    """The model string is the integration's; new firmware asks for new discovery."""
    tracker = Tracker(IMEI, "Van")
    assert tracker.model == "TK970"
    info = fix(type=MessageType.LOGIN, info=(("model", "GT06N"), ("firmware", "1.2")))
    assert tracker.apply([info], IMEI, NOW).device_changed
    assert (tracker.model, tracker.firmware) == ("GT06N (GT06)", "1.2")
    assert not tracker.apply([info], IMEI, NOW).device_changed


def test_seed_from_retained_state() -> None:
    """A state JSON from another instance fills what is unknown; fresher data wins."""
    source = Tracker(IMEI, "Van")
    sos = fix(type=MessageType.ALARM, alarms=(Alarm.SOS,), relay=True, battery_percent=70.0)
    source.apply([sos], IMEI, NOW)
    saved = json.loads(json.dumps(source.snapshot()))

    moved = Tracker(IMEI, "Van")
    moved.apply([fix(type=MessageType.HEARTBEAT, latitude=None, longitude=None)], IMEI, NOW)
    assert moved.seed(saved, NOW + timedelta(minutes=1))
    state = moved.snapshot()
    assert (state["latitude"], state["relay"], state["battery"], state["sos"]) == (
        52.5,
        True,
        70.0,
        True,
    )
    # The replayed SOS is recognised after the move.
    assert moved.apply([sos], IMEI, NOW).events == []
    # What this instance already knows is kept; junk is ignored.
    fresh = Tracker(IMEI, "Van")
    fresh.apply([fix(latitude=40.0, time=NOW + timedelta(minutes=5), relay=False)], IMEI, NOW)
    fresh.seed({**saved, "battery": "full", "fix_time": "not a time"}, NOW)
    assert (fresh.snapshot()["latitude"], fresh.relay) == (40.0, False)
    assert "battery" not in fresh.values
    # Expired holds do not come back.
    late = Tracker(IMEI, "Van")
    late.seed(saved, NOW + timedelta(hours=1))
    assert late.snapshot()["sos"] is False
