"""Fallback positioning in Home Assistant: the shared engine, each tracker's options, repairs.

The engine (`positioning/`) knows nothing of Home Assistant; this module plugs it in:

* `Positioning`, one per Home Assistant while any tracker is set up: the learned table saved
  with a `Store` (at most `SAVE_DELAY` after a change, and at the final write), the imported
  cell database in `.storage`, and online lookups on Home Assistant's shared HTTP session.
* `TrackerPositioning`, one per tracker (its coordinator owns it), the engine's per-tracker
  `positioning.tracker.TrackerLocator` (shared with the MQTT gateway: learns from the
  tracker's fixes; resolves its reports without a fix from the learned table at once, from the
  database and the provider in the background) with Home Assistant's parts: the tracker's
  options read where they are used, so a change applies at once; the entry's background task;
  one repair issue per tracker when the provider rejects the key or its quota is spent,
  removed once the provider answers again or the options change.

The tracker rules decide whether an estimate may be shown (`tracking.Tracker.show_fallback`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from homeassistant.const import EVENT_HOMEASSISTANT_FINAL_WRITE, __version__ as ha_version
from homeassistant.core import CALLBACK_TYPE, Event, HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.event import async_call_later
from homeassistant.helpers.selector import (
    BooleanSelector,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)
from homeassistant.helpers.storage import STORAGE_DIR, Store
from homeassistant.loader import async_get_integration
from homeassistant.util import dt as dt_util
from homeassistant.util.hass_dict import HassKey

from . import vol
from .const import (
    CONF_GEOLOCATION_API_KEY,
    CONF_GEOLOCATION_PROVIDER,
    CONF_GEOLOCATION_URL,
    CONF_LEARN_POSITIONS,
    DEFAULT_LEARN_POSITIONS,
    DOMAIN,
    LOGGER,
    PROVIDER_NONE,
)
from .positioning import (
    DEFAULT_URLS,
    CellDatabase,
    Estimate,
    LearnedTable,
    OnlineLookup,
    Outcome,
    Problem,
    ProviderConfig,
    ProviderKind,
    Resolution,
    Resolver,
)
from .positioning.learned import snapshot_data
from .positioning.tracker import TrackerLocator, provider_from

if TYPE_CHECKING:
    from homeassistant.config_entries import ConfigEntry

STORAGE_KEY = f"{DOMAIN}.learned_positions"
STORAGE_VERSION = 1
#: The learned table is saved this long after its first change (later changes ride along): a
#: crash loses at most this much learning, and a busy fleet writes it twice an hour at most.
SAVE_DELAY = 300.0
DATABASE_FILE = f"{DOMAIN}.cells.sqlite3"

DATA_POSITIONING: HassKey[Positioning] = HassKey(f"{DOMAIN}_positioning")
DATA_DATABASE: HassKey[CellDatabase] = HassKey(f"{DOMAIN}_cell_database")
_LOCK: HassKey[asyncio.Lock] = HassKey(f"{DOMAIN}_positioning_lock")


def database_path(hass: HomeAssistant) -> Path:
    """Where the imported cell database lives (beside Home Assistant's own storage)."""
    return Path(hass.config.path(STORAGE_DIR, DATABASE_FILE))


@callback
def async_get_database(hass: HomeAssistant) -> CellDatabase:
    """The installation's imported cell database (one object; the file may not exist)."""
    database = hass.data.get(DATA_DATABASE)
    if database is None:
        database = hass.data[DATA_DATABASE] = CellDatabase(database_path(hass))
    return database


def provider_config(options: Mapping[str, Any]) -> ProviderConfig | None:
    """The online provider a tracker's options choose, or None."""
    return provider_from(
        options.get(CONF_GEOLOCATION_PROVIDER, PROVIDER_NONE),
        options.get(CONF_GEOLOCATION_URL),
        options.get(CONF_GEOLOCATION_API_KEY),
    )


class Positioning:
    """The installation's fallback positioning: learned table, cell database, online lookups."""

    def __init__(self, hass: HomeAssistant) -> None:
        """Set up the parts; `async_load` reads the saved table."""
        self.hass = hass
        self.store: Store[dict[str, Any]] = Store(hass, STORAGE_VERSION, STORAGE_KEY)
        self.table = LearnedTable(on_change=self._schedule_save)
        self.database = async_get_database(hass)
        self.online = OnlineLookup(lambda: async_get_clientsession(hass))
        self.resolver = Resolver(
            self.table, self.database, self.online, run_blocking=hass.async_add_executor_job
        )
        self.users: set[str] = set()
        self._save_timer: CALLBACK_TYPE | None = None
        self._unsubscribe_final_write: CALLBACK_TYPE | None = None

    async def async_load(self) -> None:
        """Read the saved table, name ourselves to providers, save at Home Assistant's end."""
        saved = await self.store.async_load()
        loaded = self.table.load_data(saved, now=_now())
        if loaded:
            LOGGER.debug("Learned positions of %d cells and access points loaded", loaded)
        integration = await async_get_integration(self.hass, DOMAIN)
        self.online.user_agent = (
            f"tk970/{integration.version} (Home Assistant {ha_version}; "
            "+https://github.com/tk970/tk970)"
        )
        self._unsubscribe_final_write = self.hass.bus.async_listen(
            EVENT_HOMEASSISTANT_FINAL_WRITE, self._async_final_write
        )

    @callback
    def _schedule_save(self) -> None:
        if self._save_timer is None:
            self._save_timer = async_call_later(self.hass, SAVE_DELAY, self._save_due)

    @callback
    def _save_due(self, _now: datetime) -> None:
        self._save_timer = None
        self.hass.async_create_task(self._async_write(), f"{DOMAIN} save learned positions")

    async def _async_write(self) -> None:
        # Only the copy is made in the event loop; a full table's formatting takes too long
        # for it, and runs in a worker thread like the Store's own JSON encoding.
        snapshot = self.table.snapshot()
        data = await self.hass.async_add_executor_job(snapshot_data, snapshot)
        await self.store.async_save(data)

    async def _async_final_write(self, _event: Event) -> None:
        await self.async_save_now()

    async def async_save_now(self) -> None:
        """Write a pending change now."""
        if self._save_timer is not None:
            self._save_timer()
            self._save_timer = None
            await self._async_write()

    async def async_close(self) -> None:
        """The last tracker is gone: save, stop listening, release the database file."""
        await self.async_save_now()
        if self._unsubscribe_final_write is not None:
            self._unsubscribe_final_write()
            self._unsubscribe_final_write = None
        await self.hass.async_add_executor_job(self.database.close)

    async def async_diagnostics(self) -> dict[str, Any]:
        """Sizes and states for diagnostics (no station, no position, no key)."""
        database = await self.hass.async_add_executor_job(self.database.stats)
        return {
            "learned": self.table.stats(),
            "cell_database": database,
            "online": self.online.diagnostics(),
        }


async def async_acquire_positioning(hass: HomeAssistant, entry_id: str) -> Positioning:
    """The shared engine, loaded by the first tracker that needs it."""
    async with hass.data.setdefault(_LOCK, asyncio.Lock()):
        positioning = hass.data.get(DATA_POSITIONING)
        if positioning is None:
            positioning = Positioning(hass)
            await positioning.async_load()
            hass.data[DATA_POSITIONING] = positioning
        positioning.users.add(entry_id)
        return positioning


async def async_release_positioning(hass: HomeAssistant, entry_id: str) -> None:
    """A tracker is unloaded; the last one saves and closes the engine."""
    async with hass.data.setdefault(_LOCK, asyncio.Lock()):
        positioning = hass.data.get(DATA_POSITIONING)
        if positioning is None:
            return
        positioning.users.discard(entry_id)
        if not positioning.users:
            del hass.data[DATA_POSITIONING]
            await positioning.async_close()


async def async_remove_positioning_data(hass: HomeAssistant) -> None:
    """The last tracker was removed: delete the learned table and the imported cells."""
    await Store[dict[str, Any]](hass, STORAGE_VERSION, STORAGE_KEY).async_remove()
    if await hass.async_add_executor_job(async_get_database(hass).delete):
        LOGGER.info("Removed the imported cell database with the last tracker")


class TrackerPositioning[W](TrackerLocator[W]):
    """One tracker's fallback positioning in Home Assistant; `W` is how its coordinator orders
    reports in time.

    Its options are the entry's, read where they are used; its background task is the entry's;
    a provider that rejects the key or whose quota is spent raises one repair issue.
    """

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry[Any],
        shared: Positioning,
        show: Callable[[Estimate, W], None],
    ) -> None:
        """Attach to the shared engine."""
        super().__init__(shared.resolver, entry.entry_id, show)
        self.hass = hass
        self.entry = entry
        self.shared = shared
        self._issue: Problem | None = None

    @property
    def learn(self) -> bool:
        """The `learn_positions` option."""
        return bool(self.entry.options.get(CONF_LEARN_POSITIONS, DEFAULT_LEARN_POSITIONS))

    @property
    def provider(self) -> ProviderConfig | None:
        """The online provider the options choose."""
        return provider_config(self.entry.options)

    def now(self) -> int:
        """Home Assistant's time."""
        return int(dt_util.utcnow().timestamp())

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """A background task of the entry (cancelled when it unloads)."""
        return self.entry.async_create_background_task(
            self.hass, coro, f"{DOMAIN} fallback {self.tracker}"
        )

    def follow_provider(self, provider: ProviderConfig | None, resolution: Resolution) -> None:
        """Raise a repair issue when the user must act; remove it when the provider answers."""
        result = resolution.online
        if provider is None or result is None:
            return
        if result.problem is not None:
            self._raise_issue(result.problem, provider)
        elif self._issue is not None and result.outcome in (Outcome.FOUND, Outcome.NOT_FOUND):
            self.clear_issues()

    def _raise_issue(self, problem: Problem, provider: ProviderConfig) -> None:
        if self._issue is problem:
            return
        self.clear_issues()
        self._issue = problem
        ir.async_create_issue(
            self.hass,
            DOMAIN,
            issue_id(problem, self.entry.entry_id),
            is_fixable=False,
            severity=ir.IssueSeverity.WARNING,
            translation_key=f"geolocation_{problem.value}",
            translation_placeholders={"name": self.entry.title, "provider": provider.host},
        )

    @callback
    def clear_issues(self) -> None:
        """Remove this tracker's provider repair issues (the options changed, or it answers)."""
        self._issue = None
        async_delete_issues(self.hass, self.entry.entry_id)

    async def async_shutdown(self) -> None:
        """Stop resolving (the entry is unloading)."""
        await self.shutdown()


