"""The imported cell database: CSV import (plain, gzip, filtered), lookups, failures."""

from __future__ import annotations

import gzip
from pathlib import Path
import random
import threading

import pytest

from custom_components.tk970.positioning import (
    ATTRIBUTION_OPENCELLID,
    CellDatabase,
    ImportCancelledError,
    ImportFormatError,
    Kind,
    Method,
    imported as imported_module,
    observe,
)
from custom_components.tk970.protocol import Cell

HEADER = (
    "radio,mcc,net,area,cell,unit,lon,lat,range,samples,changeable,created,updated,averageSignal"
)


def export_rows(
    count: int, *, seed: int = 1, mcc: int = 262, updated: int = 1_700_000_000
) -> list[str]:
    """`count` OpenCellID-style rows around Berlin: cell id = 100000 + index."""
    rng = random.Random(seed)
    rows = []
    for index in range(count):
        lat = 52.3 + rng.random() * 0.4
        lon = 13.1 + rng.random() * 0.6
        radio = rng.choice(("GSM", "UMTS", "LTE"))
        rows.append(
            f"{radio},{mcc},1,{4000 + index % 50},{100_000 + index},,{lon:.6f},{lat:.6f},"
            f"{rng.randint(0, 3000)},{rng.randint(1, 50)},1,1500000000,{updated},0"
        )
    return rows


def write_export(path: Path, rows: list[str], *, header: bool = True, gz: bool = False) -> Path:
    """Write rows as a CSV (optionally gzip-compressed)."""
    text = "\n".join(([HEADER] if header else []) + rows) + "\n"
    if gz:
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def observation(*cids: int, mcc: int = 262):  # type: ignore[no-untyped-def]
    """A report of these cells (LAC as `export_rows` assigns it)."""
    return observe(
        [Cell(mcc=mcc, mnc=1, lac=4000 + (cid - 100_000) % 50, cid=cid) for cid in cids], []
    )


def test_import_then_resolve(tmp_path: Path) -> None:
    """A few thousand rows (and some junk) import; a known cell resolves with attribution."""
    rows = export_rows(3000)
    rows += [
        "CDMA,310,4,1,2,,13.4,52.5,100,1,1,0,0,0",  # other id semantics: skipped
        "LTE,262,1,0,5,,13.4,52.5,100,1,1,0,0,0",  # LAC 0
        "LTE,262,1,7,8,,200,52.5,100,1,1,0,0,0",  # longitude out of range
        "garbage",
        "LTE,262,x,1,2,,13.4,52.5,100,1,1,0,0,0",
    ]
    source = write_export(tmp_path / "cells.csv", rows)
    database = CellDatabase(tmp_path / "db" / "cells.sqlite3")
    summary = database.import_csv(source)
    assert (summary.rows_read, summary.cells_imported, summary.rows_skipped) == (3005, 3000, 5)
    assert summary.cells_in_database == 3000
    assert summary.rows_per_second > 0
    assert summary.as_dict()["cells_imported"] == 3000
    fields = rows[1234].split(",")
    estimate = database.resolve(observation(101_234))
    assert estimate is not None
    assert (estimate.latitude, estimate.longitude) == (float(fields[7]), float(fields[6]))
    assert estimate.accuracy == max(int(fields[8]), 500)
    assert (estimate.kind, estimate.method) == (Kind.LBS, Method.IMPORTED)
    assert estimate.attribution == ATTRIBUTION_OPENCELLID
    assert database.resolve(observation(999_999)) is None
    assert database.stats()["cells"] == 3000
    database.close()


def test_gzip_with_a_country_filter_and_merge(tmp_path: Path) -> None:
    """A gzip file without header, filtered to one MCC; a second import adds to the first."""
    german = export_rows(1000, mcc=262)
    austrian = export_rows(500, seed=2, mcc=232)
    source = write_export(tmp_path / "cells.csv.gz", german + austrian, header=False, gz=True)
    database = CellDatabase(tmp_path / "cells.sqlite3")
    summary = database.import_csv(source, mccs=frozenset({232}), attribution="MLS (CC0)")
    assert (summary.cells_imported, summary.rows_filtered) == (500, 1000)
    assert database.resolve(observation(100_001)) is None
    estimate = database.resolve(observation(100_001, mcc=232))
    assert estimate is not None
    assert estimate.attribution == "MLS (CC0)"
    summary = database.import_csv(source, mccs=frozenset({262}))
    assert summary.cells_in_database == 1500
    replaced = database.import_csv(source, mccs=frozenset({262}), replace=True)
    assert replaced.cells_in_database == 1000
    database.close()


def test_newer_rows_win(tmp_path: Path) -> None:
    """On a key seen twice, the row updated last is kept, whatever the import order."""
    database = CellDatabase(tmp_path / "cells.sqlite3")
    new = export_rows(1, seed=5, updated=1_800_000_000)
    old = export_rows(1, seed=6, updated=1_600_000_000)
    database.import_csv(write_export(tmp_path / "new.csv", new))
    database.import_csv(write_export(tmp_path / "old.csv", old))
    estimate = database.resolve(observation(100_000))
    assert estimate is not None
    assert estimate.latitude == float(new[0].split(",")[7])
    database.close()


def test_a_file_that_is_no_export_changes_nothing(tmp_path: Path) -> None:
    """Something else than a cell export fails clearly and leaves the database as it was."""
    database = CellDatabase(tmp_path / "cells.sqlite3")
    database.import_csv(write_export(tmp_path / "good.csv", export_rows(10)))
    other = tmp_path / "notes.txt"
    other.write_text("name,phone\n" + "alice,123\n" * 2000)
    with pytest.raises(ImportFormatError):
        database.import_csv(other, replace=True)
    assert database.stats()["cells"] == 10
    with pytest.raises(FileNotFoundError):
        database.import_csv(tmp_path / "missing.csv")
    database.close()


def test_cancel_and_progress(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Progress is reported while importing; a cancelled import rolls back."""
    monkeypatch.setattr(imported_module, "PROGRESS_SECONDS", 0.0)
    monkeypatch.setattr(imported_module, "BATCH_ROWS", 100)
    source = write_export(tmp_path / "cells.csv", export_rows(1000))
    database = CellDatabase(tmp_path / "cells.sqlite3")
    seen = []
    database.import_csv(source, progress=seen.append)
    assert seen
    assert seen[-1].cells_imported <= 1000
    assert all(0 < (p.fraction or 0) <= 1 for p in seen)
    cancel = threading.Event()

    def stop_soon(progress: imported_module.ImportProgress) -> None:
        cancel.set()

    with pytest.raises(ImportCancelledError):
        database.import_csv(source, replace=True, progress=stop_soon, cancel=cancel)
    assert database.stats()["cells"] == 1000
    database.close()


def test_no_database_no_file(tmp_path: Path) -> None:
    """Lookups without an import find nothing and create nothing; delete removes the file."""
    path = tmp_path / "cells.sqlite3"
    database = CellDatabase(path)
    assert database.resolve(observation(100_000)) is None
    assert database.stats() == {}
    assert not path.exists()
    database.import_csv(write_export(tmp_path / "cells.csv", export_rows(5)))
    assert database.resolve(observation(100_000)) is not None
    assert database.delete() is True
    assert not path.exists()
    assert database.resolve(observation(100_000)) is None
    assert database.delete() is False
