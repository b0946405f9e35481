"""What a cold `phonehome` process pays for its imports, group by group (fresh processes, medians).

A 19-flow capture takes about half a second of which the analysis is a few milliseconds: the rest
is Python importing mitmproxy, the classifier, pyarrow (and numpy, which pyarrow imports). Since
the analyze command builds Arrow tables straight from the rows (analysis/arrow_tables.py), pandas
(0.4 s) is no longer among them: the last line says which of the big libraries the whole run of
`phonehome analyze` on the sample imported. Each line is a fresh `python -c "import ..."`
(cumulative: the group and what it pulls in), run --repeat times, alternating; CPU is user+sys of
the child, the steadier figure on a shared machine. `python -X importtime -c "import X"` gives the
module tree behind a line.

    python benchmarks/bench_imports.py --repeat 7
    PYTHONPATH=~/.cache/phonehome-bench/trees/<sha>/pyroot python benchmarks/bench_imports.py   # a commit
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "captures" / "sample-mint-browser"
#: Libraries worth knowing whether a run imported.
LIBRARIES = ("pandas", "pyarrow", "numpy", "mitmproxy.http", "mitmproxy.io")

GROUPS = [
    ("python -c pass (interpreter start)", "pass"),
    ("publicsuffixlist: PublicSuffixList(only_icann=True)",
     "import publicsuffixlist as p; p.PublicSuffixList(only_icann=True)"),
    ("mitmproxy.io + http + dns", "import mitmproxy.io, mitmproxy.http, mitmproxy.dns"),
    ("phonehome.analysis.classify", "import phonehome.analysis.classify"),
    ("phonehome.analysis.cli.main (every command)", "import phonehome.analysis.cli.main"),
    ("phonehome.analysis.pipeline", "import phonehome.analysis.pipeline"),
    ("numpy", "import numpy"),
    ("pyarrow (imports numpy)", "import pyarrow"),
    ("pyarrow + parquet + csv writers (no pandas)", "import pyarrow, pyarrow.parquet, pyarrow.csv"),
    ("phonehome.analysis.arrow_tables + pyarrow writers",
     "import phonehome.analysis.arrow_tables, pyarrow, pyarrow.parquet, pyarrow.csv, pyarrow.compute"),
    ("pandas", "import pandas"),
    ("pandas + pyarrow writers", "import pandas, pyarrow.parquet, pyarrow.csv"),
    ("phonehome.analysis.pipeline + pandas + writers",
     "import phonehome.analysis.pipeline, pandas, pyarrow.parquet, pyarrow.csv"),
]  # fmt: skip


def child(code: str, *args: str) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one fresh `python -c code`."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"bench_imports: {code!r} failed")
    return usage.ru_utime + usage.ru_stime, wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as out:
        whole = (
            "import sys\nfrom phonehome.analysis.cli.main import main\n"
            f"sys.exit(main(['analyze', {str(SAMPLE)!r}, '-o', {out!r}, '-q']))"
        )
        which = (
            f"import sys\nLIBRARIES = {LIBRARIES!r}\nfrom phonehome.analysis.cli.main import main\n"
            f"main(['analyze', {str(SAMPLE)!r}, '-o', {out!r}, '-q'])\n"
            "print(' '.join(m for m in LIBRARIES if m in sys.modules) or '(none)')"
        )
        groups = [*GROUPS, ("phonehome analyze captures/sample-mint-browser (whole)", whole)]
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in groups}
        for _ in range(args.repeat):
            for name, code in groups:
                runs[name].append(child(code))
        done = subprocess.run([sys.executable, "-c", which], capture_output=True, text=True)
        imported = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    print(f"cold imports, fresh processes, medians of {args.repeat} ({sys.version.split()[0]}):")
    print(f"  {'':58s} {'CPU s':>6s} {'wall s':>7s}")
    for name, rs in runs.items():
        cpu = statistics.median(r[0] for r in rs)
        wall = statistics.median(r[1] for r in rs)
        print(f"  {name:58s} {cpu:6.3f} {wall:7.3f}")
    print(f"  big libraries the whole run imported: {imported or '(none)'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
