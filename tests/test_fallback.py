"""Fallback positioning end to end: simulated trackers over real sockets into Home Assistant.

GT06 and JT808 trackers report fixes with the cells and access points around them (the
simulator's radio world), then reports without a fix; the map must show what the learned
table, the imported cell database or an online provider (a real HTTP server on 127.0.0.1)
says, and never something worse than the last GNSS fix.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
import gzip
from pathlib import Path
import random
from typing import Any

from aiohttp import web
from homeassistant.core import HomeAssistant, State
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import issue_registry as ir
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.tk970.clock import FixTime
from custom_components.tk970.const import DOMAIN
from custom_components.tk970.diagnostics import async_get_config_entry_diagnostics
from custom_components.tk970.fallback import DATA_POSITIONING, SAVE_DELAY, STORAGE_KEY, Positioning
from custom_components.tk970.positioning import distance_m, observe
from custom_components.tk970.positioning.providers import mls_body
from custom_components.tk970.protocol import Message
from simulator import SimulatedTracker, radio
from tests.positioning.fake_provider import ANSWER, FakeProvider, serve_provider
from tests.protocol.helpers import decode_datagram
from tests.protocol.vectors import load

from .common import (
    IMEI,
    entity_id,
    free_port,
    make_entry,
    stepping_clock,
    wait_for,
    wait_for_state,
)

pytestmark = pytest.mark.usefixtures("socket_enabled")

#: Where the trackers learn (the Victory Column, Berlin), where they go next (the Eiffel
#: Tower), and a place in Berlin no tracker has been (for the imported database).
HERE = (52.5145, 13.3500)
AWAY = (48.8584, 2.2945)
UNVISITED = (52.4500, 13.2000)
FAMILIES = ["gt06", "jt808"]


@pytest.fixture
async def provider() -> AsyncIterator[FakeProvider]:
    """A fake geolocation provider on 127.0.0.1."""
    async for fake in serve_provider():
        yield fake


@pytest.fixture(autouse=True)
def config_dir(hass: HomeAssistant, tmp_path: Path) -> Path:
    """A configuration folder of this test's own (the cell database goes into it)."""
    hass.config.config_dir = str(tmp_path)
    return tmp_path


async def set_up(
    hass: HomeAssistant, port: int, identity: str = IMEI, **options: Any
) -> MockConfigEntry:
    """Configure one tracker with these options and set it up."""
    entry = make_entry(identity, port, **options)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


class Tracker:
    """A simulated tracker with a clock that advances 10 s per report, and what HA shows."""

    def __init__(
        self, hass: HomeAssistant, entry: MockConfigEntry, device: SimulatedTracker
    ) -> None:
        self.hass = hass
        self.entry = entry
        self.device = device
        self.seen: list[tuple[Message, object]] = []
        coordinator = entry.runtime_data
        positioning = coordinator.positioning
        original = positioning.handle

        def spy(message: Message, when: Any, **kwargs: Any) -> Any:
            result = original(message, when, **kwargs)
            self.seen.append((message, result))
            return result

        positioning.handle = spy  # type: ignore[method-assign]

    @property
    def shared(self) -> Positioning:
        return self.hass.data[DATA_POSITIONING]

    @property
    def entity(self) -> str:
        return entity_id(self.hass, "device_tracker", self.entry.unique_id)

    def state(self) -> State:
        state = self.hass.states.get(self.entity)
        assert state is not None
        return state

    async def processed(self, count: int) -> None:
        """Wait until `count` reports with cells or Wi-Fi reached fallback positioning."""
        await wait_for(lambda: len(self.seen) >= count)

    async def fix(self, where: tuple[float, float], **changes: Any) -> None:
        """Report a valid fix at `where` and wait until HA has handled it."""
        before = len(self.seen)
        await self.device.report(latitude=where[0], longitude=where[1], valid=True, **changes)
        await self.processed(before + 1)

    async def no_fix(self, where: tuple[float, float], *, wifi: bool = True) -> None:
        """Report from `where` without a fix and wait until HA has handled it."""
        before = len(self.seen)
        await self.device.report_without_fix(*where, wifi=wifi)
        await self.processed(before + 1)


