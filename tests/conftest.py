"""Shared test configuration: the Home Assistant test plugin and the Hypothesis profile."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings
import pytest
from pytest_homeassistant_custom_component.syrupy import HomeAssistantSnapshotExtension
from syrupy.assertion import SnapshotAssertion

# Import the repository's package before Home Assistant's loader looks for custom integrations:
# otherwise the test plugin's own testing_config/custom_components wins and tk970 is not found.
import custom_components.tk970  # noqa: F401

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


#: Figures the hostile tests measured (memory, API and tracker latency), shown after the run.
HOSTILE_FIGURES: list[str] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print what the hostile tests measured, so the figures can be quoted."""
    if HOSTILE_FIGURES:
        terminalreporter.write_sep("-", "hostile tests: measured figures")
        for line in HOSTILE_FIGURES:
            terminalreporter.write_line(line)
