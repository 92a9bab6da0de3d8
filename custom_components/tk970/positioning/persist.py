"""A JSON file as the learned table's store outside Home Assistant (the MQTT gateway).

Inside Home Assistant the table is saved with a `Store` and a delayed save. Outside, the
gateway keeps it in a file beside it: `JsonFile.load()` once at start, `JsonFile.save()` (in a
worker thread) after changes, at most every `delay` seconds, and once more on the way out.
Writes go to a temporary file that replaces the old one, readable by the owner only: a
crash mid-write never leaves a torn table, and the table says where the trackers have been.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path
import tempfile
from typing import Any

_LOGGER = logging.getLogger(__name__)


class JsonFile:
    """One JSON document in one file, replaced atomically."""

    def __init__(self, path: Path) -> None:
        """Use `path` (its folder is created on the first save)."""
        self.path = path

    def load(self) -> Any:
        """The saved document, or None when there is none or it cannot be read."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as err:
            _LOGGER.warning("Cannot read %s: %s", self.path, err)
            return None
        try:
            return json.loads(text)
        except ValueError as err:
            _LOGGER.warning("Ignoring %s, it is not valid JSON: %s", self.path, err)
            return None

    def save(self, data: Any) -> None:
        """Write `data` (blocking: call it from a worker thread in an event loop)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(
            prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent
        )
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as file:
                json.dump(data, file, separators=(",", ":"))
                file.flush()
                os.fsync(file.fileno())
            os.chmod(temporary, 0o600)
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
