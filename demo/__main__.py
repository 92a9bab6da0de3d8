"""`scripts/demo`: a real Home Assistant with the integration, and a simulated TK970 driving.

Starts Home Assistant from a throw-away configuration folder, completes onboarding over its own
HTTP API (user `demo`), adds one tracker through the integration's config flow, then drives a
simulated tracker around a loop in Berlin. Press `s` in the terminal (or the dashboard's SOS
button) for an SOS; the dashboard's relay switch cuts and restores the simulated engine. The
dashboard also shows the road the simulated car is on (`sensor.demo_car_road`): open sky,
no GPS among the trees, or a tunnel, where the integration places it from the cells it
learned on the open road (fallback positioning).
Ctrl-C or SIGTERM stops Home Assistant and the simulator and removes the folder.

    python -m demo [--protocol gt06] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
import contextlib
import json
import logging
import os
from pathlib import Path
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import aiohttp

from simulator import SimulatedTracker
from simulator.__main__ import _keyboard
from simulator.route import BUILTIN_LOOP, Drive, Route

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
HA_URL = "http://127.0.0.1:8123"
TRACKER_PORT = 8888
USERNAME = "demo"
PASSWORD = "tk970-demo"  # noqa: S105 - a throw-away local demo account, printed on start
IMEI = "359586015829802"
#: Home Assistant's first start installs nothing (scripts/demo did) but builds its database.
START_TIMEOUT = 300.0

_LOGGER = logging.getLogger("demo")
_PROBE = aiohttp.ClientTimeout(total=2)


def write_config(folder: Path, configuration: str | None = None) -> None:
    """A minimal configuration: the frontend, history for the route, the demo dashboard.

    `configuration` replaces the demo's configuration.yaml (the fleet benchmark runs without a
    frontend, on ports of its own).
    """
    if configuration is None:
        shutil.copy(HERE / "configuration.yaml", folder / "configuration.yaml")
    else:
        (folder / "configuration.yaml").write_text(configuration)
    shutil.copy(HERE / "dashboard.yaml", folder / "tk970_dashboard.yaml")
    (folder / "automations.yaml").write_text("[]\n")
    # Onboarding: only the user step is left, done over the API; the other steps would set up
    # integrations (weather, radio) that a tracker demo does not need.
    storage = folder / ".storage"
    storage.mkdir()
    (storage / "onboarding").write_text(
        json.dumps(
            {
                "version": 4,
                "minor_version": 1,
                "key": "onboarding",
                "data": {"done": ["core_config", "analytics", "integration"]},
            }
        )
    )
    custom = folder / "custom_components"
    custom.mkdir()
    (custom / "tk970").symlink_to(ROOT / "custom_components" / "tk970")


async def wait_until_up(
    session: aiohttp.ClientSession, process: subprocess.Popen[bytes], url: str = HA_URL
) -> None:
    """Wait for Home Assistant's HTTP API (onboarding answers before login exists)."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"demo: Home Assistant exited with {process.returncode}")
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with session.get(f"{url}/api/onboarding", timeout=_PROBE) as response:
                if response.status == 200:
                    return
        await asyncio.sleep(0.5)
    raise SystemExit("demo: Home Assistant did not start in time")


async def onboard(session: aiohttp.ClientSession, url: str = HA_URL) -> str:
    """Create the demo user (the last onboarding step); return an access token."""
    client_id = f"{url}/"
    async with session.post(
        f"{url}/api/onboarding/users",
        json={
            "client_id": client_id,
            "name": "Demo",
            "username": USERNAME,
            "password": PASSWORD,
            "language": "en",
        },
    ) as response:
        response.raise_for_status()
        code = (await response.json())["auth_code"]
    async with session.post(
        f"{url}/auth/token",
        data={"grant_type": "authorization_code", "code": code, "client_id": client_id},
    ) as response:
        response.raise_for_status()
        access = (await response.json())["access_token"]
    return str(access)


async def websocket_call(
    session: aiohttp.ClientSession, token: str, message: dict[str, object], url: str = HA_URL
) -> object:
    """One command over Home Assistant's websocket API; return its result."""
    async with session.ws_connect(f"{url}/api/websocket") as socket:
        await socket.receive_json()  # auth_required
        await socket.send_json({"type": "auth", "access_token": token})
        if (await socket.receive_json()).get("type") != "auth_ok":
            raise SystemExit("demo: websocket authentication failed")
        await socket.send_json({"id": 1, **message})
        reply = await socket.receive_json()
        if not reply.get("success"):
            raise SystemExit(f"demo: {message['type']} failed: {reply}")
        return reply.get("result")


async def add_tracker(
    session: aiohttp.ClientSession,
    token: str,
    *,
    url: str = HA_URL,
    imei: str = IMEI,
    name: str = "Demo car",
    port: int = TRACKER_PORT,
) -> None:
    """Add a tracker through the integration's config flow, as a user would."""
    headers = {"Authorization": f"Bearer {token}"}
    async with session.post(
        f"{url}/api/config/config_entries/flow",
        json={"handler": "tk970", "show_advanced_options": False},
        headers=headers,
    ) as response:
        response.raise_for_status()
        flow = await response.json()
    async with session.post(
        f"{url}/api/config/config_entries/flow/{flow['flow_id']}",
        json={"imei": imei, "name": name, "port": port},
        headers=headers,
    ) as response:
        response.raise_for_status()
        result = await response.json()
    if result.get("type") != "create_entry":
        raise SystemExit(f"demo: adding the tracker failed: {result}")


