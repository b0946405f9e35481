#!/usr/bin/env python3
"""Set up and run phonehome from a fresh clone, with nothing but Python 3.11+ and the package index.

    python3 dev.py demo    # create .venv, install phonehome, build the report on the sample capture
    python3 dev.py test    # create .venv, install phonehome with its test extra, lint, run the test suite
    python3 dev.py notebook  # the same .venv, then open notebooks/walkthrough.ipynb in JupyterLab

The virtual environment is reused; it is reinstalled when pyproject.toml changes.
Extra arguments after `test` go to pytest (e.g. `python3 dev.py test -k decode -x`), after `notebook`
to JupyterLab (e.g. `python3 dev.py notebook --no-browser --port 8890`).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("PHONEHOME_VENV", ROOT / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")


def run(*cmd: str | Path) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    result = subprocess.run([str(c) for c in cmd], cwd=ROOT)
    if result.returncode:
        sys.exit(result.returncode)


def ensure_venv() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py runs before any install, on any python3
        sys.exit(f"phonehome needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    stamp = VENV / ".phonehome-installed"
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if PYTHON.exists() and stamp.exists() and stamp.read_text() == wanted:
        return
    if not PYTHON.exists():
        print(f"creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    run(PYTHON, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    run(PYTHON, "-m", "pip", "install", "--quiet", "-e", ".[test]")
    stamp.write_text(wanted)


def main(argv: list[str]) -> None:
    if not argv or argv[0] not in ("demo", "test", "notebook"):
        sys.exit(__doc__)
    ensure_venv()
    if argv[0] == "demo":
        run(BIN / "phonehome", "demo", *argv[1:])
    elif argv[0] == "notebook":  # JupyterLab comes with the test extra, resolved with mitmproxy's pins
        run(BIN / "jupyter", "lab", ROOT / "notebooks" / "walkthrough.ipynb", *argv[1:])
    else:
        run(BIN / "ruff", "check", ".")
        run(BIN / "ruff", "format", "--check", ".")
        run(PYTHON, "-m", "pytest", *argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])
