"""Typed, immutable results of decoding: one message model shared by every protocol family.

Every family decodes into the same `Message`, so the layers above never branch on the protocol to
read a position, an alarm or the relay state. The vocabulary (alarm names, message types) is the
one `../shared/interfaces.md` §2 fixes for the decoder CLI.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import NamedTuple


class Protocol(StrEnum):
    """A protocol family, detected from the first bytes of a connection or datagram."""

    JT808 = "jt808"  #: JT/T 808 with the BSJ/TK-Star 0xEB extension (protocols.md §3)
    GT06 = "gt06"  #: GT06 / Concox, 0x7878 and 0x7979 (protocols.md §5)
    H02 = "h02"  #: H02, `*XX,...#` text and `$` binary records (protocols.md §4)
    GPS103 = "gps103"  #: GPS103 / TK103-2, `imei:...;` text (protocols.md §6)
    WATCH = "watch"  #: Watch protocol, `[SG*id*len*...]` (protocols.md §7)


class MessageType(StrEnum):
    """What a frame is, from the server's point of view."""

    LOGIN = "login"  #: login, JT808 registration and authentication
    HEARTBEAT = "heartbeat"  #: keep-alive, possibly with status
    LOCATION = "location"  #: a position block (valid or not)
    ALARM = "alarm"  #: a frame whose purpose is to report alarms (may carry a position)
    LBS = "lbs"  #: cell towers only, no GNSS block
    WIFI = "wifi"  #: Wi-Fi access points (and maybe cells), no GNSS block
    COMMAND_REPLY = "command_reply"  #: the device's answer to a command we sent
    OTHER = "other"  #: anything else we understand but that carries nothing for the model


class Alarm(StrEnum):
    """The shared alarm vocabulary (interfaces.md §2)."""

    SOS = "sos"
    VIBRATION = "vibration"
    MOVEMENT = "movement"
    OVERSPEED = "overspeed"
    POWER_CUT = "power_cut"  #: external power removed
    POWER_OFF = "power_off"  #: device switched off
    LOW_BATTERY = "low_battery"  #: internal battery low
    LOW_POWER = "low_power"  #: external supply low
    GEOFENCE = "geofence"
    GEOFENCE_ENTER = "geofence_enter"
    GEOFENCE_EXIT = "geofence_exit"
    TAMPER = "tamper"  #: including removal
    FALL = "fall"
    COLLISION = "collision"  #: including accident
    DOOR = "door"
    OTHER = "other"


class PositionSource(StrEnum):
    """Where a position comes from."""

    GNSS = "gnss"
    LBS = "lbs"
    WIFI = "wifi"


class CommandResult(StrEnum):
    """The device's verdict on a command we sent."""

    SUCCESS = "success"
    FAILURE = "failure"
    UNSUPPORTED = "unsupported"


@dataclass(frozen=True, slots=True, kw_only=True)
class Cell:
    """One mobile network cell seen by the device (for LBS fallback positioning)."""

    mcc: int
    mnc: int
    lac: int
    cid: int
    rssi: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class WifiAccessPoint:
    """One Wi-Fi access point seen by the device."""

    mac: str  #: lower case, colon separated
    rssi: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandReply:
    """What a command-reply frame says, in terms the command matcher understands.

    `reference` ties the reply to the command: the JT808 platform serial the device answers
    (0x0001 reply serial), the GT06 server flag, or None where the protocol carries none (then
    the reply is matched by `command` or by order).
    """

    reference: int | None = None
    command: str | None = None  #: JT808 answered message id as hex ("8105"), H02 code ("S20")
    result: CommandResult | None = None  #: the verdict when the frame states one
    #: relay state the reply states outright (GT06 "Cut off the fuel supply: Success!")
    relay: bool | None = None


class Message(NamedTuple):
    """One decoded report. A field is None when the frame does not carry it.

    A NamedTuple rather than a frozen dataclass: it is just as immutable and typed, and it is
    built four times faster (a frozen dataclass sets each of these fields through
    `object.__setattr__`), which matters because one is built per frame (see `bench/decode.py`).
    Build it with keywords only.
    """

    protocol: Protocol
    type: MessageType
    device_id: str | None = None  #: identity digits as sent (GT06: IMEI without the pad digit)
    time: datetime | None = None  #: UTC, timezone aware
    valid: bool | None = None  #: GNSS fix valid
    latitude: float | None = None
    longitude: float | None = None
    speed_kmh: float | None = None
    course: float | None = None
    altitude_m: float | None = None
    satellites: int | None = None
    hdop: float | None = None
    position_source: PositionSource | None = None
    cells: tuple[Cell, ...] = ()
    wifi: tuple[WifiAccessPoint, ...] = ()
    alarms: tuple[Alarm, ...] = ()
    #: alarms whose presence *or absence* this frame states (a status word, not an event):
    #: an alarm listed here and missing from `alarms` is known to be clear.
    alarm_states: frozenset[Alarm] = frozenset()
    ignition: bool | None = None
    relay: bool | None = None  #: relay engaged (fuel/power cut)
    charging: bool | None = None
    battery_percent: float | None = None
    battery_voltage: float | None = None
    power_voltage: float | None = None
    gsm_signal: int | None = None  #: 0..100
    odometer_km: float | None = None  #: total distance the device has counted
    serial: int | None = None
    text: str | None = None  #: command reply text
    reply: CommandReply | None = None  #: set on command replies
    checksum_ok: bool | None = None  #: None for families without a checksum
    #: a buffered or blind-area record uploaded late (JT808 0x0704 type 1, GT06 re-upload)
    historical: bool = False
    #: descriptive facts from logins and info frames (model, firmware, ICCID, time zone ...)
    info: tuple[tuple[str, str], ...] = ()
    raw: bytes = b""  #: the whole frame as received

    def as_dict(self) -> dict[str, object]:
        """Return the decoder CLI's JSON fields (interfaces.md §2), omitting what is absent.

        `alarms` is present (maybe empty) whenever the frame states alarms or alarm states.
        """
        out: dict[str, object] = {"protocol": self.protocol.value, "type": self.type.value}
        for name in _SCALAR_FIELDS:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.time is not None:
            out["time"] = self.time.isoformat()
        if self.position_source is not None:
            out["position_source"] = self.position_source.value
        if self.cells:
            out["cells"] = [
                {"mcc": c.mcc, "mnc": c.mnc, "lac": c.lac, "cid": c.cid, "rssi": c.rssi}
                for c in self.cells
            ]
        if self.wifi:
            out["wifi"] = [{"mac": w.mac, "rssi": w.rssi} for w in self.wifi]
        if self.alarms or self.alarm_states:
            out["alarms"] = [alarm.value for alarm in self.alarms]
        return out


_SCALAR_FIELDS = (
    "device_id",
    "valid",
    "latitude",
    "longitude",
    "speed_kmh",
    "course",
    "altitude_m",
    "satellites",
    "ignition",
    "relay",
    "charging",
    "battery_percent",
    "battery_voltage",
    "power_voltage",
    "gsm_signal",
    "odometer_km",
    "serial",
    "text",
    "checksum_ok",
)
