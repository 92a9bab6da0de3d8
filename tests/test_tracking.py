"""The tracker rules on their own (`tracking.Tracker`): pure, the time passed in.

What the coordinator and the gateway both rely on: which part of the state a read changed,
device clocks corrected, late uploads, the "never worse" rule for fallback positions, alarm
latching and what the caller must schedule, the relay, and the saved state.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
import json

from custom_components.tk970.clock import FixTime
from custom_components.tk970.positioning import Estimate, Kind, Method
from custom_components.tk970.protocol import (
    JT808_DEFAULT_OFFSET,
    Alarm,
    Cell,
    Message,
    MessageType,
    PositionSource,
    Protocol,
)
from custom_components.tk970.tracking import (
    LAST_SEEN_STEP,
    Tracker,
    TrackerState,
    position_detail,
)

NOW = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
HERE = (52.5145, 13.35)
#: 11 km north: outside an LBS estimate's circle around HERE
NORTH = (52.6145, 13.35)
CELL = Cell(mcc=262, mnc=1, lac=1, cid=2)


def report(**fields: object) -> Message:
    values: dict[str, object] = {
        "protocol": Protocol.GT06,
        "type": MessageType.LOCATION,
        "time": NOW,
        "valid": True,
        "latitude": HERE[0],
        "longitude": HERE[1],
        "satellites": 9,
        "speed_kmh": 30.0,
    }
    values.update(fields)
    return Message(**values)  # type: ignore[arg-type]


def lbs(where: tuple[float, float], time: datetime) -> Message:
    """A position the tracker computed itself from its cells."""
    return report(
        type=MessageType.LBS,
        valid=None,
        latitude=where[0],
        longitude=where[1],
        speed_kmh=None,
        satellites=None,
        position_source=PositionSource.LBS,
        cells=(CELL,),
        time=time,
    )


def test_changes_name_the_parts_that_changed() -> None:
    """A fix moves the position; a status the values; the same report again changes nothing."""
    tracker = Tracker("1")
    changes = tracker.apply([report(battery_percent=80.0, relay=False)], NOW)
    assert (changes.position, changes.status, changes.info, changes.alarms) == (
        True,
        True,
        True,
        False,
    )
    state = tracker.state
    assert (state.latitude, state.accuracy, state.position_source) == (
        HERE[0],
        10,
        PositionSource.GNSS,
    )
    assert state.last_gnss is not None
    assert state.last_gnss.time == NOW
    assert tracker.relay_reports == 1
    again = tracker.apply([report(battery_percent=80.0, relay=False)], NOW)
    assert not again.shown
    assert tracker.relay_reports == 2


def test_late_uploads_and_device_clocks() -> None:
    """A buffered fix never moves the tracker back, nor sets values; a clock an hour behind,
    report after report, is learned and corrected (the gateway shares this now)."""
    tracker = Tracker("1")
    tracker.apply([report()], NOW)
    old = report(latitude=1.0, time=NOW - timedelta(hours=2), historical=True, battery_percent=5.0)
    assert not tracker.apply([old], NOW).shown
    assert (tracker.state.latitude, tracker.state.battery_percent) == (HERE[0], None)
    learned = []
    for step in range(1, 4):
        now = NOW + timedelta(minutes=step)
        behind = report(latitude=HERE[0] + step / 100, time=now - timedelta(hours=1))
        learned.append(tracker.apply([behind], now).learned)
    assert learned == [False, False, True]
    assert tracker.state.clock_offset == timedelta(hours=1)
    assert tracker.state.position_time == NOW + timedelta(minutes=3)
    assert tracker.state.latitude == HERE[0] + 0.03
    # GPS week rollover: 1024 weeks back is unrolled.
    fresh = Tracker("2")
    fresh.apply([report(time=NOW - timedelta(weeks=1024))], NOW)
    assert fresh.state.position_time == NOW
    # A time far ahead cannot be right: stamped on arrival.
    fresh.apply([report(time=NOW + timedelta(hours=3))], NOW + timedelta(seconds=10))
    assert fresh.state.position_stamped
    assert fresh.state.position_time == NOW + timedelta(seconds=10)


def test_fallback_positions_never_make_the_map_worse() -> None:
    """A device LBS position inside its circle of the last fix leaves the fix shown; one far
    away moves the tracker; one of the same age as the fix loses to it."""
    tracker = Tracker("1")
    tracker.apply([report()], NOW)
    near = lbs(HERE, NOW + timedelta(seconds=10))
    assert not tracker.apply([near], NOW + timedelta(seconds=10)).position
    assert tracker.state.position_source is PositionSource.GNSS
    far = lbs(NORTH, NOW + timedelta(seconds=20))
    assert tracker.apply([far], NOW + timedelta(seconds=20)).position
    state = tracker.state
    assert (state.latitude, state.accuracy, state.position_source) == (
        NORTH[0],
        1000,
        PositionSource.LBS,
    )
    assert position_detail(state.position_source, state.fallback) == "lbs_device"
    assert state.speed_kmh == 30.0  # a fallback keeps the last fix's speed
    # Back near the fix: the fix is the better position again.
    back = NOW + timedelta(seconds=30)
    assert tracker.apply([near._replace(time=back)], back).position
    assert (state.latitude, state.position_source, state.fallback) == (
        HERE[0],
        PositionSource.GNSS,
        None,
    )
    same_age = Estimate(
        latitude=NORTH[0], longitude=NORTH[1], accuracy=500, kind=Kind.LBS, method=Method.ONLINE
    )
    fix_time = FixTime(NOW + timedelta(minutes=1), False)
    tracker.apply([report(time=fix_time.time)], fix_time.time)
    assert not tracker.show_fallback(same_age, fix_time)
    assert tracker.show_fallback(same_age, FixTime(fix_time.time + timedelta(seconds=1), False))
    assert position_detail(state.position_source, state.fallback) == "lbs_online"


def test_locate_learns_from_fixes_and_places_the_others() -> None:
    """The fallback positioning hook gets every report with the fix's accuracy; its answer
    goes through the same rule."""
    calls: list[tuple[Message, FixTime, int]] = []
    answer = Estimate(
        latitude=NORTH[0], longitude=NORTH[1], accuracy=800, kind=Kind.LBS, method=Method.LEARNED
    )

    def locate(message: Message, when: FixTime, /, *, fix_accuracy: int) -> Estimate | None:
        calls.append((message, when, fix_accuracy))
        return None if message.valid else answer

    tracker = Tracker("1")
    tracker.apply([report(cells=(CELL,))], NOW, locate=locate)
    later = NOW + timedelta(seconds=10)
    no_fix = report(valid=False, time=later, cells=(CELL,))
    assert tracker.apply([no_fix], later, locate=locate).position
    assert [(c[1], c[2]) for c in calls] == [(FixTime(NOW, False), 10), (FixTime(later, False), 10)]
    assert tracker.state.fallback == answer


def test_alarms_latch_clear_and_say_what_to_schedule() -> None:
    """SOS latches (the caller schedules its hold end), a status clears it (cancel), a replay
    is not a new event, a routine report that still shows it is not either."""
    tracker = Tracker("1", hold=timedelta(minutes=10))
    sos = report(type=MessageType.ALARM, alarms=(Alarm.SOS,), alarm_states=frozenset({Alarm.SOS}))
    changes = tracker.apply([sos], NOW)
    assert [alarm for alarm, _ in changes.events] == [Alarm.SOS]
    assert (changes.alarms, changes.latched, changes.cleared) == (True, {Alarm.SOS}, set())
    assert tracker.hold_ends() == {Alarm.SOS: NOW + timedelta(minutes=10)}
    assert tracker.state.last_alarm is Alarm.SOS
    assert tracker.apply([sos], NOW).events == ()  # the same frame again
    routine = report(
        alarms=(Alarm.SOS,), alarm_states=frozenset({Alarm.SOS}), time=NOW + timedelta(seconds=5)
    )
    assert tracker.apply([routine], NOW + timedelta(seconds=5)).events == ()
    clear = report(alarm_states=frozenset({Alarm.SOS}), time=NOW + timedelta(seconds=30))
    changes = tracker.apply([clear], NOW + timedelta(seconds=30))
    assert (changes.alarms, changes.cleared, changes.latched) == (True, {Alarm.SOS}, set())
    assert tracker.next_expiry is None
    # On and off in one read: nothing left to schedule.
    on_at, off_at = NOW + timedelta(minutes=1), NOW + timedelta(minutes=1, seconds=5)
    both = tracker.apply(
        [sos._replace(time=on_at), clear._replace(time=off_at)], NOW + timedelta(minutes=2)
    )
    assert (both.latched, both.cleared) == (set(), {Alarm.SOS})
    # The hold timer fired.
    tracker.apply([sos._replace(time=NOW + timedelta(minutes=3))], NOW + timedelta(minutes=3))
    assert tracker.clear_alarm(Alarm.SOS)
    assert not tracker.clear_alarm(Alarm.SOS)
    assert not tracker.state.alarms[Alarm.SOS].on


def test_relay_the_device_states() -> None:
    """A confirmed command shows, unless a newer status stated the relay meanwhile."""
    tracker = Tracker("1")
    before = tracker.relay_reports
    assert tracker.relay_confirmed(True, before)
    assert tracker.state.relay is True
    before = tracker.relay_reports
    tracker.apply([report(relay=False)], NOW)
    assert not tracker.relay_confirmed(True, before)
    assert tracker.state.relay is False


def test_last_seen_steps_and_settles() -> None:
    """Last seen moves at most every LAST_SEEN_STEP while reporting, exactly once quiet."""
    tracker = Tracker("1")
    assert tracker.apply([], NOW).last_seen
    assert not tracker.apply([], NOW + timedelta(minutes=1)).last_seen
    assert tracker.state.last_seen == NOW
    assert tracker.state.last_heard == NOW + timedelta(minutes=1)
    assert tracker.settle_last_seen()
    assert tracker.state.last_seen == NOW + timedelta(minutes=1)
    assert not tracker.settle_last_seen()
    assert tracker.apply([], NOW + timedelta(minutes=1) + LAST_SEEN_STEP).last_seen


def test_jt808_session_offset() -> None:
    """A new JT808 session starts from what an earlier one learned; a learned one stays."""
    tracker = Tracker("1")
    assert tracker.session_offset(JT808_DEFAULT_OFFSET) == JT808_DEFAULT_OFFSET
    jt808 = report(protocol=Protocol.JT808)
    assert tracker.apply([jt808], NOW, jt808_utc_offset=timedelta(0)).learned
    assert tracker.session_offset(JT808_DEFAULT_OFFSET) == timedelta(0)
    assert tracker.session_offset(timedelta(hours=2)) == timedelta(hours=2)


def test_saved_state_round_trip() -> None:
    """Everything a restart needs comes back from JSON; junk is dropped."""
    tracker = Tracker("1")
    tracker.apply([report(battery_percent=70.0, relay=True, info=(("model", "GT06N"),))], NOW)
    tracker.apply([lbs(NORTH, NOW + timedelta(seconds=10))], NOW + timedelta(seconds=10))
    tracker.apply(
        [report(type=MessageType.ALARM, alarms=(Alarm.SOS,), latitude=None, longitude=None)],
        NOW + timedelta(seconds=20),
    )
    saved = json.loads(json.dumps(tracker.state.as_store()))
    restored = TrackerState.from_store(saved)
    state = tracker.state
    for name in (
        "latitude", "accuracy", "position_source", "position_time", "fallback", "last_gnss",
        "battery_percent", "relay", "alarms", "last_alarm_events", "info", "protocol",
    ):  # fmt: skip
        assert getattr(restored, name) == getattr(state, name), name
    assert restored.model == "GT06N (GT06)"
    junk = TrackerState.from_store({"latitude": "x", "relay": 1, "last_gnss": {"time": "no"}})
    assert (junk.latitude, junk.relay, junk.last_gnss) == (None, None, None)