@pytest.fixture
async def trackers(hass: HomeAssistant, port: int) -> AsyncIterator[Callable[..., Any]]:
    """Make a configured tracker with a simulated device connected and logged in."""
    made: list[SimulatedTracker] = []

    async def _make(protocol: str, *, identity: str = IMEI, **options: Any) -> Tracker:
        entry = await set_up(hass, port, identity, **options)
        device = SimulatedTracker(identity, protocol=protocol, port=port, clock=stepping_clock())
        await device.connect()
        made.append(device)
        await device.login()
        return Tracker(hass, entry, device)

    yield _make
    for device in made:
        await device.close()


def near(state: State, where: tuple[float, float]) -> float:
    """Distance from the shown position to `where`, metres."""
    return distance_m(state.attributes["latitude"], state.attributes["longitude"], *where)


def source_sensor(tracker: Tracker) -> str:
    state = tracker.hass.states.get(
        entity_id(tracker.hass, "sensor", f"{tracker.entry.unique_id}_position_source")
    )
    assert state is not None
    return state.state


# -- the learned table ---------------------------------------------------------------------


@pytest.mark.parametrize("protocol", FAMILIES)
async def test_learns_from_fixes_and_resolves_a_report_without_one(
    hass: HomeAssistant, trackers: Callable[..., Any], protocol: str
) -> None:
    """Three fixes teach the cells; after a trip, a cell-only report from there moves the car back.

    The tracker's last GNSS fix (Paris) lies far outside the estimate's circle: the fallback
    is the better position, shown with its radius as the accuracy.
    """
    tracker: Tracker = await trackers(protocol)
    for _ in range(3):
        await tracker.fix(HERE)
    await tracker.fix(AWAY)
    assert near(tracker.state(), AWAY) < 1
    await tracker.no_fix(HERE, wifi=False)
    state = tracker.state()
    assert state.attributes["position_source"] == "lbs"
    assert state.attributes["position_method"] == "learned"
    assert near(state, HERE) <= state.attributes["gps_accuracy"]
    assert 500 <= state.attributes["gps_accuracy"] < 2000
    assert "attribution" not in state.attributes  # our own data: nobody to credit
    assert source_sensor(tracker) == "lbs_learned"


async def test_wifi_gives_a_finer_position(
    hass: HomeAssistant, trackers: Callable[..., Any]
) -> None:
    """JT808 reports carry access points: two known ones place the tracker within metres."""
    tracker: Tracker = await trackers("jt808")
    await tracker.fix(HERE)
    await tracker.fix(AWAY)
    await tracker.no_fix(HERE)
    state = tracker.state()
    assert state.attributes["position_source"] == "wifi"
    assert state.attributes["gps_accuracy"] <= 200
    assert near(state, HERE) <= state.attributes["gps_accuracy"]
    assert source_sensor(tracker) == "wifi_learned"


@pytest.mark.parametrize("protocol", FAMILIES)
async def test_a_fallback_never_makes_the_map_worse(
    hass: HomeAssistant, trackers: Callable[..., Any], protocol: str
) -> None:
    """A cell-only report whose circle holds the last GNSS fix leaves the tracker on that fix;
    one from far away moves it; coming back inside the circle shows the GNSS fix again."""
    tracker: Tracker = await trackers(protocol)
    for _ in range(3):
        await tracker.fix(HERE)
    shown = tracker.state()
    await tracker.no_fix(HERE, wifi=False)
    assert tracker.seen[-1][1] is not None  # resolved, and still not shown
    assert tracker.state().attributes["position_source"] == "gnss"
    assert tracker.state().attributes["latitude"] == shown.attributes["latitude"]
    assert source_sensor(tracker) == "gnss"
    # Far away (the cells of Paris were learned there): the fallback moves the tracker.
    for _ in range(3):
        await tracker.fix(AWAY)
    for _ in range(3):
        await tracker.fix(HERE)
    await tracker.no_fix(AWAY, wifi=False)
    assert tracker.state().attributes["position_source"] == "lbs"
    assert near(tracker.state(), AWAY) <= tracker.state().attributes["gps_accuracy"]
    # Back where the last fix was: its position is the better one again.
    await tracker.no_fix(HERE, wifi=False)
    state = tracker.state()
    assert state.attributes["position_source"] == "gnss"
    assert near(state, HERE) < 1
    assert "position_method" not in state.attributes


