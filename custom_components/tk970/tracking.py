"""What a tracker's reports mean for the device shown, without Home Assistant.

Shared by the integration's coordinator and the MQTT gateway, so both show the same device: the
protocol names in the model string, and the accuracy a GNSS fix is given.
"""

from __future__ import annotations

from .protocol import Message, Protocol

PROTOCOL_NAMES = {
    Protocol.JT808: "JT/T 808",
    Protocol.GT06: "GT06",
    Protocol.H02: "H02",
    Protocol.GPS103: "GPS103",
    Protocol.WATCH: "Watch",
}


def gnss_accuracy(message: Message) -> int:
    """A GNSS accuracy estimate in metres: from HDOP when sent, else from the satellite count."""
    if message.hdop is not None and message.hdop > 0:
        return max(5, round(message.hdop * 5))
    satellites = message.satellites
    if satellites is None:
        return 25
    if satellites >= 8:
        return 10
    if satellites >= 5:
        return 20
    return 50
