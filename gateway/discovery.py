"""Home Assistant MQTT discovery payloads: one device per tracker, one per gateway instance.

Device-based discovery (`<prefix>/device/<id>/config`, Home Assistant 2024.11 and newer) with
unabbreviated keys. The tracker's device has the entities the integration creates, with the
unique IDs of interfaces.md §5 (`tk970_ID`, `tk970_ID_sos`, `tk970_ID_vibration`,
`tk970_ID_relay`, then `tk970_ID_<key>` for the rest), names and icons as the integration shows
them, and every state read from the one retained state JSON through a template that renders
nothing while a value is unknown (Home Assistant then keeps what it shows).

Availability: every entity follows the instance's status (its last will), so the last position
stays on the map while a tracker is between connections, as in the integration; the relay
switch also needs the tracker's own connection, since a command can only go over it.
"""

from __future__ import annotations

from functools import cache
import json
from pathlib import Path
from typing import Any

from custom_components.tk970 import tracking
from custom_components.tk970.const import MANUFACTURER
from custom_components.tk970.protocol import Alarm, Protocol
from custom_components.tk970.tracking import POSITION_DETAILS

from . import __version__
from .topics import Topics
from .tracker import Tracker

ORIGIN = {
    "name": "tk970 gateway",
    "sw_version": __version__,
    "support_url": "https://github.com/tk970/tk970",
}

#: Outcomes of a relay command (the "Relay command" event entity's event types).
RELAY_OUTCOMES = (
    "confirmed",  # the device confirmed: the switch shows the new state
    "no_answer",  # the device did not answer in time
    "refused",  # the device answered and refused (moving too fast, wrong password ...)
    "unsupported",  # the device or its protocol cannot do it
    "unconfirmable",  # sent, but the protocol never confirms (GPS103)
    "not_connected",  # no live connection to send it over
    "too_fast",  # refused here: faster than the cut-off speed limit
    "busy",  # another relay command for this tracker is still waiting for its answer
    "invalid",  # the payload was neither ON nor OFF
)

_TRACKER_ATTRIBUTES = (
    "{% if value_json.latitude is defined %}{{ {"
    "'latitude': value_json.latitude, 'longitude': value_json.longitude, "
    "'gps_accuracy': value_json.gps_accuracy, 'position_source': value_json.position_source, "
    "'fix_time': value_json.fix_time, 'position_method': value_json.get('position_method'), "
    "'position_provider': value_json.get('position_provider')} | tojson }}"
    "{% else %}{}{% endif %}"
)


def _value(key: str, unknown: str = "") -> str:
    """A template for one state value, `unknown` while the value has never been known.

    Empty suits numbers (HA ignores it and keeps what it shows); an enum or timestamp sensor
    warns about an empty state on every publication, so those get `None`, HA's "unknown".
    """
    return f"{{{{ value_json.{key} if value_json.{key} is defined else '{unknown}' }}}}"


def _on_off(key: str) -> str:
    """A template for a boolean state value as ON/OFF; empty while it is unknown."""
    return (
        f"{{% if value_json.{key} is defined %}}"
        f"{{{{ 'ON' if value_json.{key} else 'OFF' }}}}{{% endif %}}"
    )


#: What HA's MQTT sensor takes as "unknown" (`PAYLOAD_NONE`).
_UNKNOWN = "None"


def _sensor(
    key: str, name: str, *, unit: str | None = None, unknown: str = "", **extra: Any
) -> tuple[str, dict[str, Any]]:
    config: dict[str, Any] = {
        "platform": "sensor",
        "name": name,
        "value_template": _value(key, unknown),
    }
    if unit is not None:
        config["unit_of_measurement"] = unit
    config.update(extra)
    return key, config


@cache
def _state_names() -> dict[str, dict[str, str]]:
    """The integration's English names of enum sensor states, by its translation key.

    MQTT entities have no translations: Home Assistant shows an enum sensor's state as sent, so
    the gateway sends the names the integration's sensors show (its `translations/en.json`).
    Read once: every tracker's discovery payload needs them.
    """
    path = Path(tracking.__file__).parent / "translations" / "en.json"
    sensors = json.loads(path.read_text(encoding="utf-8"))["entity"]["sensor"]
    return {key: sensor["state"] for key, sensor in sensors.items() if "state" in sensor}