async def test_a_fix_of_the_same_age_wins(
    hass: HomeAssistant, trackers: Callable[..., Any]
) -> None:
    """A fallback stamped like the GNSS fix already shown is not news, however far it is."""
    tracker: Tracker = await trackers("gt06")
    for _ in range(3):
        await tracker.fix(AWAY)
    await tracker.fix(HERE)
    coordinator = tracker.entry.runtime_data
    paris = tracker.shared.resolver.resolve_learned(
        observe(radio.cells_at(*AWAY), []), now=int(datetime.now(UTC).timestamp())
    )
    assert paris is not None
    shown = coordinator.data.position_time
    assert shown is not None
    assert not coordinator.core.show_fallback(paris, FixTime(shown, False))
    assert coordinator.core.show_fallback(paris, FixTime(shown + timedelta(seconds=1), False))


@pytest.mark.parametrize("protocol", FAMILIES)
async def test_cells_are_trusted_after_three_fixes(
    hass: HomeAssistant, trackers: Callable[..., Any], protocol: str
) -> None:
    """Two fixes are not enough to place a report by its cells; the third is."""
    tracker: Tracker = await trackers(protocol)
    for _ in range(2):
        await tracker.fix(HERE)
    await tracker.fix(AWAY)
    await tracker.no_fix(HERE, wifi=False)
    assert tracker.seen[-1][1] is None
    assert near(tracker.state(), AWAY) < 1
    await tracker.fix(HERE)
    await tracker.fix(AWAY)
    await tracker.no_fix(HERE, wifi=False)
    assert tracker.seen[-1][1] is not None
    assert near(tracker.state(), HERE) <= tracker.state().attributes["gps_accuracy"]


async def test_a_moved_cell_is_forgotten(hass: HomeAssistant, trackers: Callable[..., Any]) -> None:
    """A cell reported with a fix 150 km from where it was learned is reset and not used."""
    tracker: Tracker = await trackers("jt808")
    for _ in range(3):
        await tracker.fix(HERE)
    hamburg = (53.55, 10.0)
    await tracker.fix(hamburg, cells=tuple(radio.cells_at(*HERE)), wifi=())
    assert tracker.shared.table.stats()["blocked"] >= 1
    await tracker.fix(AWAY)
    await tracker.no_fix(HERE, wifi=False)
    assert tracker.seen[-1][1] is None
    assert near(tracker.state(), AWAY) < 1


async def test_the_table_stays_within_its_bounds(
    hass: HomeAssistant, trackers: Callable[..., Any]
) -> None:
    """However many places the tracker visits, the table keeps at most its cap."""
    tracker: Tracker = await trackers("jt808")
    table = tracker.shared.table
    table.cells.max_entries = table.wifi.max_entries = 12
    for step in range(15):
        await tracker.fix((HERE[0] + 0.01 * step, HERE[1]))
    assert 0 < len(table.cells.entries) <= 12
    assert 0 < len(table.wifi.entries) <= 12


