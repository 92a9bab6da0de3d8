"""The one-command demo (`scripts/demo`): Home Assistant, the integration, a simulated TK970."""
