"""Shared test configuration: the Home Assistant test plugin and the Hypothesis profile."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from hypothesis import HealthCheck, settings
import pytest
from pytest_homeassistant_custom_component.syrupy import HomeAssistantSnapshotExtension
from syrupy.assertion import SnapshotAssertion

# Import the repository's package before Home Assistant's loader looks for custom integrations:
# otherwise the test plugin's own testing_config/custom_components wins and tk970 is not found.
import custom_components.tk970  # noqa: F401

from .common import IMEI, free_port, make_entry

if TYPE_CHECKING:
    from homeassistant.core import HomeAssistant
    from pytest_homeassistant_custom_component.common import MockConfigEntry

settings.register_profile(
    "ci",
    max_examples=int(os.environ.get("TK970_FUZZ_EXAMPLES", "2000")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)
settings.load_profile("ci")


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Let Home Assistant load integrations from custom_components in every test."""


@pytest.fixture
def snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    """Snapshots in `tests/snapshots/`, with Home Assistant's serializer, as core keeps them."""
    return snapshot.use_extension(HomeAssistantSnapshotExtension)


@pytest.fixture
def port() -> int:
    """A port free for TCP and UDP."""
    return free_port()


@pytest.fixture
async def entry(hass: HomeAssistant, port: int) -> MockConfigEntry:
    """The configured tracker (IMEI) on the test port, set up."""
    from homeassistant.config_entries import ConfigEntryState

    config_entry = make_entry(IMEI, port)
    config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    await hass.async_block_till_done()
    assert config_entry.state is ConfigEntryState.LOADED
    return config_entry


#: Figures the hostile tests measured (memory, API and tracker latency), shown after the run.
HOSTILE_FIGURES: list[str] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print what the hostile tests measured, so the figures can be quoted."""
    if HOSTILE_FIGURES:
        terminalreporter.write_sep("-", "hostile tests: measured figures")
        for line in HOSTILE_FIGURES:
            terminalreporter.write_line(line)
