"""Config flow: the user step, discovery of an unknown tracker, reconfigure and options."""

from __future__ import annotations

from unittest.mock import AsyncMock, patch

from homeassistant.config_entries import SOURCE_INTEGRATION_DISCOVERY, SOURCE_USER
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType, InvalidData
import pytest

from custom_components.tk970.config_flow import luhn_ok, validate_identity
from custom_components.tk970.const import (
    CONF_ALARM_HOLD,
    CONF_IMEI,
    CONF_NAME,
    CONF_OFFLINE_AFTER,
    CONF_PORT,
    CONF_RELAY_DIALECT,
    CONF_RELAY_MAX_SPEED,
    CONF_RELAY_PASSWORD,
    DOMAIN,
)

from .common import IMEI, make_entry


@pytest.fixture
def mock_setup_entry():
    """Keep the flow tests away from sockets: entry setup is not what they test."""
    with patch("custom_components.tk970.async_setup_entry", AsyncMock(return_value=True)) as mock:
        yield mock


@pytest.mark.usefixtures("mock_setup_entry")
async def test_user_creates_entry(hass: HomeAssistant) -> None:
    """A valid IMEI, a name and a port create the entry at once."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_IMEI: " 3595 8601 5829 802 ", CONF_NAME: "Van", CONF_PORT: 9000}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Van"
    assert result["data"] == {CONF_IMEI: IMEI, CONF_NAME: "Van", CONF_PORT: 9000}
    assert result["result"].unique_id == IMEI


@pytest.mark.usefixtures("mock_setup_entry")
async def test_user_defaults(hass: HomeAssistant) -> None:
    """No name: the title names the IMEI; no port: 8888. A JT808 id of 12 digits is taken."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_IMEI: "013511221122"}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "TK970 013511221122"
    assert result["data"] == {CONF_IMEI: "013511221122", CONF_NAME: None, CONF_PORT: 8888}


@pytest.mark.parametrize(
    ("imei", "error"),
    [
        ("359586015829803", "imei_checksum"),  # last digit typo
        ("35958601582980x", "invalid_imei"),
        ("123456789", "invalid_imei"),  # too short
        ("1" * 21, "invalid_imei"),  # too long
    ],
)
@pytest.mark.usefixtures("mock_setup_entry")
async def test_user_errors_then_recovers(hass: HomeAssistant, imei: str, error: str) -> None:
    """Bad input shows a translated error on the IMEI field; fixing it creates the entry."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {CONF_IMEI: imei})
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_IMEI: error}
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {CONF_IMEI: IMEI})
    assert result["type"] is FlowResultType.CREATE_ENTRY


@pytest.mark.usefixtures("mock_setup_entry")
async def test_user_rejects_bad_port(hass: HomeAssistant) -> None:
    """A port outside 1..65535 does not pass the form's schema."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    with pytest.raises(InvalidData):
        await hass.config_entries.flow.async_configure(
            result["flow_id"], {CONF_IMEI: IMEI, CONF_PORT: 70000}
        )


@pytest.mark.usefixtures("mock_setup_entry")
async def test_user_duplicate_aborts(hass: HomeAssistant) -> None:
    """The same tracker cannot be added twice."""
    make_entry().add_to_hass(hass)
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {CONF_IMEI: IMEI})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


def test_luhn_and_identity_rules() -> None:
    """Luhn on 15 digits only; other lengths from 10 to 20 digits are taken as they are."""
    assert luhn_ok(IMEI)
    assert not luhn_ok("359586015829803")
    assert validate_identity("00000866496077582164") == ("00000866496077582164", None)
    assert validate_identity("3595-8601-5829-802") == (IMEI, None)


DISCOVERY = {CONF_IMEI: IMEI, "protocol": "gt06", "address": "203.0.113.7", CONF_PORT: 8888}


@pytest.mark.usefixtures("mock_setup_entry")
async def test_discovery_asks_then_creates(hass: HomeAssistant) -> None:
    """An unknown tracker is offered with its id, protocol and address; confirming adds it."""
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_INTEGRATION_DISCOVERY}, data=DISCOVERY
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "discovery_confirm"
    assert result["description_placeholders"] == {
        "imei": IMEI,
        "protocol": "gt06",
        "address": "203.0.113.7",
        "port": "8888",
    }
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {CONF_NAME: "Boat"})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Boat"
    assert result["data"] == {CONF_IMEI: IMEI, CONF_NAME: "Boat", CONF_PORT: 8888}


@pytest.mark.usefixtures("mock_setup_entry")
async def test_discovery_of_configured_tracker_aborts(hass: HomeAssistant) -> None:
    """A configured (or ignored) identity is not offered again."""
    make_entry().add_to_hass(hass)
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_INTEGRATION_DISCOVERY}, data=DISCOVERY
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


async def test_reconfigure(hass: HomeAssistant, mock_setup_entry: AsyncMock) -> None:
    """Name and port can be changed; the entry reloads."""
    entry = make_entry(port=8888)
    entry.add_to_hass(hass)
    result = await entry.start_reconfigure_flow(hass)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "reconfigure"
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_NAME: "Truck", CONF_PORT: 9999}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert entry.data == {CONF_IMEI: IMEI, CONF_NAME: "Truck", CONF_PORT: 9999}
    assert entry.title == "Truck"


