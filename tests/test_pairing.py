"""First contact: pairing (pick the tracker as it connects) and the SMS texts after adding one.

Real listener on 127.0.0.1, simulated trackers speaking the real protocols; time for the
pairing window is driven by the test plugin's `async_fire_time_changed`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
import contextlib
from datetime import timedelta
import socket
from typing import Any
from unittest.mock import AsyncMock, patch

from homeassistant.config_entries import SOURCE_INTEGRATION_DISCOVERY, SOURCE_USER
from homeassistant.core import HomeAssistant
from homeassistant.core_config import async_process_ha_core_config
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import async_fire_time_changed
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.tk970.config_flow import PICK_MORE
from custom_components.tk970.const import CONF_IMEI, CONF_NAME, CONF_PORT, DOMAIN
from custom_components.tk970.hub import HUBS, port_issue_id
from custom_components.tk970.pairing import MAX_CANDIDATES, PAIRING_WINDOW
from simulator import SimulatedTracker

from .common import IMEI, IMEI_2, IMEI_UNKNOWN, entity_id, free_port, make_entry, wait_for


@pytest.fixture
def mock_setup_entry() -> Iterator[AsyncMock]:
    """For the flow-only tests: entry setup (sockets) is not what they test."""
    with patch("custom_components.tk970.async_setup_entry", AsyncMock(return_value=True)) as mock:
        yield mock


def _step(hass: HomeAssistant, flow_id: str) -> str | None:
    """The step a flow is at now (None: it ended)."""
    for flow in hass.config_entries.flow.async_progress():
        if flow["flow_id"] == flow_id:
            return str(flow["step_id"])
    return None


def _listed(result: Any) -> list[str]:
    """The values the pick list offers."""
    selector = result["data_schema"].schema[CONF_IMEI]
    return [option["value"] for option in selector.config["options"]]


async def _start_pairing(hass: HomeAssistant, port: int, name: str | None = None) -> str:
    """Open the user step and leave the IMEI empty: the flow waits for trackers."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    user_input: dict[str, Any] = {CONF_IMEI: "", CONF_PORT: port}
    if name:
        user_input[CONF_NAME] = name
    result = await hass.config_entries.flow.async_configure(result["flow_id"], user_input)
    assert result["type"] is FlowResultType.SHOW_PROGRESS
    assert result["progress_action"] == "wait_for_tracker"
    assert result["description_placeholders"]["port"] == str(port)
    assert f"SERVER,0,<IP>,{port},0#" in result["description_placeholders"]["commands"]
    return str(result["flow_id"])


async def _pick_list(hass: HomeAssistant, flow_id: str) -> Any:
    """Wait until the flow stopped waiting, then fetch the pick list."""
    await wait_for(lambda: _step(hass, flow_id) == "pair_pick", within=30)
    result = await hass.config_entries.flow.async_configure(flow_id)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "pair_pick"
    return result


async def _port_open(port: int) -> bool:
    """Whether a TCP connection to the port is accepted."""
    try:
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


@pytest.mark.usefixtures("socket_enabled")
async def test_pairing_lists_two_trackers_and_adds_the_one_picked(hass: HomeAssistant) -> None:
    """Two trackers connect while pairing waits; both are listed; the one picked is added and
    keeps its connection (the port stays open for the new entry)."""
    port = free_port()
    flow_id = await _start_pairing(hass, port, name="Van")
    first = SimulatedTracker(IMEI, protocol="gt06", port=port)
    second = SimulatedTracker(IMEI_2, protocol="jt808", port=port)
    entry_id = None
    try:
        await first.connect()
        await first.login()
        result = await _pick_list(hass, flow_id)
        assert _listed(result) == [IMEI, PICK_MORE]
        assert result["description_placeholders"] == {"port": str(port)}

        # Not listed yet: keep waiting for the second tracker.
        result = await hass.config_entries.flow.async_configure(flow_id, {CONF_IMEI: PICK_MORE})
        assert result["type"] is FlowResultType.SHOW_PROGRESS
        await second.connect()
        await second.login()
        result = await _pick_list(hass, flow_id)
        # The most recently heard first; a JT808 unit is listed by the terminal ID it reports.
        assert _listed(result) == [second.terminal, IMEI, PICK_MORE]
        labels = {
            o["value"]: o["label"]
            for o in result["data_schema"].schema[CONF_IMEI].config["options"]
        }
        assert labels[IMEI] == f"{IMEI} · GT06 · 127.0.0.1 (TCP)"
        assert labels[second.terminal] == f"{second.terminal} · JT/T 808 · 127.0.0.1 (TCP)"
        # While a flow pairs, the trackers it lists are not offered as discoveries as well.
        assert not hass.config_entries.flow.async_progress_by_handler(
            DOMAIN, match_context={"source": SOURCE_INTEGRATION_DISCOVERY}
        )

        result = await hass.config_entries.flow.async_configure(
            flow_id, {CONF_IMEI: IMEI, CONF_NAME: "Van"}
        )
        assert result["type"] is FlowResultType.CREATE_ENTRY
        entry_id = result["result"].entry_id
        assert result["data"] == {CONF_IMEI: IMEI, CONF_NAME: "Van", CONF_PORT: port}
        assert result["description"] == "connected"
        placeholders = result["description_placeholders"]
        assert placeholders["protocol"] == "GT06"
        assert placeholders["address"] == "127.0.0.1"
        assert f"`SERVER,0,<IP>,{port},0#`" in placeholders["commands"]
        assert "8040000" not in placeholders["commands"]  # only its own family's texts
        await hass.async_block_till_done()

        # The pairing hold is released, the entry's remains: the same connection reports on.
        hub = hass.data[HUBS][port]
        assert hub.users == {result["result"].entry_id}
        await first.report(latitude=48.1, longitude=11.5)
        tracker = entity_id(hass, "device_tracker", IMEI)
        await wait_for(
            lambda: (
                (state := hass.states.get(tracker)) is not None
                and state.attributes.get("latitude") == 48.1
            )
        )
        # The tracker not picked is offered as a discovery now that no flow pairs.
        await second.heartbeat()
        await wait_for(
            lambda: bool(
                hass.config_entries.flow.async_progress_by_handler(
                    DOMAIN, match_context={"source": SOURCE_INTEGRATION_DISCOVERY}
                )
            )
        )
    finally:
        await first.close()
        await second.close()
        if entry_id is not None:
            await hass.config_entries.async_unload(entry_id)
        if _step(hass, flow_id) is not None:
            hass.config_entries.flow.async_abort(flow_id)
        await hass.async_block_till_done()


