"""Where `phonehome analyze` spends its time on the bench_peer inputs: imports, then each stage.

Two measurements in one fresh process:

1. imports: the modules `phonehome analyze` needs, imported one group at a time with a clock
   (the CLI, the pipeline and mitmproxy, pandas, pyarrow's Parquet and CSV writers), so the
   figure is what a cold start pays for each (`python -X importtime` gives the module tree);
2. the analysis itself under cProfile (after one unprofiled run), everything already
   imported, with `-j 1` so that every stage runs in this process where the profiler sees
   it (with workers, read/decode/classify would be spread over the cores). The cumulative
   time of each stage's entry point is printed, then the top functions by own time.

Stages (entry points, by function name): read (`read_har` / fastdump's `iter_dump`, generators,
so their time excludes the consumer's), decode (`decode_request`), classify (`classify_request`
plus the endpoint lookup `RowCollector.endpoint`), rows (the rest of `RowCollector.add_http`),
table build (`build_analysis`), write (`write_tables`). cProfile inflates Python-heavy code by
1.5-2x: read the shares, and the unprofiled wall time printed first for scale.

3. (unless --no-stages) read, decode and classify once more without the profiler, one stage
   after the other over all requests, as CPU seconds: the figures to quote per stage.

    python benchmarks/profile_peer.py ~/.cache/phonehome-bench/varied-v1-5000/flows.har
    python benchmarks/profile_peer.py captures/sample-mint-browser --top 25
    PYTHONPATH=~/.cache/phonehome-bench/trees/<sha>/pyroot python benchmarks/profile_peer.py ...   # a commit
"""

from __future__ import annotations

import argparse
import cProfile
import importlib
import io
import pstats
import sys
import tempfile
import time
from pathlib import Path

IMPORT_GROUPS = [
    (
        "phonehome CLI + pipeline (+ mitmproxy, classifier data)",
        ["phonehome.analysis.cli.main", "phonehome.analysis.pipeline"],
    ),
    ("fast reader + workers module", ["phonehome.analysis.parallel"]),
    ("pandas", ["pandas"]),
    ("pyarrow + parquet + csv writers", ["pyarrow", "pyarrow.parquet", "pyarrow.csv"]),
]
STAGES = [
    ("read", ("read_har", "iter_dump", "read_dump", "read_source")),
    ("decode", ("decode_request",)),
    ("classify: request fields", ("classify_request",)),
    ("classify: endpoint lookup", ("endpoint",)),
    ("rows (RowCollector.add_http, all)", ("add_http",)),
    ("table build (build_analysis)", ("build_analysis",)),
    ("write (write_tables)", ("write_tables",)),
]


