"""Tests of the tracker simulator (used by the integration tests and the demo)."""
