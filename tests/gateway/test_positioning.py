"""Fallback positioning in the gateway: the integration's engine and rules, over real MQTT.

Simulated trackers (the simulator's radio world: the cells and access points of each place)
report fixes, then reports without one, through a gateway on a real Mosquitto; the retained
state JSON must place them as the integration's tracker would. The learned table lives in a
file in the gateway's data folder and survives a restart; an online provider is a real aiohttp
server on 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
import json
from pathlib import Path
import stat
from typing import Any

import pytest

from custom_components.tk970.positioning import ProviderConfig, ProviderKind, distance_m
from gateway.__main__ import build_parser, settings_from
from gateway.app import Gateway
from gateway.positioning import LEARNED_FILE, PositioningSettings
from simulator import SimulatedTracker
from tests.common import IMEI, IMEI_2, stepping_clock, wait_for
from tests.gateway.conftest import Observer
from tests.gateway.test_gateway import CONFIG, validate_discovery
from tests.positioning.fake_provider import ANSWER, FakeProvider, serve_provider

pytestmark = pytest.mark.usefixtures("socket_enabled")

#: Where the trackers learn (the Victory Column, Berlin) and where they go next (Paris).
HERE = (52.5145, 13.3500)
AWAY = (48.8584, 2.2945)


def state_topic(identity: str) -> str:
    return f"tk970/{identity}/state"


@pytest.fixture
async def provider() -> AsyncIterator[FakeProvider]:
    """A fake geolocation provider on 127.0.0.1."""
    async for fake in serve_provider():
        yield fake


class Device:
    """A simulated tracker on a gateway, and the state JSON the gateway publishes for it."""

    def __init__(
        self, observer: Observer, gateway: Gateway, device: SimulatedTracker, identity: str
    ) -> None:
        self.observer = observer
        self.gateway = gateway
        self.device = device
        self.identity = identity
        self.topic = state_topic(identity)

    async def published(self) -> dict[str, Any]:
        """The state the gateway holds, once the observer received it (the newest one)."""

        def received() -> bool:
            last = self.observer.last(self.topic)
            tracker = self.gateway.trackers[self.identity]
            return last is not None and last.json() == json.loads(json.dumps(tracker.snapshot()))

        await wait_for(received, within=20)
        return self.observer.last(self.topic).json()  # type: ignore[union-attr,no-any-return]

    async def handled(self, send: Callable[[], Awaitable[None]]) -> dict[str, Any]:
        """Send a report, wait until the gateway took it and published its state."""
        tracker = self.gateway.trackers[self.identity]
        heard = tracker.state.last_heard
        await send()
        await wait_for(lambda: tracker.state.last_heard != heard, within=20)
        return await self.published()

    async def fix(self, where: tuple[float, float]) -> dict[str, Any]:
        return await self.handled(
            lambda: self.device.report(latitude=where[0], longitude=where[1], valid=True)
        )

    async def no_fix(self, where: tuple[float, float], *, wifi: bool = True) -> dict[str, Any]:
        return await self.handled(lambda: self.device.report_without_fix(*where, wifi=wifi))


@pytest.fixture
async def devices(observer: Observer) -> AsyncIterator[Any]:
    """Connect simulated trackers to a gateway: `await devices(gateway, protocol, identity)`."""
    made: list[SimulatedTracker] = []

    async def connect(gateway: Gateway, protocol: str, identity: str = IMEI) -> Device:
        device = SimulatedTracker(
            identity, protocol=protocol, port=gateway.settings.port, clock=stepping_clock()
        )
        await device.connect()
        made.append(device)
        await device.login()  # answered once the gateway took the login
        tracker = Device(observer, gateway, device, identity)
        await tracker.published()
        return tracker

    yield connect
    for device in made:
        await device.close()


def near(state: dict[str, Any], where: tuple[float, float]) -> float:
    return distance_m(state["latitude"], state["longitude"], *where)


@pytest.mark.parametrize("protocol", ["gt06", "jt808"])
async def test_learns_from_fixes_and_resolves_a_report_without_one(
    gateways: Any, devices: Any, observer: Observer, tmp_path: Path, protocol: str
) -> None:
    """Fixes teach the cells; after a trip, a cell-only report from there moves the tracker
    back, with the estimate's radius as its accuracy; one whose circle holds the last fix
    leaves the tracker on it (never worse). A position source sensor says which."""
    gateway = await gateways(
        allow={IMEI: "Van"}, positioning=PositioningSettings(tmp_path / "data")
    )
    device = await devices(gateway, protocol)
    for _ in range(3):
        await device.fix(HERE)
    state = await device.no_fix(HERE, wifi=False)
    assert state["position_source"] == "gnss"  # the fix lies inside the estimate's circle
    assert near(state, HERE) < 1
    state = await device.fix(AWAY)
    assert near(state, AWAY) < 1
    state = await device.no_fix(HERE, wifi=False)
    assert (state["position_source"], state["position_method"]) == ("lbs", "learned")
    assert state["position_detail"] == "lbs_learned"
    assert near(state, HERE) <= state["gps_accuracy"]
    assert 500 <= state["gps_accuracy"] < 2000
    components = validate_discovery((await observer.wait(CONFIG)).json())
    assert components["position_detail"]["unique_id"] == f"tk970_{IMEI}_position_detail"
    # Shown by its name, as the integration shows it (MQTT entities have no translations).
    assert "Cell towers (learned)" in components["position_detail"]["options"]


async def test_learned_table_survives_a_restart(
    gateways: Any, devices: Any, tmp_path: Path
) -> None:
    """A stopped gateway writes its table (owner-readable only); the next one, on the same
    data folder, places a tracker that never had a fix there."""
    data = tmp_path / "data"
    first = await gateways("gw1", allow={IMEI: "Van"}, positioning=PositioningSettings(data))
    device = await devices(first, "jt808")
    for _ in range(3):
        await device.fix(HERE)
    await device.device.close()
    await first.stop()
    table = data / LEARNED_FILE
    assert stat.S_IMODE(table.stat().st_mode) == 0o600
    assert json.loads(table.read_text())["cells"]

    second = await gateways("gw2", allow={IMEI_2: "Boat"}, positioning=PositioningSettings(data))
    other = await devices(second, "jt808", IMEI_2)
    await other.fix(AWAY)
    state = await other.no_fix(HERE)
    assert state["position_source"] == "wifi"
    assert state["position_detail"] == "wifi_learned"
    assert near(state, HERE) <= state["gps_accuracy"] <= 200


async def test_online_provider(
    gateways: Any, devices: Any, tmp_path: Path, provider: FakeProvider
) -> None:
    """With nothing learned, an MLS-format provider places the report; its answer is cached
    (the same cells again ask nothing), and the gateway's address is not offered as a hint."""
    settings = PositioningSettings(
        tmp_path / "data",
        learn=False,
        provider=ProviderConfig(ProviderKind.MLS, f"{provider.url}/v1/geolocate", "secret"),
    )
    gateway = await gateways(allow={IMEI: "Van"}, positioning=settings)
    device = await devices(gateway, "gt06")
    await device.fix(AWAY)
    await device.device.report_without_fix(*HERE)
    # The answer comes after the report's own state.
    state = (
        await device.observer.wait(
            device.topic, lambda m: m.json().get("position_method") == "online"
        )
    ).json()
    assert (state["latitude"], state["longitude"]) == (
        ANSWER["location"]["lat"],  # type: ignore[index]
        ANSWER["location"]["lng"],  # type: ignore[index]
    )
    assert state["position_method"] == "online"
    assert state["position_provider"] == "127.0.0.1"
    assert state["gps_accuracy"] == 43  # the answer's 42.4 m, rounded up
    [request] = provider.requests
    assert request["query"] == {"key": "secret"}
    assert request["body"]["considerIp"] is False
    assert request["body"]["cellTowers"]
    await device.no_fix(HERE)
    assert gateway.positioning is not None
    outcomes = gateway.positioning.online.stats.by_outcome
    await wait_for(lambda: sum(outcomes.values()) == 2, within=20)
    assert outcomes == {"found": 1, "cached": 1}
    assert len(provider.requests) == 1
    assert not (tmp_path / "data" / LEARNED_FILE).exists()  # learning is off


