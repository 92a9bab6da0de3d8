"""Loader for the shared capture vectors (`../shared/vectors/*.jsonl`), read in place.

The vectors are never copied into this repository. `TK970_VECTORS` can point elsewhere; when the
folder is missing the tests fail, unless `TK970_ALLOW_MISSING_VECTORS=1` says this checkout runs
without them (GitHub's runners, which have no `../shared`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
import json
import os
from pathlib import Path
from typing import Any

import pytest

VECTORS_DIR = Path(
    os.environ.get("TK970_VECTORS", Path(__file__).resolve().parents[3] / "shared" / "vectors")
)
FAMILIES = ("jt808", "gt06", "h02", "gps103")


@dataclass(frozen=True, slots=True)
class Vector:
    """One line of a vectors file."""

    family: str
    line: int
    data: dict[str, Any]

    @property
    def id(self) -> str:
        """Test id, e.g. `gt06:42` (the line number in the file)."""
        return f"{self.family}:{self.line}"

    @property
    def raw(self) -> bytes:
        """The frame bytes."""
        return bytes.fromhex(self.data["hex"])

    @property
    def expect(self) -> dict[str, Any]:
        """Expected values."""
        return self.data.get("expect", {})  # type: ignore[no-any-return]

    @property
    def uplink(self) -> bool:
        """Device to server."""
        return bool(self.data["direction"] == "uplink")


@cache
def load(family: str) -> tuple[Vector, ...]:
    """All vectors of one family, in file order."""
    path = VECTORS_DIR / f"{family}.jsonl"
    if not path.exists():
        if os.environ.get("TK970_ALLOW_MISSING_VECTORS") == "1":
            return ()
        raise FileNotFoundError(
            f"{path} is missing: the shared vectors must sit beside the checkout "
            "(or set TK970_VECTORS)"
        )
    with path.open(encoding="utf-8") as file:
        return tuple(
            Vector(family, number, json.loads(text))
            for number, text in enumerate(file, start=1)
            if text.strip()
        )


def params(family: str, *, uplink: bool | None = True) -> list[Any]:
    """pytest parameters (one per vector line, id `family:line`) for one family."""
    vectors = load(family)
    if not vectors:
        return [pytest.param(None, marks=pytest.mark.skip(reason="vectors not available"))]
    return [
        pytest.param(vector, id=vector.id)
        for vector in vectors
        if uplink is None or vector.uplink is uplink
    ]
