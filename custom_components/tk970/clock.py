"""Device clocks: how far a tracker's own time can be trusted, and its correction.

Trackers stamp their reports with their own clock, and that clock is often wrong: a GPS module
with the 1024-week rollover bug reports dates 19.6 years back, a unit set to local time (or to
UTC when JT808 expects GMT+8) is off by whole hours, a battery-less RTC restarts in 2000. One
`DeviceClock` per tracker decides, against the time a report was received:

- a time behind by more than half the rollover period is unrolled by 1024 weeks;
- live reports whose time is off by the same amount, report after report, teach the clock an
  offset, which then corrects every time (buffered uploads included);
- a time still ahead of the receive time by more than `MAX_AHEAD` cannot be right, and a report
  without a time has none: both are stamped with the receive time.

What is left, a time behind the receive time, is a late upload and is kept as it is: the
coordinator never moves a tracker back for it. Pure logic, no I/O and no Home Assistant: the
caller passes both times in.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final, NamedTuple

#: The GPS week number has 10 bits: receivers with old firmware count from the previous epoch.
ROLLOVER: Final = timedelta(weeks=1024)
#: A fix time this far ahead of the receive time is wrong (an unlearned time zone, a bad RTC).
MAX_AHEAD: Final = timedelta(minutes=5)
#: A live report arrives within this of its fix time (modem queues, GPRS retransmissions):
#: within it a clock is taken as right; behind it a report is late or its clock is wrong.
LIVE_WINDOW: Final = timedelta(minutes=5)
#: Consecutive live reports off by the same amount (within `VOTE_TOLERANCE`, each at least
#: `VOTE_SPACING` of device time after the previous one) before that amount becomes the offset.
#: A buffered upload arrives as a burst whose device times spread while their receive times do
#: not, so it does not line up; a clock that is wrong keeps the same error from report to report.
OFFSET_VOTES: Final = 3
VOTE_TOLERANCE: Final = timedelta(seconds=10)
VOTE_SPACING: Final = timedelta(seconds=1)
#: Learned offsets this close to a whole quarter hour are time zones: snapped to it.
ZONE_STEP: Final = timedelta(minutes=15)
ZONE_SNAP: Final = timedelta(minutes=1)
# Computed once: every report's time goes through these comparisons.
_HALF_ROLLOVER: Final = ROLLOVER / 2
_BEHIND_MAX_AHEAD: Final = -MAX_AHEAD


class FixTime(NamedTuple):
    """A report's time as the coordinator should use it."""

    time: datetime
    #: True when the receive time stands in for a device time that is missing or impossible
    stamped: bool


def unroll(time: datetime, received: datetime) -> datetime:
    """Undo GPS week rollovers: a time more than half a rollover period behind is moved on."""
    while received - time > _HALF_ROLLOVER:
        time += ROLLOVER
    return time


class DeviceClock:
    """One tracker's clock error: learned from its live reports, applied to all of them."""

    def __init__(self, offset: timedelta = timedelta(0)) -> None:
        """Start with a known offset (restored), or none."""
        #: added to the device's (unrolled) times to get the real time
        self.offset = offset
        #: set once a time needed unrolling (the coordinator logs it once)
        self.rolled_over = False
        self._candidate: timedelta | None = None
        self._votes = 0
        self._last_vote: datetime | None = None

    def observe(self, time: datetime, received: datetime) -> bool:
        """Learn from a live report's device time; True when the offset changed.

        Call it once per read with the newest live (not buffered) report that has a time, before
        correcting that read's reports, so the report that settles the offset is corrected too.
        """
        time = unroll(time, received)
        error = received - (time + self.offset)
        if _BEHIND_MAX_AHEAD <= error <= LIVE_WINDOW:
            self._candidate, self._votes, self._last_vote = None, 0, None
            return False
        candidate = received - time
        last = self._last_vote
        if last is not None and time - last < VOTE_SPACING:
            return False  # the same report again, or a burst: no new evidence
        if self._candidate is not None and abs(candidate - self._candidate) <= VOTE_TOLERANCE:
            self._votes += 1
        else:
            self._candidate, self._votes = candidate, 1
        self._last_vote = time
        if self._votes < OFFSET_VOTES:
            return False
        self.offset = _snap(candidate)
        self._candidate, self._votes, self._last_vote = None, 0, None
        return True

    def correct(self, time: datetime | None, received: datetime) -> FixTime:
        """The time to use for a report received at `received` and stamped `time` by the device."""
        if time is None:
            # Whole seconds, as device clocks have: a report in the same second is not "older".
            return FixTime(received.replace(microsecond=0), True)
        unrolled = unroll(time, received)
        if unrolled is not time:
            self.rolled_over = True
        offset = self.offset
        corrected = unrolled + offset if offset else unrolled
        if corrected - received > MAX_AHEAD:
            return FixTime(received.replace(microsecond=0), True)
        # A few seconds or minutes ahead: a clock slightly fast. Never later than its arrival,
        # so that the next correct report is not "older" than this one.
        return FixTime(corrected if corrected < received else received, False)


def _snap(offset: timedelta) -> timedelta:
    """Round a measured offset: to a quarter hour when it is that close, else to the second."""
    zone = ZONE_STEP * round(offset / ZONE_STEP)
    if abs(offset - zone) <= ZONE_SNAP:
        return zone
    return timedelta(seconds=round(offset.total_seconds()))
