"""A benchmark tool, not part of the integration: log Python's slow garbage collections.

`bench/fleet.py --watch-gc` puts this folder first on Home Assistant's PYTHONPATH, so Python
imports this module at start-up; it appends one line per slow collection (every collection of
the oldest generation, and any slower than `SLOW`) to the file named by `TK970_GC_LOG`. It tells
event-loop stalls caused by the collector (a full collection walks every object Home Assistant
holds) from stalls caused by work.
"""

from __future__ import annotations

import gc
import os
import time
from typing import Any

SLOW = 0.05
_LOG = os.environ.get("TK970_GC_LOG")
_started = [0.0]


def _watch(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _started[0] = time.perf_counter()
        return
    took = time.perf_counter() - _started[0]
    if _LOG and (info["generation"] == 2 or took > SLOW):
        with open(_LOG, "a", encoding="utf-8") as log:
            log.write(f"{time.time():.3f} gen{info['generation']} {took:.3f}s\n")


gc.callbacks.append(_watch)