@pytest.mark.usefixtures("socket_enabled")
async def test_pairing_abort_closes_the_port(hass: HomeAssistant) -> None:
    """Closing the dialog ends the flow, and the port opened only for pairing closes."""
    port = free_port()
    flow_id = await _start_pairing(hass, port)
    assert await _port_open(port)
    hass.config_entries.flow.async_abort(flow_id)
    await hass.async_block_till_done()
    assert port not in hass.data[HUBS]
    assert not await _port_open(port)


@pytest.mark.usefixtures("socket_enabled")
async def test_pairing_times_out_and_closes_the_port(hass: HomeAssistant) -> None:
    """Nobody reports within the window: the flow aborts, saying what to check; port closed.

    A tracker that is configured already connects meanwhile: it is not listed.
    """
    port = free_port()
    entry = make_entry(IMEI, port=port)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    flow_id = await _start_pairing(hass, port)
    known = SimulatedTracker(IMEI, protocol="gt06", port=port)
    try:
        await known.connect()
        await known.login()
        await known.report()
        await wait_for(lambda: entry.runtime_data.data.connected)
        assert _step(hass, flow_id) == "pair"

        async_fire_time_changed(hass, dt_util.utcnow() + PAIRING_WINDOW + timedelta(seconds=1))
        await wait_for(lambda: _step(hass, flow_id) == "pair_timeout", within=30)
        await hass.async_block_till_done()
        # The port stays open for the configured tracker; pairing no longer holds it.
        assert hass.data[HUBS][port].users == {entry.entry_id}
    finally:
        await known.close()
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    assert not await _port_open(port)


