"""The tracker actions and buttons, end to end: real sockets, simulated trackers of each family.

`tk970.send_command`, `tk970.request_position`, `tk970.set_report_interval`, `tk970.clear_sos`
and the "Locate now" / "Clear SOS" buttons: success, no answer, refusal, an unknown tracker, a
family without the command, and what the simulated device received and did.
"""

from __future__ import annotations

from dataclasses import replace

from homeassistant.const import STATE_OFF, STATE_ON, STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import device_registry as dr, entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.tk970 import coordinator as coordinator_module
from custom_components.tk970.const import DOMAIN
from custom_components.tk970.services import (
    SERVICE_CLEAR_SOS,
    SERVICE_REQUEST_POSITION,
    SERVICE_SEND_COMMAND,
    SERVICE_SET_REPORT_INTERVAL,
)
from simulator import SimulatedTracker
from simulator.device import TEXT_ANSWERS, UNKNOWN_TEXT_ANSWER

from .common import IMEI, entity_id, find_device, make_entry, wait_for, wait_for_state
from .test_trackers import make_tracker  # noqa: F401 - fixture

pytestmark = pytest.mark.usefixtures("socket_enabled")

ALL_FAMILIES = ["jt808", "gt06", "h02", "gps103", "watch"]
#: Families with a position request, and those whose protocol acknowledges an SOS.
LOCATING = ["jt808", "gt06", "gps103", "watch"]


def device_id(hass: HomeAssistant) -> str:
    """The Home Assistant device of the configured tracker."""
    device = find_device(hass)
    assert device is not None
    return device.id


async def connected(hass: HomeAssistant, make_tracker, protocol: str, **kwargs) -> SimulatedTracker:  # noqa: F811
    """A logged-in simulated tracker, once Home Assistant holds its session."""
    tracker: SimulatedTracker = await make_tracker(protocol, **kwargs)
    await tracker.login()
    await tracker.report()
    connection = entity_id(hass, "binary_sensor", f"{IMEI}_connected")
    await wait_for_state(hass, connection, lambda s: s.state == STATE_ON)
    return tracker


def commands(tracker: SimulatedTracker, start: int = 0) -> list[str]:
    """What the tracker received as commands (their detail: message id, code, word)."""
    return [d.detail for d in tracker.received[start:] if d.kind == "command"]


async def call(hass: HomeAssistant, service: str, response: bool = False, **data: object):
    return await hass.services.async_call(
        DOMAIN,
        service,
        {"device_id": device_id(hass), **data},
        blocking=True,
        return_response=response,
    )


# -- send_command ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("protocol", "command", "reply"),
    [
        ("jt808", "STATUS#", TEXT_ANSWERS["STATUS#"]),
        ("gt06", "VERSION#", TEXT_ANSWERS["VERSION#"]),
        ("h02", "SCF,0,0", None),
        ("watch", "VERNO", "VERNO,G29_BASE_V1.00_2026.01.15"),
    ],
)
async def test_send_command_returns_the_reply(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    make_tracker,  # noqa: F811
    protocol: str,
    command: str,
    reply: str | None,
) -> None:
    """The command goes out in the tracker's protocol; the response is its answer."""
    tracker = await connected(hass, make_tracker, protocol)
    result = await call(hass, SERVICE_SEND_COMMAND, response=True, command=command)
    assert set(result) == {"reply"}
    if reply is not None:
        assert result["reply"] == reply
    else:  # H02 confirms with a V4 echo of the code
        assert "SCF" in result["reply"]
    assert commands(tracker)


async def test_send_command_gt06_where_moves_the_tracker(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    make_tracker,  # noqa: F811
) -> None:
    """`WHERE#` answers with the position text, which also moves the map."""
    tracker = await connected(hass, make_tracker, "gt06")
    tracker.fix = replace(tracker.fix, latitude=48.137, longitude=11.575)
    result = await call(hass, SERVICE_SEND_COMMAND, response=True, command="WHERE#")
    assert result["reply"].startswith("Current position!Lat:N48.137000,Lon:E11.575000")
    await wait_for_state(
        hass,
        entity_id(hass, "device_tracker", IMEI),
        lambda s: s.attributes.get("latitude") == pytest.approx(48.137, abs=1e-4),
    )


