"""Shared test fixtures: paths to the bundled sample capture and the copied real data."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")
os.environ.setdefault("MPLBACKEND", "Agg")


def _close_the_loop_taddons_made() -> None:
    """Close the event loop mitmproxy's `taddons.context()` creates outside a running loop.

    mitmproxy 11/12's test context calls `asyncio.new_event_loop()` when no loop runs and never
    closes it; when the garbage collector later finds the loop, its ResourceWarning (an error
    under filterwarnings=error) fails whichever test happens to be running, a flaky failure far
    from its cause. Closing it when the `with` block ends ends the leak where it starts; a
    loop that was already running (a test inside asyncio.run) belongs to its runner and is left.
    """
    from mitmproxy.test import taddons

    original_exit = taddons.context.__exit__
    if getattr(original_exit, "_phonehome_closes_loop", False):
        return

    def exit_closing_loop(self, exc_type, exc_value, traceback):
        loop = self.master.event_loop
        if not loop.is_running() and not loop.is_closed():
            loop.close()
        return original_exit(self, exc_type, exc_value, traceback)

    exit_closing_loop._phonehome_closes_loop = True
    taddons.context.__exit__ = exit_closing_loop


_close_the_loop_taddons_made()

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