async def test_options(hass: HomeAssistant, mock_setup_entry: AsyncMock) -> None:
    """Hold time, offline time, speed limit, relay dialect and password are options."""
    entry = make_entry()
    entry.add_to_hass(hass)
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["type"] is FlowResultType.FORM
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {
            CONF_ALARM_HOLD: 5,
            CONF_OFFLINE_AFTER: 90,
            CONF_RELAY_MAX_SPEED: 10,
            CONF_RELAY_DIALECT: "gt06_dyd",
            CONF_RELAY_PASSWORD: "000000",
        },
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options == {
        CONF_ALARM_HOLD: 5,
        CONF_OFFLINE_AFTER: 90,
        CONF_RELAY_MAX_SPEED: 10,
        CONF_RELAY_DIALECT: "gt06_dyd",
        CONF_RELAY_PASSWORD: "000000",
        "learn_positions": True,  # fallback positioning defaults (tests/test_fallback.py)
        "geolocation_provider": "none",
    }


@pytest.mark.usefixtures("mock_setup_entry")
async def test_user_adds_a_tracker_whose_discovery_card_is_open(hass: HomeAssistant) -> None:
    """The tracker connected first (a card is waiting); typing its IMEI still adds it."""
    discovered = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_INTEGRATION_DISCOVERY}, data=DISCOVERY
    )
    assert discovered["type"] is FlowResultType.FORM
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {CONF_IMEI: IMEI})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert not hass.config_entries.flow.async_progress_by_handler(DOMAIN)


@pytest.mark.usefixtures("mock_setup_entry")
async def test_user_same_tracker_with_leading_zero_aborts(hass: HomeAssistant) -> None:
    """`0…` and the same digits without it are one tracker (interfaces.md §3)."""
    make_entry("86496077582164").add_to_hass(hass)
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_IMEI: "0086496077582164"}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


@pytest.mark.parametrize(
    ("configured", "typed"),
    [
        (IMEI, "0" + IMEI[-11:]),  # IMEI first, then its JT808 terminal ID (zero-padded)
        (IMEI, IMEI[-11:]),  # ... or its last 11 digits exactly
        ("0" + IMEI[-11:], IMEI),  # terminal ID first, then the IMEI
    ],
)
@pytest.mark.usefixtures("mock_setup_entry")
async def test_imei_and_terminal_id_are_one_tracker(
    hass: HomeAssistant, configured: str, typed: str
) -> None:
    """An IMEI and the JT808 terminal ID made of its last 11 digits cannot both be added."""
    make_entry(configured).add_to_hass(hass)
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {CONF_IMEI: typed})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured_other_id"
    assert result["description_placeholders"] == {"identity": typed, "configured": configured}


@pytest.mark.usefixtures("mock_setup_entry")
async def test_other_imei_with_the_same_tail_is_another_tracker(hass: HomeAssistant) -> None:
    """Two IMEIs sharing their last 11 digits are two trackers: only a short ID is a tail."""
    make_entry(IMEI).add_to_hass(hass)
    other = "100686015829802"  # another IMEI (Luhn-valid) ending in the same 11 digits
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {CONF_IMEI: other})
    assert result["type"] is FlowResultType.CREATE_ENTRY


@pytest.mark.usefixtures("mock_setup_entry")
async def test_discovery_of_the_terminal_id_of_a_configured_imei_aborts(
    hass: HomeAssistant,
) -> None:
    """A discovered JT808 terminal ID whose IMEI is configured is not offered; a card that was
    open when the user added the IMEI by hand is closed, and cannot be confirmed later."""
    short = "0" + IMEI[-11:]
    discovered = await hass.config_entries.flow.async_init(
        DOMAIN,
        context={"source": SOURCE_INTEGRATION_DISCOVERY},
        data={**DISCOVERY, CONF_IMEI: short, "protocol": "jt808"},
    )
    assert discovered["type"] is FlowResultType.FORM
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {CONF_IMEI: IMEI})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert not hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    again = await hass.config_entries.flow.async_init(
        DOMAIN,
        context={"source": SOURCE_INTEGRATION_DISCOVERY},
        data={**DISCOVERY, CONF_IMEI: short, "protocol": "jt808"},
    )
    assert again["type"] is FlowResultType.ABORT
    assert again["reason"] == "already_configured_other_id"


@pytest.mark.usefixtures("mock_setup_entry")
async def test_discovery_card_confirmed_after_the_imei_was_added_aborts(
    hass: HomeAssistant,
) -> None:
    """A card confirmed after its tracker was added under the other identity adds nothing."""
    short = "0" + IMEI[-11:]
    discovered = await hass.config_entries.flow.async_init(
        DOMAIN,
        context={"source": SOURCE_INTEGRATION_DISCOVERY},
        data={**DISCOVERY, CONF_IMEI: short, "protocol": "jt808"},
    )
    make_entry(IMEI).add_to_hass(hass)
    result = await hass.config_entries.flow.async_configure(discovered["flow_id"], {})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured_other_id"
