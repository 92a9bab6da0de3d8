"""One tracker's fallback positioning, without Home Assistant: learn, resolve, answer later.

`TrackerLocator` is what the tracker rules (`tracking.Tracker.apply`'s `locate`) call for each
report with cells or Wi-Fi: it teaches the learned table from a report with a fix, answers a
report without one from the learned table at once, and hands what only the imported database
or the online provider can answer to one background task per tracker (the newest report
waiting supersedes older ones); that answer arrives later through `show(estimate, when)`.
Report handling never waits for a file or the network.

Home Assistant's adapter (`..fallback.TrackerPositioning`) and the MQTT gateway's
(`gateway.positioning`) subclass it: they say where the options come from (`learn`,
`provider`), how a background task starts (`spawn`), what the time is (`now`), and what a
provider's answer means to the user (`follow_provider`: repair issues, log lines).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
import logging
from typing import Any, Protocol

from .estimate import Estimate
from .imported import CellDatabase
from .observations import CellLike, Observation, ReportLike, WifiLike, has_fix, observe
from .providers import DEFAULT_URLS, ProviderConfig, ProviderKind
from .resolver import Resolution, Resolver

_LOGGER = logging.getLogger(__name__)


def provider_from(choice: object, url: object, key: object) -> ProviderConfig | None:
    """The online provider options choose (`geolocation_provider`, `geolocation_url`,
    `geolocation_api_key`, interfaces.md §4), or None (none, or no token for one that needs it).
    """
    try:
        kind = ProviderKind(str(choice))
    except ValueError:
        return None
    url = str(url or "").strip() or DEFAULT_URLS[kind]
    token = str(key or "").strip() or None
    if kind is ProviderKind.UNWIREDLABS and token is None:
        return None  # Unwired Labs answers nothing without a token
    return ProviderConfig(kind, url, token)


class Report(ReportLike, Protocol):
    """A decoded report as fallback positioning reads it (`protocol.Message`)."""

    @property
    def cells(self) -> Sequence[CellLike]: ...  # noqa: D102
    @property
    def wifi(self) -> Sequence[WifiLike]: ...  # noqa: D102
    @property
    def speed_kmh(self) -> float | None: ...  # noqa: D102
    @property
    def historical(self) -> bool: ...  # noqa: D102


@dataclass(frozen=True, slots=True)
class _Pending[W]:
    observation: Observation
    when: W
    online: bool


class TrackerLocator[W]:
    """One tracker's fallback positioning; `W` is how its caller orders reports in time.

    `show(estimate, when)` is the caller's: it decides whether the estimate is newer than
    what is shown and whether it may replace the last GNSS position.
    """

    def __init__(
        self,
        resolver: Resolver,
        tracker: str,
        show: Callable[[Estimate, W], None],
    ) -> None:
        """Resolve with `resolver` for the tracker named `tracker` (rate limits count per name)."""
        self.resolver = resolver
        self.tracker = tracker
        self.show = show
        self._pending: _Pending[W] | None = None
        self._task: asyncio.Task[None] | None = None

    # -- what the adapter says ------------------------------------------------------------------

    @property
    def learn(self) -> bool:
        """Learn from this tracker's fixes and resolve from the learned table."""
        return True

    @property
    def provider(self) -> ProviderConfig | None:
        """The online provider to ask when the local sources cannot answer."""
        return None

    def now(self) -> int:
        """The time now, in seconds since the epoch (the learned table's clock)."""
        raise NotImplementedError

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run the background resolution."""
        return asyncio.get_running_loop().create_task(coro)

    def follow_provider(self, provider: ProviderConfig | None, resolution: Resolution) -> None:
        """A provider answered (or failed): tell the user what they must act on."""

    # -- per report -----------------------------------------------------------------------------

    @property
    def database(self) -> CellDatabase | None:
        """The imported cell database, if there is one to ask."""
        database = self.resolver.database
        return database if database is not None and database.maybe_present else None

    def handle(self, message: Report, when: W, *, fix_accuracy: int) -> Estimate | None:
        """Learn from a report's fix, or resolve a report without one.

        Returns the learned table's estimate at once; the database and the provider answer
        later, through `show`.
        """
        cells, wifi = message.cells, message.wifi
        if not cells and not wifi:
            return None
        observation = observe(cells, wifi)
        if not observation:
            return None
        learn = self.learn
        if has_fix(message):
            latitude, longitude = message.latitude, message.longitude
            if learn and latitude is not None and longitude is not None:
                self.resolver.learn(
                    observation,
                    latitude=latitude,
                    longitude=longitude,
                    accuracy_m=fix_accuracy,
                    speed_kmh=message.speed_kmh,
                    now=self.now(),
                )
            return None
        if learn:
            estimate = self.resolver.resolve_learned(observation, now=self.now())
            if estimate is not None:
                return estimate
        # A late record from the device's buffer is not worth an online request: its
        # position would only be shown if nothing newer was, and a newer report is coming.
        online = not message.historical and self.provider is not None
        if not online and self.database is None:
            return None  # nobody else to ask
        self._pending = _Pending(observation, when, online=online)
        if self._task is None or self._task.done():
            self._task = self.spawn(self._resolve_pending())
        return None

    async def _resolve_pending(self) -> None:
        """Resolve the newest report waiting (older ones are superseded), until none is left."""
        while (pending := self._pending) is not None:
            self._pending = None
            provider = self.provider if pending.online else None
            try:
                resolution = await self.resolver.resolve_remote(
                    pending.observation, tracker=self.tracker, provider=provider
                )
            except Exception:  # a bug here must not end fallback positioning
                _LOGGER.exception("Fallback positioning failed for %s", self.tracker)
                continue
            self.follow_provider(provider, resolution)
            if resolution.estimate is not None:
                self.show(resolution.estimate, pending.when)

    async def shutdown(self) -> None:
        """Stop resolving (the tracker is going away)."""
        self._pending = None
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
