"""Command line of the gateway: `scripts/gateway --mqtt URL [options]` (interfaces.md §5).

    scripts/gateway --mqtt mqtts://gw:secret@broker.example.net --allow 359586015829802=Van

Runs until Ctrl-C or SIGTERM, then tells Home Assistant this instance is offline.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from datetime import timedelta
import logging
import os
from pathlib import Path
import re
import signal
import socket
import sys
from urllib.parse import unquote, urlsplit

from custom_components.tk970.const import PROVIDER_NONE
from custom_components.tk970.positioning import DEFAULT_URLS, ProviderKind
from custom_components.tk970.positioning.tracker import provider_from
from custom_components.tk970.protocol import RelayDialect

from . import __version__
from .app import Gateway, Settings
from .broker import BrokerSettings
from .positioning import PositioningSettings
from .topics import SAFE_SEGMENT, Topics

_LOGGER = logging.getLogger("gateway")

#: Where the broker URL may come from instead of the command line (keeps a password out of `ps`).
URL_VARIABLE = "TK970_MQTT_URL"
#: The same for the geolocation provider's key, and the data folder.
GEOLOCATION_KEY_VARIABLE = "TK970_GEOLOCATION_API_KEY"
DATA_VARIABLE = "TK970_GATEWAY_DATA"


def parse_mqtt_url(url: str) -> BrokerSettings:
    """`mqtt://[user:password@]host[:port]` or `mqtts://...` (TLS) as broker settings."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ValueError(f"not an mqtt:// or mqtts:// URL with a host: {url!r}")
    tls = parts.scheme == "mqtts"
    try:
        port = parts.port or (8883 if tls else 1883)
    except ValueError as err:
        raise ValueError(f"bad port in {url!r}") from err
    return BrokerSettings(
        host=parts.hostname,
        port=port,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        tls=tls,
    )


def parse_allow(values: list[str]) -> dict[str, str | None]:
    """`ID` or `ID=Name` entries (several per argument allowed, comma or space separated)."""
    allowed: dict[str, str | None] = {}
    for value in values:
        for entry in re.split(r"[,\s]+(?=\d)", value.strip()):
            if not entry:
                continue
            identity, _, name = entry.partition("=")
            identity = identity.strip()
            if not identity.isdigit():
                raise ValueError(f"a tracker identity is digits only: {identity!r}")
            allowed[identity] = name.strip() or None
    return allowed


def default_instance() -> str:
    """This host's name, reduced to what topics and discovery ids accept."""
    name = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname())[:32]
    return name or "gateway"


def default_data_dir() -> Path:
    """Where the gateway keeps its files unless told: the environment's word, or beside it."""
    for variable in (DATA_VARIABLE, "STATE_DIRECTORY"):
        if value := os.environ.get(variable):
            return Path(value.split(":")[0])
    return Path(__file__).resolve().parent.parent / "gateway-data"


