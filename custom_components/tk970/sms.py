"""The SMS texts that point a tracker at this Home Assistant: server address and port, APN.

Pure text, no Home Assistant import: the config flow shows them after a tracker is added (for
its family when it connected, for every family when it was typed in) and while pairing waits.
Formats per family (README "Point the tracker at Home Assistant", docs/trackers.md): Concox
GT06N/JM-VL02 manuals and TK-Star 4G units (`SERVER`, `APN`; `SERVER,1,...` takes a host name),
SinoTrack ST-901 for H02 firmware (`804`/`803` with the default password `0000`), the Xexun
TK102/TK103 manual for GPS103 (`adminip`, `apn`, `gprs` with the default password `123456`).
None of these sources gives the Watch family's server SMS: for it, only the address and port
are shown.
"""

from __future__ import annotations

from dataclasses import dataclass
import ipaddress

from .protocol import Protocol

#: Stands for the public address when Home Assistant does not know it (the text says so).
UNKNOWN_HOST = "<IP>"
#: Stands for the SIM provider's access point name, which only the user knows.
APN = "<apn>"
#: The markers as the translated texts name them: placeholders, because the frontend's message
#: format reads a literal `<...>` in a translation as a markup tag.
MARKERS = {"apn": f"`{APN}`", "ip": f"`{UNKNOWN_HOST}`"}

#: Families in the order they are listed, with the names users know them by.
FAMILY_NAMES: dict[Protocol, str] = {
    Protocol.JT808: "JT/T 808 (4G TK-Star units, TK970)",
    Protocol.GT06: "GT06 / Concox",
    Protocol.H02: "H02 (SinoTrack-style firmware)",
    Protocol.GPS103: "GPS103 / TK103",
    Protocol.WATCH: "Watch",
}


@dataclass(frozen=True, slots=True)
class FamilySms:
    """One family's texts, in the order to send them."""

    protocol: Protocol
    texts: tuple[str, ...]


def is_ip_address(host: str) -> bool:
    """True for an IPv4 or IPv6 literal; False for a host name (or the unknown marker)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def family_sms(protocol: Protocol, host: str | None, port: int) -> FamilySms:
    """The texts that point a tracker of `protocol` at `host`:`port` (None: not known)."""
    server = host or UNKNOWN_HOST
    if protocol in (Protocol.JT808, Protocol.GT06):
        # Mode 1 takes a domain name; 0 an IP address. The last 0 is TCP (1: UDP).
        mode = 1 if host is not None and not is_ip_address(host) else 0
        texts: tuple[str, ...] = (f"SERVER,{mode},{server},{port},0#", f"APN,{APN}#")
    elif protocol is Protocol.H02:
        texts = (f"8040000 {server} {port}", f"8030000 {APN}")
    elif protocol is Protocol.GPS103:
        texts = (f"adminip123456 {server} {port}", f"apn123456 {APN}", "gprs123456")
    else:
        texts = ()
    return FamilySms(protocol, texts)


def all_families(host: str | None, port: int) -> list[FamilySms]:
    """Every family's texts, for a tracker whose family is not known yet."""
    return [family_sms(protocol, host, port) for protocol in FAMILY_NAMES]


def as_markdown(families: list[FamilySms], host: str | None, port: int) -> str:
    """One line per family, each text as code (the config flow's dialogs render Markdown)."""
    lines = []
    for family in families:
        if family.texts:
            texts = " · ".join(f"`{text}`" for text in family.texts)
        else:
            texts = f"`{host or UNKNOWN_HOST}`, port `{port}`"
        lines.append(f"- **{FAMILY_NAMES[family.protocol]}**: {texts}")
    return "\n".join(lines)
