"""Browser check of the demo: a real Chromium logs in and finds the car and the relay.

    scripts/browser-check [--screenshots docs/screenshots]

Starts `scripts/demo`, waits for its ready banner, opens the Home Assistant frontend in headless
Chromium (Debian's `chromium`, driven by Playwright), logs in as the demo user, opens the TK970
dashboard and the map, checks that the tracker's marker and the relay switch are there, presses
the dashboard's SOS button and waits for the SOS sensor, presses Clear SOS and Locate now, waits
for the car to drive without GPS (among the trees, then in the tunnel) and be placed from the
cells it learned, and saves screenshots. Exit status 0 only when every check passed. The demo
is stopped at the end in every case.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
import re
import signal
import subprocess
import sys
import time

from playwright.sync_api import Page, expect, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("TK970_CHROMIUM", "/usr/bin/chromium")
#: Flags for a sandbox without network or GPU: the same the machine notes recommend.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
READY_TIMEOUT = 600.0
#: The demo route stops at least every seven minutes.
STOP_WAIT_MS = 480_000
#: Two loops of the demo route at the check's speed, with its stops (a place without GPS is
#: placed from learned cells only where those cells were learned, and differently each loop).
LOOP_WAIT_S = 900.0


def start_demo() -> tuple[subprocess.Popen[str], dict[str, str], float]:
    """Run scripts/demo; return it, its banner values and the seconds it took to be ready."""
    started = time.monotonic()
    process = subprocess.Popen(  # noqa: S603 - our own script
        # Faster than the default, so the car soon reaches a stop to cut the engine at.
        [str(ROOT / "scripts" / "demo"), "--speed", "80"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    banner: dict[str, str] = {}
    assert process.stdout is not None
    deadline = started + READY_TIMEOUT
    for line in process.stdout:
        sys.stdout.write(f"demo| {line}")
        if match := re.match(r"\s+(url|login|token): (.+)", line):
            banner[match.group(1)] = match.group(2).strip()
        if "token" in banner or time.monotonic() > deadline:
            break
    if "token" not in banner:
        stop_demo(process)
        raise SystemExit("browser-check: the demo did not become ready")
    return process, banner, time.monotonic() - started


def stop_demo(process: subprocess.Popen[str]) -> None:
    """Ctrl-C the demo, as a user would, and wait for it."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def log_in(page: Page, base: str, username: str, password: str) -> None:
    """Log in through Home Assistant's own login page."""
    page.goto(f"{base}/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name=re.compile("log in", re.IGNORECASE)).click()
    # Logged in once the app has exchanged the code for tokens and drawn its sidebar.
    expect(page.locator("ha-sidebar")).to_be_visible(timeout=60_000)


def check(page: Page, base: str, shots: Path) -> list[str]:
    """Open the dashboard and the map; return what was found."""
    found = []
    page.goto(f"{base}/tk970-demo/car")
    marker = page.locator("ha-entity-marker")
    expect(marker.first).to_be_visible(timeout=60_000)
    found.append(f"dashboard map: {marker.count()} tracker marker(s)")
    relay = page.locator("hui-tile-card").filter(has_text="Engine cut-off relay")
    expect(relay).to_be_visible()
    found.append("dashboard: relay switch tile")
    page.wait_for_timeout(3000)  # let the map tiles and the route settle
    page.screenshot(path=str(shots / "dashboard.png"), full_page=True)

    # Cut the engine while the car stands (it stops at the Brandenburg Gate and the Victory
    # Column; above 20 km/h the integration refuses), then restore it.
    speed = page.locator("hui-sensor-entity-row").filter(has_text="Demo car Speed")
    expect(speed).to_contain_text(re.compile(r"\b0 km/h"), timeout=STOP_WAIT_MS)
    relay.locator("ha-control-switch").click()
    expect(relay).to_contain_text("On", timeout=60_000)
    found.append("relay cut from the dashboard, confirmed by the simulated tracker")
    page.screenshot(path=str(shots / "dashboard-relay-cut.png"), full_page=True)
    relay.locator("ha-control-switch").click()
    expect(relay).to_contain_text("Off", timeout=60_000)
    found.append("relay restored from the dashboard")

    page.locator("hui-input-button-entity-row").get_by_text("Press", exact=True).click()
    sos_row = page.locator("hui-simple-entity-row").filter(has_text="Demo car SOS")
    expect(sos_row).to_contain_text("Unsafe", timeout=30_000)
    found.append("SOS pressed on the dashboard: the SOS sensor turned on")
    page.screenshot(path=str(shots / "dashboard-sos.png"), full_page=True)
    clear = page.locator("hui-button-entity-row").filter(has_text="Clear SOS")
    clear.get_by_text("Press", exact=True).click()
    expect(sos_row).to_contain_text("Safe", timeout=30_000)
    found.append("Clear SOS pressed on the dashboard: the SOS sensor is off")

    locate = page.locator("hui-tile-card").filter(has_text="Locate now")
    expect(locate).to_be_visible()
    locate.click()
    # An action that fails (no answer, refused) shows a toast with the error; none may come.
    page.wait_for_timeout(5000)
    toast = page.locator("ha-toast")
    if toast.count() and toast.first.is_visible():
        raise AssertionError(f"Locate now failed: {toast.first.text_content()}")
    found.append("Locate now pressed on the dashboard: the tracker answered")
    page.screenshot(path=str(shots / "dashboard-buttons.png"), full_page=True)

    for road, shot in (
        ("Among the trees", "dashboard-lbs.png"),
        ("Tunnel", "dashboard-tunnel.png"),
    ):
        shown = wait_for_learned_position(page, road)
        page.wait_for_timeout(1500)  # the map moves the marker and its accuracy circle
        page.screenshot(path=str(shots / shot), full_page=True)
        found.append(f"no GPS ({road.lower()}): placed from learned cells: {shown}")

    page.goto(f"{base}/map")
    expect(page.locator("ha-entity-marker").first).to_be_visible(timeout=60_000)
    page.wait_for_timeout(3000)
    page.screenshot(path=str(shots / "map.png"))
    found.append("map panel: tracker marker")
    return found


def wait_for_learned_position(page: Page, road: str) -> str:
    """Wait until the simulated car is on `road` and the tracker shows a learned position."""
    rows = page.locator("hui-sensor-entity-row")
    # Text filters look into the rows' shadow DOM (inner_text does not).
    on_road = rows.filter(has_text="Simulated car's road").filter(has_text=road)
    learned = rows.filter(has_text="Position source").filter(has_text="(learned)")
    expect(rows.filter(has_text="Position source")).to_be_visible(timeout=60_000)
    deadline = time.monotonic() + LOOP_WAIT_S
    while time.monotonic() < deadline:
        if on_road.count() and learned.count():
            source = learned.first.text_content() or ""
            return " ".join(source.split()) or "(learned)"
        page.wait_for_timeout(500)
    raise AssertionError(f"no learned position shown on the road '{road}' within two loops")


def main() -> None:
    """Run the check."""
    parser = argparse.ArgumentParser(prog="scripts/browser-check", description=__doc__)
    parser.add_argument("--screenshots", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args()
    args.screenshots.mkdir(parents=True, exist_ok=True)
    process, banner, ready = start_demo()
    print(f"browser-check: demo ready in {ready:.0f} s")
    base = banner["url"].rsplit("/", 1)[0]
    username, password = (part.strip() for part in banner["login"].split("/"))
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            log_in(page, base, username, password)
            for line in check(page, base, args.screenshots):
                print(f"browser-check: ok: {line}")
            browser.close()
    finally:
        stop_demo(process)
    print(f"browser-check: passed; screenshots in {args.screenshots}")


if __name__ == "__main__":
    main()
