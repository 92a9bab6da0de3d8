"""Fallback positioning: learned-table memory, cost per report, cell import speed.

    .venv/bin/python bench/positioning.py [--entries 10000] [--rows 500000] [--rounds 3]

Each figure is printed beside a baseline measured in the same run, as a ratio:

* memory of the learned table per 10,000 entries (cells, then access points), against the
  obvious design: a dict keyed by "mcc-mnc-lac-cid" strings holding a dict of named fields per
  entry (ha-tkstar-gateway's layout, in Python), both measured with tracemalloc;
* CPU per report for learning (a fix with its cells and access points) and for resolving (a
  report without one), against decoding that very report's bytes through a `Session`;
* saving a full table: the copy made in Home Assistant's event loop, and the formatting
  done in a worker thread;
* import speed of a generated OpenCellID-format CSV (plain and gzip) into SQLite, in rows/s,
  against only parsing the same file with `csv` (the floor any importer pays).

Times are the best of `rounds` rounds.
"""

from __future__ import annotations

import argparse
import csv
from datetime import UTC, datetime
import gc
import gzip
from pathlib import Path
import random
import sys
import tempfile
import time
import tracemalloc
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from custom_components.tk970.positioning import (  # noqa: E402
    CellDatabase,
    LearnedTable,
    observe,
)
from custom_components.tk970.positioning.learned import snapshot_data  # noqa: E402
from custom_components.tk970.positioning.observations import (  # noqa: E402
    Observation,
    ObservedCell,
    ObservedWifi,
)
from custom_components.tk970.protocol import Session  # noqa: E402
from simulator import frames, radio  # noqa: E402
from simulator.frames import Fix  # noqa: E402

T0 = 1_790_000_000
NOW = datetime(2026, 11, 24, tzinfo=UTC)
HEADER = (
    "radio,mcc,net,area,cell,unit,lon,lat,range,samples,changeable,created,updated,averageSignal"
)


def _cells(count: int) -> list[Observation]:
    rng = random.Random(1)
    return [
        Observation(
            cells=(ObservedCell((262, rng.randint(1, 3), rng.randint(1, 60000), 100_000 + i), -80),)
        )
        for i in range(count)
    ]


def _wifi(count: int) -> list[Observation]:
    rng = random.Random(2)
    observations = []
    for _ in range(count):
        octets = bytearray(rng.randbytes(6))
        octets[0] &= 0xFC  # unicast, universally administered
        observations.append(Observation(wifi=(ObservedWifi(octets.hex(":"), -70),)))
    return observations


def measure(build: Any) -> int:
    """Bytes held by what `build()` returns, by tracemalloc."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = build()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del kept
    return after - before


def learned_table(observations: list[Observation]) -> LearnedTable:
    table = LearnedTable(max_entries=len(observations) + 1)
    rng = random.Random(3)
    for index, observation in enumerate(observations):
        table.learn(
            observation,
            latitude=52.3 + rng.random() * 0.4,
            longitude=13.1 + rng.random() * 0.6,
            accuracy_m=10,
            speed_kmh=0,
            now=T0 + index,
        )
    return table


def naive_table(observations: list[Observation]) -> dict[str, dict[str, float]]:
    rng = random.Random(3)
    table: dict[str, dict[str, float]] = {}
    for index, observation in enumerate(observations):
        lat, lon = 52.3 + rng.random() * 0.4, 13.1 + rng.random() * 0.6
        for cell in observation.cells:
            key = "-".join(map(str, cell.key))
        for point in observation.wifi:
            key = point.mac
        table[key] = {
            "lat": lat, "lon": lon, "weight": 1.0, "south": lat, "west": lon, "north": lat,
            "east": lon, "last_seen": float(T0 + index), "days": 1.0, "outliers": 0.0,
        }  # fmt: skip
    return table


def best(rounds: int, work: Any) -> float:
    """Best wall time of `rounds` runs of `work()`, seconds."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def per_report(rounds: int) -> None:
    """CPU per report: learning, resolving, against decoding the report."""
    here = (52.5145, 13.3500)
    cells = tuple(radio.cells_at(*here))
    points = tuple(radio.access_points_at(*here))
    fix = Fix(time=NOW, latitude=here[0], longitude=here[1], cells=cells, wifi=points)
    raw = frames.jt808_location("012345678901", 1, fix)
    message = Session().feed(raw, NOW)[0].message  # type: ignore[union-attr]
    observation = observe(message.cells, message.wifi)
    table = learned_table(_cells(20_000))
    repeat = 2_000

    def decode() -> None:
        session = Session()
        for _ in range(repeat):
            session.feed(raw, NOW)

    def learn() -> None:
        for index in range(repeat):
            table.learn(
                observe(message.cells, message.wifi),
                latitude=here[0],
                longitude=here[1],
                accuracy_m=10,
                speed_kmh=30,
                now=T0 + index,
            )

    def resolve() -> None:
        for _ in range(repeat):
            table.resolve(observe(message.cells, message.wifi), now=T0 + repeat)

    base = best(rounds, decode) / repeat
    learning = best(rounds, learn) / repeat
    resolving = best(rounds, resolve) / repeat
    print(
        f"per report ({len(observation.cells)} cells, {len(observation.wifi)} access points): "
        f"decode {base * 1e6:.1f} us (baseline), learn {learning * 1e6:.1f} us "
        f"({learning / base:.2f}x), resolve {resolving * 1e6:.1f} us ({resolving / base:.2f}x)"
    )


