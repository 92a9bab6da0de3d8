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
from .observations import (
    INVALID_CIDS,
    INVALID_LACS,
    MAX_CID,
    MAX_LAC,
    MAX_MCC,
    MAX_MNC,
    CellKey,
    Observation,
)

ATTRIBUTION_OPENCELLID = "OpenCelliD Project, CC BY-SA 4.0"
#: Radios whose rows use the cell key as we do (CDMA rows are SID/NID/BID: skipped).
RADIOS = {
    spelling: radio
    for word, radio in (("GSM", "gsm"), ("UMTS", "umts"), ("LTE", "lte"), ("NR", "nr"))
    for spelling in (word, word.lower())
}
BATCH_ROWS = 20_000
PROGRESS_SECONDS = 5.0
#: This many rows in and still nothing readable: not a cell export.
FORMAT_PROBE_ROWS = 1_000
_GZIP_MAGIC = b"\x1f\x8b"


def _number(value: object) -> float:
    """A stored range, whatever the export wrote (a number, or text that is none: 0)."""
    return float(value) if isinstance(value, int | float) else 0.0


def _sql_list(values: frozenset[int]) -> str:
    return ", ".join(str(value) for value in sorted(values))


#: Rows arrive as the CSV's text; the columns' types convert it (in C, several times faster
#: than Python would), and the checks (the ranges of `observations.cell_key`) reject what is
#: not a cell: `INSERT OR IGNORE` skips such a row instead of failing the import.
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS cells (
    mcc INTEGER NOT NULL CHECK (typeof(mcc) = 'integer' AND mcc BETWEEN 1 AND {MAX_MCC}),
    mnc INTEGER NOT NULL CHECK (typeof(mnc) = 'integer' AND mnc BETWEEN 0 AND {MAX_MNC}),
    lac INTEGER NOT NULL CHECK (
        typeof(lac) = 'integer' AND lac BETWEEN 1 AND {MAX_LAC}
        AND lac NOT IN ({_sql_list(INVALID_LACS)})
    ),
    cid INTEGER NOT NULL CHECK (
        typeof(cid) = 'integer' AND cid BETWEEN 1 AND {MAX_CID}
        AND cid NOT IN ({_sql_list(INVALID_CIDS)})
    ),
    radio TEXT NOT NULL,
    lat REAL NOT NULL CHECK (typeof(lat) = 'real' AND lat BETWEEN -90 AND 90),
    lon REAL NOT NULL CHECK (typeof(lon) = 'real' AND lon BETWEEN -180 AND 180),
    range INTEGER NOT NULL,
    samples INTEGER NOT NULL,
    updated INTEGER NOT NULL,
    CHECK (lat != 0 OR lon != 0),
    PRIMARY KEY (mcc, mnc, lac, cid)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
"""
#: Each batch is staged as text, then moved in key order (SQLite sorts it): inserting in the
#: table's order is about twice as fast as in the file's. A row that fails a check, or is
#: older than the row already there, is not written.
_STAGING = """
CREATE TEMP TABLE IF NOT EXISTS staging (mcc, mnc, lac, cid, radio, lon, lat, range, samples,
    updated)
"""
_STAGE = "INSERT INTO staging VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_UPSERT = """
INSERT OR IGNORE INTO cells (mcc, mnc, lac, cid, radio, lon, lat, range, samples, updated)
SELECT * FROM staging WHERE true
ORDER BY CAST(mcc AS INTEGER), CAST(mnc AS INTEGER), CAST(lac AS INTEGER), CAST(cid AS INTEGER)
ON CONFLICT (mcc, mnc, lac, cid) DO UPDATE SET
    radio = excluded.radio, lat = excluded.lat, lon = excluded.lon, range = excluded.range,
    samples = excluded.samples, updated = excluded.updated
WHERE excluded.updated >= cells.updated
"""
_LOOKUP = "SELECT lat, lon, range FROM cells WHERE mcc = ? AND mnc = ? AND lac = ? AND cid = ?"

#: The CSV fields of a row as staged, text (radio already mapped).
type Row = tuple[str, str, str, str, str, str, str, str, str, str]


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
    rows_skipped: int  #: unreadable or invalid rows, and rows older than the cell already there
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
        #: the file was looked for and is not there (imports and deletes go through here)
        self._absent = False

    @property
    def maybe_present(self) -> bool:
        """False once the file is known not to exist: nothing to ask, not even a thread."""
        return not self._absent

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
            radius = min(max(reach, cell_floor(cell.key)), MAX_CELL_RADIUS_M)
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

    def lookup(self, keys: Sequence[CellKey]) -> dict[CellKey, tuple[float, float, float]]:
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
                        found[key] = (float(row[0]), float(row[1]), _number(row[2]))
            except sqlite3.Error:
                self._close_reader()  # a replaced or damaged file: reopen next time
                return {}
            return found

    def _open_reader(self) -> sqlite3.Connection | None:
        if self._reader is None:
            if not self.path.exists():
                self._absent = True
                return None
            try:
                reader = sqlite3.connect(
                    f"{self.path.as_uri()}?mode=ro", uri=True, check_same_thread=False
                )
            except sqlite3.Error:
                return None
            try:
                attribution = reader.execute(
                    "SELECT value FROM meta WHERE name = 'attribution'"
                ).fetchone()
            except sqlite3.Error:
                reader.close()  # not (yet) a database of ours: never leave the handle open
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
        self._absent = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        writer = sqlite3.connect(self.path, isolation_level=None)
        counts = _Counts()
        try:
            writer.execute("PRAGMA journal_mode = WAL")
            writer.execute("PRAGMA synchronous = NORMAL")
            writer.executescript(_SCHEMA)
            writer.execute(_STAGING)
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
            self._absent = True
            return existed


@dataclass(slots=True)
class _Counts:
    read: int = 0
    candidates: int = 0  #: rows that looked like cells, handed to SQLite
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
            writer.execute("DELETE FROM staging")
            writer.executemany(_STAGE, batch)
            before = writer.total_changes
            writer.execute(_UPSERT)
            written = writer.total_changes - before
            counts.imported += written
            counts.skipped += len(batch) - written
            now = time.monotonic()
            if progress is not None and now - last_report >= PROGRESS_SECONDS:
                last_report = now
                fraction = position() / size if size else None
                progress(ImportProgress(counts.read, counts.imported, fraction))
    if counts.read and not counts.candidates and not counts.filtered:
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
    """The rows worth handing to SQLite, in batches; counts what is read, filtered, skipped."""
    wanted = None if mccs is None else frozenset(str(mcc) for mcc in mccs)
    radios = RADIOS
    batch: list[Row] = []
    for fields in rows:
        counts.read += 1
        radio = radios.get(fields[0]) if len(fields) >= 13 else None
        if radio is None:
            if counts.read == 1 and fields and fields[0].strip().lower() == "radio":
                counts.read = 0  # the header line
                continue
            counts.skipped += 1
            if counts.read >= FORMAT_PROBE_ROWS and counts.skipped == counts.read:
                raise ImportFormatError("the first rows are not cell rows")
            continue
        if wanted is not None and fields[1].strip().lstrip("0") not in wanted:
            counts.filtered += 1
            continue
        batch.append(
            (fields[1], fields[2], fields[3], fields[4], radio, fields[6], fields[7],
             fields[8] or "0", fields[9] or "0", fields[12] or "0")
        )  # fmt: skip
        if len(batch) >= BATCH_ROWS:
            counts.candidates += len(batch)
            yield batch
            batch = []
    if batch:
        counts.candidates += len(batch)
        yield batch
