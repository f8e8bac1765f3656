"""Bridge between the rules engine and the pipeline: a classifier over reloadable rules."""

from __future__ import annotations

from processor.config import Settings
from processor.pipeline import Classifier


def rules_classifier(settings: Settings) -> Classifier | None:
    """A classifier over the built-in and configured rules (None until the engine exists)."""
    try:
        from processor import classify as engine  # noqa: F401
    except ImportError:
        return None
    return None
