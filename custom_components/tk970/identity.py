"""Which reported identities are one tracker: the matching rule of interfaces.md §3.

Plain functions without Home Assistant, so the hub, the config flow and the gateway apply the
same rule: digits equal once leading zeros are stripped; or a JT808 terminal ID of 11 or 12
digits (devices often put the IMEI's last 11 digits there, zero-padded) and an IMEI whose last
11 digits are the same.
"""

from __future__ import annotations

from .protocol import Protocol

IMEI_LENGTH = 15
#: A JT808 terminal ID that is an IMEI's tail: its last 11 digits, zero-padded to 12 or not.
_SHORT_ID_LENGTHS = (11, 12)


def _tail_of_imei(short: str, imei: str) -> bool:
    return (
        len(short) in _SHORT_ID_LENGTHS and len(imei) == IMEI_LENGTH and (short[-11:] == imei[-11:])
    )


def identity_matches(reported: str, protocol: Protocol | None, configured: str) -> bool:
    """Tell whether an identity a device reported is the configured tracker."""
    if reported.lstrip("0") == configured.lstrip("0"):
        return True
    return protocol is Protocol.JT808 and _tail_of_imei(reported, configured)


def same_tracker(first: str, second: str) -> bool:
    """Tell whether two configured identities name one tracker (either may be the short one).

    The config flow refuses a second entry for a tracker already configured under its IMEI or
    under its JT808 terminal ID: both entries would receive the same reports.
    """
    if first.lstrip("0") == second.lstrip("0"):
        return True
    return _tail_of_imei(first, second) or _tail_of_imei(second, first)
