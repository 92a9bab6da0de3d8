"""Browser check of first contact: the add dialog's SMS texts, and pairing, in a real frontend.

    python -m demo.first_contact_check [--screenshots docs/screenshots]

Runs its own Home Assistant (HTTP on 127.0.0.1:8124, trackers on 8899, so it does not collide
with `scripts/demo`) from a throw-away folder, onboards it, and in headless Chromium (Debian's
`chromium`, driven by Playwright) adds a tracker by IMEI and checks that the dialog confirming
it shows the server SMS; then adds a second one by pairing: leaves the IMEI empty, waits in the
progress dialog, connects a simulated tracker, picks it from the list and checks the
confirmation. Saves a screenshot of each dialog. Needs the venv of `scripts/demo` (Home
Assistant's frontend) and Playwright (`scripts/browser-check` installs it). Exit status 0 only
when every check passed; Home Assistant is stopped and the folder removed in every case.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path
import re
import shutil
import tempfile

import aiohttp
from playwright.async_api import Locator, Page, async_playwright, expect

from demo.__main__ import (
    PASSWORD,
    USERNAME,
    onboard,
    start_home_assistant,
    stop_home_assistant,
    wait_until_up,
    write_config,
)
from demo.browser_check import CHROMIUM, CHROMIUM_ARGS
from simulator import SimulatedTracker

ROOT = Path(__file__).resolve().parents[1]
HTTP_PORT = 8124
TRACKER_PORT = 8899
BASE = f"http://127.0.0.1:{HTTP_PORT}"
TYPED_IMEI = "359586015829802"
PAIRED_IMEI = "864717003283581"
CONFIGURATION = f"""
homeassistant:
  name: TK970 first contact
  latitude: 52.5145
  longitude: 13.3600
  elevation: 34
  unit_system: metric
  time_zone: Europe/Berlin
  country: DE
http:
  server_host: 127.0.0.1
  server_port: {HTTP_PORT}
frontend:
config:
api:
logger:
  default: warning
"""


async def log_in(page: Page) -> None:
    """Log in through Home Assistant's own login page."""
    await page.goto(f"{BASE}/")
    await page.get_by_label("Username").fill(USERNAME)
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await page.get_by_role("button", name=re.compile("log in", re.IGNORECASE)).click()
    await expect(page.locator("ha-sidebar")).to_be_visible(timeout=60_000)


async def open_add_dialog(page: Page) -> Locator:
    """Start the integration's config flow the way "Add integration" does."""
    await page.goto(f"{BASE}/config/integrations/dashboard/add?domain=tk970")
    # The frontend asks first when a link starts a flow.
    await page.get_by_role("button", name="OK", exact=True).click()
    dialog = page.locator("dialog-data-entry-flow")
    await expect(dialog.get_by_label("IMEI or device ID")).to_be_visible(timeout=60_000)
    return dialog


async def fill_port(dialog: Locator) -> None:
    """Point the form at the check's tracker port."""
    port = dialog.get_by_label("Port")
    await port.fill(str(TRACKER_PORT))


async def submit(dialog: Locator) -> None:
    """Press the dialog's submit button."""
    await dialog.get_by_role("button", name=re.compile("^(submit|next)$", re.IGNORECASE)).click()


async def finish(page: Page, dialog: Locator) -> None:
    """Close the dialog that confirms a new entry."""
    await dialog.get_by_role("button", name=re.compile("^finish$", re.IGNORECASE)).click()
    await expect(dialog.get_by_label("IMEI or device ID")).to_have_count(0, timeout=30_000)


async def check(page: Page, shots: Path) -> list[str]:
    """Add by IMEI, then by pairing; return what was found."""
    found = []
    dialog = await open_add_dialog(page)
    await dialog.get_by_label("IMEI or device ID").fill(TYPED_IMEI)
    await dialog.get_by_label("Name").fill("Van")
    await fill_port(dialog)
    await submit(dialog)
    # JT808 and GT06 take the same server SMS: two lines.
    server = dialog.get_by_text(f"SERVER,0,<IP>,{TRACKER_PORT},0#", exact=True)
    await expect(server).to_have_count(2, timeout=30_000)
    await expect(dialog.get_by_text("Translation error")).to_have_count(0)
    await expect(dialog.get_by_text(f"8040000 <IP> {TRACKER_PORT}", exact=True)).to_be_visible()
    await page.screenshot(path=str(shots / "add-sms.png"))
    found.append("the dialog confirming a tracker added by IMEI shows every family's server SMS")
    await finish(page, dialog)

    dialog = await open_add_dialog(page)
    await dialog.get_by_label("Name").fill("Boat")
    await fill_port(dialog)
    await submit(dialog)
    await expect(
        dialog.get_by_text(re.compile(f"Port {TRACKER_PORT} is open for pairing"))
    ).to_be_visible(timeout=30_000)
    await page.screenshot(path=str(shots / "pairing-wait.png"))
    found.append("leaving the IMEI empty waits for trackers, showing the server SMS")
    tracker = SimulatedTracker(PAIRED_IMEI, protocol="gt06", port=TRACKER_PORT)
    await tracker.connect()
    try:
        await tracker.login()
        choice = dialog.get_by_text(f"{PAIRED_IMEI} · GT06 · 127.0.0.1 (TCP)")
        await expect(choice).to_be_visible(timeout=60_000)
        await expect(dialog.get_by_text("None of these: keep waiting")).to_be_visible()
        await page.screenshot(path=str(shots / "pairing-pick.png"))
        found.append("the tracker that connected is listed with its ID, protocol and address")
        await choice.click()
        await submit(dialog)
        await expect(
            dialog.get_by_text(re.compile(r"connected \(GT06, from 127\.0\.0\.1\)"))
        ).to_be_visible(timeout=30_000)
        await page.screenshot(path=str(shots / "pairing-added.png"))
        found.append("picking it adds it, and the dialog shows its family's SMS")
        await finish(page, dialog)
    finally:
        await tracker.close()
    return found


async def run(shots: Path) -> None:
    """Start Home Assistant, run the check in Chromium, stop everything."""
    folder = Path(tempfile.mkdtemp(prefix="tk970-first-contact-"))
    process = None
    try:
        write_config(folder, CONFIGURATION)
        process = start_home_assistant(folder)
        async with aiohttp.ClientSession() as session:
            await wait_until_up(session, process, BASE)
            await onboard(session, BASE)
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
            page = await browser.new_page(viewport={"width": 1200, "height": 900})
            await log_in(page)
            try:
                for line in await check(page, shots):
                    print(f"first-contact-check: ok: {line}")
            except Exception:
                await page.screenshot(path=str(shots / "first-contact-failed.png"))
                raise
            await browser.close()
    finally:
        if process is not None:
            stop_home_assistant(process)
        if os.environ.get("TK970_KEEP") is None:
            shutil.rmtree(folder, ignore_errors=True)
        else:
            print(f"first-contact-check: kept {folder}")


def main() -> None:
    """Run the check."""
    parser = argparse.ArgumentParser(prog="python -m demo.first_contact_check", description=__doc__)
    parser.add_argument("--screenshots", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args()
    args.screenshots.mkdir(parents=True, exist_ok=True)
    asyncio.run(run(args.screenshots))
    print(f"first-contact-check: passed; screenshots in {args.screenshots}")


if __name__ == "__main__":
    main()
