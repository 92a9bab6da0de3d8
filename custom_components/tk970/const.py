"""Constants: the domain, configuration keys and defaults shared by the Home Assistant files."""

from __future__ import annotations

from datetime import timedelta
import logging
from typing import Final

DOMAIN: Final = "tk970"
LOGGER = logging.getLogger(__package__)

MANUFACTURER: Final = "TK-Star"
DEFAULT_MODEL: Final = "TK970"

# Config entry data (the user step of interfaces.md §3).
CONF_IMEI: Final = "imei"
CONF_NAME: Final = "name"
CONF_PORT: Final = "port"
DEFAULT_PORT: Final = 8888

# Options.
CONF_ALARM_HOLD: Final = "alarm_hold_minutes"
DEFAULT_ALARM_HOLD: Final = 10
CONF_RELAY_MAX_SPEED: Final = "relay_max_speed"
#: Concox firmware itself refuses to cut above 20 km/h (protocols.md §5.7).
DEFAULT_RELAY_MAX_SPEED: Final = 20
CONF_RELAY_DIALECT: Final = "relay_dialect"
DIALECT_AUTO: Final = "auto"
CONF_RELAY_PASSWORD: Final = "relay_password"  # noqa: S105 - an option key, not a secret
#: A tracker silent this long is offline: its live values (speed, battery ...) are unavailable.
#: Trackers send a heartbeat every few minutes; the listener drops silent links after 30 min.
CONF_OFFLINE_AFTER: Final = "offline_minutes"
DEFAULT_OFFLINE_AFTER: Final = 30

# Fallback positioning options (interfaces.md §4).
CONF_LEARN_POSITIONS: Final = "learn_positions"
DEFAULT_LEARN_POSITIONS: Final = True
CONF_GEOLOCATION_PROVIDER: Final = "geolocation_provider"
CONF_GEOLOCATION_URL: Final = "geolocation_url"
CONF_GEOLOCATION_API_KEY: Final = "geolocation_api_key"
PROVIDER_NONE: Final = "none"
PROVIDER_MLS: Final = "mls"
PROVIDER_UNWIREDLABS: Final = "unwiredlabs"

#: How long the relay switch waits for the device to confirm (interfaces.md §3: within 60 s).
RELAY_TIMEOUT: Final = 30.0
#: How long the actions wait for the device's answer to other commands (interfaces.md §3:
#: an error within 60 s); an SMS-style command may take the device longer than a relay switch.
COMMAND_TIMEOUT: Final = 50.0

#: Unknown trackers offered at once; more are logged, so made-up IMEIs cannot bury the UI.
MAX_PENDING_DISCOVERIES: Final = 10
#: An unknown identity is offered again (if its flow was dismissed) after this long.
REDISCOVERY_INTERVAL: Final = timedelta(minutes=10)

#: Accuracy shown for fallback positions, in metres.
ACCURACY_LBS: Final = 1000
ACCURACY_WIFI: Final = 100

#: The bus event for alarms, which device triggers and the logbook use.
EVENT_TK970: Final = f"{DOMAIN}_event"
