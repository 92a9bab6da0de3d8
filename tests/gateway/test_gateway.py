"""The gateway against a real Mosquitto, with simulated trackers over real sockets.

Discovery validated with Home Assistant's own MQTT discovery schemas, positions and alarms
published, the relay round trip, a broker restart with no acknowledged report lost, a full
buffer refusing (never acknowledging) reports, and two instances with a tracker moving between
them and its commands following it.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
import importlib
from typing import Any

import pytest
import voluptuous as vol

from gateway.app import Gateway
from gateway.discovery import RELAY_OUTCOMES
from simulator import SimulatedTracker
from tests.common import IMEI, IMEI_2, IMEI_UNKNOWN, wait_for
from tests.gateway.conftest import Mosquitto, Observer

pytestmark = pytest.mark.usefixtures("socket_enabled")

STATE = f"tk970/{IMEI}/state"
CONFIG = f"homeassistant/device/tk970_{IMEI}/config"


def validate_discovery(payload: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Validate a device discovery payload as Home Assistant's MQTT discovery does.

    Abbreviations expanded, the device schema, then each component (device, origin and the
    shared options merged in) against its platform's discovery schema. Returns the validated
    component configs by component id.
    """
    from homeassistant.components.mqtt import discovery, schemas

    payload = copy.deepcopy(payload)
    discovery._replace_all_abbreviations(payload)
    schemas.DEVICE_DISCOVERY_SCHEMA(payload)
    if hasattr(schemas, "validate_device_discovery_components"):  # newer releases
        schemas.validate_device_discovery_components(payload)
    out = {}
    for component_id, component in payload["components"].items():
        config = dict(component)
        platform = config.pop("platform")
        config["device"] = payload["device"]
        config["origin"] = payload["origin"]
        for option in schemas.SHARED_OPTIONS:
            if option in payload and option not in config:
                config[option] = payload[option]
        module = importlib.import_module(f"homeassistant.components.mqtt.{platform}")
        out[component_id] = module.DISCOVERY_SCHEMA(config)
    return out


async def connected_tracker(
    gateway: Gateway, identity: str = IMEI, **kwargs: Any
) -> SimulatedTracker:
    tracker = SimulatedTracker(identity, port=gateway.settings.port, **kwargs)
    await tracker.connect()
    await tracker.login()
    return tracker


async def test_discovery_state_and_alarms(gateways: Any, observer: Observer) -> None:
    """A tracker appears as a device HA's schemas accept; its position and alarms follow."""
    gateway = await gateways(allow={IMEI: "Van"})
    tracker = await connected_tracker(gateway, protocol="gt06")
    try:
        await tracker.report(latitude=48.8584, longitude=2.2945, speed_kmh=0.0)
        config = (await observer.wait(CONFIG)).json()
        assert (await observer.wait(CONFIG)).retain or observer.on(CONFIG)
        components = validate_discovery(config)
        unique_ids = {c["unique_id"] for c in components.values()}
        assert {f"tk970_{IMEI}", f"tk970_{IMEI}_sos", f"tk970_{IMEI}_vibration"} <= unique_ids
        assert f"tk970_{IMEI}_relay" in unique_ids
        assert components["tracker"]["json_attributes_topic"] == STATE
        assert "state_topic" not in config["components"]["tracker"]
        assert config["device"]["name"] == "Van"
        assert config["device"]["model"] == "TK970 (GT06)"
        relay = components["relay"]
        assert relay["command_topic"] == f"tk970/{IMEI}/ctl/relay"
        assert relay["payload_on"] == "ON"

        state = await observer.wait(STATE, lambda m: m.json().get("latitude") == 48.8584)
        data = state.json()
        assert data["longitude"] == 2.2945
        assert data["gps_accuracy"] > 0
        assert data["position_source"] == "gnss"
        assert data["sos"] is False
        assert data["protocol"] == "gt06"
        assert state.topic == STATE
        assert observer.last(f"tk970/{IMEI}/availability/gw1").payload == b"online"  # type: ignore[union-attr]

        await tracker.sos()
        alarm = await observer.wait(f"tk970/{IMEI}/alarm")
        assert alarm.json()["event_type"] == "sos"
        assert not alarm.retain
        await observer.wait(STATE, lambda m: m.json()["sos"] is True)
        await tracker.clear_alarms()
        await observer.wait(
            STATE, lambda m: m.json()["sos"] is False and m is observer.on(STATE)[-1]
        )
    finally:
        await tracker.close()
    await observer.wait(f"tk970/{IMEI}/availability/gw1", lambda m: m.payload == b"offline")


