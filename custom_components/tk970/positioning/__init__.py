"""Fallback positioning: a position for reports without a GNSS fix, from cells and Wi-Fi.

Three sources, asked in this order, without Home Assistant (the MQTT gateway uses the same):

1. `LearnedTable` (`learned.py`): where this installation's own trackers had a fix while they
   saw each cell and access point. Local; nothing leaves the house.
2. `CellDatabase` (`imported.py`): an OpenCellID-format export the user imported into SQLite.
3. `OnlineLookup` (`online.py`) over a provider (`providers.py`): an MLS-compatible geolocate
   URL (BeaconDB, Google, self-hosted) or Unwired Labs, cached and rate-limited.

`Resolver` (`resolver.py`) ties them together; `fallback_moves()` (`estimate.py`) decides
whether an estimate may replace the last GNSS position (the "never worse" rule).

Typical use, per report (the gateway's loop; Home Assistant's adapter is `..fallback`)::

    table = LearnedTable(on_change=schedule_save)
    table.load_data(JsonFile(path).load(), now=int(time.time()))
    resolver = Resolver(table, CellDatabase(db_path), OnlineLookup(lambda: session))

    observation = observe(message.cells, message.wifi)
    if has_fix(message):
        resolver.learn(observation, latitude=..., longitude=..., accuracy_m=...,
                       speed_kmh=message.speed_kmh, now=now)
    elif observation:
        resolution = await resolver.resolve(
            observation, tracker=identity, now=now, provider=ProviderConfig(
                ProviderKind.MLS, BEACONDB_URL))   # or provider=None: local only
        if resolution.estimate and fallback_moves(resolution.estimate, gnss_lat, gnss_lon):
            show(resolution.estimate)  # .latitude, .longitude, .accuracy (m), .kind, .method

    JsonFile(path).save(table.as_data())   # from a worker thread, after changes

Every class here is single-threaded asyncio code except `CellDatabase`, whose methods block
(the resolver runs them in a worker thread; so must any other caller).
"""

from .estimate import Estimate, Kind, Method, distance_m, fallback_moves
from .imported import (
    ATTRIBUTION_OPENCELLID,
    CellDatabase,
    ImportCancelledError,
    ImportFormatError,
    ImportProgress,
    ImportSummary,
)
from .learned import LearnedTable
from .observations import Observation, has_fix, observe
from .online import LookupResult, OnlineLookup, Outcome, Problem
from .persist import JsonFile
from .providers import (
    BEACONDB_URL,
    DEFAULT_URLS,
    UNWIREDLABS_URL,
    ProviderConfig,
    ProviderKind,
)
from .resolver import Resolution, Resolver

__all__ = [
    "ATTRIBUTION_OPENCELLID",
    "BEACONDB_URL",
    "DEFAULT_URLS",
    "UNWIREDLABS_URL",
    "CellDatabase",
    "Estimate",
    "ImportCancelledError",
    "ImportFormatError",
    "ImportProgress",
    "ImportSummary",
    "JsonFile",
    "Kind",
    "LearnedTable",
    "LookupResult",
    "Method",
    "Observation",
    "OnlineLookup",
    "Outcome",
    "Problem",
    "ProviderConfig",
    "ProviderKind",
    "Resolution",
    "Resolver",
    "distance_m",
    "fallback_moves",
    "has_fix",
    "observe",
]