def stage_times(stats: pstats.Stats) -> dict[str, float]:
    """Cumulative seconds per stage: the largest cumtime among functions with the stage's names,
    restricted to phonehome's own files (so a same-named function elsewhere is not counted)."""
    out = {}
    for stage, names in STAGES:
        best = 0.0
        for (filename, _line, func), (_cc, _nc, _tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
            if func in names and ("analysis" in filename) and ct > best:
                best = ct
        out[stage] = best
    return out


def stage_cpu(capture: Path, profile_path: Path | None) -> None:
    """CPU seconds of read, decode and classify, unprofiled, one stage after the other over all
    requests (sequential, in this process), through the library's stable entry points."""
    from phonehome.analysis.classify import classify_endpoint, classify_request
    from phonehome.analysis.decode import decode_request
    from phonehome.analysis.pipeline import default_labels, load_profiles
    from phonehome.analysis.profile import Profile
    from phonehome.analysis.records import HttpRecord, SourceReport
    from phonehome.analysis.sources import read_source

    explicit = Profile.load(profile_path) if profile_path else None
    profile = load_profiles([capture], explicit)
    labels = default_labels(capture, None, None)
    clock = time.process_time
    t0 = clock()
    records = [
        r for r in read_source(capture, labels, SourceReport(str(capture))) if isinstance(r, HttpRecord)
    ]
    t_read = clock() - t0
    if capture.suffix in (".mitm", ".flows") or capture.is_dir():
        from phonehome.analysis.sources.fastdump import iter_dump

        dump = capture / "flows.mitm" if capture.is_dir() else capture
        t0 = clock()
        fast = sum(1 for _ in iter_dump(dump, labels, SourceReport(str(dump))))
        print(
            f"  (fast dump reader: {fast} records in {clock() - t0:.2f} s CPU;"
            " read_source above is mitmproxy's)"
        )
    t0 = clock()
    decoded = [decode_request(r) for r in records]
    t_decode = clock() - t0
    t0 = clock()
    endpoints = [classify_endpoint(r.host, r.labels.app) for r in records]
    t_endpoint = clock() - t0
    t0 = clock()
    for record, dec, endpoint in zip(records, decoded, endpoints, strict=True):
        classify_request(record, dec, endpoint, profile)
    t_classify = clock() - t0
    n = len(records)
    print(f"\nstages, unprofiled CPU, sequential over {n} requests:")
    for name, seconds in [
        ("read (sources.read_source)", t_read),
        ("decode (decode_request)", t_decode),
        ("classify: endpoint (uncached)", t_endpoint),
        ("classify: request fields", t_classify),
    ]:
        print(f"  {name:40s} {seconds:6.2f} s  {1e3 * seconds / max(n, 1):6.3f} ms/request")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("capture", type=Path)
    parser.add_argument(
        "--profile", type=Path, help="known values (default: known-values.json beside the capture, if any)"
    )
    parser.add_argument("--top", type=int, default=20, help="functions listed by own time")
    parser.add_argument("--no-stages", action="store_true", help="skip the unprofiled per-stage CPU figures")
    args = parser.parse_args(argv)

    t_start = time.perf_counter()
    print(f"imports (cold, this process; {sys.version.split()[0]}):")
    c_start = time.process_time()
    for label, modules in IMPORT_GROUPS:
        t0, c0 = time.perf_counter(), time.process_time()
        for name in modules:
            importlib.import_module(name)
        cpu, wall = time.process_time() - c0, time.perf_counter() - t0
        print(f"  {label:58s} {1e3 * cpu:6.0f} ms CPU {1e3 * wall:6.0f} ms wall")
    cpu, wall = time.process_time() - c_start, time.perf_counter() - t_start
    print(f"  {'all imports':58s} {1e3 * cpu:6.0f} ms CPU {1e3 * wall:6.0f} ms wall")

    from phonehome.analysis.cli.main import main as phonehome

    profile = args.profile
    if profile is None:
        beside = (args.capture if args.capture.is_dir() else args.capture.parent) / "known-values.json"
        profile = beside if beside.exists() and not args.capture.is_dir() else None
    cmd = ["analyze", str(args.capture), "-j", "1", "-q"] + (["--profile", str(profile)] if profile else [])

    with tempfile.TemporaryDirectory() as out:
        t0, c0 = time.perf_counter(), time.process_time()
        sink = io.StringIO()
        stdout, sys.stdout = sys.stdout, sink
        try:
            phonehome([*cmd, "-o", out])
        finally:
            sys.stdout = stdout
        plain, plain_cpu = time.perf_counter() - t0, time.process_time() - c0
    with tempfile.TemporaryDirectory() as out:
        prof = cProfile.Profile(time.process_time)  # CPU, not wall: the machine may be shared
        sys.stdout = sink
        try:
            prof.enable()
            phonehome([*cmd, "-o", out])
            prof.disable()
        finally:
            sys.stdout = stdout
    stats = pstats.Stats(prof)
    total = stats.total_tt  # type: ignore[attr-defined]
    print(
        f"\nanalysis after imports ({' '.join(cmd)}): {plain_cpu:.2f} s CPU ({plain:.2f} s wall) unprofiled,"
        f" {total:.2f} s CPU under cProfile"
    )
    stages = stage_times(stats)
    rows_rest = stages["rows (RowCollector.add_http, all)"] - sum(
        stages[k] for k in ("decode", "classify: request fields", "classify: endpoint lookup")
    )
    print(f"  {'stage':40s} {'cProfile CPU s':>14s} {'share':>6s}")
    for stage, seconds in stages.items():
        if stage.startswith("rows"):
            stage, seconds = "rows (add_http minus decode/classify)", max(rows_rest, 0.0)
        print(f"  {stage:40s} {seconds:14.2f} {100 * seconds / total:5.0f} %")
    print(f"\ntop {args.top} functions by own time (cProfile):")
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(args.top)
    text = buf.getvalue()
    print(text[text.find("   ncalls") :])
    if not args.no_stages:
        stage_cpu(args.capture, profile)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