async def test_learned_positions_survive_a_restart(
    hass: HomeAssistant, hass_storage: dict[str, Any], trackers: Callable[..., Any], port: int
) -> None:
    """The table is saved (delayed, then at unload) and loaded again by the next setup."""
    tracker: Tracker = await trackers("gt06")
    for _ in range(3):
        await tracker.fix(HERE)
    later = datetime.now(UTC) + timedelta(seconds=SAVE_DELAY + 1)
    async_fire_time_changed(hass, later)  # our delay: hands the table to the Store
    await hass.async_block_till_done()
    async_fire_time_changed(hass, later + timedelta(seconds=1))  # the Store writes
    await hass.async_block_till_done()
    assert hass_storage[STORAGE_KEY]["data"]["cells"]
    await tracker.fix(AWAY)
    entry = tracker.entry
    await tracker.device.close()
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    assert DATA_POSITIONING not in hass.data
    saved = hass_storage[STORAGE_KEY]["data"]["cells"]
    assert len(saved) >= 2  # Paris too, written at unload
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert hass.data[DATA_POSITIONING].table.stats()["cells"] == len(saved)
    device = SimulatedTracker(IMEI, protocol="gt06", port=port, clock=tracker.device.clock)
    await device.connect()
    try:
        await device.login()
        again = Tracker(hass, entry, device)
        await again.no_fix(HERE, wifi=False)
        assert again.seen[-1][1] is not None
        await wait_for_state(
            hass, again.entity, lambda s: s.attributes.get("position_method") == "learned"
        )
    finally:
        await device.close()


async def test_learning_can_be_turned_off(
    hass: HomeAssistant, trackers: Callable[..., Any]
) -> None:
    """With `learn_positions` off the tracker neither teaches nor uses the table."""
    tracker: Tracker = await trackers("jt808", learn_positions=False)
    for _ in range(3):
        await tracker.fix(HERE)
    assert len(tracker.shared.table) == 0
    await tracker.fix(AWAY)
    await tracker.no_fix(HERE)
    assert tracker.seen[-1][1] is None
    assert near(tracker.state(), AWAY) < 1


# -- online providers ----------------------------------------------------------------------


def vector_message(vector_id: str) -> tuple[bytes, Message]:
    """A captured frame and what the decoders make of it."""
    family, line = vector_id.split(":")
    vector = next(v for v in load(family) if v.line == int(line))
    return vector.raw, decode_datagram(vector.raw)[0][0].message


async def background_done(tracker: Tracker, outcomes: int) -> None:
    """Wait until the online lookups have reported `outcomes` results in all."""
    online = tracker.shared.online
    await wait_for(lambda: sum(online.stats.by_outcome.values()) >= outcomes, within=20)
    await tracker.hass.async_block_till_done()


async def test_mls_answer_from_a_real_gt06_frame(
    hass: HomeAssistant, trackers: Callable[..., Any], provider: FakeProvider
) -> None:
    """A GT06 Wi-Fi frame from a real device: asked online (never considering our IP), shown,
    and the same stations again are answered from the cache."""
    tracker: Tracker = await trackers(
        "gt06",
        geolocation_provider="mls",
        geolocation_url=f"{provider.url}/v1/geolocate",
        geolocation_api_key="secret",
    )
    raw, message = vector_message("gt06:14")
    await tracker.device.send(raw)
    await tracker.processed(1)
    await background_done(tracker, 1)
    state = await wait_for_state(
        hass, tracker.entity, lambda s: s.attributes.get("position_method") == "online"
    )
    assert (state.attributes["latitude"], state.attributes["longitude"]) == (52.5163, 13.3777)
    assert state.attributes["gps_accuracy"] == 43
    assert state.attributes["position_source"] == "wifi"
    assert state.attributes["position_provider"] == "127.0.0.1"
    assert state.attributes["attribution"] == "Position: 127.0.0.1"
    assert source_sensor(tracker) == "wifi_online"
    (request,) = provider.requests
    assert request["query"] == {"key": "secret"}
    assert request["body"] == mls_body(observe(message.cells, message.wifi))
    assert request["body"]["considerIp"] is False
    assert request["headers"]["User-Agent"].startswith("tk970/")
    await tracker.device.send(raw)
    await tracker.processed(2)
    await background_done(tracker, 2)
    assert len(provider.requests) == 1
    assert tracker.shared.online.stats.cache_hits == 1


