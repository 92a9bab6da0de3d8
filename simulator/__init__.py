"""A simulated TK-Star tracker for the tests and the demo (not part of the integration)."""

from .device import SimulatedTracker
from .frames import Fix

__all__ = ["Fix", "SimulatedTracker"]
