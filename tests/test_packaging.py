"""Packaging checks: what Home Assistant's loader, hassfest and HACS require of the repository."""

from __future__ import annotations

import json
from pathlib import Path
import struct

from awesomeversion import AwesomeVersion, AwesomeVersionStrategy
from homeassistant.core import HomeAssistant
from homeassistant.loader import async_get_integration
import pytest

ROOT = Path(__file__).resolve().parents[1]
INTEGRATION = ROOT / "custom_components" / "tk970"
MANIFEST = json.loads((INTEGRATION / "manifest.json").read_text(encoding="utf-8"))
HACS = json.loads((ROOT / "hacs.json").read_text(encoding="utf-8"))

# hassfest's custom-integration manifest schema (script/hassfest/manifest.py): anything else is
# an error there.
HASSFEST_KEYS = {
    "domain", "name", "after_dependencies", "bluetooth", "codeowners", "config_flow",
    "dependencies", "dhcp", "disabled", "documentation", "homekit", "import_executor",
    "integration_type", "iot_class", "issue_tracker", "loggers", "mqtt", "preview_features",
    "quality_scale", "requirements", "single_config_entry", "ssdp", "usb", "version", "zeroconf",
}  # fmt: skip
# HACS's hacs.json schema (custom_components/hacs/utils/validate.py) rejects unknown keys.
HACS_KEYS = {
    "name", "content_in_root", "zip_release", "filename", "hide_default_branch", "country",
    "homeassistant", "hacs", "persistent_directory", "render_readme",
}  # fmt: skip


def test_manifest_keys_sorted_as_hassfest_wants() -> None:
    """hassfest: domain, name, then the rest in alphabetical order; no unknown key."""
    keys = list(MANIFEST)
    assert keys[:2] == ["domain", "name"]
    assert keys[2:] == sorted(keys[2:])
    assert set(keys) <= HASSFEST_KEYS


def test_manifest_fields() -> None:
    """Required fields for a custom integration (hassfest and HACS) and our fixed choices."""
    assert MANIFEST["domain"] == INTEGRATION.name == "tk970"
    assert MANIFEST["config_flow"] is True
    assert MANIFEST["iot_class"] == "local_push"
    assert MANIFEST["integration_type"] in {"device", "hub"}
    assert MANIFEST["requirements"] == []  # the protocol package ships inside the integration
    assert MANIFEST["codeowners"]
    assert all(owner.startswith("@") for owner in MANIFEST["codeowners"])
    for key in ("documentation", "issue_tracker"):
        assert MANIFEST[key].startswith("https://")
        assert "home-assistant.io/integrations" not in MANIFEST[key]
    version = AwesomeVersion(MANIFEST["version"])
    assert version.strategy is not AwesomeVersionStrategy.UNKNOWN


def test_hacs_json() -> None:
    """HACS: `name` required, no unknown key, the minimum HA version parses."""
    assert set(HACS) <= HACS_KEYS
    assert HACS["name"]
    minimum = AwesomeVersion(HACS["homeassistant"])
    assert minimum.strategy is AwesomeVersionStrategy.CALVER
    # The minimum we claim is the oldest release the pinned test stack runs (HA 2025.4.4).
    assert minimum == "2025.4.4"
    requirements = (ROOT / "requirements_test.txt").read_text(encoding="utf-8")
    assert "pytest-homeassistant-custom-component==0.13.236" in requirements


@pytest.mark.parametrize("name", ["icon.png", "icon@2x.png"])
def test_brand_icon(name: str) -> None:
    """HACS's brands check and HA 2026.3+ read brand/icon.png: a square PNG, 256 (or 512) px."""
    data = (INTEGRATION / "brand" / name).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert width == height == (512 if "@2x" in name else 256)


def test_licence_is_osi() -> None:
    """HACS checks for an OSI licence that GitHub can detect."""
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").startswith("MIT License")


async def test_loader_accepts_integration(hass: HomeAssistant) -> None:
    """Home Assistant's own loader finds the custom integration and reads its manifest."""
    integration = await async_get_integration(hass, "tk970")
    assert integration.domain == "tk970"
    assert str(integration.version) == MANIFEST["version"]
    assert integration.config_flow is True
    assert not integration.is_built_in
