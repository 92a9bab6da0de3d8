"""Property tests: what comes from outside (provider answers, saved tables, CSV files) never
breaks the engine; it is used, or refused with the engine's own error."""

from __future__ import annotations

from datetime import UTC, datetime
import json
from pathlib import Path
import tempfile

from hypothesis import given, settings, strategies as st

from custom_components.tk970.positioning import CellDatabase, ImportFormatError, LearnedTable
from custom_components.tk970.positioning.providers import (
    ProviderError,
    _mls_answer,
    _unwired_answer,
)

NOW = datetime(2026, 11, 24, tzinfo=UTC)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=20,
)
#: Answers shaped like the real ones, with any values in them.
ANSWERS = st.fixed_dictionaries(
    {"location": st.fixed_dictionaries({"lat": JSON, "lng": JSON}), "accuracy": JSON},
    optional={"fallback": JSON, "status": JSON, "lat": JSON, "lon": JSON, "message": JSON},
)

#: Nested JSON is slow to generate; a quarter of the profile's examples covers these parsers.
SOME = settings(max_examples=max(50, settings.default.max_examples // 4))


@SOME
@given(
    st.sampled_from([200, 400, 401, 403, 404, 429, 500, 503]), JSON | ANSWERS, st.text(max_size=8)
)
def test_any_answer_is_a_position_or_a_provider_error(
    status: int, body: object, retry_after: str
) -> None:
    """Whatever a provider (or whatever answers in its place) sends back."""
    for parse in (_mls_answer, _unwired_answer):
        try:
            lat, lon, accuracy = parse(status, body, retry_after, NOW)
        except ProviderError:
            continue
        assert -90 <= lat <= 90
        assert -180 <= lon <= 180
        assert accuracy >= 1


@SOME
@given(JSON)
def test_any_saved_table_loads(data: object) -> None:
    """A damaged or foreign file costs entries, never the start-up."""
    table = LearnedTable()
    table.load_data(data, now=1_790_000_000)
    table.load_data({"version": 1, "cells": data, "wifi": data, "blocked_cells": data}, now=0)
    json.dumps(table.as_data())


FIELD = st.text(alphabet="0123456789.-eE+abcLTEGSMNRU ", max_size=12)


# Each example builds a database file: a tenth of the profile's examples is plenty.
@settings(max_examples=max(20, settings.default.max_examples // 10))
@given(st.lists(st.lists(FIELD, min_size=0, max_size=15), max_size=30))
def test_any_csv_imports_or_is_refused(rows: list[list[str]]) -> None:
    """Rows of any shape: imported where valid, skipped otherwise, or the file is refused."""
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "cells.csv"
        source.write_text("\n".join(",".join(row) for row in rows) + "\n")
        database = CellDatabase(Path(folder) / "cells.sqlite3")
        try:
            summary = database.import_csv(source)
        except ImportFormatError:
            return
        finally:
            database.close()
        assert (
            summary.cells_imported + summary.rows_skipped + summary.rows_filtered
            == summary.rows_read
        )
        assert summary.cells_in_database <= summary.cells_imported
