"""The device clock on its own: unrolling, learning an offset, stamping, never ahead."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, strategies as st

from custom_components.tk970.clock import (
    MAX_AHEAD,
    OFFSET_VOTES,
    ROLLOVER,
    DeviceClock,
    unroll,
)

NOW = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)


def live(clock: DeviceClock, error: timedelta, reports: int, step: float = 10.0) -> list[bool]:
    """Feed live reports whose device time is off by `error`, `step` seconds apart."""
    learned = []
    for number in range(reports):
        received = NOW + timedelta(seconds=number * step)
        learned.append(clock.observe(received - error, received))
    return learned


def test_a_clock_three_hours_behind_is_learned_after_consistent_reports() -> None:
    """Three live reports off by the same three hours make it the offset; then times are right."""
    clock = DeviceClock()
    assert live(clock, timedelta(hours=3), OFFSET_VOTES) == [False] * (OFFSET_VOTES - 1) + [True]
    assert clock.offset == timedelta(hours=3)
    received = NOW + timedelta(minutes=10)
    fix = clock.correct(received - timedelta(hours=3, seconds=2), received)
    assert fix == (received - timedelta(seconds=2), False)


def test_an_odd_offset_is_kept_to_the_second_and_a_zone_is_snapped() -> None:
    """A measured 5 h 30 min 20 s is a time zone (snapped); 2 h 7 min 13 s is kept as it is."""
    zone = DeviceClock()
    live(zone, timedelta(hours=5, minutes=30, seconds=20), OFFSET_VOTES)
    assert zone.offset == timedelta(hours=5, minutes=30)
    odd = DeviceClock()
    live(odd, timedelta(hours=2, minutes=7, seconds=13), OFFSET_VOTES)
    assert odd.offset == timedelta(hours=2, minutes=7, seconds=13)


def test_a_buffered_burst_teaches_nothing() -> None:
    """Records 10 s apart arriving together do not line up: no offset from a late upload."""
    clock = DeviceClock()
    for number in range(10):
        assert not clock.observe(NOW - timedelta(hours=1) + timedelta(seconds=10 * number), NOW)
    assert clock.offset == timedelta(0)


def test_the_same_report_twice_is_one_vote() -> None:
    """A device time that did not move on (a resent frame) is no new evidence."""
    clock = DeviceClock()
    for _ in range(OFFSET_VOTES * 2):
        assert not clock.observe(NOW - timedelta(hours=3), NOW)
    assert clock.offset == timedelta(0)


def test_a_correct_report_resets_the_votes() -> None:
    """Votes must be consecutive: a report on time in between starts over."""
    clock = DeviceClock()
    live(clock, timedelta(hours=3), OFFSET_VOTES - 1)
    assert not clock.observe(NOW + timedelta(minutes=1), NOW + timedelta(minutes=1))
    assert live(clock, timedelta(hours=3), OFFSET_VOTES - 1) == [False] * (OFFSET_VOTES - 1)
    assert clock.offset == timedelta(0)


def test_a_fixed_clock_is_learned_back() -> None:
    """After the device's clock is set right, the old offset is unlearned the same way."""
    clock = DeviceClock(timedelta(hours=3))
    assert live(clock, timedelta(0), OFFSET_VOTES)[-1]
    assert clock.offset == timedelta(0)


def test_gps_week_rollover_is_undone_at_once() -> None:
    """A date 1024 weeks back is moved forward without any learning."""
    clock = DeviceClock()
    fix = clock.correct(NOW - ROLLOVER - timedelta(seconds=3), NOW)
    assert fix == (NOW - timedelta(seconds=3), False)
    assert clock.rolled_over
    assert unroll(NOW - 2 * ROLLOVER, NOW) == NOW


def test_no_time_or_an_impossible_one_is_stamped_on_arrival() -> None:
    """Missing, or ahead by more than MAX_AHEAD: the receive time, in whole seconds."""
    clock = DeviceClock()
    received = NOW + timedelta(microseconds=250_000)
    assert clock.correct(None, received) == (NOW, True)
    assert clock.correct(received + MAX_AHEAD + timedelta(seconds=1), received) == (NOW, True)
    # A little ahead: a fast clock, never later than the arrival.
    assert clock.correct(received + timedelta(seconds=30), received) == (received, False)


@given(
    device=st.datetimes(
        # naive bounds, as hypothesis wants them; the values get UTC
        min_value=datetime(1980, 1, 6),  # noqa: DTZ001
        max_value=datetime(2099, 12, 31),  # noqa: DTZ001
        timezones=st.just(UTC),
    ),
    offset_hours=st.integers(min_value=-14, max_value=14),
)
def test_a_corrected_time_is_never_after_its_arrival(device: datetime, offset_hours: int) -> None:
    """Whatever the device says and whatever was learned, no fix is dated after it arrived."""
    clock = DeviceClock(timedelta(hours=offset_hours))
    fix = clock.correct(device, NOW)
    assert fix.time <= NOW
    assert fix.stamped or fix.time > NOW - ROLLOVER / 2 - timedelta(days=1)