def memory(entries: int, rounds: int) -> None:
    """Learned table bytes per 10,000 entries against the naive layout; save snapshot time."""
    scale = 10_000 / entries
    for label, observations in (("cells", _cells(entries)), ("access points", _wifi(entries))):
        ours = measure(lambda o=observations: learned_table(o))
        naive = measure(lambda o=observations: naive_table(o))
        print(
            f"learned table, {label}: {ours * scale / 1e6:.2f} MB per 10,000 entries; "
            f"naive dict of dicts {naive * scale / 1e6:.2f} MB (baseline): "
            f"{ours / naive:.2f}x"
        )
    full = learned_table(_cells(20_000) + _wifi(20_000))
    copy = best(rounds, full.snapshot)
    formatting = best(rounds, lambda: snapshot_data(full.snapshot())) - copy
    print(
        f"saving a full table ({len(full)} entries): copy in the event loop {copy * 1e3:.0f} ms, "
        f"formatting in a worker thread {formatting * 1e3:.0f} ms"
    )


def export(path: Path, rows: int, *, compress: bool) -> None:
    rng = random.Random(4)
    lines = [HEADER]
    lines.extend(
        f"{rng.choice(('GSM', 'UMTS', 'LTE'))},{rng.choice((262, 232, 228))},"
        f"{rng.randint(1, 20)},{rng.randint(1, 60000)},{100_000 + index},,"
        f"{rng.uniform(5, 15):.6f},{rng.uniform(45, 55):.6f},{rng.randint(0, 5000)},"
        f"{rng.randint(1, 100)},1,1500000000,{1_600_000_000 + index},0"
        for index in range(rows)
    )
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(gzip.compress(data, 6) if compress else data)


def parse_only(path: Path) -> int:
    opener = gzip.open if path.suffix == ".gz" else open
    count = 0
    with opener(path, "rt", newline="") as text:  # type: ignore[operator]
        for row in csv.reader(text):
            if row[0] == "radio":
                continue
            int(row[1]), int(row[2]), int(row[3]), int(row[4])
            float(row[6]), float(row[7]), int(row[8]), int(row[9]), int(row[12])
            count += 1
    return count


def import_speed(rows: int, rounds: int) -> None:
    """Rows per second into SQLite, plain and gzip, against parsing alone."""
    with tempfile.TemporaryDirectory() as folder:
        for compress in (False, True):
            source = Path(folder) / ("cells.csv.gz" if compress else "cells.csv")
            export(source, rows, compress=compress)
            parse = best(rounds, lambda s=source: parse_only(s))
            times = []
            for round_ in range(rounds):
                database = CellDatabase(Path(folder) / f"db{round_}{compress}.sqlite3")
                summary = database.import_csv(source)
                assert summary.cells_imported == rows
                times.append(summary.seconds)
            imported = min(times)
            kind = "gzip" if compress else "plain"
            print(
                f"import, {kind} CSV, {rows} rows: {rows / imported:,.0f} rows/s; "
                f"parsing alone {rows / parse:,.0f} rows/s (baseline): {parse / imported:.2f}x"
            )
            if compress:
                continue
            times = []
            for round_ in range(rounds):
                database = CellDatabase(Path(folder) / f"filtered{round_}.sqlite3")
                summary = database.import_csv(source, mccs=frozenset({262}))
                times.append(summary.seconds)
            filtered = min(times)
            print(
                f"import, plain CSV, {rows} rows, one country of three kept "
                f"({summary.cells_imported} cells): {rows / filtered:,.0f} rows/s read; "
                f"parsing alone (baseline): {parse / filtered:.2f}x"
            )


def main() -> None:
    """Run every measurement."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"Python {sys.version.split()[0]}")
    memory(args.entries, args.rounds)
    per_report(args.rounds)
    import_speed(args.rows, args.rounds)


if __name__ == "__main__":
    main()