@pytest.mark.usefixtures("socket_enabled")
async def test_pairing_timeout_result(hass: HomeAssistant) -> None:
    """The timeout's abort names the port and the minutes waited; the port is closed."""
    port = free_port()
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    flow_id = result["flow_id"]
    await hass.config_entries.flow.async_configure(flow_id, {CONF_PORT: port})
    events: list[Any] = []
    hass.bus.async_listen("data_entry_flow_progressed", events.append)
    async_fire_time_changed(hass, dt_util.utcnow() + PAIRING_WINDOW + timedelta(seconds=1))
    await wait_for(lambda: bool(events), within=30)
    await hass.async_block_till_done()
    result = await hass.config_entries.flow.async_configure(flow_id)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "no_trackers"
    assert result["description_placeholders"] == {
        "port": str(port),
        "minutes": str(int(PAIRING_WINDOW.total_seconds() // 60)),
    }
    await hass.async_block_till_done()
    assert port not in hass.data.get(HUBS, {})
    assert not await _port_open(port)


@pytest.mark.usefixtures("socket_enabled")
async def test_pairing_list_is_bounded(hass: HomeAssistant) -> None:
    """Strangers cannot grow the list: it keeps the trackers heard most recently."""
    port = free_port()
    flow_id = await _start_pairing(hass, port)
    base = int(IMEI_UNKNOWN[:-1])
    strangers = [
        SimulatedTracker(str(base + n) + "0", protocol="h02", port=port)
        for n in range(MAX_CANDIDATES + 5)
    ]
    try:
        for stranger in strangers:
            await stranger.connect()
            await stranger.heartbeat()
        window = None
        await wait_for(lambda: _step(hass, flow_id) == "pair_pick", within=30)

        def _all_heard() -> bool:
            nonlocal window
            flow = hass.config_entries.flow._progress[flow_id]
            window = flow._pairing
            return window is not None and strangers[-1].identity in window.candidates

        await wait_for(_all_heard, within=30)
        result = await hass.config_entries.flow.async_configure(flow_id)
        listed = _listed(result)
        assert len(listed) == MAX_CANDIDATES + 1  # and "keep waiting"
        assert listed[0] == strangers[-1].identity
        assert strangers[0].identity not in listed
    finally:
        for stranger in strangers:
            await stranger.close()
        hass.config_entries.flow.async_abort(flow_id)
        await hass.async_block_till_done()
    assert not await _port_open(port)


@pytest.mark.usefixtures("socket_enabled")
async def test_pairing_port_unavailable(hass: HomeAssistant) -> None:
    """A port another program holds: the flow says so, and no repair is raised for it."""
    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as blocker:
        blocker.bind(("0.0.0.0", port))
        blocker.listen()
        result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {CONF_IMEI: "  ", CONF_PORT: port}
        )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "port_unavailable"
    assert result["description_placeholders"]["port"] == str(port)
    assert ir.async_get(hass).async_get_issue(DOMAIN, port_issue_id(port)) is None


# -- the SMS texts shown when an entry is created -----------------------------------------------


@pytest.mark.parametrize(
    ("external_url", "description", "server", "h02"),
    [
        (None, "sms_no_address", "SERVER,0,<IP>,9000,0#", "8040000 <IP> 9000"),
        (
            "https://ha.example.org:8123",
            "sms",
            "SERVER,1,ha.example.org,9000,0#",
            "8040000 ha.example.org 9000",
        ),
        ("http://93.184.216.34:8123", "sms", "SERVER,0,93.184.216.34,9000,0#", None),
        # A private address does not reach a tracker on a mobile network.
        ("http://192.168.1.5:8123", "sms_no_address", "SERVER,0,<IP>,9000,0#", None),
    ],
)
@pytest.mark.usefixtures("mock_setup_entry")
async def test_manual_entry_shows_every_familys_sms(
    hass: HomeAssistant,
    external_url: str | None,
    description: str,
    server: str,
    h02: str | None,
) -> None:
    """Adding by IMEI ends on the server SMS of every family, with the public address when
    Home Assistant knows it."""
    if external_url:
        await async_process_ha_core_config(hass, {"external_url": external_url})
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_IMEI: IMEI, CONF_PORT: 9000}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["description"] == description
    commands = result["description_placeholders"]["commands"]
    assert f"`{server}`" in commands
    assert "`APN,<apn>#`" in commands
    assert "adminip123456" in commands  # GPS103
    if h02:
        assert f"`{h02}`" in commands
    assert result["description_placeholders"]["port"] == "9000"


@pytest.mark.usefixtures("mock_setup_entry")
async def test_sms_texts_reach_the_frontend(
    hass: HomeAssistant, hass_client: ClientSessionGenerator
) -> None:
    """Through the API the frontend's dialog uses, the created entry's answer carries the
    description key and the texts it renders (`config.create_entry.<description>`)."""
    await async_process_ha_core_config(hass, {"external_url": "https://ha.example.org"})
    assert await async_setup_component(hass, "config", {})
    client = await hass_client()
    response = await client.post(
        "/api/config/config_entries/flow", json={"handler": DOMAIN, "show_advanced_options": False}
    )
    flow = await response.json()
    assert flow["type"] == "form"
    assert flow["step_id"] == "user"
    response = await client.post(
        f"/api/config/config_entries/flow/{flow['flow_id']}", json={CONF_IMEI: IMEI}
    )
    assert response.status == 200
    created = await response.json()
    assert created["type"] == "create_entry"
    assert created["description"] == "sms"
    assert "`SERVER,1,ha.example.org,8888,0#`" in created["description_placeholders"]["commands"]


@pytest.mark.usefixtures("mock_setup_entry")
async def test_discovered_tracker_shows_its_familys_sms(hass: HomeAssistant) -> None:
    """Adding a discovered tracker ends on its own family's texts, not every family's."""
    result = await hass.config_entries.flow.async_init(
        DOMAIN,
        context={"source": SOURCE_INTEGRATION_DISCOVERY},
        data={CONF_IMEI: IMEI, "protocol": "h02", "address": "203.0.113.7", CONF_PORT: 8888},
    )
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["description"] == "connected"
    assert result["description_placeholders"] == {
        "apn": "`<apn>`",
        "ip": "`<IP>`",
        "protocol": "H02",
        "address": "203.0.113.7",
        "commands": "- **H02 (SinoTrack-style firmware)**: `8040000 <IP> 8888` · `8030000 <apn>`",
    }