def positioning_from(args: argparse.Namespace) -> PositioningSettings | None:
    """Fallback positioning settings; None when every source is off."""
    provider = provider_from(
        args.geolocation_provider, args.geolocation_url, args.geolocation_api_key
    )
    if args.geolocation_provider != PROVIDER_NONE and provider is None:
        raise ValueError(f"--geolocation-provider {args.geolocation_provider} needs a token")
    if args.geolocation_url and urlsplit(args.geolocation_url).scheme not in ("http", "https"):
        raise ValueError(f"--geolocation-url must be an http(s) URL: {args.geolocation_url!r}")
    if not args.learn_positions and provider is None:
        return None
    return PositioningSettings(args.data_dir, learn=args.learn_positions, provider=provider)


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="scripts/gateway",
        description="tk970 MQTT gateway: TK-Star trackers in on TCP/UDP, Home Assistant MQTT "
        "discovery devices out through a broker.",
    )
    parser.add_argument(
        "--mqtt",
        default=os.environ.get(URL_VARIABLE),
        help="broker URL: mqtt://[user:password@]host[:port] or mqtts://... (TLS); "
        f"default: ${URL_VARIABLE}",
    )
    parser.add_argument("--port", type=int, default=8888, help="tracker port, TCP and UDP")
    parser.add_argument(
        "--bind", action="append", metavar="ADDRESS", help="address to listen on (default: all)"
    )
    parser.add_argument(
        "--allow",
        action="append",
        default=[],
        metavar="ID[=NAME]",
        help="a tracker to publish (IMEI or device ID, optionally with its name); repeatable",
    )
    parser.add_argument(
        "--accept-all", action="store_true", help="publish every tracker that connects"
    )
    parser.add_argument("--discovery-prefix", default="homeassistant")
    parser.add_argument("--base-topic", default="tk970", help="root of the state topics")
    parser.add_argument(
        "--instance",
        default=default_instance(),
        help="this instance's id, unique per gateway (default: the host name)",
    )
    parser.add_argument("--ca-file", help="CA bundle to verify the broker (mqtts://)")
    parser.add_argument("--client-cert", help="client certificate (mqtts://)")
    parser.add_argument("--client-key", help="client certificate's key (mqtts://)")
    parser.add_argument(
        "--tls-insecure",
        action="store_true",
        help="do not verify the broker's certificate (testing only)",
    )
    parser.add_argument(
        "--buffer",
        type=int,
        default=10_000,
        help="report publications kept while the broker is unreachable",
    )
    parser.add_argument("--max-trackers", type=int, default=10_000)
    parser.add_argument(
        "--alarm-hold", type=float, default=10.0, help="minutes SOS/vibration stay on"
    )
    parser.add_argument(
        "--relay-max-speed",
        type=float,
        default=20.0,
        help="refuse to cut the engine above this speed, km/h (0: no limit)",
    )
    parser.add_argument(
        "--relay-dialect", choices=[d.value for d in RelayDialect], help="relay command dialect"
    )
    parser.add_argument(
        "--relay-password", default=os.environ.get("TK970_RELAY_PASSWORD", "123456")
    )
    parser.add_argument(
        "--stats-interval",
        type=float,
        default=60.0,
        help="seconds between the instance's counters (its gateway device in Home Assistant)",
    )
    fallback = parser.add_argument_group(
        "fallback positioning",
        "positions for reports without a GNSS fix, from the cells and Wi-Fi access points "
        "they carry",
    )
    fallback.add_argument(
        "--learn-positions",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="learn where cells and access points are from the trackers' fixes, and place "
        "fix-less reports from that (local: nothing leaves the gateway); default: on",
    )
    fallback.add_argument(
        "--geolocation-provider",
        choices=[PROVIDER_NONE, *(kind.value for kind in ProviderKind)],
        default=PROVIDER_NONE,
        help="online service asked when the learned table cannot answer: it receives the cell "
        "IDs and nearby Wi-Fi MAC addresses, and the gateway's address (default: none)",
    )
    fallback.add_argument(
        "--geolocation-url",
        help=f"the provider's URL (mls default: {DEFAULT_URLS[ProviderKind.MLS]}; "
        f"unwiredlabs default: {DEFAULT_URLS[ProviderKind.UNWIREDLABS]})",
    )
    fallback.add_argument(
        "--geolocation-api-key",
        default=os.environ.get(GEOLOCATION_KEY_VARIABLE),
        help=f"the provider's key or token (default: ${GEOLOCATION_KEY_VARIABLE})",
    )
    fallback.add_argument(
        "--data-dir",
        type=Path,
        default=default_data_dir(),
        help="folder for the learned table (learned_positions.json); default: "
        f"${DATA_VARIABLE}, else systemd's $STATE_DIRECTORY, else gateway-data beside the "
        "gateway",
    )
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def settings_from(args: argparse.Namespace) -> Settings:
    """Settings from parsed arguments; raises ValueError with a message for the user."""
    if not args.mqtt:
        raise ValueError(f"--mqtt URL (or ${URL_VARIABLE}) is required")
    mqtt = parse_mqtt_url(args.mqtt)
    mqtt.ca_file = args.ca_file
    mqtt.cert_file = args.client_cert
    mqtt.key_file = args.client_key
    mqtt.tls_insecure = args.tls_insecure
    if (args.ca_file or args.client_cert) and not mqtt.tls:
        raise ValueError("--ca-file and --client-cert need an mqtts:// URL")
    for name, value in (
        ("--instance", args.instance),
        ("--base-topic", args.base_topic),
        ("--discovery-prefix", args.discovery_prefix),
    ):
        if not all(SAFE_SEGMENT.match(part) for part in value.split("/")):
            raise ValueError(f"{name} may hold only letters, digits, '_' and '-': {value!r}")
    mqtt.client_id = f"tk970-gateway-{args.instance}"
    return Settings(
        mqtt=mqtt,
        port=args.port,
        hosts=args.bind,
        allow=parse_allow(args.allow),
        accept_all=args.accept_all,
        topics=Topics(args.base_topic, args.discovery_prefix, args.instance),
        buffer=args.buffer,
        max_trackers=args.max_trackers,
        alarm_hold=timedelta(minutes=args.alarm_hold),
        relay_max_speed=args.relay_max_speed,
        relay_dialect=RelayDialect(args.relay_dialect) if args.relay_dialect else None,
        relay_password=args.relay_password,
        stats_interval=args.stats_interval,
        positioning=positioning_from(args),
    )


async def run(settings: Settings) -> None:
    """Run the gateway until SIGINT or SIGTERM."""
    gateway = Gateway(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await gateway.start()
    if not settings.allow and not settings.accept_all:
        _LOGGER.warning("Neither --allow nor --accept-all: no tracker will be published")
    try:
        await stop.wait()
    finally:
        _LOGGER.info("Stopping")
        await gateway.stop()


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = settings_from(args)
    except ValueError as err:
        parser.error(str(err))
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        asyncio.run(run(settings))
    except OSError as err:
        _LOGGER.error("Cannot start: %s", err)  # noqa: TRY400 - the reason is the message
        return 1
    with contextlib.suppress(Exception):
        logging.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
