"""The one place where a report without a usable fix gets a fallback position, in the gateway.

The gateway hands every accepted read to `FallbackPositioning.handle` after folding it into the
tracker: an implementation learns where the tracker's cells and Wi-Fi access points are from
its fixes, resolves fix-less reports (cells, Wi-Fi) to an estimate, moves the tracker with
`Tracker.move` when the estimate may replace what is shown, and calls `moved(tracker)` so the
gateway publishes the new state. It must not block: lookups that wait run as tasks.

Wiring: the integration's positioning engine (`custom_components.tk970.positioning`: learned
table, imported cell database, online providers), which imports without Home Assistant, is the
implementation meant for this place, with its learned table in a JSON file beside the gateway.
It was not on `main` when the gateway was built, so `Settings.positioning` is None and the
gateway runs without fallback positioning: a report without a usable fix moves nothing, as in
the integration without the engine. Wiring it is an adapter class here, the command-line
options of interfaces.md §4 (`--learn-positions`, `--geolocation-provider`, `--geolocation-url`,
`--geolocation-api-key`, a `--data-dir` for the table) and aiohttp in requirements.txt.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from custom_components.tk970.protocol import Message

from .tracker import Tracker


class FallbackPositioning(Protocol):
    """Fallback positioning as the gateway uses it."""

    def handle(
        self, tracker: Tracker, messages: list[Message], moved: Callable[[Tracker], None]
    ) -> None:
        """Learn from the fixes among `messages`, resolve the fix-less ones."""

    async def close(self) -> None:
        """Save what was learned and stop pending lookups."""
