"""Actions: commands to one tracker, and the local cell database.

`tk970.send_command` (a text/SMS command, answered with the tracker's reply, interfaces.md §3),
`tk970.request_position`, `tk970.set_report_interval` and `tk970.clear_sos` act on one tracker,
named by its Home Assistant device; they go through the coordinator's command path, the one the
relay switch uses, so only the session that owns the tracker's identity can answer them.

`tk970.import_cell_database` reads a CSV (plain or gzip) from a path in the configuration
folder (or a folder Home Assistant allows with `allowlist_external_dirs`) into the local cell
database, in a worker thread, with progress in the log; its response is the import summary.
`tk970.delete_cell_database` removes the database. Both are registered once, in
`async_setup`, and work with or without trackers set up.
"""

from __future__ import annotations

import asyncio
from functools import partial
from pathlib import Path
import sqlite3
import threading
from typing import TYPE_CHECKING

from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import EVENT_HOMEASSISTANT_STOP
from homeassistant.core import (
    Event,
    HomeAssistant,
    ServiceCall,
    ServiceResponse,
    SupportsResponse,
    callback,
)
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import config_validation as cv, device_registry as dr
from homeassistant.util.hass_dict import HassKey

from . import vol
from .const import DOMAIN, LOGGER
from .fallback import async_get_database
from .positioning import ImportCancelledError, ImportFormatError, ImportProgress
from .protocol import Command, CommandKind
from .tracking import PROTOCOL_NAMES

if TYPE_CHECKING:
    from .coordinator import TrackerCoordinator

SERVICE_IMPORT_CELL_DATABASE = "import_cell_database"
SERVICE_DELETE_CELL_DATABASE = "delete_cell_database"
ATTR_PATH = "path"
ATTR_MCC = "mcc"
ATTR_REPLACE = "replace"
ATTR_ATTRIBUTION = "attribution"

IMPORT_SCHEMA = vol.Schema(
    {
        vol.Required(ATTR_PATH): cv.string,
        vol.Optional(ATTR_MCC): vol.All(
            cv.ensure_list, [vol.All(vol.Coerce(int), vol.Range(min=1, max=999))]
        ),
        vol.Optional(ATTR_REPLACE, default=False): cv.boolean,
        vol.Optional(ATTR_ATTRIBUTION): vol.All(cv.string, vol.Length(max=200)),
    }
)

SERVICE_SEND_COMMAND = "send_command"
SERVICE_REQUEST_POSITION = "request_position"
SERVICE_SET_REPORT_INTERVAL = "set_report_interval"
SERVICE_CLEAR_SOS = "clear_sos"
ATTR_DEVICE_ID = "device_id"
ATTR_COMMAND = "command"
ATTR_INTERVAL = "interval"
#: Report intervals offered: every 10 s at most (faster fills the recorder and drains the
#: battery), once a day at least (the GT06 TIMER limit).
MIN_INTERVAL = 10
MAX_INTERVAL = 86_400

DEVICE_SCHEMA = vol.Schema({vol.Required(ATTR_DEVICE_ID): cv.string})
SEND_COMMAND_SCHEMA = DEVICE_SCHEMA.extend(
    {vol.Required(ATTR_COMMAND): vol.All(cv.string, vol.Length(min=1, max=200))}
)
SET_INTERVAL_SCHEMA = DEVICE_SCHEMA.extend(
    {
        vol.Required(ATTR_INTERVAL): vol.All(
            vol.Coerce(int), vol.Range(min=MIN_INTERVAL, max=MAX_INTERVAL)
        )
    }
)

_IMPORT_LOCK: HassKey[asyncio.Lock] = HassKey(f"{DOMAIN}_import_lock")


@callback
def async_setup_services(hass: HomeAssistant) -> None:
    """Register the actions."""
    hass.services.async_register(
        DOMAIN,
        SERVICE_IMPORT_CELL_DATABASE,
        partial(_async_import, hass),
        schema=IMPORT_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )
    hass.services.async_register(
        DOMAIN,
        SERVICE_DELETE_CELL_DATABASE,
        partial(_async_delete, hass),
        schema=vol.Schema({}),
    )
    hass.services.async_register(
        DOMAIN,
        SERVICE_SEND_COMMAND,
        partial(_async_send_command, hass),
        schema=SEND_COMMAND_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )
    hass.services.async_register(
        DOMAIN,
        SERVICE_REQUEST_POSITION,
        partial(_async_request_position, hass),
        schema=DEVICE_SCHEMA,
    )
    hass.services.async_register(
        DOMAIN,
        SERVICE_SET_REPORT_INTERVAL,
        partial(_async_set_report_interval, hass),
        schema=SET_INTERVAL_SCHEMA,
    )
    hass.services.async_register(
        DOMAIN,
        SERVICE_CLEAR_SOS,
        partial(_async_clear_sos, hass),
        schema=DEVICE_SCHEMA,
    )


def _coordinator(hass: HomeAssistant, call: ServiceCall) -> TrackerCoordinator:
    """The tracker the call names by its device; a translated error for anything else."""
    device_id: str = call.data[ATTR_DEVICE_ID]
    device = dr.async_get(hass).async_get(device_id)
    entry = None
    if device is not None and any(domain == DOMAIN for domain, _ in device.identifiers):
        entries = map(hass.config_entries.async_get_entry, device.config_entries)
        entry = next((e for e in entries if e is not None and e.domain == DOMAIN), None)
    if entry is None:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="unknown_device",
            translation_placeholders={"device_id": device_id},
        )
    if entry.state is not ConfigEntryState.LOADED:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="tracker_not_loaded",
            translation_placeholders={"name": entry.title},
        )
    coordinator: TrackerCoordinator = entry.runtime_data
    return coordinator


