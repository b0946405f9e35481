"""Where the installed package's own files are: the addons for `mitmdump -s`, and the bundled sample.

Found through the import system (importlib), never relative to this file, so a non-editable install, an
editable one and a checkout all answer with the files that are really in use.
"""

from __future__ import annotations

import importlib.util
from importlib import resources
from pathlib import Path

SAMPLE_SESSION = "sample-mint-browser"


def addons_dir() -> Path:
    """The folder holding the recorder and its helpers (`mitmdump -s <addons_dir>/recorder.py`).

    Located with find_spec, which does not import the addons: the library never imports them.
    """
    spec = importlib.util.find_spec("phonehome.addons")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("phonehome's addons are not installed (package phonehome.addons)")
    return Path(next(iter(spec.submodule_search_locations)))


def recorder_addon() -> Path:
    """The recorder addon script, as `mitmdump -s` wants it."""
    return addons_dir() / "recorder.py"


def sample_capture() -> Path:
    """The bundled sample capture session (package data of `phonehome.captures`)."""
    return Path(str(resources.files("phonehome.captures").joinpath(SAMPLE_SESSION)))
