"""TK-Star TK970 GPS trackers, served locally by Home Assistant (integration set-up)."""
