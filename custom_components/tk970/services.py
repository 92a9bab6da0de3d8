"""Actions: import an OpenCellID-format cell export, and delete the imported cells.

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
from homeassistant.helpers import config_validation as cv
from homeassistant.util.hass_dict import HassKey

from . import vol
from .const import DOMAIN, LOGGER
from .fallback import async_get_database
from .positioning import ImportCancelledError, ImportFormatError, ImportProgress

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
