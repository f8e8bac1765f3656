"""Placeholder for `complaints rules check|test` (the rules engine is being written)."""

COMMANDS: list = []
