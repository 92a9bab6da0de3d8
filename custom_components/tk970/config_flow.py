"""Config flow: add a tracker by IMEI or pick it as it connects, accept a discovered one,
reconfigure, set options.

The user step is the form of interfaces.md §3. Leaving its IMEI empty starts pairing
(`pairing.py`): the port opens for a few minutes, the flow waits (a progress step) until an
unknown tracker reports, and lists the trackers heard so far to pick one. Every path ends on
the SMS texts that point the tracker at this Home Assistant (`sms.py`), shown in the dialog
that confirms the new entry (`config.create_entry` in the translations).
"""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Any

from homeassistant.config_entries import (
    SOURCE_INTEGRATION_DISCOVERY,
    ConfigFlow,
    ConfigFlowResult,
    OptionsFlow,
)
from homeassistant.core import HomeAssistant, callback
from homeassistant.data_entry_flow import AbortFlow
from homeassistant.helpers.network import NoURLAvailableError, get_url
from homeassistant.helpers.selector import (
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    SelectOptionDict,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)
from yarl import URL

from . import vol
from .const import (
    CONF_ALARM_HOLD,
    CONF_IMEI,
    CONF_NAME,
    CONF_OFFLINE_AFTER,
    CONF_PORT,
    CONF_RELAY_DIALECT,
    CONF_RELAY_MAX_SPEED,
    CONF_RELAY_PASSWORD,
    DEFAULT_ALARM_HOLD,
    DEFAULT_OFFLINE_AFTER,
    DEFAULT_PORT,
    DEFAULT_RELAY_MAX_SPEED,
    DIALECT_AUTO,
    DOMAIN,
)
from .coordinator import TK970ConfigEntry
from .fallback import (
    option_fields as fallback_option_fields,
    validate_options as validate_fallback_options,
)
from .identity import same_tracker
from .pairing import PAIRING_WINDOW, Candidate, PairingWindow
from .protocol import Protocol, RelayDialect
from .sms import MARKERS, all_families, as_markdown, family_sms
from .tracking import PROTOCOL_NAMES

IMEI_LENGTH = 15
MIN_ID_LENGTH = 10
MAX_ID_LENGTH = 20

PORT_SELECTOR = NumberSelector(
    NumberSelectorConfig(min=1, max=65535, step=1, mode=NumberSelectorMode.BOX)
)


def _whole_number(minimum: int, maximum: int, unit: str) -> Any:
    """A box for a whole number of `unit` between the bounds, stored as an int.

    Typed Any: `vol.All` is a plain class on older releases and generic on the newest.
    """
    return vol.All(
        NumberSelector(
            NumberSelectorConfig(
                min=minimum,
                max=maximum,
                step=1,
                unit_of_measurement=unit,
                mode=NumberSelectorMode.BOX,
            )
        ),
        vol.Coerce(int),
    )


