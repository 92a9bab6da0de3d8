"""Tests of the tk970 integration, its protocol core and its simulator."""
