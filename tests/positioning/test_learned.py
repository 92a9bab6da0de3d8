"""The learned table: learning, trust, outliers, moved stations, bounds and persistence."""

from __future__ import annotations

import json
import stat

from custom_components.tk970.positioning import JsonFile, Kind, LearnedTable, Method, distance_m
from custom_components.tk970.positioning.learned import BLOCK_SECONDS, DAY, EXPIRE_SECONDS
from custom_components.tk970.positioning.observations import (
    Observation,
    ObservedCell,
    ObservedWifi,
    pack_cell,
)

T0 = 1_790_000_000  # a Unix time
BERLIN = (52.5145, 13.3500)
SERVING = (262, 1, 4711, 27197452)
NEIGHBOUR = (262, 1, 4711, 27197453)
AP1, AP2, AP3 = "aa:bb:cc:00:00:01", "aa:bb:cc:00:00:02", "aa:bb:cc:00:00:03"


def cells(*keys: tuple[int, int, int, int]) -> Observation:
    """An observation of these cells, the first serving."""
    return Observation(cells=tuple(ObservedCell(key, None) for key in keys))


def wifi(*macs: str) -> Observation:
    """An observation of these access points."""
    return Observation(wifi=tuple(ObservedWifi(mac, -60) for mac in macs))


def teach(
    table: LearnedTable,
    observation: Observation,
    where: tuple[float, float] = BERLIN,
    *,
    times: int = 1,
    now: int = T0,
    accuracy: float = 10.0,
    speed: float = 0.0,
) -> None:
    """Report a good fix with `observation`, `times` times, a minute apart."""
    for index in range(times):
        table.learn(
            observation,
            latitude=where[0],
            longitude=where[1],
            accuracy_m=accuracy,
            speed_kmh=speed,
            now=now + 60 * index,
        )


def test_a_cell_is_used_after_three_good_fixes() -> None:
    """Two sightings are not enough to trust a cell; the third is."""
    table = LearnedTable()
    teach(table, cells(SERVING), times=2)
    assert table.resolve(cells(SERVING), now=T0 + 200) is None
    teach(table, cells(SERVING), now=T0 + 300)
    estimate = table.resolve(cells(SERVING), now=T0 + 400)
    assert estimate is not None
    assert (estimate.latitude, estimate.longitude) == BERLIN
    assert (estimate.kind, estimate.method) == (Kind.LBS, Method.LEARNED)
    assert estimate.accuracy == 1000 - 500  # an LTE-sized id: the 500 m floor


def test_sightings_on_two_days_make_a_cell_trusted() -> None:
    """A cell passed once a day is trusted on the second day."""
    table = LearnedTable()
    teach(table, cells(SERVING))
    assert table.resolve(cells(SERVING), now=T0) is None
    teach(table, cells(SERVING), now=T0 + DAY)
    assert table.resolve(cells(SERVING), now=T0 + DAY) is not None


def test_neighbours_count_half() -> None:
    """A neighbour cell needs twice the sightings of a serving cell."""
    table = LearnedTable()
    teach(table, cells(SERVING, NEIGHBOUR), times=5)
    assert table.resolve(cells(NEIGHBOUR), now=T0 + 600) is None
    teach(table, cells(SERVING, NEIGHBOUR), now=T0 + 600)
    assert table.resolve(cells(NEIGHBOUR), now=T0 + 700) is not None


def test_poor_or_fast_fixes_teach_nothing() -> None:
    """A fix worse than a kilometre, or at 200 km/h, is no evidence of where a cell is."""
    table = LearnedTable()
    teach(table, cells(SERVING), times=5, accuracy=1500)
    teach(table, cells(SERVING), times=5, speed=200)
    assert len(table) == 0
    teach(table, cells(SERVING), times=5, accuracy=300)  # counts, but only a tenth each
    assert table.resolve(cells(SERVING), now=T0 + 600) is None


