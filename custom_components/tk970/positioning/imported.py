"""The imported cell database: an OpenCellID-format CSV, kept in a local SQLite file.

For a tracker that goes where it has never had a fix, the user may import a cell export: the
OpenCellID download (`cell_towers.csv.gz`, CC BY-SA 4.0; or one country's file) or Mozilla
Location Service's final export (CC0). One cell per line,
`radio,mcc,net,area,cell,unit,lon,lat,range,samples,changeable,created,updated,averageSignal`,
plain or gzip, optionally only some countries (MCCs). `import_csv()` is blocking: run it in a
worker thread. It reports progress through a callback, writes in one transaction (lookups see
the old data until it commits) and returns an `ImportSummary`.

Lookups are by the radio-agnostic cell key; where two radios share one key, the row updated
last wins. The resolver asks this database only after the learned table, whose positions come
from the user's own trackers. Every estimate from it carries the attribution stored with the
import, to be shown where the position is shown (the licence asks for it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
import contextlib
import csv
from dataclasses import dataclass
import gzip
import io
import math
from pathlib import Path
import sqlite3
import threading
import time
from typing import IO, Any

from .estimate import Estimate, Kind, Located, Method, combine
from .learned import AGREE_CELL_M, MAX_CELL_RADIUS_M, REFERENCE_CELL_DBM, cell_floor, signal_weight
from .observations import CellKey, Observation, cell_key

ATTRIBUTION_OPENCELLID = "OpenCelliD Project, CC BY-SA 4.0"
#: Radios whose rows use the cell key as we do (CDMA rows are SID/NID/BID: skipped).
RADIOS = {"GSM": "gsm", "UMTS": "umts", "LTE": "lte", "NR": "nr"}
BATCH_ROWS = 20_000
PROGRESS_SECONDS = 5.0
#: This many rows in and still nothing readable: not a cell export.
FORMAT_PROBE_ROWS = 1_000
_GZIP_MAGIC = b"\x1f\x8b"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cells (
    mcc INTEGER NOT NULL,
    mnc INTEGER NOT NULL,
    lac INTEGER NOT NULL,
    cid INTEGER NOT NULL,
    radio TEXT NOT NULL,
    lat REAL NOT NULL,
    lon REAL NOT NULL,
    range INTEGER NOT NULL,
    samples INTEGER NOT NULL,
    updated INTEGER NOT NULL,
    PRIMARY KEY (mcc, mnc, lac, cid)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
"""
_UPSERT = """
INSERT INTO cells (mcc, mnc, lac, cid, radio, lat, lon, range, samples, updated)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (mcc, mnc, lac, cid) DO UPDATE SET
    radio = excluded.radio, lat = excluded.lat, lon = excluded.lon, range = excluded.range,
    samples = excluded.samples, updated = excluded.updated
WHERE excluded.updated >= cells.updated
"""
_LOOKUP = "SELECT lat, lon, range FROM cells WHERE mcc = ? AND mnc = ? AND lac = ? AND cid = ?"

type Row = tuple[int, int, int, int, str, float, float, int, int, int]


class ImportFormatError(ValueError):
    """The file is not a cell export this importer understands."""


class ImportCancelledError(Exception):
    """The import was stopped (Home Assistant is shutting down); nothing was changed."""


@dataclass(frozen=True, slots=True)
class ImportProgress:
    """Where a running import is."""

    rows_read: int
    cells_imported: int
    fraction: float | None  #: share of the file read, when its size is known


@dataclass(frozen=True, slots=True)
class ImportSummary:
    """What an import did (the action's response)."""

    rows_read: int
    cells_imported: int
    rows_skipped: int  #: unreadable or invalid rows
    rows_filtered: int  #: valid rows of other countries (the MCC filter)
    cells_in_database: int
    seconds: float

    @property
    def rows_per_second(self) -> int:
        """Import speed."""
        return round(self.rows_read / self.seconds) if self.seconds > 0 else self.rows_read

    def as_dict(self) -> dict[str, Any]:
        """The action's response data."""
        return {
            "rows_read": self.rows_read,
            "cells_imported": self.cells_imported,
            "rows_skipped": self.rows_skipped,
            "rows_filtered": self.rows_filtered,
            "cells_in_database": self.cells_in_database,
            "seconds": round(self.seconds, 2),
            "rows_per_second": self.rows_per_second,
        }


