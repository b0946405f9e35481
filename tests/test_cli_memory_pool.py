"""The command line gives Arrow's freed memory back to the system (issue 20: 100,000 flows under
500 MB peak); a user's own ARROW_DEFAULT_MEMORY_POOL is kept, and library callers' processes are
left alone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

_RUN = """
import sys
from phonehome.analysis.cli.main import main
code = main(["analyze", sys.argv[1], "-o", sys.argv[2], "-q"])
import pyarrow as pa
print(code, pa.default_memory_pool().backend_name)
"""


@pytest.mark.parametrize(("given", "expected"), [(None, "system"), ("mimalloc", "mimalloc")])
def test_analyze_uses_the_system_allocator_unless_told(tmp_path: Path, sample_capture: Path, given, expected):
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    if given is not None:
        env["ARROW_DEFAULT_MEMORY_POOL"] = given
    out = subprocess.run(
        [sys.executable, "-c", _RUN, str(sample_capture), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert out.stdout.split()[-2:] == ["0", expected]
    assert (tmp_path / "out" / "findings.csv").is_file()


def test_the_library_leaves_the_allocator_alone(sample_capture: Path):
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    code = (
        "import sys; from phonehome.analysis import pipeline; pipeline.analyze([sys.argv[1]]); "
        "import os, pyarrow as pa; "
        "print(os.environ.get('ARROW_DEFAULT_MEMORY_POOL'), pa.default_memory_pool().backend_name)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(sample_capture)], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.split()[0] == "None" and out.stdout.split()[1] != "system"