async def test_unknown_tracker_is_not_published(
    gateways: Any, observer: Observer, caplog: pytest.LogCaptureFixture
) -> None:
    """Without --allow or --accept-all nothing is published; the identity is logged once."""
    gateway = await gateways(allow={IMEI: None})
    tracker = await connected_tracker(gateway, IMEI_UNKNOWN, protocol="jt808")
    try:
        before = len(tracker.received)
        await tracker.report()
        await tracker.report()
        # Still answered, as the integration answers trackers it does not know.
        await tracker.wait_for(lambda d: d.detail == "8001", start=before)
    finally:
        await tracker.close()
    assert not [m for m in observer.received if IMEI_UNKNOWN in m.topic]
    assert sum("is not allowed" in r.message for r in caplog.records) == 1


async def test_accept_all_and_jt808_identity(gateways: Any, observer: Observer) -> None:
    """A JT808 terminal id matches the allowed IMEI; --accept-all takes the reported one."""
    gateway = await gateways(allow={IMEI: None})
    tracker = await connected_tracker(gateway, protocol="jt808")
    try:
        await tracker.report(latitude=1.5, longitude=2.5)
        data = (await observer.wait(STATE, lambda m: "latitude" in m.json())).json()
        assert data["reported_id"] == tracker.terminal
    finally:
        await tracker.close()
    other = await gateways("gw2", accept_all=True)
    tracker = await connected_tracker(other, IMEI_2, protocol="gt06")
    try:
        await tracker.report()
        await observer.wait(f"homeassistant/device/tk970_{IMEI_2}/config")
    finally:
        await tracker.close()


async def test_relay_round_trip(gateways: Any, observer: Observer) -> None:
    """ON through the command topic cuts; the state changes only once the device confirms."""
    gateway = await gateways(allow={IMEI: None})
    tracker = await connected_tracker(gateway, protocol="gt06")
    outcomes = f"tk970/{IMEI}/relay_command"
    try:
        await tracker.report(speed_kmh=0.0)
        await observer.wait(STATE)
        await wait_for(lambda: IMEI in gateway._claims)
        await observer.publish(f"tk970/{IMEI}/ctl/relay", "ON")
        event = await observer.wait(outcomes)
        assert event.json() == {
            "event_type": "confirmed",
            "command": "cut",
            "reason": "Cut off the fuel supply: Success!",
        }
        assert tracker.relay is True
        await observer.wait(STATE, lambda m: m.json().get("relay") is True)

        # Moving too fast: refused here, nothing sent.
        await tracker.report(speed_kmh=60.0)
        await observer.wait(STATE, lambda m: m.json().get("speed") == 60.0)
        await observer.publish(f"tk970/{IMEI}/ctl/relay", "OFF")
        await observer.wait(
            outcomes,
            lambda m: m.json()["event_type"] == "confirmed" and m.json()["command"] == "restore",
        )
        await observer.publish(f"tk970/{IMEI}/ctl/relay", "ON")
        refused = await observer.wait(outcomes, lambda m: m.json()["event_type"] == "too_fast")
        assert "60 km/h" in refused.json()["reason"]
        assert tracker.relay is False

        # A device that never answers: an error event, the state stays.
        await tracker.report(speed_kmh=0.0)
        tracker.answer_commands = False
        relay_states = len([m for m in observer.on(STATE) if "relay" in m.json()])
        await observer.publish(f"tk970/{IMEI}/ctl/relay", "ON")
        await observer.wait(outcomes, lambda m: m.json()["event_type"] == "no_answer", within=30)
        assert observer.last(STATE).json()["relay"] is False  # type: ignore[union-attr]
        assert len([m for m in observer.on(STATE) if "relay" in m.json()]) >= relay_states

        await observer.publish(f"tk970/{IMEI}/ctl/relay", "MAYBE")
        await observer.wait(outcomes, lambda m: m.json()["event_type"] == "invalid")
        assert {m.json()["event_type"] for m in observer.on(outcomes)} <= set(RELAY_OUTCOMES)
    finally:
        await tracker.close()


async def test_retained_command_is_ignored(gateways: Any, observer: Observer) -> None:
    """A relay command someone published retained never fires when a tracker connects."""
    await observer.publish(f"tk970/{IMEI}/ctl/relay", "ON", retain=True)
    gateway = await gateways(allow={IMEI: None})
    tracker = await connected_tracker(gateway, protocol="gt06")
    try:
        await tracker.report(speed_kmh=0.0)
        await observer.wait(STATE)
        await observer.wait(f"tk970/{IMEI}/ctl/owner")
        assert not [d for d in tracker.received if d.kind == "command"]
        assert tracker.relay is False
    finally:
        await tracker.close()
        await observer.publish(f"tk970/{IMEI}/ctl/relay", "", retain=True)


