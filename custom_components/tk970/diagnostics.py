"""Diagnostics: the tracker's state, its connection and decoder counters, location redacted."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.core import HomeAssistant

from .const import (
    CONF_GEOLOCATION_API_KEY,
    CONF_GEOLOCATION_URL,
    CONF_IMEI,
    CONF_NAME,
    CONF_RELAY_PASSWORD,
)
from .coordinator import TK970ConfigEntry
from .fallback import DATA_POSITIONING, provider_config

TO_REDACT = {
    CONF_IMEI,
    CONF_NAME,
    CONF_RELAY_PASSWORD,
    CONF_GEOLOCATION_API_KEY,
    CONF_GEOLOCATION_URL,  # may carry credentials
    "device_id",
    "imsi",
    "rfid",
    "reported_id",
    "latitude",
    "longitude",
    "last_gnss",
    "address",
    "iccid",
    "imei",
    "title",
    "unique_id",
}


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: TK970ConfigEntry
) -> dict[str, Any]:
    """Return what helps find why a tracker does not show up or misbehaves."""
    coordinator = entry.runtime_data
    link = coordinator.link
    listener = coordinator.hub.listener
    connection: dict[str, Any] | None = None
    if link is not None:
        connection = {
            "protocol": link.protocol.value,
            "transport": link.transport,
            "address": link.host,
            "connected_at": link.connected_at.isoformat(),
            "last_seen": link.last_seen.isoformat(),
            "session": asdict(link.session.stats),
            "jt808_utc_offset_hours": link.session.context.jt808_utc_offset.total_seconds() / 3600,
        }
    return async_redact_data(
        {
            "entry": {
                "data": dict(entry.data),
                "options": dict(entry.options),
                "title": entry.title,
            },
            "state": coordinator.data.as_store(),
            "activity": {
                "online": coordinator.data.online,
                "last_heard": (
                    coordinator.data.last_heard.isoformat()
                    if coordinator.data.last_heard is not None
                    else None
                ),
            },
            "connection": connection,
            "listener": {
                "port": listener.port,
                "tcp_connections": listener.connection_count,
                "unidentified_connections": listener.unidentified_count,
                "udp_peers": listener.udp_peer_count,
                "sessions_for_this_tracker": len(listener.claims(link.identity)) if link else 0,
                "limits": asdict(listener.limits),
                "resources": asdict(listener.figures) if listener.figures else None,
                "stats": asdict(listener.stats),
            },
            "positioning": await _positioning(hass, entry),
        },
        TO_REDACT,
    )


async def _positioning(hass: HomeAssistant, entry: TK970ConfigEntry) -> dict[str, Any] | None:
    """Fallback positioning: this tracker's provider (host only) and the shared engine."""
    shared = hass.data.get(DATA_POSITIONING)
    if shared is None:
        return None
    provider = provider_config(entry.options)
    return {
        "provider": {"kind": provider.kind.value, "host": provider.host} if provider else None,
        **await shared.async_diagnostics(),
    }
