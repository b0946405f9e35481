"""Shared test fixtures: paths to the bundled sample capture and the copied real data."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")
os.environ.setdefault("MPLBACKEND", "Agg")

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "captures" / "sample-mint-browser"
DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="session")
def sample_capture() -> Path:
    """The bundled synthetic capture (regenerate with `python captures/make_sample.py`)."""
    return SAMPLE


@pytest.fixture(scope="session")
def sample_analysis(sample_capture):
    """The sample capture analysed once per test session (tests must not mutate it)."""
    from phonehome.analysis.pipeline import analyze

    return analyze([sample_capture])


@pytest.fixture(scope="session")
def dumps_dir() -> Path:
    return DATA / "dumps"