def test_several_cells_average_and_the_radius_covers_them() -> None:
    """Known cells of one report combine; the circle reaches every one of them."""
    table = LearnedTable()
    east = (BERLIN[0], BERLIN[1] + 0.01)  # 680 m east
    teach(table, cells(SERVING), BERLIN, times=3)
    teach(table, cells(NEIGHBOUR), east, times=3)
    estimate = table.resolve(cells(SERVING, NEIGHBOUR), now=T0 + 600)
    assert estimate is not None
    assert estimate.stations == 2
    assert BERLIN[1] < estimate.longitude < east[1]
    assert estimate.longitude < (BERLIN[1] + east[1]) / 2  # the serving cell counts double
    for where in (BERLIN, east):
        assert distance_m(estimate.latitude, estimate.longitude, *where) <= estimate.accuracy


def test_wifi_needs_two_agreeing_access_points() -> None:
    """One known access point is not a position; two close ones are; two far apart are not."""
    table = LearnedTable()
    teach(table, wifi(AP1, AP2), times=2)
    assert table.resolve(wifi(AP1), now=T0 + 200) is None
    estimate = table.resolve(wifi(AP1, AP2, AP3), now=T0 + 200)
    assert estimate is not None
    assert estimate.kind is Kind.WIFI
    assert estimate.accuracy == 50  # the Wi-Fi floor
    far = LearnedTable()
    teach(far, wifi(AP1), BERLIN, times=2)
    teach(far, wifi(AP2), (BERLIN[0] + 0.01, BERLIN[1]), times=2)  # 1.1 km north
    assert far.resolve(wifi(AP1, AP2), now=T0 + 200) is None


def test_wifi_wins_over_cells() -> None:
    """When both are known, the access points give the position."""
    table = LearnedTable()
    teach(table, Observation(cells(SERVING).cells, wifi(AP1, AP2).wifi), times=3)
    estimate = table.resolve(Observation(cells(SERVING).cells, wifi(AP1, AP2).wifi), now=T0)
    assert estimate is not None
    assert estimate.kind is Kind.WIFI


def test_a_moved_cell_is_reset_and_ignored_for_two_days() -> None:
    """A trusted cell seen 150 km away has moved: forgotten, and not relearned for 48 hours."""
    table = LearnedTable()
    teach(table, cells(SERVING), times=3)
    hamburg = (53.55, 10.0)
    teach(table, cells(SERVING), hamburg, now=T0 + 600)
    assert table.resolve(cells(SERVING), now=T0 + 700) is None
    teach(table, cells(SERVING), hamburg, times=5, now=T0 + 700)
    assert table.resolve(cells(SERVING), now=T0 + 1000) is None
    later = T0 + 700 + BLOCK_SECONDS
    teach(table, cells(SERVING), hamburg, times=3, now=later)
    estimate = table.resolve(cells(SERVING), now=later + 200)
    assert estimate is not None
    assert (estimate.latitude, estimate.longitude) == hamburg


def test_an_outlier_is_ignored_until_it_repeats() -> None:
    """One fix 10 km off (a bad fix) does not move a trusted cell; three in a row do."""
    table = LearnedTable()
    teach(table, cells(SERVING), times=3)
    off = (BERLIN[0] + 0.09, BERLIN[1])  # 10 km north
    teach(table, cells(SERVING), off, now=T0 + 600)
    estimate = table.resolve(cells(SERVING), now=T0 + 700)
    assert estimate is not None
    assert (estimate.latitude, estimate.longitude, estimate.accuracy) == (*BERLIN, 500)
    teach(table, cells(SERVING), off, times=2, now=T0 + 700)
    teach(table, cells(SERVING), off, times=3, now=T0 + 900)
    estimate = table.resolve(cells(SERVING), now=T0 + 1200)
    assert estimate is not None
    assert (estimate.latitude, estimate.longitude) == off


