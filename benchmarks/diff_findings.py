"""Differential check for speed work: the findings must not change, byte for byte.

A speed-up of the decode/classify hot path is only welcome if every finding stays the same.
This script runs `phonehome analyze` on a fixed set of inputs and keeps each run's
findings.csv; `--save DIR` records a reference (e.g. before a change, or from a `--pyroot`
tree of an older revision), `--against DIR` runs again and compares byte for byte, printing
the first differing lines and exiting 1 on any difference.

Inputs: the varied 5,000-request session of `benchmarks/varied_session.py` as a dump and as a
HAR (with its known values), the sample capture with its profile, and the real captures in
tests/data/real (no profile), so both synthetic variety and real traffic are covered. The
sample is copied into the reference directory by `--save` and read from there by `--against`,
so a sample regenerated in the shared checkout meanwhile does not show up as a difference.

    python benchmarks/diff_findings.py --save /tmp/ref                 # before
    python benchmarks/diff_findings.py --against /tmp/ref              # after: exit 0 = identical
    python benchmarks/diff_findings.py --save /tmp/ref --pyroot TREE   # reference from another tree
"""

from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CACHE = Path.home() / ".cache" / "phonehome-bench"


def cases(size: int, sample: Path) -> list[tuple[str, list[str]]]:
    """(name, analyze arguments) for each input; a missing varied session is generated first."""
    session = CACHE / f"varied-v1-{size}"
    if not (session / "flows.mitm").exists():
        generator = str(REPO / "benchmarks" / "varied_session.py")
        subprocess.run([sys.executable, generator, str(size)], check=True)
    known = str(session / "known-values.json")
    out = [
        (f"varied{size}-dump", [str(session / "flows.mitm"), "--profile", known]),
        (f"varied{size}-har", [str(session / "flows.har"), "--profile", known]),
        ("sample-mint-browser", [str(sample), "--profile", str(sample / "profile.json")]),
    ]
    for path in sorted((REPO / "tests" / "data" / "real").glob("*")):
        if path.suffix in (".har", ".mitm"):
            out.append((f"real-{path.stem}", [str(path)]))
    return out


def run(args: list[str], out_dir: Path, pyroot: str | None) -> float:
    """Run `phonehome analyze ARGS -o OUT_DIR -q`; return its wall seconds."""
    env = dict(os.environ)
    if pyroot:
        env["PYTHONPATH"] = pyroot + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, "-m", "phonehome.analysis.cli.main", "analyze", *args, "-o", str(out_dir), "-q"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode not in (0, 1):
        sys.exit(f"analyze failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return time.perf_counter() - start


def first_difference(a: Path, b: Path) -> str:
    left, right = a.read_bytes().splitlines(), b.read_bytes().splitlines()
    for number, (x, y) in enumerate(zip(left, right, strict=False), 1):
        if x != y:
            return f"line {number}:\n  ref: {x[:300]!r}\n  new: {y[:300]!r}"
    return f"lengths differ: {len(left)} vs {len(right)} lines"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--save", type=Path, help="write reference findings here")
    group.add_argument("--against", type=Path, help="compare with the reference findings here")
    parser.add_argument("--pyroot", help="run phonehome from DIR (DIR/phonehome/analysis...)")
    parser.add_argument("--size", type=int, default=5000, help="varied session size")
    parser.add_argument("--only", help="run only the cases whose name contains this")
    opts = parser.parse_args(argv)
    ref = opts.save or opts.against
    # the sample is kept with the reference: others may regenerate captures/ meanwhile
    sample = ref / "inputs" / "sample-mint-browser"
    if opts.save and not sample.exists():
        shutil.copytree(REPO / "captures" / "sample-mint-browser", sample)
    differences = 0
    for name, args in cases(opts.size, sample):
        if opts.only and opts.only not in name:
            continue
        if opts.save:
            target = opts.save / name
            target.mkdir(parents=True, exist_ok=True)
            seconds = run(args, target, opts.pyroot)
            lines = len((target / "findings.csv").read_bytes().splitlines())
            print(f"saved  {name:40} {lines:7} lines  {seconds:6.2f} s")
            continue
        with tempfile.TemporaryDirectory() as tmp:
            seconds = run(args, Path(tmp), opts.pyroot)
            ref, new = opts.against / name / "findings.csv", Path(tmp) / "findings.csv"
            if filecmp.cmp(ref, new, shallow=False):
                print(f"same   {name:40} {seconds:6.2f} s")
            else:
                differences += 1
                print(f"DIFF   {name:40} {first_difference(ref, new)}")
    if opts.against:
        print("identical" if not differences else f"{differences} input(s) differ")
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
