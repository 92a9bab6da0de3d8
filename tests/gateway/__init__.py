"""Tests of the MQTT gateway."""