@pytest.mark.parametrize(
    ("protocol", "key"),
    [("gt06", "command_refused"), ("jt808", "command_not_supported_by_device")],
)
async def test_send_command_refused(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    make_tracker,  # noqa: F811
    protocol: str,
    key: str,
) -> None:
    """A command the firmware does not know: a translated error with the device's words."""
    await connected(hass, make_tracker, protocol)
    with pytest.raises(HomeAssistantError) as err:
        await call(hass, SERVICE_SEND_COMMAND, response=True, command="SELFDESTRUCT#")
    assert err.value.translation_domain == DOMAIN
    assert err.value.translation_key == key
    if protocol == "gt06":
        assert err.value.translation_placeholders == {"reason": UNKNOWN_TEXT_ANSWER}


@pytest.mark.parametrize(
    ("protocol", "command"),
    [("jt808", "VERSION#"), ("gt06", "VERSION#"), ("h02", "SCF,0,0"), ("watch", "VERNO")],
)
async def test_send_command_no_answer(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    make_tracker,  # noqa: F811
    protocol: str,
    command: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A tracker that stays silent: "no answer" once the deadline passes."""
    monkeypatch.setattr(coordinator_module, "COMMAND_TIMEOUT", 0.5)
    tracker = await connected(hass, make_tracker, protocol, answer_commands=False)
    with pytest.raises(HomeAssistantError) as err:
        await call(hass, SERVICE_SEND_COMMAND, response=True, command=command)
    assert err.value.translation_key == "command_no_answer"
    assert commands(tracker), "the command did reach the device"


async def test_send_command_invalid_for_the_family(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    make_tracker,  # noqa: F811
) -> None:
    """Text the family cannot carry (H02 has no `#` in a command) is the caller's mistake."""
    tracker = await connected(hass, make_tracker, "h02")
    with pytest.raises(ServiceValidationError) as err:
        await call(hass, SERVICE_SEND_COMMAND, response=True, command="VERSION#")
    assert err.value.translation_key == "command_invalid"
    assert commands(tracker) == []


async def test_send_command_gps103_cannot_answer(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    make_tracker,  # noqa: F811
) -> None:
    """GPS103 never answers: the command is sent, and the caller learns there is no reply."""
    tracker = await connected(hass, make_tracker, "gps103")
    before = len(tracker.received)
    with pytest.raises(HomeAssistantError) as err:
        await call(hass, SERVICE_SEND_COMMAND, response=True, command="D")
    assert err.value.translation_key == "command_unconfirmable"
    await wait_for(lambda: commands(tracker, before) == ["D"])


async def test_unknown_tracker_and_not_connected(
    hass: HomeAssistant,
    entry: MockConfigEntry,
) -> None:
    """A device that is no tracker is the caller's mistake; a silent tracker is not."""
    other = dr.async_get(hass).async_get_or_create(
        config_entry_id=entry.entry_id, identifiers={("other", "x")}
    )
    for device in ("no-such-device", other.id):
        with pytest.raises(ServiceValidationError) as err:
            await hass.services.async_call(
                DOMAIN,
                SERVICE_REQUEST_POSITION,
                {"device_id": device},
                blocking=True,
            )
        if device == "no-such-device":
            assert err.value.translation_key == "unknown_device"
    with pytest.raises(HomeAssistantError) as err:
        await call(hass, SERVICE_SEND_COMMAND, response=True, command="STATUS#")
    assert err.value.translation_key == "not_connected"


async def test_tracker_not_loaded(
    hass: HomeAssistant,
    entry: MockConfigEntry,
) -> None:
    """An unloaded tracker's device: a translated validation error."""
    device = device_id(hass)
    assert await hass.config_entries.async_unload(entry.entry_id)
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN, SERVICE_CLEAR_SOS, {"device_id": device}, blocking=True
        )
    assert err.value.translation_key == "tracker_not_loaded"