#: What the dashboard says about the simulated car's road, by the simulator's stretch names.
ROADS = {
    "gnss": "Open sky (GPS)",
    "lbs": "Among the trees (no GPS)",
    "tunnel": "Tunnel (no GPS, no Wi-Fi)",
    "offline": "Deep in the tunnel (no network)",
}


def announce_roads(
    session: aiohttp.ClientSession, token: str, tasks: set[asyncio.Task[None]]
) -> Callable[[str], None]:
    """A callback that shows the simulated car's road as `sensor.demo_car_road` in HA."""

    async def _post(stretch: str) -> None:
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            await session.post(
                f"{HA_URL}/api/states/sensor.demo_car_road",
                json={
                    "state": ROADS.get(stretch, stretch),
                    "attributes": {
                        "friendly_name": "Simulated car's road",
                        "icon": "mdi:tunnel" if stretch in ("tunnel", "offline") else "mdi:road",
                    },
                },
                headers={"Authorization": f"Bearer {token}"},
                timeout=_PROBE,
            )

    def _announce(stretch: str) -> None:
        task = asyncio.get_running_loop().create_task(_post(stretch))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    return _announce


async def watch_sos_button(session: aiohttp.ClientSession, token: str, drive: Drive) -> None:
    """Press the simulated SOS when the dashboard's `input_button.demo_sos` is pressed."""
    async with session.ws_connect(f"{HA_URL}/api/websocket") as socket:
        await socket.receive_json()
        await socket.send_json({"type": "auth", "access_token": token})
        await socket.receive_json()
        await socket.send_json({"id": 1, "type": "subscribe_events", "event_type": "state_changed"})
        async for frame in socket:
            if frame.type is not aiohttp.WSMsgType.TEXT:
                break
            event = json.loads(frame.data).get("event") or {}
            if event.get("data", {}).get("entity_id") == "input_button.demo_sos":
                _LOGGER.info("Dashboard SOS button pressed")
                drive.request_sos()


def start_home_assistant(
    folder: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Run Home Assistant on the folder; its output goes to home-assistant.out there.

    `env` adds to the environment (its PYTHONPATH goes before the repository's).
    """
    output = (folder / "home-assistant.out").open("wb")
    extra = dict(env or {})
    path = os.pathsep.join(filter(None, [extra.pop("PYTHONPATH", ""), str(ROOT)]))
    return subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
        [sys.executable, "-m", "homeassistant", "--config", str(folder)],
        stdout=output,
        stderr=subprocess.STDOUT,
        env={**os.environ, **extra, "PYTHONPATH": path},
        start_new_session=True,  # Ctrl-C reaches us, and we stop it in order
    )


def stop_home_assistant(process: subprocess.Popen[bytes]) -> None:
    """Stop Home Assistant (SIGTERM, then SIGKILL after 30 s)."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


async def run(args: argparse.Namespace) -> None:
    """Start everything, print how to use it, run until stopped."""
    folder = Path(tempfile.mkdtemp(prefix="tk970-demo-"))
    write_config(folder)
    started = time.monotonic()
    process = start_home_assistant(folder)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    tasks: list[asyncio.Task[None]] = []
    announcing: set[asyncio.Task[None]] = set()
    try:
        async with aiohttp.ClientSession() as session:
            await wait_until_up(session, process)
            access = await onboard(session)
            token = await websocket_call(
                session,
                access,
                {
                    "type": "auth/long_lived_access_token",
                    "client_name": "tk970 demo",
                    "lifespan": 30,
                },
            )
            await add_tracker(session, access)
            _LOGGER.info('Added the %s tracker %s ("Demo car")', args.protocol, IMEI)
            tracker = SimulatedTracker(IMEI, protocol=args.protocol, port=TRACKER_PORT)
            drive = Drive(
                tracker,
                Route(BUILTIN_LOOP, args.speed),
                interval=args.interval,
                on_stretch=announce_roads(session, str(token), announcing),
            )
            tasks = [
                asyncio.create_task(drive.run()),
                asyncio.create_task(watch_sos_button(session, str(token), drive)),
                asyncio.create_task(_keyboard([drive], stop)),
            ]
            await asyncio.sleep(args.interval + 1)  # the first report is on the map
            print(
                f"\nTK970 demo ready in {time.monotonic() - started:.0f} s\n"
                f"  url: {HA_URL}/tk970-demo\n"
                f"  login: {USERNAME} / {PASSWORD}\n"
                f"  token: {token}\n"
                f"  trackers connect to port {TRACKER_PORT}; config folder {folder}\n"
                "  press s for SOS, q or Ctrl-C to stop\n",
                flush=True,
            )
            stopping = asyncio.create_task(stop.wait())
            done, _ = await asyncio.wait([stopping, tasks[0]], return_when=asyncio.FIRST_COMPLETED)
            if tasks[0] in done and tasks[0].exception():
                raise tasks[0].exception()  # type: ignore[misc]
            stopping.cancel()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        stop_home_assistant(process)
        if args.keep:
            print(f"demo: kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
        print("demo: stopped", flush=True)


def main() -> None:
    """Entry point of scripts/demo."""
    parser = argparse.ArgumentParser(prog="scripts/demo", description=__doc__)
    parser.add_argument("--protocol", default="jt808", choices=("jt808", "gt06", "h02", "gps103"))
    parser.add_argument("--speed", type=float, default=40.0, help="cruising speed, km/h")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between reports")
    parser.add_argument("--keep", action="store_true", help="keep the config folder")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