async def test_broker_restart_loses_no_acknowledged_report(
    gateways: Any, observer: Observer, broker: Mosquitto
) -> None:
    """Reports acknowledged while the broker is down are published, in order, when it is back."""
    gateway = await gateways(allow={IMEI: None})
    tracker = await connected_tracker(gateway, protocol="jt808")
    try:
        await tracker.report(latitude=10.0, longitude=10.0)
        await observer.wait(STATE, lambda m: m.json().get("latitude") == 10.0)
        await wait_for(lambda: gateway.outbox.reports == 0)  # confirmed: nothing carried over
        await broker.stop()
        await wait_for(lambda: not gateway.broker.connected, within=30)
        acked = []
        for step in range(1, 21):
            before = len(tracker.received)
            await tracker.report(latitude=10.0 + step / 100, longitude=10.0)
            await tracker.wait_for(lambda d: d.detail == "8001", start=before)
            acked.append(round(10.0 + step / 100, 6))
        assert gateway.outbox.reports == 20
        await broker.start()
        await wait_for(lambda: gateway.broker.connected, within=30)
        await observer.wait(STATE, lambda m: m.json().get("latitude") == acked[-1], within=30)
        seen = [m.json().get("latitude") for m in observer.on(STATE)]
        after_restart = [lat for lat in seen if lat in acked]
        # Every acknowledged report arrived, in order (a resend may repeat one).
        assert list(dict.fromkeys(after_restart)) == acked
        await wait_for(lambda: gateway.outbox.reports == 0)
    finally:
        await tracker.close()


async def test_full_buffer_refuses_reports(
    gateways: Any, observer: Observer, broker: Mosquitto
) -> None:
    """With the broker away and the buffer full, reports are not acknowledged (and counted)."""
    gateway = await gateways(allow={IMEI: None}, buffer=3)
    tracker = await connected_tracker(gateway, protocol="jt808")
    try:
        await tracker.report()
        await observer.wait(STATE)
        await wait_for(lambda: gateway.outbox.reports == 0)  # confirmed: nothing carried over
        await broker.stop()
        await wait_for(lambda: not gateway.broker.connected, within=30)
        for _ in range(3):
            before = len(tracker.received)
            await tracker.report()
            await tracker.wait_for(lambda d: d.detail == "8001", start=before)
        before = len(tracker.received)
        await tracker.report(latitude=5.0, longitude=5.0)
        await wait_for(lambda: gateway.outbox.stats.refused == 1)
        assert not [d for d in tracker.received[before:] if d.detail == "8001"]
        assert gateway.outbox.reports == 3
        await broker.start()
        await wait_for(lambda: gateway.outbox.reports == 0, within=30)
        # The refused report was never applied: the device sends it again.
        assert all(m.json().get("latitude") != 5.0 for m in observer.on(STATE))
    finally:
        await tracker.close()


async def test_tracker_moves_between_instances(gateways: Any, observer: Observer) -> None:
    """The instance holding the connection takes the commands; the state carries over."""
    first = await gateways("east", allow={IMEI: "Van"})
    second = await gateways("west", allow={IMEI: "Van"})
    tracker = await connected_tracker(first, protocol="gt06")
    try:
        await tracker.report(latitude=50.0, longitude=8.0, speed_kmh=0.0)
        await observer.wait(STATE, lambda m: m.json().get("latitude") == 50.0)
        await tracker.sos()
        await observer.wait(STATE, lambda m: m.json()["sos"] is True)
        await observer.publish(f"tk970/{IMEI}/ctl/relay", "ON")
        await observer.wait(f"tk970/{IMEI}/relay_command")
        assert tracker.relay is True
    finally:
        await tracker.close()
    await observer.wait(f"tk970/{IMEI}/availability/east", lambda m: m.payload == b"offline")

    # The tracker reconnects to the other instance (a load balancer, a new IP ...).
    tracker.port = second.settings.port
    await tracker.connect()
    await tracker.login()
    try:
        await tracker.heartbeat()
        config = await observer.wait(
            CONFIG, lambda m: "west" in m.json()["components"]["relay"]["availability"][1]["topic"]
        )
        assert config.json()["device"]["via_device"] == "tk970_gateway_west"
        # The state the first instance published carries over (position, relay, SOS latched).
        state = await observer.wait(
            STATE,
            lambda m: (
                m is observer.on(STATE)[-1]
                and m.json().get("relay") is True
                and m.json().get("latitude") == 50.0
            ),
        )
        assert state.json()["sos"] is True
        await wait_for(lambda: IMEI in second._claims and IMEI not in first._claims)

        commands_before = len([d for d in tracker.received if d.kind == "command"])
        outcomes = len(observer.on(f"tk970/{IMEI}/relay_command"))
        await observer.publish(f"tk970/{IMEI}/ctl/relay", "OFF")
        await wait_for(lambda: len(observer.on(f"tk970/{IMEI}/relay_command")) > outcomes)
        event = observer.on(f"tk970/{IMEI}/relay_command")[-1].json()
        assert event["event_type"] == "confirmed"
        assert tracker.relay is False
        # One command reached the tracker: only the holding instance acted on it.
        assert len([d for d in tracker.received if d.kind == "command"]) == commands_before + 1
        assert len(observer.on(f"tk970/{IMEI}/relay_command")) == outcomes + 1
    finally:
        await tracker.close()


