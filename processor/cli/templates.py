"""Placeholder: commands of this group are being written."""

COMMANDS: list = []
