"""The protocol core, the listener and the gateway import without Home Assistant."""

from __future__ import annotations

import subprocess
import sys

_PROBE = """
import sys
sys.modules["homeassistant"] = None  # any import of Home Assistant now fails
import custom_components.tk970
import custom_components.tk970.const
import custom_components.tk970.identity
import custom_components.tk970.limits
import custom_components.tk970.listener
import custom_components.tk970.ratelog
import custom_components.tk970.protocol
import custom_components.tk970.protocol.__main__
import custom_components.tk970.positioning
import gateway.__main__, gateway.app, gateway.broker, gateway.discovery, gateway.outbox
import gateway.positioning, gateway.topics, gateway.tracker
loaded = sorted(name for name in sys.modules if name.startswith("homeassistant."))
assert not loaded, loaded
print("ok")
"""


def test_core_imports_without_home_assistant() -> None:
    """A subprocess in which Home Assistant cannot be imported loads the core, the CLI and the
    gateway (whose own environment, scripts/gateway's, has no Home Assistant at all)."""
    result = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_home_assistant_still_finds_the_entry_points() -> None:
    """The loader reads CONFIG_SCHEMA and the setup functions from the package."""
    import custom_components.tk970 as integration

    assert integration.CONFIG_SCHEMA is integration.CONFIG_SCHEMA  # built once
    for name in ("async_setup", "async_setup_entry", "async_unload_entry", "async_remove_entry"):
        assert callable(getattr(integration, name))
    assert not hasattr(integration, "NOT_AN_ATTRIBUTE")