async def test_send_command_schema(
    hass: HomeAssistant,
    entry: MockConfigEntry,
) -> None:
    """An empty command or an out-of-range interval never reaches the tracker."""
    with pytest.raises(Exception, match="length"):
        await call(hass, SERVICE_SEND_COMMAND, response=True, command="")
    with pytest.raises(Exception, match="value must be at least 10"):
        await call(hass, SERVICE_SET_REPORT_INTERVAL, interval=1)


# -- request_position -----------------------------------------------------------------------


@pytest.mark.parametrize("protocol", LOCATING)
async def test_request_position(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    make_tracker,  # noqa: F811
    protocol: str,
) -> None:
    """The tracker answers with a position, which reaches the map."""
    tracker = await connected(hass, make_tracker, protocol)
    tracker.fix = replace(tracker.fix, latitude=41.9028, longitude=12.4964)
    await call(hass, SERVICE_REQUEST_POSITION)
    await wait_for_state(
        hass,
        entity_id(hass, "device_tracker", IMEI),
        lambda s: s.attributes.get("latitude") == pytest.approx(41.9028, abs=1e-4),
    )


async def test_request_position_h02_has_none(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    make_tracker,  # noqa: F811
) -> None:
    """H02 has no position request: a validation error, nothing sent."""
    tracker = await connected(hass, make_tracker, "h02")
    with pytest.raises(ServiceValidationError) as err:
        await call(hass, SERVICE_REQUEST_POSITION)
    assert err.value.translation_key == "command_unsupported"
    assert err.value.translation_placeholders == {"protocol": "H02", "command": "locate"}
    assert commands(tracker) == []


# -- set_report_interval ----------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ALL_FAMILIES)
async def test_set_report_interval(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    make_tracker,  # noqa: F811
    protocol: str,
) -> None:
    """The tracker takes the new interval (and confirms it, where its protocol can)."""
    tracker = await connected(hass, make_tracker, protocol)
    await call(hass, SERVICE_SET_REPORT_INTERVAL, interval=120)
    await wait_for(lambda: tracker.interval == 120)


async def test_set_report_interval_no_answer(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    make_tracker,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(coordinator_module, "COMMAND_TIMEOUT", 0.5)
    await connected(hass, make_tracker, "jt808", answer_commands=False)
    with pytest.raises(HomeAssistantError) as err:
        await call(hass, SERVICE_SET_REPORT_INTERVAL, interval=60)
    assert err.value.translation_key == "command_no_answer"


# -- clear_sos ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("protocol", "sent"),
    [("jt808", ["8203"]), ("gps103", ["E"]), ("gt06", []), ("h02", []), ("watch", [])],
)
async def test_clear_sos(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    make_tracker,  # noqa: F811
    protocol: str,
    sent: list[str],
) -> None:
    """SOS goes off; the device is answered where its protocol acknowledges SOS."""
    tracker = await connected(hass, make_tracker, protocol)
    sos = entity_id(hass, "binary_sensor", f"{IMEI}_sos")
    await tracker.sos()
    await wait_for_state(hass, sos, lambda s: s.state == STATE_ON)
    before = len(tracker.received)
    await call(hass, SERVICE_CLEAR_SOS)
    assert hass.states.get(sos).state == STATE_OFF
    await wait_for(lambda: [c for c in commands(tracker, before) if c != "ON"] == sent)


