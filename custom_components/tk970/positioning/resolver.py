"""The resolver: asks the sources in order, learned table first, online provider last.

`learned` answers at once and costs nothing, so it is asked synchronously while a report is
handled. The imported database (a file) and the online provider (the network) are asked
together in `resolve_remote()`, which the caller runs in the background: the database in a
worker thread, the provider only when the database does not know the stations either.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from .estimate import Estimate
from .imported import CellDatabase
from .learned import LearnedTable
from .observations import Observation
from .online import LookupResult, OnlineLookup
from .providers import ProviderConfig

type RunBlocking = Callable[..., Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Resolution:
    """What the background sources found; `online` says how the provider lookup went."""

    estimate: Estimate | None
    online: LookupResult | None = None


class Resolver:
    """Learned table, imported database, online provider: in that order."""

    def __init__(
        self,
        table: LearnedTable,
        database: CellDatabase | None = None,
        online: OnlineLookup | None = None,
        *,
        run_blocking: RunBlocking = asyncio.to_thread,
    ) -> None:
        """`run_blocking(fn, *args)` runs file work off the event loop (HA: its executor)."""
        self.table = table
        self.database = database
        self.online = online
        self.run_blocking = run_blocking

    def learn(
        self,
        observation: Observation,
        *,
        latitude: float,
        longitude: float,
        accuracy_m: float,
        speed_kmh: float | None,
        now: int,
    ) -> bool:
        """Teach the learned table from a report with a valid fix."""
        return self.table.learn(
            observation,
            latitude=latitude,
            longitude=longitude,
            accuracy_m=accuracy_m,
            speed_kmh=speed_kmh,
            now=now,
        )

    def resolve_learned(self, observation: Observation, *, now: int) -> Estimate | None:
        """The learned table's answer (instant)."""
        return self.table.resolve(observation, now=now)

    async def resolve_remote(
        self,
        observation: Observation,
        *,
        tracker: str,
        provider: ProviderConfig | None,
    ) -> Resolution:
        """The imported database's answer, else the provider's (if one is configured)."""
        if self.database is not None and observation.cells and self.database.maybe_present:
            estimate = await self.run_blocking(self.database.resolve, observation)
            if estimate is not None:
                return Resolution(estimate)
        if provider is None or self.online is None:
            return Resolution(None)
        result = await self.online.lookup(provider, tracker, observation)
        return Resolution(result.estimate, result)

    async def resolve(
        self,
        observation: Observation,
        *,
        tracker: str,
        now: int,
        use_learned: bool = True,
        provider: ProviderConfig | None = None,
    ) -> Resolution:
        """All sources in order, for callers that do not split the work (the gateway)."""
        if use_learned and (estimate := self.resolve_learned(observation, now=now)) is not None:
            return Resolution(estimate)
        return await self.resolve_remote(observation, tracker=tracker, provider=provider)