class CellDatabase:
    """Cells from an imported export. All methods block: call them from a worker thread."""

    def __init__(self, path: Path) -> None:
        """Use the SQLite file at `path` (created by the first import)."""
        self.path = path
        self._reader: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._attribution: str | None = None

    # -- lookups ----------------------------------------------------------------------------

    def resolve(self, observation: Observation) -> Estimate | None:
        """A position from the report's known cells (serving cell counts double), or None."""
        if not observation.cells:
            return None
        rows = self.lookup([cell.key for cell in observation.cells])
        located = []
        for index, cell in enumerate(observation.cells):
            found = rows.get(cell.key)
            if found is None:
                continue
            lat, lon, reach = found
            radius = min(max(float(reach), cell_floor(cell.key)), MAX_CELL_RADIUS_M)
            weight = signal_weight(cell.signal, REFERENCE_CELL_DBM) * (2.0 if index == 0 else 1.0)
            located.append(Located(lat, lon, radius, weight))
        if not located:
            return None
        combined = combine(located, minimum=1, agree_m=AGREE_CELL_M)
        if combined is None:
            return None
        lat, lon, radius, count = combined
        return Estimate(
            latitude=round(lat, 6),
            longitude=round(lon, 6),
            accuracy=math.ceil(min(radius, MAX_CELL_RADIUS_M)),
            kind=Kind.LBS,
            method=Method.IMPORTED,
            provider="cell database",
            attribution=self._attribution,
            stations=count,
        )

    def lookup(self, keys: Sequence[CellKey]) -> dict[CellKey, tuple[float, float, int]]:
        """Position and range of each key the database knows."""
        with self._lock:
            reader = self._open_reader()
            if reader is None:
                return {}
            found = {}
            try:
                for key in keys:
                    row = reader.execute(_LOOKUP, key).fetchone()
                    if row is not None:
                        found[key] = (float(row[0]), float(row[1]), int(row[2]))
            except sqlite3.Error:
                self._close_reader()  # a replaced or damaged file: reopen next time
                return {}
            return found

    def _open_reader(self) -> sqlite3.Connection | None:
        if self._reader is None:
            if not self.path.exists():
                return None
            try:
                reader = sqlite3.connect(
                    f"{self.path.as_uri()}?mode=ro", uri=True, check_same_thread=False
                )
                attribution = reader.execute(
                    "SELECT value FROM meta WHERE name = 'attribution'"
                ).fetchone()
            except sqlite3.Error:
                return None
            self._attribution = attribution[0] if attribution else ATTRIBUTION_OPENCELLID
            self._reader = reader
        return self._reader

    def _close_reader(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def close(self) -> None:
        """Release the file."""
        with self._lock:
            self._close_reader()

    def stats(self) -> dict[str, Any]:
        """Size and origin of the database, for diagnostics (empty when there is none)."""
        with self._lock:
            reader = self._open_reader()
            if reader is None:
                return {}
            try:
                count = reader.execute("SELECT count(*) FROM cells").fetchone()[0]
                meta = dict(reader.execute("SELECT name, value FROM meta").fetchall())
            except sqlite3.Error:
                return {}
        return {"cells": count, **meta}

    # -- import -----------------------------------------------------------------------------

    def import_csv(
        self,
        source: Path,
        *,
        mccs: frozenset[int] | None = None,
        replace: bool = False,
        attribution: str | None = None,
        progress: Callable[[ImportProgress], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> ImportSummary:
        """Import a cell export; with `replace`, the old contents go in the same transaction.

        Raises `ImportFormatError` when nothing in the file reads as a cell export, `OSError`
        when it cannot be read, `ImportCancelledError` when `cancel` is set; in every one of
        these cases the database is left as it was.
        """
        started = time.monotonic()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        writer = sqlite3.connect(self.path, isolation_level=None)
        counts = _Counts()
        try:
            writer.execute("PRAGMA journal_mode = WAL")
            writer.execute("PRAGMA synchronous = NORMAL")
            writer.executescript(_SCHEMA)
            writer.execute("BEGIN IMMEDIATE")
            try:
                if replace:
                    writer.execute("DELETE FROM cells")
                _copy_rows(writer, source, mccs, counts, progress, cancel)
                meta = {
                    "attribution": attribution or ATTRIBUTION_OPENCELLID,
                    "source": source.name,
                    "imported_at": str(int(time.time())),
                }
                writer.executemany(
                    "INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", meta.items()
                )
                writer.execute("COMMIT")
            except BaseException:
                writer.execute("ROLLBACK")
                raise
            total = writer.execute("SELECT count(*) FROM cells").fetchone()[0]
            with contextlib.suppress(sqlite3.Error):
                writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            writer.close()
        with self._lock:
            self._close_reader()  # pick up the new attribution
        return ImportSummary(
            rows_read=counts.read,
            cells_imported=counts.imported,
            rows_skipped=counts.skipped,
            rows_filtered=counts.filtered,
            cells_in_database=int(total),
            seconds=time.monotonic() - started,
        )

    def delete(self) -> bool:
        """Remove the database file; return whether there was one."""
        with self._lock:
            self._close_reader()
            existed = self.path.exists()
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    Path(f"{self.path}{suffix}").unlink()
            return existed


@dataclass(slots=True)
class _Counts:
    read: int = 0
    imported: int = 0
    skipped: int = 0
    filtered: int = 0


def _copy_rows(
    writer: sqlite3.Connection,
    source: Path,
    mccs: frozenset[int] | None,
    counts: _Counts,
    progress: Callable[[ImportProgress], None] | None,
    cancel: threading.Event | None,
) -> None:
    """Insert the export's rows in batches, reporting progress now and then."""
    with _open_export(source) as (text, position, size):
        last_report = time.monotonic()
        for batch in _batches(csv.reader(text), mccs, counts):
            if cancel is not None and cancel.is_set():
                raise ImportCancelledError
            writer.executemany(_UPSERT, batch)
            counts.imported += len(batch)
            now = time.monotonic()
            if progress is not None and now - last_report >= PROGRESS_SECONDS:
                last_report = now
                fraction = position() / size if size else None
                progress(ImportProgress(counts.read, counts.imported, fraction))
    if counts.read and not counts.imported and not counts.filtered:
        raise ImportFormatError(f"no cell rows in {source.name}")


@contextlib.contextmanager
def _open_export(
    source: Path,
) -> Iterator[tuple[IO[str], Callable[[], int], int]]:
    """The export as text, a function telling how far into the raw file it is, its size."""
    raw = source.open("rb")
    try:
        size = source.stat().st_size
        compressed = raw.read(2) == _GZIP_MAGIC
        raw.seek(0)
        binary: IO[bytes] = (
            gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw  # type: ignore[assignment]
        )
        text = io.TextIOWrapper(binary, encoding="utf-8", errors="replace", newline="")
        yield text, raw.tell, size
    finally:
        raw.close()


def _batches(
    rows: Iterator[list[str]], mccs: frozenset[int] | None, counts: _Counts
) -> Iterator[list[Row]]:
    batch: list[Row] = []
    for fields in rows:
        counts.read += 1
        parsed = _parse_row(fields)
        if parsed is None:
            if counts.read == 1 and fields and fields[0].strip().lower() == "radio":
                counts.read = 0  # the header line
                continue
            counts.skipped += 1
            if counts.read >= FORMAT_PROBE_ROWS and counts.skipped == counts.read:
                raise ImportFormatError("the first rows are not cell rows")
            continue
        if mccs is not None and parsed[0] not in mccs:
            counts.filtered += 1
            continue
        batch.append(parsed)
        if len(batch) >= BATCH_ROWS:
            yield batch
            batch = []
    if batch:
        yield batch


def _parse_row(fields: list[str]) -> Row | None:
    """One CSV row as a database row, or None when it is not a usable cell."""
    if len(fields) < 13:
        return None
    radio = RADIOS.get(fields[0].strip().upper())
    if radio is None:
        return None
    try:
        key = cell_key(int(fields[1]), int(fields[2]), int(fields[3]), int(fields[4]))
        lon = float(fields[6])
        lat = float(fields[7])
        reach = int(float(fields[8] or 0))
        samples = int(fields[9] or 0)
        updated = int(fields[12] or 0)
    except ValueError:
        return None
    if key is None or not (-90 <= lat <= 90 and -180 <= lon <= 180) or lat == lon == 0:
        return None
    if not (math.isfinite(lat) and math.isfinite(lon)):
        return None
    return (*key, radio, lat, lon, max(reach, 0), max(samples, 0), updated)
