"""Tests of the fallback positioning engine, without Home Assistant."""