async def test_unwired_answer_from_a_real_jt808_frame(
    hass: HomeAssistant, port: int, provider: FakeProvider
) -> None:
    """A JT808 report without a fix from a real device, resolved by Unwired Labs."""
    raw, message = vector_message("jt808:16")
    assert message.device_id is not None
    entry = await set_up(
        hass,
        port,
        message.device_id,
        geolocation_provider="unwiredlabs",
        geolocation_url=f"{provider.url}/v2/process",
        geolocation_api_key="pk.token",
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        await writer.drain()
        tracker_id = entity_id(hass, "device_tracker", message.device_id)
        state = await wait_for_state(
            hass, tracker_id, lambda s: s.attributes.get("position_method") == "online", within=20
        )
    finally:
        writer.close()
        await writer.wait_closed()
    del reader
    assert (state.attributes["latitude"], state.attributes["longitude"]) == (52.5163, 13.3777)
    assert state.attributes["gps_accuracy"] == 300
    body = provider.requests[0]["body"]
    assert body["token"] == "pk.token"
    assert body["fallbacks"] == {"ipf": 0, "lacf": 0}
    assert body["cells"][0]["cid"] == message.cells[0].cid
    assert [w["bssid"] for w in body["wifi"]] == [w.mac for w in message.wifi]
    assert entry.runtime_data.data.fallback is not None


def error(status: int, reason: str = "") -> Callable[[Any], web.Response]:
    body = {"error": {"errors": [{"reason": reason, "message": reason}], "code": status}}
    return lambda _: web.json_response(body, status=status)


FAILURES: dict[str, tuple[Callable[[Any], Any] | None, str | None]] = {
    "not found": (error(404, "notFound"), None),
    "quota": (error(403, "dailyLimitExceeded"), "geolocation_quota"),
    "invalid key": (error(400, "keyInvalid"), "geolocation_invalid_key"),
    "server error": (lambda _: web.Response(status=500), None),
    "timeout": (None, None),
    "malformed": (lambda _: web.Response(text="{not json"), None),
}


@pytest.mark.parametrize("case", list(FAILURES))
async def test_provider_failures_leave_the_tracker_alone(
    hass: HomeAssistant,
    trackers: Callable[..., Any],
    provider: FakeProvider,
    case: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """404, quota, invalid key, 500, timeout and garbage: no position, at most one repair issue,
    which goes away when the options change."""
    respond, issue = FAILURES[case]
    provider.responses.append(respond or provider.never)
    tracker: Tracker = await trackers(
        "jt808", geolocation_provider="mls", geolocation_url=f"{provider.url}/v1/geolocate"
    )
    tracker.shared.online.timeout = 0.5
    for step in range(3):  # three places, none learned: the first asks, the others may not
        await tracker.no_fix((UNVISITED[0] + 0.05 * step, UNVISITED[1]))
        await background_done(tracker, step + 1)
    assert len(provider.requests) == 1
    assert tracker.state().attributes.get("latitude") is None
    registry = ir.async_get(hass)
    ours = [key for key in registry.issues if key[0] == DOMAIN]
    if issue is None:
        assert ours == []
        return
    assert ours == [(DOMAIN, f"{issue}_{tracker.entry.entry_id}")]
    hass.config_entries.async_update_entry(
        tracker.entry, options={**tracker.entry.options, "geolocation_api_key": "new"}
    )
    await hass.async_block_till_done()
    assert [key for key in registry.issues if key[0] == DOMAIN] == []


async def test_diagnostics_hide_the_key(
    hass: HomeAssistant, trackers: Callable[..., Any], provider: FakeProvider
) -> None:
    """The key (and the URL, which may carry credentials) never appear in diagnostics."""
    tracker: Tracker = await trackers(
        "gt06",
        geolocation_provider="mls",
        geolocation_url=f"{provider.url}/v1/geolocate",
        geolocation_api_key="very-secret-key",
    )
    await tracker.fix(HERE)
    diagnostics = await async_get_config_entry_diagnostics(hass, tracker.entry)
    assert "very-secret-key" not in repr(diagnostics)
    assert provider.url not in repr(diagnostics)
    assert diagnostics["positioning"]["provider"] == {"kind": "mls", "host": "127.0.0.1"}
    assert diagnostics["positioning"]["learned"]["cells"] >= 1


# -- the imported cell database -------------------------------------------------------------


def export(path: Path, rows: int) -> set[tuple[int, int]]:
    """An OpenCellID-style export: `rows` random cells around Berlin, then the simulated radio
    world's cells around UNVISITED; returns the (lac, cid) of the latter."""
    rng = random.Random(7)
    lines = [
        "radio,mcc,net,area,cell,unit,lon,lat,range,samples,changeable,created,updated,averageSignal"
    ]
    lines.extend(
        f"LTE,262,2,{1 + index % 400},{200_000 + index},,{13.0 + rng.random():.6f},"
        f"{52.3 + rng.random() * 0.4:.6f},{rng.randint(200, 5000)},3,1,1500000000,1700000000,0"
        for index in range(rows)
    )
    known = set()
    for cell in radio.cells_at(*UNVISITED, count=6):
        known.add((cell.lac, cell.cid))
        lines.append(
            f"LTE,{cell.mcc},{cell.mnc},{cell.lac},{cell.cid},,{cell.longitude:.6f},"
            f"{cell.latitude:.6f},800,12,1,1500000000,1700000000,0"
        )
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    return known


async def test_imported_cells_place_a_tracker_where_it_never_was(
    hass: HomeAssistant, trackers: Callable[..., Any], config_dir: Path
) -> None:
    """A few thousand rows imported by the action; a cell-only report from a place no tracker
    has been is then placed from them, with OpenCelliD credited."""
    tracker: Tracker = await trackers("gt06")
    export(config_dir / "cell_towers.csv.gz", 3000)
    response = await hass.services.async_call(
        DOMAIN,
        "import_cell_database",
        {"path": "cell_towers.csv.gz", "mcc": [262]},
        blocking=True,
        return_response=True,
    )
    assert response is not None
    assert response["cells_imported"] == 3006
    assert response["cells_in_database"] == 3006
    assert response["rows_per_second"] > 0
    await tracker.fix(AWAY)
    await tracker.no_fix(UNVISITED)
    state = await wait_for_state(
        hass, tracker.entity, lambda s: s.attributes.get("position_method") == "imported"
    )
    assert near(state, UNVISITED) <= state.attributes["gps_accuracy"]
    assert state.attributes["attribution"] == "OpenCelliD Project, CC BY-SA 4.0"
    assert state.attributes["position_provider"] == "cell database"
    assert source_sensor(tracker) == "lbs_imported"
    await hass.services.async_call(DOMAIN, "delete_cell_database", {}, blocking=True)
    assert not (config_dir / ".storage" / "tk970.cells.sqlite3").exists()


async def test_import_refuses_what_it_cannot_read(hass: HomeAssistant, config_dir: Path) -> None:
    """Outside the configuration folder, missing, or not a cell export: a clear error each."""
    assert await set_up(hass, free_port())
    (config_dir / "notes.csv").write_text("name,phone\n" + "alice,1\n" * 1500)
    cases = {
        "/etc/passwd": (ServiceValidationError, "import_path_not_allowed"),
        "../outside.csv": (ServiceValidationError, "import_path_not_allowed"),
        "missing.csv.gz": (ServiceValidationError, "import_file_missing"),
        "notes.csv": (HomeAssistantError, "import_bad_format"),
    }
    for path, (kind, key) in cases.items():
        with pytest.raises(kind) as err:
            await hass.services.async_call(
                DOMAIN, "import_cell_database", {"path": path}, blocking=True
            )
        assert err.value.translation_key == key, path
        assert err.value.translation_domain == DOMAIN


async def test_options_flow_fields(hass: HomeAssistant, port: int) -> None:
    """The provider options: a token is required for Unwired Labs, a URL must be a URL, and
    the other provider's default URL left behind is dropped."""
    entry = await set_up(hass, port)
    flow = await hass.config_entries.options.async_init(entry.entry_id)
    base = {"alarm_hold_minutes": 10, "relay_max_speed": 20, "relay_dialect": "auto"}
    result = await hass.config_entries.options.async_configure(
        flow["flow_id"],
        {**base, "learn_positions": True, "geolocation_provider": "unwiredlabs"},
    )
    assert result["errors"] == {"geolocation_api_key": "token_required"}
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {
            **base,
            "learn_positions": True,
            "geolocation_provider": "mls",
            "geolocation_url": "ftp://example.com",
        },
    )
    assert result["errors"] == {"geolocation_url": "invalid_url"}
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {
            **base,
            "learn_positions": False,
            "geolocation_provider": "unwiredlabs",
            "geolocation_url": "https://api.beacondb.net/v1/geolocate",
            "geolocation_api_key": " pk.abc ",
        },
    )
    assert result["type"] == "create_entry"
    fallback_options = {
        key: value
        for key, value in entry.options.items()
        if key.startswith(("learn_", "geolocation_"))
    }
    assert fallback_options == {
        "learn_positions": False,
        "geolocation_provider": "unwiredlabs",
        "geolocation_api_key": "pk.abc",
    }
    assert not entry.runtime_data.positioning.learn
    assert entry.runtime_data.positioning.provider is not None
    assert entry.runtime_data.positioning.provider.url == "https://us1.unwiredlabs.com/v2/process"
    assert ANSWER  # the fake provider's default answer is what the online tests expect