def _enum(
    key: str, name: str, translation_key: str, options: list[str], **extra: Any
) -> tuple[str, dict[str, Any]]:
    """An enum sensor showing each state's name; the state JSON keeps the raw value."""
    names = _state_names()[translation_key]
    labels = {option: names.get(option, option) for option in options}
    key, config = _sensor(key, name, device_class="enum", options=list(labels.values()), **extra)
    config["value_template"] = (
        f"{{% set names = {json.dumps(labels)} %}}"
        f"{{{{ names.get(value_json.{key}, '{_UNKNOWN}') "
        f"if value_json.{key} is defined else '{_UNKNOWN}' }}}}"
    )
    return key, config


def _sensors() -> list[tuple[str, dict[str, Any]]]:
    measurement = {"state_class": "measurement"}
    diagnostic = {"entity_category": "diagnostic"}
    return [
        _sensor("battery", "Battery", unit="%", device_class="battery", **measurement),
        _sensor(
            "battery_voltage",
            "Battery voltage",
            unit="V",
            device_class="voltage",
            suggested_display_precision=2,
            **measurement,
            **diagnostic,
        ),
        _sensor(
            "power_voltage",
            "External power voltage",
            unit="V",
            device_class="voltage",
            suggested_display_precision=1,
            **measurement,
        ),
        _sensor(
            "speed",
            "Speed",
            unit="km/h",
            device_class="speed",
            suggested_display_precision=0,
            **measurement,
        ),
        _sensor(
            "course",
            "Course",
            unit="°",
            icon="mdi:compass-outline",
            suggested_display_precision=0,
            enabled_by_default=False,
        ),
        _sensor(
            "altitude",
            "Altitude",
            unit="m",
            device_class="distance",
            enabled_by_default=False,
            **measurement,
        ),
        _sensor(
            "odometer",
            "Odometer",
            unit="km",
            device_class="distance",
            state_class="total_increasing",
            icon="mdi:counter",
            enabled_by_default=False,
        ),
        _sensor(
            "satellites", "Satellites", icon="mdi:satellite-variant", **measurement, **diagnostic
        ),
        _sensor(
            "signal", "Signal strength", unit="%", icon="mdi:signal", **measurement, **diagnostic
        ),
        _sensor("last_seen", "Last seen", device_class="timestamp", unknown=_UNKNOWN, **diagnostic),
        _enum(
            "position_detail",
            "Position source",
            "position_source",
            list(POSITION_DETAILS),
            icon="mdi:crosshairs-gps",
            **diagnostic,
        ),
        _enum(
            "protocol",
            "Protocol",
            "protocol",
            [protocol.value for protocol in Protocol],
            icon="mdi:protocol",
            **diagnostic,
        ),
    ]


