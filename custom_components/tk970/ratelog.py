"""Log lines a stranger can trigger: at most one per reason per interval, with a count.

Anything on the internet can reach the tracker port, so nothing a peer sends may write a log
line per frame, per connection or per made-up identity. Each reason gets one line per interval;
the next line for it says how many were held back meanwhile. The table of reasons is bounded
too: once it is full, new reasons share one line.
"""

from __future__ import annotations

from collections.abc import Callable
import logging
import time

#: Distinct reasons remembered at once; decoders can word a reason after the bytes they saw.
MAX_REASONS = 256
_OTHER = "other reasons"


class RateLimitedLog:
    """One line per reason per `interval` seconds, the held-back count on the next one."""

    def __init__(
        self,
        logger: logging.Logger,
        interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Log to `logger` at most once per reason per `interval` seconds of `clock`."""
        self._logger = logger
        self._interval = interval
        self._clock = clock
        #: reason -> (when its last line was written, lines held back since)
        self._last: dict[str, tuple[float, int]] = {}

    def log(self, level: int, reason: str, msg: str, *args: object, exc_info: bool = False) -> bool:
        """Log `msg % args` unless `reason` was logged within the interval; True if written."""
        now = self._clock()
        entry = self._last.get(reason)
        if entry is None and len(self._last) >= MAX_REASONS:
            self._prune(now)
            if len(self._last) >= MAX_REASONS:
                reason = _OTHER
                entry = self._last.get(reason)
        if entry is not None:
            last, held = entry
            if now - last < self._interval:
                self._last[reason] = (last, held + 1)
                return False
            if held:
                msg = f"{msg} ({held} similar lines held back in the last {now - last:.0f} s)"
        self._last[reason] = (now, 0)
        self._logger.log(level, msg, *args, exc_info=exc_info)
        return True

    def warning(self, reason: str, msg: str, *args: object) -> bool:
        """`log` at WARNING."""
        return self.log(logging.WARNING, reason, msg, *args)

    def info(self, reason: str, msg: str, *args: object) -> bool:
        """`log` at INFO."""
        return self.log(logging.INFO, reason, msg, *args)

    def exception(self, reason: str, msg: str, *args: object) -> bool:
        """`log` at ERROR with the exception being handled (a bug of ours, met again and again
        by whatever a peer keeps sending)."""
        return self.log(logging.ERROR, reason, msg, *args, exc_info=True)

    def _prune(self, now: float) -> None:
        """Forget reasons whose interval is over (their next line starts a new count)."""
        for reason, (last, _) in list(self._last.items()):
            if now - last >= self._interval:
                del self._last[reason]