def issue_id(problem: Problem, entry_id: str) -> str:
    """The repair issue of one tracker's provider problem."""
    return f"geolocation_{problem.value}_{entry_id}"


@callback
def async_delete_issues(hass: HomeAssistant, entry_id: str) -> None:
    """Remove a tracker's provider repair issues."""
    for problem in Problem:
        ir.async_delete_issue(hass, DOMAIN, issue_id(problem, entry_id))


def _now() -> int:
    return int(dt_util.utcnow().timestamp())


def option_fields(options: Mapping[str, Any]) -> dict[Any, Any]:
    """The options form's fallback positioning fields, filled from `options`."""
    return {
        vol.Required(
            CONF_LEARN_POSITIONS,
            default=options.get(CONF_LEARN_POSITIONS, DEFAULT_LEARN_POSITIONS),
        ): BooleanSelector(),
        vol.Required(
            CONF_GEOLOCATION_PROVIDER,
            default=options.get(CONF_GEOLOCATION_PROVIDER, PROVIDER_NONE),
        ): SelectSelector(
            SelectSelectorConfig(
                options=[PROVIDER_NONE, *(kind.value for kind in ProviderKind)],
                translation_key=CONF_GEOLOCATION_PROVIDER,
                mode=SelectSelectorMode.DROPDOWN,
            )
        ),
        vol.Optional(
            CONF_GEOLOCATION_URL,
            description={"suggested_value": options.get(CONF_GEOLOCATION_URL)},
        ): TextSelector(TextSelectorConfig(type=TextSelectorType.URL)),
        vol.Optional(
            CONF_GEOLOCATION_API_KEY,
            description={"suggested_value": options.get(CONF_GEOLOCATION_API_KEY)},
        ): TextSelector(TextSelectorConfig(type=TextSelectorType.PASSWORD)),
    }


def validate_options(user_input: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Check and tidy the fallback positioning options; return them and the form's errors.

    An empty URL means the provider's default; so does the other provider's default URL left
    over from switching providers.
    """
    data = dict(user_input)
    errors: dict[str, str] = {}
    choice = data.get(CONF_GEOLOCATION_PROVIDER, PROVIDER_NONE)
    url = str(data.pop(CONF_GEOLOCATION_URL, "") or "").strip()
    key = str(data.pop(CONF_GEOLOCATION_API_KEY, "") or "").strip()
    if url and url not in DEFAULT_URLS.values():
        if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
            errors[CONF_GEOLOCATION_URL] = "invalid_url"
        data[CONF_GEOLOCATION_URL] = url
    elif url and choice in DEFAULT_URLS and url == DEFAULT_URLS[ProviderKind(choice)]:
        data[CONF_GEOLOCATION_URL] = url
    if key:
        data[CONF_GEOLOCATION_API_KEY] = key
    elif choice == ProviderKind.UNWIREDLABS:
        errors[CONF_GEOLOCATION_API_KEY] = "token_required"
    return data, errors
