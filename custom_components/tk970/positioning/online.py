"""Asking online providers with restraint: cache, rate limits, single flight and back-off.

An `OnlineLookup` is shared by all trackers of an installation. For each lookup it:

1. answers from its cache when the same set of cells and access points (signal levels aside:
   they change with every report) was asked recently: answers are kept 7 days, "not found"
   24 hours, in memory only (Google's terms restrict storing its answers);
2. waits out a provider that is backing off: after a quota or rate limit until the reset, after
   an invalid key for a day (or until the key changes, which makes it another provider), after
   outages 2 minutes doubling up to 6 hours;
3. joins a request already under way for the same stations (single flight);
4. asks at most once per tracker per `min_interval`, and at most `daily_cap` times a day in all;
5. asks, and remembers the outcome.

Each problem is logged once when it starts and once when it is over, never per report. A
lookup result names the `Problem` (invalid key, quota) a user must act on, so Home Assistant
can raise a repair issue; nothing here knows Home Assistant.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
import logging
from typing import TYPE_CHECKING, Any

from .estimate import Estimate
from .observations import CellKey, Observation
from .providers import (
    InvalidKeyError,
    NotFoundError,
    ProviderConfig,
    ProviderError,
    QuotaError,
    RateLimitedError,
    RequestRejectedError,
    UnavailableError,
    can_ask,
    query,
)

if TYPE_CHECKING:
    import aiohttp

_LOGGER = logging.getLogger(__name__)

ANSWER_TTL = timedelta(days=7)
NOT_FOUND_TTL = timedelta(hours=24)
INVALID_KEY_PAUSE = timedelta(hours=24)
FIRST_RETRY = timedelta(minutes=2)
LONGEST_RETRY = timedelta(hours=6)
DEFAULT_MIN_INTERVAL = timedelta(minutes=3)
DEFAULT_DAILY_CAP = 1000
DEFAULT_TIMEOUT = 10.0
MAX_CACHED = 4096
DEFAULT_USER_AGENT = "tk970 (+https://github.com/tk970/tk970)"

type _CacheKey = tuple[str, str, frozenset[CellKey], frozenset[str]]


class Outcome(StrEnum):
    """How a lookup ended."""

    FOUND = "found"  #: the provider answered now
    CACHED = "cached"  #: the same stations were answered recently
    NOT_FOUND = "not_found"  #: the provider knows none of them (now or recently)
    THROTTLED = "throttled"  #: not asked: this tracker asked a moment ago, or the daily cap
    BLOCKED = "blocked"  #: not asked: the provider is backing off
    FAILED = "failed"  #: asked, and it failed
    UNASKABLE = "unaskable"  #: nothing a provider could use (no cell, under two access points)


class Problem(StrEnum):
    """What the user must fix for a provider to answer again."""

    INVALID_KEY = "invalid_key"
    QUOTA = "quota"


@dataclass(frozen=True, slots=True)
class LookupResult:
    """The outcome of one lookup; the estimate when there is one."""

    outcome: Outcome
    estimate: Estimate | None = None
    #: set while the provider cannot answer until the user acts (or the quota resets)
    problem: Problem | None = None


@dataclass(slots=True)
class _Health:
    host: str
    blocked_until: datetime | None = None
    problem: Problem | None = None
    failures: int = 0
    #: what was logged last, so a lasting problem is logged once
    reported: str | None = None


@dataclass(slots=True)
class _Counter:
    day: date | None = None
    count: int = 0
    warned: bool = False


@dataclass(slots=True)
class OnlineStats:
    """Counters for diagnostics."""

    requests: int = 0
    answers: int = 0
    not_found: int = 0
    failures: int = 0
    cache_hits: int = 0
    throttled: int = 0
    joined: int = 0
    by_outcome: dict[str, int] = field(default_factory=dict)


class OnlineLookup:
    """Online lookups for all trackers, within the limits above."""

    def __init__(
        self,
        session: Callable[[], aiohttp.ClientSession],
        *,
        user_agent: str = DEFAULT_USER_AGENT,
        min_interval: timedelta = DEFAULT_MIN_INTERVAL,
        daily_cap: int = DEFAULT_DAILY_CAP,
        timeout: float = DEFAULT_TIMEOUT,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """`session` returns the aiohttp session to use (Home Assistant's shared one)."""
        self.session = session
        self.user_agent = user_agent
        self.min_interval = min_interval
        self.daily_cap = daily_cap
        self.timeout = timeout
        self.clock = clock
        self.stats = OnlineStats()
        self._cache: OrderedDict[_CacheKey, tuple[datetime, Estimate | None]] = OrderedDict()
        self._inflight: dict[_CacheKey, asyncio.Future[LookupResult]] = {}
        self._last_request: dict[str, datetime] = {}
        self._health: dict[str, _Health] = {}
        self._today = _Counter()

    def problem(self, config: ProviderConfig) -> Problem | None:
        """The problem a provider has now, if the user must act."""
        health = self._health.get(config.ident)
        if health is None or health.blocked_until is None or health.blocked_until <= self.clock():
            return None
        return health.problem

    async def lookup(
        self, config: ProviderConfig, tracker: str, observation: Observation
    ) -> LookupResult:
        """Resolve a report's stations online, if the limits allow."""
        result = await self._lookup(config, tracker, observation)
        counts = self.stats.by_outcome
        counts[result.outcome] = counts.get(result.outcome, 0) + 1
        return result

    async def _lookup(
        self, config: ProviderConfig, tracker: str, observation: Observation
    ) -> LookupResult:
        if not can_ask(observation):
            return LookupResult(Outcome.UNASKABLE)
        now = self.clock()
        key: _CacheKey = (config.kind, config.url, *observation.signature)
        cached = self._cached(key, now)
        if cached is not None:
            self.stats.cache_hits += 1
            estimate = cached[1]
            return LookupResult(Outcome.CACHED if estimate else Outcome.NOT_FOUND, estimate)
        health = self._health.setdefault(config.ident, _Health(config.host))
        if health.blocked_until is not None and health.blocked_until > now:
            return LookupResult(Outcome.BLOCKED, problem=health.problem)
        running = self._inflight.get(key)
        if running is not None:
            self.stats.joined += 1
            return await asyncio.shield(running)
        last = self._last_request.get(tracker)
        if last is not None and now - last < self.min_interval:
            self.stats.throttled += 1
            return LookupResult(Outcome.THROTTLED)
        if not self._count_request(now):
            self.stats.throttled += 1
            return LookupResult(Outcome.THROTTLED)
        self._remember_request(tracker, now)
        future: asyncio.Future[LookupResult] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        result = LookupResult(Outcome.FAILED)
        try:
            result = await self._ask(config, observation, key, health)
        finally:
            del self._inflight[key]
            future.set_result(result)
        return result

    async def _ask(
        self,
        config: ProviderConfig,
        observation: Observation,
        key: _CacheKey,
        health: _Health,
    ) -> LookupResult:
        self.stats.requests += 1
        try:
            estimate = await query(
                self.session(),
                config,
                observation,
                timeout=self.timeout,
                user_agent=self.user_agent,
                now=self.clock(),
            )
        except NotFoundError:
            self.stats.not_found += 1
            self._store(key, None, NOT_FOUND_TTL)
            self._recovered(config, health)
            return LookupResult(Outcome.NOT_FOUND)
        except RequestRejectedError as err:
            # Our request's content, not the provider's state: resending it will not help.
            self.stats.failures += 1
            self._store(key, None, NOT_FOUND_TTL)
            self._report(config, health, "rejected", f"rejected a request: {err}")
            return LookupResult(Outcome.NOT_FOUND)
        except ProviderError as err:
            self.stats.failures += 1
            self._back_off(config, health, err)
            return LookupResult(Outcome.FAILED, problem=health.problem)
        self.stats.answers += 1
        self._store(key, estimate, ANSWER_TTL)
        self._recovered(config, health)
        return LookupResult(Outcome.FOUND, estimate)

    # -- limits -----------------------------------------------------------------------------

    def _count_request(self, now: datetime) -> bool:
        """Count a request against the daily cap; False when the cap is reached."""
        today = self._today
        if today.day != now.date():
            self._today = today = _Counter(now.date())
        if today.count >= self.daily_cap:
            if not today.warned:
                today.warned = True
                _LOGGER.warning(
                    "Online geolocation: %d requests today, the daily cap; no more until "
                    "midnight UTC",
                    today.count,
                )
            return False
        today.count += 1
        return True

    def _remember_request(self, tracker: str, now: datetime) -> None:
        if len(self._last_request) > 10_000:
            horizon = now - self.min_interval
            for name in [n for n, t in self._last_request.items() if t < horizon]:
                del self._last_request[name]
        self._last_request[tracker] = now

    def _back_off(self, config: ProviderConfig, health: _Health, err: ProviderError) -> None:
        now = self.clock()
        if isinstance(err, InvalidKeyError):
            health.problem = Problem.INVALID_KEY
            health.blocked_until = now + INVALID_KEY_PAUSE
            self._report(
                config, health, "invalid_key", f"rejected the key ({err}); not asking for a day"
            )
        elif isinstance(err, QuotaError):
            health.problem = Problem.QUOTA
            health.blocked_until = err.retry_at
            self._report(
                config,
                health,
                "quota",
                f"quota spent ({err}); not asking until {err.retry_at:%Y-%m-%d %H:%M} UTC",
            )
        elif isinstance(err, RateLimitedError):
            health.problem = None
            health.blocked_until = err.retry_at
            self._report(
                config,
                health,
                "rate",
                f"rate limit ({err}); waiting until {err.retry_at:%H:%M} UTC",
            )
        else:
            health.problem = None
            health.failures += 1
            pause = min(FIRST_RETRY * 2 ** (health.failures - 1), LONGEST_RETRY)
            health.blocked_until = now + pause
            if not isinstance(err, UnavailableError):
                _LOGGER.debug("Online geolocation: unexpected error %r", err)
            self._report(
                config,
                health,
                "unavailable",
                f"unavailable ({err}); retrying in {pause.total_seconds() / 60:.0f} min",
            )

    def _report(self, config: ProviderConfig, health: _Health, what: str, text: str) -> None:
        """Log a problem once; a repeat of the same problem goes to the debug log."""
        level = logging.DEBUG if health.reported == what else logging.WARNING
        health.reported = what
        _LOGGER.log(level, "Online geolocation at %s %s", config.host, text)

    def _recovered(self, config: ProviderConfig, health: _Health) -> None:
        if health.reported is not None and health.reported != "rejected":
            _LOGGER.info("Online geolocation at %s answers again", config.host)
        health.reported = None
        health.problem = None
        health.failures = 0
        health.blocked_until = None

    # -- cache ------------------------------------------------------------------------------

    def _cached(self, key: _CacheKey, now: datetime) -> tuple[datetime, Estimate | None] | None:
        entry = self._cache.get(key)
        if entry is None:
            return None
        if entry[0] <= now:
            del self._cache[key]
            return None
        self._cache.move_to_end(key)
        return entry

    def _store(self, key: _CacheKey, estimate: Estimate | None, ttl: timedelta) -> None:
        self._cache[key] = (self.clock() + ttl, estimate)
        self._cache.move_to_end(key)
        while len(self._cache) > MAX_CACHED:
            self._cache.popitem(last=False)

    def diagnostics(self) -> dict[str, Any]:
        """Counters and provider states (hosts only, never keys)."""
        now = self.clock()
        return {
            "cached": len(self._cache),
            "requests_today": self._today.count if self._today.day == now.date() else 0,
            "daily_cap": self.daily_cap,
            "stats": {
                "requests": self.stats.requests,
                "answers": self.stats.answers,
                "not_found": self.stats.not_found,
                "failures": self.stats.failures,
                "cache_hits": self.stats.cache_hits,
                "throttled": self.stats.throttled,
                "joined": self.stats.joined,
            },
            "outcomes": dict(self.stats.by_outcome),
            "providers": [
                {
                    "provider": health.host,
                    "problem": health.problem,
                    "waiting_until": health.blocked_until.isoformat()
                    if health.blocked_until and health.blocked_until > now
                    else None,
                    "failures": health.failures,
                }
                for health in self._health.values()
            ],
        }