def tracker_config(tracker: Tracker, topics: Topics) -> dict[str, Any]:
    """The discovery payload of one tracker's device."""
    tid = tracker.identity
    state = topics.state(tid)
    gateway = {"topic": topics.status}
    components: dict[str, dict[str, Any]] = {
        "tracker": {
            "platform": "device_tracker",
            "unique_id": f"tk970_{tid}",
            "name": None,  # the device's name: the primary entity
            "icon": "mdi:car",
            "source_type": "gps",
            "json_attributes_topic": state,
            "json_attributes_template": _TRACKER_ATTRIBUTES,
        },
        "sos": {
            "platform": "binary_sensor",
            "unique_id": f"tk970_{tid}_sos",
            "name": "SOS",
            "device_class": "safety",
            "state_topic": state,
            "value_template": _on_off("sos"),
        },
        "vibration": {
            "platform": "binary_sensor",
            "unique_id": f"tk970_{tid}_vibration",
            "name": "Vibration",
            "device_class": "vibration",
            "state_topic": state,
            "value_template": _on_off("vibration"),
        },
        "relay": {
            "platform": "switch",
            "unique_id": f"tk970_{tid}_relay",
            "name": "Engine cut-off relay",
            "icon": "mdi:engine-off",
            "command_topic": topics.relay_set(tid),
            "payload_on": "ON",
            "payload_off": "OFF",
            "state_topic": state,
            "value_template": _on_off("relay"),
            "optimistic": False,
            "retain": False,
            "availability": [gateway, {"topic": topics.availability(tid)}],
            "availability_mode": "all",
        },
        "connected": {
            "platform": "binary_sensor",
            "unique_id": f"tk970_{tid}_connected",
            "name": "Connected",
            "device_class": "connectivity",
            "entity_category": "diagnostic",
            "state_topic": topics.availability(tid),
            "payload_on": "online",
            "payload_off": "offline",
        },
        "ignition": {
            "platform": "binary_sensor",
            "unique_id": f"tk970_{tid}_ignition",
            "name": "Ignition",
            "icon": "mdi:engine",
            "state_topic": state,
            "value_template": _on_off("ignition"),
        },
        "charging": {
            "platform": "binary_sensor",
            "unique_id": f"tk970_{tid}_charging",
            "name": "Charging",
            "device_class": "battery_charging",
            "entity_category": "diagnostic",
            "state_topic": state,
            "value_template": _on_off("charging"),
        },
        "alarm": {
            "platform": "event",
            "unique_id": f"tk970_{tid}_alarm",
            "name": "Alarm",
            "icon": "mdi:alarm-light-outline",
            "state_topic": topics.alarm(tid),
            "event_types": [alarm.value for alarm in Alarm],
        },
        "relay_command": {
            "platform": "event",
            "unique_id": f"tk970_{tid}_relay_command",
            "name": "Relay command",
            "icon": "mdi:engine-outline",
            "state_topic": topics.relay_command(tid),
            "event_types": list(RELAY_OUTCOMES),
        },
    }
    for key, config in _sensors():
        config["unique_id"] = f"tk970_{tid}_{key}"
        config["state_topic"] = state
        components[key] = config
    for config in components.values():
        config["qos"] = 1
        config.setdefault("availability", [gateway])
    return {
        "device": {
            "identifiers": [f"tk970_{tid}"],
            "name": tracker.name,
            "manufacturer": MANUFACTURER,
            "model": tracker.model,
            "serial_number": tid,
            **({"sw_version": tracker.firmware} if tracker.firmware else {}),
            "via_device": f"tk970_gateway_{topics.instance}",
        },
        "origin": ORIGIN,
        "components": components,
    }


def gateway_config(topics: Topics) -> dict[str, Any]:
    """The discovery payload of this gateway instance's own device."""
    inst = topics.instance
    stats = topics.stats
    online = {"topic": topics.status}

    def counter(key: str, name: str, icon: str) -> dict[str, Any]:
        return {
            "platform": "sensor",
            "unique_id": f"tk970_gateway_{inst}_{key}",
            "name": name,
            "icon": icon,
            "state_topic": stats,
            "value_template": _value(key),
            "state_class": "measurement",
            "entity_category": "diagnostic",
            "availability": [online],
            "qos": 1,
        }

    return {
        "device": {
            "identifiers": [f"tk970_gateway_{inst}"],
            "name": f"TK970 gateway {inst}",
            "manufacturer": "tk970",
            "model": "MQTT gateway",
            "sw_version": __version__,
        },
        "origin": ORIGIN,
        "components": {
            "status": {
                "platform": "binary_sensor",
                "unique_id": f"tk970_gateway_{inst}_status",
                "name": "Status",
                "device_class": "connectivity",
                "state_topic": topics.status,
                "payload_on": "online",
                "payload_off": "offline",
                "qos": 1,
            },
            "trackers": counter("trackers", "Connected trackers", "mdi:car-multiple"),
            "buffered": counter("buffered", "Buffered reports", "mdi:tray-full"),
            "dropped": {
                **counter("dropped", "Refused reports", "mdi:tray-remove"),
                "state_class": "total_increasing",
            },
        },
    }