async def test_stale_connection_loses_ownership(gateways: Any, observer: Observer) -> None:
    """A claim by another instance releases the tracker here, even if its old link is open."""
    first = await gateways("east", allow={IMEI: None})
    second = await gateways("west", allow={IMEI: None})
    old = await connected_tracker(first, protocol="gt06")
    new = await connected_tracker(second, protocol="gt06")
    try:
        await old.report()
        await wait_for(lambda: IMEI in first._claims)
        await new.report()
        await wait_for(lambda: IMEI in second._claims and IMEI not in first._claims)
        await observer.publish(f"tk970/{IMEI}/ctl/relay", "ON")
        await observer.wait(f"tk970/{IMEI}/relay_command")
        assert new.relay is True
        assert old.relay is False
    finally:
        await old.close()
        await new.close()


async def test_birth_message_republishes(gateways: Any, observer: Observer) -> None:
    """Home Assistant's `online` on its status topic brings discovery and state again."""
    gateway = await gateways(allow={IMEI: None})
    tracker = await connected_tracker(gateway, protocol="gt06")
    try:
        await tracker.report()
        await observer.wait(STATE)
        configs, states = len(observer.on(CONFIG)), len(observer.on(STATE))
        await observer.publish("homeassistant/status", "online")
        await wait_for(
            lambda: len(observer.on(CONFIG)) > configs and len(observer.on(STATE)) > states
        )
    finally:
        await tracker.close()


async def test_gateway_device_and_status(
    gateways: Any, observer: Observer, broker: Mosquitto
) -> None:
    """Each instance is a device of its own; `offline` when it stops (its will when it dies)."""
    gateway = await gateways("solo", allow={IMEI: None})
    config = await observer.wait("homeassistant/device/tk970_gateway_solo/config")
    validate_discovery(config.json())
    await observer.wait("tk970/_gateway/solo/status", lambda m: m.payload == b"online")
    stats = await observer.wait("tk970/_gateway/solo/stats")
    assert stats.json()["trackers"] == 0
    await gateway.stop()
    await observer.wait("tk970/_gateway/solo/status", lambda m: m.payload == b"offline")


def test_validate_discovery_catches_errors() -> None:
    """The validator is real: a payload HA would refuse fails it."""
    from gateway.discovery import tracker_config
    from gateway.topics import Topics
    from gateway.tracker import Tracker

    payload = tracker_config(Tracker(IMEI, "Van"), Topics())
    validate_discovery(payload)
    broken = copy.deepcopy(payload)
    del broken["components"]["relay"]["command_topic"]
    with pytest.raises(vol.Invalid):
        validate_discovery(broken)
    broken = copy.deepcopy(payload)
    broken["components"]["sos"]["value_template"] = "{{ value_json.sos "
    with pytest.raises(vol.Invalid):
        validate_discovery(broken)


async def test_alarm_hold_expires_after_disconnect(gateways: Any, observer: Observer) -> None:
    """SOS stays on for the hold time, also when the tracker hangs up right after raising it."""
    gateway = await gateways(allow={IMEI: None}, alarm_hold=timedelta(seconds=1))
    tracker = await connected_tracker(gateway, protocol="h02")
    try:
        await tracker.sos()
        await observer.wait(STATE, lambda m: m.json()["sos"] is True)
    finally:
        await tracker.close()
    await observer.wait(STATE, lambda m: m.json()["sos"] is False and m is observer.on(STATE)[-1])


def test_unknown_identities_flood_is_logged_bounded(caplog: pytest.LogCaptureFixture) -> None:
    """Each unknown identity is logged once; a flood of them does not flood the log."""
    from custom_components.tk970.listener import Link
    from custom_components.tk970.protocol import Protocol, Session
    from gateway.app import MAX_UNKNOWN_LOGGED, Gateway, Settings
    from gateway.broker import BrokerSettings

    gateway = Gateway(Settings(mqtt=BrokerSettings("127.0.0.1"), allow={IMEI: None}))
    now = datetime.now(UTC)

    def link(identity: str) -> Link:
        return Link(identity, Protocol.GT06, "tcp", ("192.0.2.1", 1), Session(), print, now, now)

    for number in range(MAX_UNKNOWN_LOGGED + 50):
        assert gateway._route(link(f"86{number:013d}")) is None
        assert gateway._route(link(f"86{number:013d}")) is None
    assert gateway._route(link(IMEI)) == IMEI
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == MAX_UNKNOWN_LOGGED + 1
    assert "further ones" in warnings[-1].message
