"""Fallback positioning in the gateway: the integration's engine, its learned table in a file.

The same engine as in Home Assistant (`custom_components.tk970.positioning`) and the same rule
for what may be shown (`tracking.Tracker.show_fallback`, "never worse"). What differs is only
where things live:

* the options (interfaces.md §4) come from the command line, the same for every tracker:
  `--learn-positions/--no-learn-positions`, `--geolocation-provider`, `--geolocation-url`,
  `--geolocation-api-key`;
* the learned table is a JSON file in the data folder (`--data-dir`), read at start, written
  in a worker thread at most `save_delay` after the first change and once more on the way out
  (`positioning.JsonFile`: atomic, owner-readable only);
* online lookups use an aiohttp session of the gateway's own.

No imported cell database: that import is a Home Assistant action. `GatewayLocator` is one
tracker's `TrackerLocator`; a problem with the provider's key or quota is logged by the
engine (once per problem, with back-off), as the gateway has no repair issues.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
import logging
from pathlib import Path
import time
from typing import TYPE_CHECKING, Any

from custom_components.tk970.clock import FixTime
from custom_components.tk970.positioning import (
    Estimate,
    JsonFile,
    LearnedTable,
    OnlineLookup,
    ProviderConfig,
    Resolver,
)
from custom_components.tk970.positioning.learned import snapshot_data
from custom_components.tk970.positioning.tracker import TrackerLocator

from . import __version__

if TYPE_CHECKING:
    import aiohttp

_LOGGER = logging.getLogger(__name__)

#: The learned table's file in the data folder.
LEARNED_FILE = "learned_positions.json"
#: The table is saved this long after its first change (later changes ride along).
SAVE_DELAY = 300.0
USER_AGENT = f"tk970-gateway/{__version__} (+https://github.com/tk970/tk970)"


@dataclass(slots=True)
class PositioningSettings:
    """What the command line configures."""

    data_dir: Path
    #: learn cell and Wi-Fi positions from fixes and resolve fix-less reports from them
    learn: bool = True
    #: the online provider asked when the learned table cannot answer (None: no cloud)
    provider: ProviderConfig | None = None
    save_delay: float = SAVE_DELAY

    @property
    def table_path(self) -> Path:
        """Where the learned table is kept."""
        return self.data_dir / LEARNED_FILE


class GatewayLocator(TrackerLocator[FixTime]):
    """One tracker's fallback positioning, with the gateway's options."""

    def __init__(
        self, shared: Positioning, tracker: str, show: Callable[[Estimate, FixTime], None]
    ) -> None:
        """Attach to the gateway's engine."""
        super().__init__(shared.resolver, tracker, show)
        self.shared = shared

    @property
    def learn(self) -> bool:
        """`--learn-positions`."""
        return self.shared.settings.learn

    @property
    def provider(self) -> ProviderConfig | None:
        """`--geolocation-provider` and its URL and key."""
        return self.shared.settings.provider

    def now(self) -> int:
        """The wall clock (the learned table's ages)."""
        return int(time.time())

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """A task the engine cancels when the gateway stops."""
        return self.shared.spawn(coro)


class Positioning:
    """The gateway's fallback positioning: learned table, online lookups, the table's file."""

    def __init__(self, settings: PositioningSettings) -> None:
        """Set up the parts; `start` reads the saved table."""
        self.settings = settings
        self.file = JsonFile(settings.table_path)
        self.table = LearnedTable(on_change=self._schedule_save)
        self.online = OnlineLookup(self._session, user_agent=USER_AGENT)
        self.resolver = Resolver(self.table, None, self.online)
        self._http: aiohttp.ClientSession | None = None
        self._save_timer: asyncio.TimerHandle | None = None
        #: learned since the last save began
        self._dirty = False
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        """Read the learned table (a missing or damaged file starts an empty one)."""
        saved = await asyncio.to_thread(self.file.load)
        loaded = self.table.load_data(saved, now=int(time.time()))
        provider = self.settings.provider
        _LOGGER.info(
            "Fallback positioning: %s, %d learned cells and access points in %s; online: %s",
            "learning" if self.settings.learn else "not learning",
            loaded,
            self.file.path,
            provider.host if provider is not None else "none",
        )

    def locator(self, tracker: str, show: Callable[[Estimate, FixTime], None]) -> GatewayLocator:
        """One tracker's fallback positioning; `show` gets estimates resolved later."""
        return GatewayLocator(self, tracker, show)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run a background lookup, kept until it ends (cancelled by `close`)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            import aiohttp  # noqa: PLC0415 - only once a provider is asked

            self._http = aiohttp.ClientSession()
        return self._http

    def _schedule_save(self) -> None:
        self._dirty = True
        if self._save_timer is None:
            self._save_timer = asyncio.get_running_loop().call_later(
                self.settings.save_delay, self._save_due
            )

    def _save_due(self) -> None:
        self._save_timer = None
        self.spawn(self.save())

    async def save(self) -> None:
        """Write the table now (the copy in the event loop, the JSON in a worker thread)."""
        self._dirty = False
        snapshot = self.table.snapshot()
        try:
            await asyncio.to_thread(lambda: self.file.save(snapshot_data(snapshot)))
        except OSError as err:
            _LOGGER.warning("Cannot save the learned positions to %s: %s", self.file.path, err)

    async def close(self) -> None:
        """Stop lookups, write a pending change, close the HTTP session."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._save_timer is not None:
            self._save_timer.cancel()
            self._save_timer = None
        if self._dirty:
            await self.save()
        if self._http is not None:
            await self._http.close()
            self._http = None