def test_a_travelling_access_point_is_dropped() -> None:
    """An access point seen over a kilometre apart travels (a phone hotspot): never used."""
    table = LearnedTable()
    teach(table, wifi(AP1, AP2), times=2)
    teach(table, wifi(AP1), (BERLIN[0] + 0.012, BERLIN[1]), now=T0 + 600)  # 1.3 km north
    assert table.resolve(wifi(AP1, AP2), now=T0 + 700) is None
    assert table.stats()["blocked"] == 1


def test_the_table_is_bounded_and_expires() -> None:
    """Over the cap the least recently seen go first; a year unseen, an entry expires."""
    table = LearnedTable(max_entries=100)
    for index in range(150):
        teach(table, cells((262, 1, 1, 100_000 + index)), now=T0 + index)
    assert len(table.cells.entries) <= 100
    kept = set(table.cells.entries)
    assert pack_cell((262, 1, 1, 100_149)) in kept
    assert pack_cell((262, 1, 1, 100_000)) not in kept
    assert table.prune(T0 + 200 + EXPIRE_SECONDS) == len(kept)
    assert len(table) == 0


def test_changes_are_announced() -> None:
    """The owner hears of every change (to schedule a save), and only of changes."""
    calls: list[None] = []
    table = LearnedTable(on_change=lambda: calls.append(None))
    teach(table, cells(SERVING), times=2)
    teach(table, cells(SERVING), accuracy=5000)
    assert len(calls) == 2


def test_persistence_round_trip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Saved to a JSON file and loaded back, the table answers as before; the file is private."""
    table = LearnedTable()
    teach(table, Observation(cells(SERVING, NEIGHBOUR).cells, wifi(AP1, AP2).wifi), times=6)
    teach(table, cells((262, 1, 9, 9999)), times=3)
    teach(table, cells((262, 1, 9, 9999)), (54.0, 10.0), now=T0 + 900)  # blocked now
    store = JsonFile(tmp_path / "tk970" / "learned.json")
    store.save(table.as_data())
    assert stat.S_IMODE((tmp_path / "tk970" / "learned.json").stat().st_mode) == 0o600
    loaded = LearnedTable()
    assert loaded.load_data(store.load(), now=T0 + 1000) == len(table)
    assert loaded.stats() == table.stats()
    observation = Observation(cells(SERVING).cells, wifi(AP1, AP2).wifi)
    assert loaded.resolve(observation, now=T0 + 1000) == table.resolve(observation, now=T0 + 1000)
    assert loaded.resolve(cells(NEIGHBOUR), now=T0 + 1000) is not None
    assert loaded.resolve(cells((262, 1, 9, 9999)), now=T0 + 1000) is None  # still blocked


def test_damaged_data_costs_entries_not_the_start(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Malformed rows are skipped, a wrong version or bad JSON loads nothing."""
    data = {
        "version": 1,
        "cells": {
            "262-1-4711-27197452": [52.5, 13.4, 3, 52.5, 13.4, 52.5, 13.4, T0, 1, 0],
            "262-1-0-5": [52.5, 13.4, 3, 52.5, 13.4, 52.5, 13.4, T0, 1, 0],
            "nonsense": [1],
            "262-1-4711-27197453": ["x"] * 10,
            "262-1-4711-27197454": [91, 13.4, 3, 52.5, 13.4, 52.5, 13.4, T0, 1, 0],
        },
        "wifi": {"aa:bb:cc:00:00:01": "not a row"},
        "blocked_cells": {"262-1-4711-1": "soon"},
    }
    table = LearnedTable()
    assert table.load_data(json.loads(json.dumps(data)), now=T0) == 1
    assert table.load_data({"version": 99, "cells": data["cells"]}, now=T0) == 0
    assert table.load_data(None, now=T0) == 0
    broken = tmp_path / "learned.json"
    broken.write_text("{not json")
    assert JsonFile(broken).load() is None
    assert JsonFile(tmp_path / "missing.json").load() is None
