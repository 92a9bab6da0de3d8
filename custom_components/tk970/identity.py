"""Which configured tracker a reported identity is (interfaces.md §3), without Home Assistant.

Shared by the hub (routing reports to config entries) and the MQTT gateway (its allow-list), so
both take the same reports for the same tracker.
"""

from __future__ import annotations

from .protocol import Protocol


def identity_matches(reported: str, protocol: Protocol | None, configured: str) -> bool:
    """Tell whether a reported identity is the configured tracker (interfaces.md §3).

    Digits equal once leading zeros are stripped; or, for a JT808 terminal id of 12 digits or
    fewer (devices often put the IMEI's last 11 digits there, zero-padded), the last 11 digits
    of both are equal.
    """
    if reported.lstrip("0") == configured.lstrip("0"):
        return True
    return (
        protocol is Protocol.JT808
        and 11 <= len(reported) <= 12
        and len(configured) == 15  # an IMEI
        and reported[-11:] == configured[-11:]
    )
