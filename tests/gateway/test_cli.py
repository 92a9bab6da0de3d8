"""The command line: its options, and `scripts/gateway` in its own venv without Home Assistant."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
import signal
import subprocess

import pytest

from gateway.__main__ import build_parser, parse_allow, parse_mqtt_url, settings_from
from simulator import SimulatedTracker
from tests.common import IMEI, free_port
from tests.gateway.conftest import Mosquitto, Observer

ROOT = Path(__file__).resolve().parents[2]


def test_mqtt_url() -> None:
    """Credentials, ports and TLS from the URL; anything else is refused."""
    plain = parse_mqtt_url("mqtt://broker.lan")
    assert (plain.host, plain.port, plain.tls, plain.username) == ("broker.lan", 1883, False, None)
    secure = parse_mqtt_url("mqtts://gw:p%40ss%3Aword@broker.example.net:9883")
    assert (secure.host, secure.port, secure.tls) == ("broker.example.net", 9883, True)
    assert (secure.username, secure.password) == ("gw", "p@ss:word")
    assert parse_mqtt_url("mqtts://broker").port == 8883
    assert secure.tls_context() is not None
    assert plain.tls_context() is None
    for bad in ("http://broker", "mqtt://", "broker:1883", "mqtt://host:port"):
        with pytest.raises(ValueError, match=r"URL|port"):
            parse_mqtt_url(bad)


def test_allow_list() -> None:
    """Identities with optional names, repeated or comma separated; digits only."""
    assert parse_allow([f"{IMEI}=Blue van", "864717003283581,123456789012"]) == {
        IMEI: "Blue van",
        "864717003283581": None,
        "123456789012": None,
    }
    with pytest.raises(ValueError, match="digits"):
        parse_allow(["van"])


def test_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Topics and TLS options are checked; the URL may come from the environment."""
    parser = build_parser()
    with pytest.raises(ValueError, match="required"):
        settings_from(parser.parse_args([]))
    monkeypatch.setenv("TK970_MQTT_URL", "mqtt://u:p@127.0.0.1:1884")
    settings = settings_from(build_parser().parse_args(["--instance", "vps-1", "--accept-all"]))
    assert settings.mqtt.port == 1884
    assert settings.mqtt.client_id == "tk970-gateway-vps-1"
    assert settings.topics.status == "tk970/_gateway/vps-1/status"
    assert settings.accept_all
    with pytest.raises(ValueError, match="letters"):
        settings_from(parser.parse_args(["--mqtt", "mqtt://h", "--instance", "a b"]))
    with pytest.raises(ValueError, match="mqtts"):
        settings_from(parser.parse_args(["--mqtt", "mqtt://h", "--ca-file", "/ca.pem"]))


@pytest.mark.timeout(300)
async def test_script_runs_the_gateway_without_home_assistant(
    broker: Mosquitto, observer: Observer, tmp_path: Path
) -> None:
    """scripts/gateway builds its light venv (no Home Assistant), publishes, stops on SIGTERM,
    and leaves what it learned (the report's serving cell) in its data folder."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        str(ROOT / "scripts" / "gateway"),
        "--mqtt",
        f"mqtt://127.0.0.1:{broker.port}",
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--allow",
        f"{IMEI}=Van",
        "--instance",
        "cli",
        "--data-dir",
        str(tmp_path / "data"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "TK970_MQTT_URL": ""},
    )
    try:
        await observer.wait("tk970/_gateway/cli/status", lambda m: m.payload == b"online", 240)
        tracker = SimulatedTracker(IMEI, protocol="gt06", port=port)
        await tracker.connect()
        await tracker.login()
        await tracker.report(latitude=47.5, longitude=19.05)
        state = await observer.wait(f"tk970/{IMEI}/state", lambda m: "latitude" in m.json())
        assert state.json()["latitude"] == 47.5
        await tracker.close()
    finally:
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            _, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()
    await observer.wait("tk970/_gateway/cli/status", lambda m: m.payload == b"offline")
    assert (tmp_path / "data" / "learned_positions.json").is_file()
    venv = Path(os.environ.get("TK970_GATEWAY_VENV", ROOT / ".venv-gateway"))
    probe = await asyncio.create_subprocess_exec(
        str(venv / "bin" / "python"), "-c", "import homeassistant", stderr=subprocess.DEVNULL
    )
    assert await probe.wait() != 0  # the gateway's environment has no Home Assistant