async def test_removing_the_last_tracker_removes_what_was_learned_and_imported(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    trackers: Callable[..., Any],
    config_dir: Path,
    port: int,
) -> None:
    """Learned positions and imported cells belong to the installation: the last tracker's
    removal takes them along; removing one of two keeps them."""
    tracker: Tracker = await trackers("gt06")
    export(config_dir / "cells.csv.gz", 10)
    await hass.services.async_call(
        DOMAIN, "import_cell_database", {"path": "cells.csv.gz"}, blocking=True
    )
    for _ in range(3):
        await tracker.fix(HERE)
    other = make_entry("864717003283581", port, name="Car")
    other.add_to_hass(hass)
    assert await hass.config_entries.async_setup(other.entry_id)
    await tracker.device.close()
    database = config_dir / ".storage" / "tk970.cells.sqlite3"
    await hass.config_entries.async_remove(tracker.entry.entry_id)
    await hass.async_block_till_done()
    async_fire_time_changed(hass, datetime.now(UTC) + timedelta(seconds=SAVE_DELAY + 1))
    await hass.async_block_till_done()
    assert hass_storage[STORAGE_KEY]["data"]["cells"]
    assert database.exists()
    await hass.config_entries.async_remove(other.entry_id)
    await hass.async_block_till_done()
    assert STORAGE_KEY not in hass_storage
    assert not database.exists()


async def test_the_quota_repair_goes_when_the_provider_answers_again(
    hass: HomeAssistant, trackers: Callable[..., Any], provider: FakeProvider
) -> None:
    """After the quota resets, the next answer shows a position and removes the repair."""
    provider.responses.append(error(403, "dailyLimitExceeded"))
    tracker: Tracker = await trackers(
        "jt808", geolocation_provider="mls", geolocation_url=f"{provider.url}/v1/geolocate"
    )
    online = tracker.shared.online
    await tracker.no_fix(UNVISITED)
    await background_done(tracker, 1)
    registry = ir.async_get(hass)
    assert [key for key in registry.issues if key[0] == DOMAIN]
    later = datetime.now(UTC) + timedelta(days=1, hours=1)
    online.clock = lambda: later
    await tracker.no_fix((UNVISITED[0] + 0.05, UNVISITED[1]))
    await background_done(tracker, 2)
    await wait_for_state(
        hass, tracker.entity, lambda s: s.attributes.get("position_method") == "online"
    )
    assert [key for key in registry.issues if key[0] == DOMAIN] == []
    assert len(provider.requests) == 2