async def test_clear_sos_unanswered_keeps_it_on(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    make_tracker,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A JT808 tracker that does not take the acknowledgement keeps its SOS shown."""
    monkeypatch.setattr(coordinator_module, "COMMAND_TIMEOUT", 0.5)
    tracker = await connected(hass, make_tracker, "jt808", answer_commands=False)
    sos = entity_id(hass, "binary_sensor", f"{IMEI}_sos")
    await tracker.sos()
    await wait_for_state(hass, sos, lambda s: s.state == STATE_ON)
    with pytest.raises(HomeAssistantError):
        await call(hass, SERVICE_CLEAR_SOS)
    assert hass.states.get(sos).state == STATE_ON


async def test_clear_sos_while_away(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    make_tracker,  # noqa: F811
) -> None:
    """The tracker left after its SOS: the alarm is cleared here all the same."""
    tracker = await connected(hass, make_tracker, "jt808")
    sos = entity_id(hass, "binary_sensor", f"{IMEI}_sos")
    await tracker.sos()
    await wait_for_state(hass, sos, lambda s: s.state == STATE_ON)
    await tracker.close()
    connection = entity_id(hass, "binary_sensor", f"{IMEI}_connected")
    await wait_for_state(hass, connection, lambda s: s.state == STATE_OFF)
    await call(hass, SERVICE_CLEAR_SOS)
    assert hass.states.get(sos).state == STATE_OFF


# -- buttons --------------------------------------------------------------------------------


async def test_locate_button(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    make_tracker,  # noqa: F811
) -> None:
    """Unavailable until the tracker connects; a press brings a position."""
    locate = entity_id(hass, "button", f"{IMEI}_locate")
    assert hass.states.get(locate).state == STATE_UNAVAILABLE
    tracker = await connected(hass, make_tracker, "jt808")
    await wait_for_state(hass, locate, lambda s: s.state != STATE_UNAVAILABLE)
    tracker.fix = replace(tracker.fix, latitude=40.4168, longitude=-3.7038)
    await hass.services.async_call("button", "press", {"entity_id": locate}, blocking=True)
    await wait_for_state(
        hass,
        entity_id(hass, "device_tracker", IMEI),
        lambda s: s.attributes.get("longitude") == pytest.approx(-3.7038, abs=1e-4),
    )
    assert "8201" in commands(tracker)


async def test_locate_button_unavailable_for_h02(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    make_tracker,  # noqa: F811
) -> None:
    """A connected H02 tracker has no position request: the button stays unavailable, and
    once its family is known it is not created again."""
    await connected(hass, make_tracker, "h02")
    locate = entity_id(hass, "button", f"{IMEI}_locate")
    assert hass.states.get(locate).state == STATE_UNAVAILABLE
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    registry = er.async_get(hass)
    assert registry.async_get_entity_id("button", DOMAIN, f"{IMEI}_clear_sos") is not None
    assert hass.states.get(entity_id(hass, "button", f"{IMEI}_clear_sos")) is not None
    assert hass.states.get(locate) is None or hass.states.get(locate).state == STATE_UNAVAILABLE


async def test_clear_sos_button(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    make_tracker,  # noqa: F811
) -> None:
    """Always available; a press clears the SOS and answers a JT808 tracker."""
    clear = entity_id(hass, "button", f"{IMEI}_clear_sos")
    assert hass.states.get(clear).state != STATE_UNAVAILABLE
    tracker = await connected(hass, make_tracker, "jt808")
    sos = entity_id(hass, "binary_sensor", f"{IMEI}_sos")
    await tracker.sos()
    await wait_for_state(hass, sos, lambda s: s.state == STATE_ON)
    await hass.services.async_call("button", "press", {"entity_id": clear}, blocking=True)
    assert hass.states.get(sos).state == STATE_OFF
    assert "8203" in commands(tracker)


async def test_actions_registered_once_without_trackers(hass: HomeAssistant) -> None:
    """The actions exist from `async_setup`, before (and without) any tracker."""
    config_entry = make_entry(port=0)
    config_entry.add_to_hass(hass)
    from homeassistant.setup import async_setup_component

    assert await async_setup_component(hass, DOMAIN, {})
    for service in (
        SERVICE_SEND_COMMAND,
        SERVICE_REQUEST_POSITION,
        SERVICE_SET_REPORT_INTERVAL,
        SERVICE_CLEAR_SOS,
    ):
        assert hass.services.has_service(DOMAIN, service)
