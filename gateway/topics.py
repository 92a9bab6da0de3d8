"""The gateway's MQTT topic layout, in one place.

    <prefix>/device/tk970_<id>/config          discovery, one device per tracker (retained)
    <prefix>/device/tk970_gateway_<inst>/config discovery of the gateway instance (retained)
    <prefix>/status                           Home Assistant's birth and will
    <base>/<id>/state                          the tracker's state JSON (retained)
    <base>/<id>/availability/<inst>            online/offline: connected to <inst> (retained)
    <base>/<id>/alarm                          alarm events (never retained: HA ignores those)
    <base>/<id>/relay_command                  relay command outcomes (events, never retained)
    <base>/<id>/ctl/relay                      relay commands from Home Assistant (ON/OFF)
    <base>/<id>/ctl/owner                      which instance holds the tracker (retained)
    <base>/_gateway/<inst>/status              online/offline of an instance (retained, will)
    <base>/_gateway/<inst>/stats               the instance's counters (retained)

An instance subscribes to `<base>/<id>/ctl/+` only while it holds that tracker's connection, so
a command reaches the instance that can send it, and an owner claim from another instance
tells this one to let the tracker go. `<id>` is the tracker identity: digits only, which MQTT
topics and Home Assistant's discovery ids (`[a-zA-Z0-9_-]`) both accept.
"""

from __future__ import annotations

from dataclasses import dataclass
import re

#: What Home Assistant accepts in a discovery node id or object id (and what we put in topics).
SAFE_SEGMENT = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(frozen=True, slots=True)
class Topics:
    """The topics of one gateway instance."""

    base: str = "tk970"
    prefix: str = "homeassistant"
    instance: str = "gateway"

    def state(self, tracker: str) -> str:
        """The tracker's state JSON."""
        return f"{self.base}/{tracker}/state"

    def availability(self, tracker: str) -> str:
        """Whether the tracker has a live connection to this instance.

        Per instance: an instance that lost a tracker to another one may still see the old
        connection close, and its `offline` must not hide the new owner's `online`.
        """
        return f"{self.base}/{tracker}/availability/{self.instance}"

    def alarm(self, tracker: str) -> str:
        """The tracker's alarm events."""
        return f"{self.base}/{tracker}/alarm"

    def relay_command(self, tracker: str) -> str:
        """Outcomes of relay commands."""
        return f"{self.base}/{tracker}/relay_command"

    def control(self, tracker: str) -> str:
        """The filter an owning instance subscribes to."""
        return f"{self.base}/{tracker}/ctl/+"

    def relay_set(self, tracker: str) -> str:
        """Relay commands from Home Assistant."""
        return f"{self.base}/{tracker}/ctl/relay"

    def owner(self, tracker: str) -> str:
        """Which instance holds the tracker's connection."""
        return f"{self.base}/{tracker}/ctl/owner"

    def device_config(self, tracker: str) -> str:
        """The tracker's discovery config."""
        return f"{self.prefix}/device/tk970_{tracker}/config"

    @property
    def status(self) -> str:
        """This instance's online/offline (its last will)."""
        return f"{self.base}/_gateway/{self.instance}/status"

    @property
    def stats(self) -> str:
        """This instance's counters."""
        return f"{self.base}/_gateway/{self.instance}/stats"

    @property
    def gateway_config(self) -> str:
        """This instance's own discovery config."""
        return f"{self.prefix}/device/tk970_gateway_{self.instance}/config"

    @property
    def birth(self) -> str:
        """Where Home Assistant announces that it (re)started."""
        return f"{self.prefix}/status"

    def parse(self, topic: str) -> tuple[str, str] | None:
        """`(tracker, leaf)` of `<base>/<id>/ctl/<leaf>`, or `(tracker, "state")`, else None."""
        head = f"{self.base}/"
        if not topic.startswith(head):
            return None
        parts = topic[len(head) :].split("/")
        if len(parts) == 3 and parts[1] == "ctl":
            return parts[0], parts[2]
        if len(parts) == 2 and parts[1] == "state":
            return parts[0], "state"
        return None
