"""The resolver's order (learned, imported, online), the "never worse" rule, and estimates
saved with the tracker state."""

from __future__ import annotations

from pathlib import Path

from aiohttp import ClientSession
import pytest

from custom_components.tk970.positioning import (
    CellDatabase,
    Estimate,
    Kind,
    LearnedTable,
    Method,
    OnlineLookup,
    Outcome,
    ProviderConfig,
    ProviderKind,
    Resolver,
    fallback_moves,
)
from custom_components.tk970.positioning.observations import Observation, ObservedCell
from tests.positioning.fake_provider import FakeProvider

pytestmark = pytest.mark.usefixtures("socket_enabled")

NOW = 1_790_000_000
LEARNED = (262, 1, 100, 100_001)
IMPORTED = (262, 1, 100, 100_002)
UNKNOWN = (262, 1, 100, 100_003)


def cells(*keys: tuple[int, int, int, int]) -> Observation:
    return Observation(cells=tuple(ObservedCell(key, None) for key in keys))


async def test_sources_are_asked_in_order(tmp_path: Path, provider: FakeProvider) -> None:
    """Learned data first, then the imported cells, and only then the provider."""
    table = LearnedTable()
    for minute in range(3):
        table.learn(
            cells(LEARNED), latitude=52.5, longitude=13.4, accuracy_m=10, speed_kmh=0,
            now=NOW + 60 * minute,
        )  # fmt: skip
    source = tmp_path / "cells.csv"
    source.write_text(f"LTE,262,1,100,{IMPORTED[3]},,13.5,52.6,900,5,1,0,1700000000,0\n")
    database = CellDatabase(tmp_path / "cells.sqlite3")
    database.import_csv(source)
    config = ProviderConfig(ProviderKind.MLS, f"{provider.url}/v1/geolocate")
    async with ClientSession() as session:
        resolver = Resolver(table, database, OnlineLookup(lambda: session))
        learned = await resolver.resolve(
            cells(LEARNED, IMPORTED), tracker="van", now=NOW, provider=config
        )
        assert learned.estimate is not None
        assert learned.estimate.method is Method.LEARNED
        imported = await resolver.resolve(cells(IMPORTED), tracker="van", now=NOW, provider=config)
        assert imported.estimate is not None
        assert imported.estimate.method is Method.IMPORTED
        assert (imported.estimate.latitude, imported.estimate.accuracy) == (52.6, 900)
        assert provider.requests == []
        online = await resolver.resolve(cells(UNKNOWN), tracker="van", now=NOW, provider=config)
        assert online.online is not None
        assert online.online.outcome is Outcome.FOUND
        assert online.estimate is not None
        assert online.estimate.method is Method.ONLINE
        local_only = await resolver.resolve(cells(UNKNOWN), tracker="van", now=NOW)
        assert local_only.estimate is None
        not_learned = await resolver.resolve(
            cells(LEARNED), tracker="van", now=NOW, use_learned=False
        )
        assert not_learned.estimate is None
    database.close()


def test_never_worse() -> None:
    """A fallback moves the tracker only away from a fix outside its circle."""
    estimate = Estimate(
        latitude=52.5, longitude=13.4, accuracy=1000, kind=Kind.LBS, method=Method.LEARNED
    )
    assert fallback_moves(estimate, None, None)
    assert not fallback_moves(estimate, 52.505, 13.4)  # 556 m away: inside
    assert fallback_moves(estimate, 52.52, 13.4)  # 2.2 km away: it moved


def test_estimates_survive_a_round_trip() -> None:
    """What the tracker state saves comes back the same; anything malformed is dropped."""
    estimate = Estimate(
        latitude=52.5, longitude=13.4, accuracy=43, kind=Kind.WIFI, method=Method.ONLINE,
        provider="api.beacondb.net", attribution="Position: api.beacondb.net", stations=6,
    )  # fmt: skip
    assert Estimate.from_dict(estimate.as_dict()) == estimate
    for broken in (None, [], {"latitude": 1}, {**estimate.as_dict(), "kind": "sonar"}):
        assert Estimate.from_dict(broken) is None
    odd = Estimate.from_dict({**estimate.as_dict(), "provider": 5, "stations": "x"})
    assert odd is not None
    assert (odd.provider, odd.stations) == (None, 1)