def test_command_line(tmp_path: Path) -> None:
    """The options of interfaces.md §4 and the data folder; every source off: none at all."""
    base = ["--mqtt", "mqtt://127.0.0.1", "--data-dir", str(tmp_path)]
    parser = build_parser()
    settings = settings_from(parser.parse_args(base)).positioning
    assert settings is not None
    assert (settings.learn, settings.provider, settings.data_dir) == (True, None, tmp_path)
    settings = settings_from(
        parser.parse_args(
            [
                *base,
                "--no-learn-positions",
                "--geolocation-provider",
                "mls",
                "--geolocation-api-key",
                "k",
            ]
        )
    ).positioning
    assert settings is not None
    assert not settings.learn
    assert settings.provider == ProviderConfig(
        ProviderKind.MLS, "https://api.beacondb.net/v1/geolocate", "k"
    )
    assert settings_from(parser.parse_args([*base, "--no-learn-positions"])).positioning is None
    with pytest.raises(ValueError, match="token"):
        settings_from(parser.parse_args([*base, "--geolocation-provider", "unwiredlabs"]))
    with pytest.raises(ValueError, match="http"):
        settings_from(
            parser.parse_args(
                [*base, "--geolocation-provider", "mls", "--geolocation-url", "ftp://x"]
            )
        )