def luhn_ok(digits: str) -> bool:
    """Check an IMEI's Luhn check digit."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def validate_identity(value: str) -> tuple[str, str | None]:
    """Normalise what the user typed; return (digits, error key or None)."""
    digits = "".join(value.split()).replace("-", "")
    if not digits.isdigit() or not MIN_ID_LENGTH <= len(digits) <= MAX_ID_LENGTH:
        return digits, "invalid_imei"
    if len(digits) == IMEI_LENGTH and not luhn_ok(digits):
        return digits, "imei_checksum"
    return digits, None


def _title(name: str | None, identity: str) -> str:
    return name or f"TK970 {identity}"


#: The pick list's entry for "none of these yet".
PICK_MORE = "more"


def public_host(hass: HomeAssistant) -> str | None:
    """The host trackers reach this Home Assistant at: the external URL's, when one is set.

    Home Assistant Cloud's address relays only HTTPS, and an internal or link-local address
    does not reach a tracker on a mobile network: those count as unknown.
    """
    try:
        url = get_url(hass, allow_internal=False, allow_cloud=False, prefer_external=True)
    except NoURLAvailableError:
        return None
    host = URL(url).host
    if not host or host.endswith(".local"):
        return None
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    return host if address.is_global else None


def _sms_result(hass: HomeAssistant, port: int) -> dict[str, Any]:
    """The create-entry description for a tracker typed in: every family's SMS texts (its
    family is not known before it connects)."""
    host = public_host(hass)
    placeholders = {
        **MARKERS,
        "host": host or "",
        "port": str(port),
        "commands": as_markdown(all_families(host, port), host, port),
    }
    return {
        "description": "sms" if host else "sms_no_address",
        "description_placeholders": placeholders,
    }


def _connected_result(
    hass: HomeAssistant, protocol: Protocol, address: str, port: int
) -> dict[str, Any]:
    """The create-entry description for a tracker that is connected already: its own SMS."""
    host = public_host(hass)
    return {
        "description": "connected",
        "description_placeholders": {
            **MARKERS,
            "protocol": PROTOCOL_NAMES[protocol],
            "address": address,
            "commands": as_markdown([family_sms(protocol, host, port)], host, port),
        },
    }


class TK970ConfigFlow(ConfigFlow, domain=DOMAIN):
    """Add one tracker per entry."""

    VERSION = 1

    def __init__(self) -> None:
        """Remember what discovery found, and the pairing state."""
        self._discovered: dict[str, Any] = {}
        self._pair_name: str | None = None
        self._pair_port = DEFAULT_PORT
        self._pairing: PairingWindow | None = None
        self._pair_wait: asyncio.Task[bool] | None = None
        #: candidates the pick list showed, by identity ("keep waiting" waits for others)
        self._listed: dict[str, Candidate] = {}

    @staticmethod
    @callback
    def async_get_options_flow(config_entry: TK970ConfigEntry) -> TK970OptionsFlow:
        """Options: alarm hold time and relay settings."""
        return TK970OptionsFlow()

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Ask for the IMEI (or the id the tracker reports), a name and the port."""
        errors: dict[str, str] = {}
        if user_input is not None:
            port = int(user_input.get(CONF_PORT, DEFAULT_PORT))
            if not str(user_input.get(CONF_IMEI) or "").strip():
                self._pair_name = (user_input.get(CONF_NAME) or "").strip() or None
                self._pair_port = port
                return await self.async_step_pair()
            identity, error = validate_identity(str(user_input[CONF_IMEI]))
            if error:
                errors[CONF_IMEI] = error
            else:
                return await self._async_add(
                    identity, user_input, port, _sms_result(self.hass, port)
                )
        schema = vol.Schema(
            {
                # Required to add a tracker by hand; empty, it starts pairing (as core's
                # "leave the host empty to discover" forms do).
                vol.Optional(CONF_IMEI): TextSelector(),
                vol.Optional(CONF_NAME): TextSelector(),
                vol.Optional(CONF_PORT, default=DEFAULT_PORT): vol.All(
                    PORT_SELECTOR, vol.Coerce(int)
                ),
            }
        )
        return self.async_show_form(
            step_id="user",
            data_schema=self.add_suggested_values_to_schema(schema, user_input or {}),
            errors=errors,
        )

    async def _async_add(
        self, identity: str, user_input: dict[str, Any], port: int, shown: dict[str, Any]
    ) -> ConfigFlowResult:
        """Create the entry the user asked for, unless the tracker is configured already.

        A discovery card for this tracker may be open: adding it by hand wins (Home Assistant
        then drops the card; the ones for its other form of identity are dropped here).
        """
        await self.async_set_unique_id(identity, raise_on_progress=False)
        self._abort_if_unique_id_configured()
        self._abort_if_same_tracker(identity)
        self._abort_discoveries_of(identity)
        name = (user_input.get(CONF_NAME) or "").strip() or None
        return self.async_create_entry(
            title=_title(name, identity),
            data={CONF_IMEI: identity, CONF_NAME: name, CONF_PORT: port},
            **shown,
        )

    # -- pairing: pick the tracker as it connects ----------------------------------------------

    async def async_step_pair(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Hold the port open and wait until a tracker that is not configured reports."""
        window = self._pairing
        if window is None:
            window = PairingWindow(self.hass, self._pair_port, owner=f"pairing_{self.flow_id}")
        if self._pair_wait is None:
            try:
                await window.async_open()  # again after "keep waiting": a fresh window
            except OSError as err:
                return self.async_abort(
                    reason="port_unavailable",
                    description_placeholders={"port": str(self._pair_port), "error": str(err)},
                )
            self._pairing = window
            self._pair_wait = self.hass.async_create_task(
                window.async_wait(self._is_new), f"tk970 pairing on port {self._pair_port}"
            )
        if not self._pair_wait.done():
            host = public_host(self.hass)
            return self.async_show_progress(
                # Named: this step is also entered from the user and pick steps, and the
                # manager resumes the one named here when the wait ends.
                step_id="pair",
                progress_action="wait_for_tracker",
                progress_task=self._pair_wait,
                description_placeholders={
                    **MARKERS,
                    "port": str(self._pair_port),
                    "minutes": str(int(PAIRING_WINDOW.total_seconds() // 60)),
                    "commands": as_markdown(
                        all_families(host, self._pair_port), host, self._pair_port
                    ),
                },
            )
        found = self._pair_wait.result()
        self._pair_wait = None
        return self.async_show_progress_done(next_step_id="pair_pick" if found else "pair_timeout")

    async def async_step_pair_timeout(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Nobody new reported within the window: the port is closed again."""
        await self._async_close_pairing()
        return self.async_abort(
            reason="no_trackers",
            description_placeholders={
                "port": str(self._pair_port),
                "minutes": str(int(PAIRING_WINDOW.total_seconds() // 60)),
            },
        )

    async def async_step_pair_pick(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """List the trackers heard that are not configured; add the one picked."""
        if user_input is not None:
            picked = str(user_input[CONF_IMEI])
            candidate = self._listed.get(picked)
            if candidate is None:  # PICK_MORE
                return await self.async_step_pair()
            port = self._pair_port
            return await self._async_add(
                candidate.identity,
                user_input,
                port,
                _connected_result(self.hass, candidate.protocol, candidate.address, port),
            )
        window = self._pairing
        heard = list(reversed(window.candidates.values())) if window is not None else []
        self._listed = {c.identity: c for c in heard if not self._is_configured(c.identity)}
        if not self._listed:  # the ones heard were added meanwhile
            return await self.async_step_pair()
        options = [
            SelectOptionDict(
                value=c.identity,
                label=f"{c.identity} · {PROTOCOL_NAMES[c.protocol]} · {c.address} "
                f"({c.transport.upper()})",
            )
            for c in self._listed.values()
        ]
        options.append(SelectOptionDict(value=PICK_MORE, label=PICK_MORE))
        schema = vol.Schema(
            {
                vol.Required(CONF_IMEI): SelectSelector(
                    SelectSelectorConfig(
                        options=options,
                        translation_key="pairing",
                        mode=SelectSelectorMode.LIST,
                    )
                ),
                vol.Optional(CONF_NAME): TextSelector(),
            }
        )
        return self.async_show_form(
            step_id="pair_pick",
            data_schema=self.add_suggested_values_to_schema(
                schema, {CONF_NAME: self._pair_name} if self._pair_name else {}
            ),
            description_placeholders={"port": str(self._pair_port)},
        )

    def _is_new(self, candidate: Candidate) -> bool:
        """A tracker worth showing the pick list for: not listed yet, not configured."""
        return candidate.identity not in self._listed and not self._is_configured(
            candidate.identity
        )

    def _is_configured(self, identity: str) -> bool:
        return any(
            same_tracker(str(entry.unique_id), identity)
            for entry in self._async_current_entries(include_ignore=False)
        )

    async def _async_close_pairing(self) -> None:
        if self._pairing is not None:
            await self._pairing.async_close()

    @callback
    def async_remove(self) -> None:
        """The flow ended (added, aborted or closed): release the pairing port."""
        if self._pairing is not None:
            self.hass.async_create_task(self._pairing.async_close(), "tk970 pairing closed")

    def _abort_if_same_tracker(self, identity: str) -> None:
        """Refuse a tracker already configured under another form of its identity.

        The same digits with other leading zeros, or an IMEI and the JT808 terminal ID that is
        its last 11 digits (interfaces.md §3), are one tracker: a second entry would receive
        the first one's reports.
        """
        for entry in self._async_current_entries(include_ignore=False):
            configured = str(entry.unique_id)
            if configured == identity or not same_tracker(configured, identity):
                continue
            if configured.lstrip("0") == identity.lstrip("0"):
                raise AbortFlow("already_configured")
            raise AbortFlow(
                "already_configured_other_id",
                description_placeholders={"identity": identity, "configured": configured},
            )

    def _abort_discoveries_of(self, identity: str) -> None:
        """Close discovery cards that offer this tracker under another form of its identity."""
        for flow in self._async_in_progress(include_uninitialized=True):
            other = flow["context"].get("unique_id")
            if (
                flow["context"].get("source") == SOURCE_INTEGRATION_DISCOVERY
                and isinstance(other, str)
                and other != identity
                and same_tracker(other, identity)
            ):
                self.hass.config_entries.flow.async_abort(flow["flow_id"])

    async def async_step_integration_discovery(
        self, discovery_info: dict[str, Any]
    ) -> ConfigFlowResult:
        """An unknown tracker connected: offer it, never add it on its own."""
        identity = str(discovery_info[CONF_IMEI])
        await self.async_set_unique_id(identity)
        self._abort_if_unique_id_configured()
        self._abort_if_same_tracker(identity)
        self._discovered = discovery_info
        self.context["title_placeholders"] = {
            "imei": identity,
            "protocol": str(discovery_info.get("protocol", "?")),
        }
        return await self.async_step_discovery_confirm()

    async def async_step_discovery_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask the user whether to add the tracker that connected."""
        info = self._discovered
        identity = str(info[CONF_IMEI])
        if user_input is not None:
            # The user may have added this tracker under its other identity meanwhile.
            self._abort_if_same_tracker(identity)
            name = (user_input.get(CONF_NAME) or "").strip() or None
            port = int(info.get(CONF_PORT, DEFAULT_PORT))
            extra: dict[str, Any] = {}
            if (protocol := str(info.get("protocol"))) in Protocol.__members__.values():
                extra = _connected_result(
                    self.hass, Protocol(protocol), str(info.get("address", "?")), port
                )
            return self.async_create_entry(
                title=_title(name, identity),
                data={CONF_IMEI: identity, CONF_NAME: name, CONF_PORT: port},
                **extra,
            )
        return self.async_show_form(
            step_id="discovery_confirm",
            data_schema=vol.Schema({vol.Optional(CONF_NAME): TextSelector()}),
            description_placeholders={
                "imei": identity,
                "protocol": str(info.get("protocol", "?")),
                "address": str(info.get("address", "?")),
                "port": str(info.get(CONF_PORT, DEFAULT_PORT)),
            },
        )

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Change the name or the port of a tracker."""
        entry = self._get_reconfigure_entry()
        if user_input is not None:
            name = (user_input.get(CONF_NAME) or "").strip() or None
            return self.async_update_reload_and_abort(
                entry,
                title=_title(name, entry.data[CONF_IMEI]),
                data_updates={CONF_NAME: name, CONF_PORT: int(user_input[CONF_PORT])},
            )
        schema = vol.Schema(
            {
                vol.Optional(CONF_NAME): TextSelector(),
                vol.Required(CONF_PORT): vol.All(PORT_SELECTOR, vol.Coerce(int)),
            }
        )
        current = {
            CONF_NAME: entry.data.get(CONF_NAME) or "",
            CONF_PORT: entry.data.get(CONF_PORT, DEFAULT_PORT),
        }
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=self.add_suggested_values_to_schema(schema, current),
            description_placeholders={"imei": entry.data[CONF_IMEI]},
        )


class TK970OptionsFlow(OptionsFlow):
    """Alarm hold time, offline time and relay settings."""

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Show and save the options."""
        errors: dict[str, str] = {}
        if user_input is not None:
            user_input, errors = validate_fallback_options(user_input)
            if not errors:
                return self.async_create_entry(data=user_input)
        options = user_input or self.config_entry.options
        dialects = [DIALECT_AUTO, *(dialect.value for dialect in RelayDialect)]
        schema = vol.Schema(
            {
                vol.Required(
                    CONF_ALARM_HOLD, default=options.get(CONF_ALARM_HOLD, DEFAULT_ALARM_HOLD)
                ): _whole_number(1, 1440, "min"),
                vol.Required(
                    CONF_OFFLINE_AFTER,
                    default=options.get(CONF_OFFLINE_AFTER, DEFAULT_OFFLINE_AFTER),
                ): _whole_number(5, 1440, "min"),
                vol.Required(
                    CONF_RELAY_MAX_SPEED,
                    default=options.get(CONF_RELAY_MAX_SPEED, DEFAULT_RELAY_MAX_SPEED),
                ): _whole_number(0, 250, "km/h"),
                vol.Required(
                    CONF_RELAY_DIALECT, default=options.get(CONF_RELAY_DIALECT, DIALECT_AUTO)
                ): SelectSelector(
                    SelectSelectorConfig(
                        options=dialects,
                        translation_key="relay_dialect",
                        mode=SelectSelectorMode.DROPDOWN,
                    )
                ),
                vol.Optional(
                    CONF_RELAY_PASSWORD,
                    description={"suggested_value": options.get(CONF_RELAY_PASSWORD)},
                ): TextSelector(TextSelectorConfig(type=TextSelectorType.PASSWORD)),
                **fallback_option_fields(options),
            }
        )  # fmt: skip
        return self.async_show_form(step_id="init", data_schema=schema, errors=errors)
