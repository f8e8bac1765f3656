"""Placeholder for `complaints case export|verify` (being written)."""

CASE_COMMANDS: list = []
