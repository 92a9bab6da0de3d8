"""Home Assistant custom integrations of this repository (HACS installs `tk970/` only)."""
