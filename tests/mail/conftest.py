"""Shared helpers for the mail parser tests: where the shared corpus and our samples live."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / ".." / "shared" / "corpus"
SAMPLES = Path(__file__).resolve().parent / "samples"


@pytest.fixture
def corpus() -> Path:
    if not CORPUS.is_dir():
        pytest.skip("shared mail corpus not present beside the repository")
    return CORPUS.resolve()


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()