async def _async_send_command(hass: HomeAssistant, call: ServiceCall) -> ServiceResponse:
    """Send a text command; respond with the tracker's reply."""
    coordinator = _coordinator(hass, call)
    outcome = await coordinator.async_send_command(
        Command(kind=CommandKind.RAW, text=call.data[ATTR_COMMAND].strip())
    )
    if outcome is None:
        # The command went out, but the protocol has no answer to give back (GPS103).
        link = coordinator.link
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="command_unconfirmable",
            translation_placeholders={"protocol": PROTOCOL_NAMES[link.protocol] if link else "?"},
        )
    return {"reply": outcome.text or ""} if call.return_response else None


async def _async_request_position(hass: HomeAssistant, call: ServiceCall) -> None:
    """Ask the tracker for its position now; the position comes as a report."""
    await _coordinator(hass, call).async_send_command(Command(kind=CommandKind.LOCATE))


async def _async_set_report_interval(hass: HomeAssistant, call: ServiceCall) -> None:
    """Set the tracker's report interval."""
    await _coordinator(hass, call).async_send_command(
        Command(kind=CommandKind.SET_INTERVAL, interval=call.data[ATTR_INTERVAL])
    )


async def _async_clear_sos(hass: HomeAssistant, call: ServiceCall) -> None:
    """Clear the tracker's SOS alarm (answering the device where its protocol can)."""
    await _coordinator(hass, call).async_clear_sos()


def _allowed_file(hass: HomeAssistant, text: str) -> Path | None:
    """The file `text` names, relative to the configuration folder; None when not allowed.

    Blocking (resolves links): run in a worker thread.
    """
    config = Path(hass.config.config_dir).resolve()
    path = (config / text).resolve()
    if path.is_relative_to(config) or hass.config.is_allowed_path(str(path)):
        return path
    return None


async def _async_import(hass: HomeAssistant, call: ServiceCall) -> ServiceResponse:
    """Import a cell export into the local database; respond with the summary."""
    text: str = call.data[ATTR_PATH]
    path = await hass.async_add_executor_job(_allowed_file, hass, text)
    if path is None:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="import_path_not_allowed",
            translation_placeholders={"path": text},
        )
    if not await hass.async_add_executor_job(path.is_file):
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="import_file_missing",
            translation_placeholders={"path": text},
        )
    lock = hass.data.setdefault(_IMPORT_LOCK, asyncio.Lock())
    if lock.locked():
        raise HomeAssistantError(translation_domain=DOMAIN, translation_key="import_running")
    mccs = frozenset(call.data[ATTR_MCC]) if call.data.get(ATTR_MCC) else None
    database = async_get_database(hass)
    cancel = threading.Event()

    @callback
    def _stop(_event: Event) -> None:
        cancel.set()

    async with lock:
        unsubscribe = hass.bus.async_listen_once(EVENT_HOMEASSISTANT_STOP, _stop)
        LOGGER.info(
            "Importing cells from %s%s",
            path.name,
            f" (countries {', '.join(map(str, sorted(mccs)))})" if mccs else "",
        )
        try:
            summary = await hass.async_add_executor_job(
                partial(
                    database.import_csv,
                    path,
                    mccs=mccs,
                    replace=call.data[ATTR_REPLACE],
                    attribution=call.data.get(ATTR_ATTRIBUTION),
                    progress=_log_progress,
                    cancel=cancel,
                )
            )
        except ImportFormatError as err:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="import_bad_format",
                translation_placeholders={"path": text, "error": str(err)},
            ) from err
        except ImportCancelledError as err:
            raise HomeAssistantError(
                translation_domain=DOMAIN, translation_key="import_cancelled"
            ) from err
        except (OSError, sqlite3.Error, EOFError) as err:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="import_failed",
                translation_placeholders={"path": text, "error": str(err)},
            ) from err
        finally:
            unsubscribe()
    LOGGER.info(
        "Imported %d cells from %s in %.0f s (%d rows read, %d skipped, %d of other "
        "countries); the database holds %d cells",
        summary.cells_imported,
        path.name,
        summary.seconds,
        summary.rows_read,
        summary.rows_skipped,
        summary.rows_filtered,
        summary.cells_in_database,
    )
    return summary.as_dict() if call.return_response else None


def _log_progress(progress: ImportProgress) -> None:
    """Progress of a running import (called from the worker thread now and then)."""
    share = f" ({progress.fraction:.0%} of the file)" if progress.fraction is not None else ""
    LOGGER.info(
        "Importing cells: %d rows read%s, %d cells so far",
        progress.rows_read,
        share,
        progress.cells_imported,
    )


async def _async_delete(hass: HomeAssistant, call: ServiceCall) -> None:
    """Delete the imported cell database."""
    lock = hass.data.setdefault(_IMPORT_LOCK, asyncio.Lock())
    if lock.locked():
        raise HomeAssistantError(translation_domain=DOMAIN, translation_key="import_running")
    async with lock:
        existed = await hass.async_add_executor_job(async_get_database(hass).delete)
    LOGGER.info("Imported cell database %s", "deleted" if existed else "was not there")
