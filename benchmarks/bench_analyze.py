"""phonehome analysis vs mitmproxy's FlowReader on the same dumps, side by side.

For each size (default 5,000, 20,000 and 100,000 flows) this generates a synthetic dump (see
make_dumps.py; cached in --data-dir), then runs, each in a fresh child process of this one:

- `flowreader`: mitmproxy.io.FlowReader(fo).stream() over the file, nothing else (the bar);
- `fast`: the analysis as `phonehome analyze` runs it: the reader seam (analysis.reader: fast
  reader, byte ranges in worker processes) + decode + classify + the three DataFrames;
- `cli`: the command itself, `phonehome analyze DUMP -o TMPDIR -q` (analysis.cli.main): the
  same, plus the CLI's imports and writing findings.csv and the Parquet files;
- `pipeline`: the straightforward path (mitmproxy's reader and objects, one process, as
  analysis.pipeline.analyze did before the fast path; tests/support_sources.reference_analysis),
  for sizes up to --straight-max.

and prints ms/flow, the ratio to FlowReader, cores used (CPU seconds / wall seconds, workers
included) and peak RSS (largest of the process and its workers), measured from outside the
library: the workers are forked children of the measured process (it has one thread when it
starts them), so RUSAGE_CHILDREN holds their CPU time and peak RSS once they are reaped. With `--repeat N` the
FlowReader and analysis runs alternate N times and the figures are medians, the ratio the median
of the N side-by-side runs, all of them listed: on a shared machine one run varies by +-20 %.
`--stages N` also times each stage of the sequential path on the first N flows, to show which one
dominates.

`--worker-startup N` measures instead what a worker process pays before its first range is done:
N fresh processes per side, alternating, each forks one pool worker that runs the same first
range of a dump (default: the varied 5,000-request session of bench_peer.py, with its known
values) and reports its CPU; "cold" is a worker that builds its own collector (known-value
matcher, endpoint tables, public-suffix list, schemas), "prepared" one forked after
analysis.parallel built them in the parent, as `phonehome analyze` does.

    python benchmarks/bench_analyze.py                       # 5k, 20k, 100k
    python benchmarks/bench_analyze.py 5000 20000 100000 --repeat 3
    python benchmarks/bench_analyze.py 5000 --stages 2000 --cprofile
    python benchmarks/bench_analyze.py --worker-startup 7
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # tests.support_sources

from make_dumps import DEFAULT_OUT, ensure_dump


def _usage() -> dict:
    """CPU seconds and peak RSS of this process, plus its reaped children's (the forked workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
    rss_kb = max(own.ru_maxrss, kids.ru_maxrss)
    return {"cpu": cpu, "rss_mb": rss_kb / 1024, "parent_rss_mb": own.ru_maxrss / 1024}


def _table_digest(analysis) -> list[int]:
    import pandas as pd

    return [
        int(pd.util.hash_pandas_object(df.astype(str), index=False).sum())
        for df in (analysis.flows, analysis.findings, analysis.contacts)
    ]


def child(mode: str, path: Path, workers: int | None) -> dict:
    """One side of the comparison, run in its own process; returns the figures as a dict."""
    start = time.perf_counter()
    out: dict = {}
    if mode == "flowreader":
        from mitmproxy.io import FlowReader

        with path.open("rb") as fo:
            out["flows"] = sum(1 for _ in FlowReader(fo).stream())
    elif mode == "pipeline":
        from tests.support_sources import reference_analysis

        analysis = reference_analysis(path)
    elif mode == "cli":
        from phonehome.analysis.cli.main import main as phonehome

        with tempfile.TemporaryDirectory() as out_dir:
            jobs = ["-j", str(workers)] if workers else []
            if phonehome(["analyze", str(path), "-o", out_dir, "-q", *jobs]) != 0:
                raise SystemExit("phonehome analyze failed")
            out["seconds"] = time.perf_counter() - start
            out.update(_usage())
        return out
    else:
        analysis, out["ranges"], out["start_method"] = fast_analysis(path, workers)
    out["seconds"] = time.perf_counter() - start
    out.update(_usage())  # before the digest, whose string copies of the tables are ours only
    if mode != "flowreader":
        out["flows"] = sum(r.records for r in analysis.sources)
        out["digest"] = _table_digest(analysis)
    return out


def fast_analysis(path: Path, workers: int | None):
    """What pipeline.analyze does for one dump (see docs/performance.md), plus whether byte
    ranges were used and how worker processes would start (only `fork` makes them our children,
    whose usage RUSAGE_CHILDREN then holds)."""
    import threading

    from phonehome.analysis import parallel
    from phonehome.analysis.pipeline import build_analysis, default_labels, load_profiles
    from phonehome.analysis.reader import collect_source
    from phonehome.analysis.records import SourceReport
    from phonehome.analysis.rows import RowCollector, RowSettings
    from phonehome.analysis.sources import sniff_kind

    start_method = parallel._context().get_start_method()
    if start_method != "fork" or threading.active_count() != 1:
        raise SystemExit(f"workers would start by {start_method}: their CPU time would not be counted")
    profile = load_profiles([path], None)
    collector = RowCollector(RowSettings(profile))
    report = SourceReport(str(path))
    defaults = default_labels(path, None, None)
    ranges = collect_source(path, sniff_kind(path), defaults, report, collector, workers=workers)
    return build_analysis(collector.take(), [report], profile), ranges, start_method


VARIED = Path.home() / ".cache" / "phonehome-bench" / "varied-v1-5000"


def _first_range_cpu(task: tuple) -> dict:
    """In a pool worker: CPU it used before its first task, and CPU of that task and of the next."""
    from phonehome.analysis import parallel

    before = time.process_time()
    parallel._analyse_task(task)
    first = time.process_time() - before
    again = time.process_time()
    parallel._analyse_task(task)
    return {"bootstrap": before, "first": first, "again": time.process_time() - again}


def startup_child(mode: str, path: Path) -> dict:
    """One side of --worker-startup: fork one worker, run the dump's first range in it."""
    from concurrent.futures import ProcessPoolExecutor

    from phonehome.analysis import parallel
    from phonehome.analysis.pipeline import default_labels, load_profiles
    from phonehome.analysis.profile import Profile
    from phonehome.analysis.rows import RowSettings

    known = path.parent / "known-values.json"
    settings = RowSettings(load_profiles([path], Profile.load(known) if known.exists() else None))
    ranges = parallel.plan_ranges(path, path.stat().st_size, 2)
    if not ranges:
        raise SystemExit(f"{path}: too few records for ranges")
    task = (path, *ranges[0], default_labels(path, None, None), settings, ())
    if mode == "prepared":
        parallel._prepare_collector(settings)
    context = parallel._context()
    if context.get_start_method() != "fork":
        raise SystemExit("workers would not be forked: nothing to inherit")
    with ProcessPoolExecutor(1, mp_context=context) as pool:
        return pool.submit(_first_range_cpu, task).result()


def worker_startup(path: Path, repeat: int) -> None:
    """--worker-startup: medians of `repeat` alternating fresh processes per side."""
    runs: dict[str, list[dict]] = {"cold": [], "prepared": []}
    for _ in range(repeat):
        for mode in runs:
            runs[mode].append(run_child(f"startup-{mode}", path, None))
    print(f"worker start-up on {path} (first of 16 ranges), CPU ms in the worker, medians of {repeat}")
    for mode, rs in runs.items():
        figures = {
            key: statistics.median(r[key] for r in rs) * 1e3 for key in ("bootstrap", "first", "again")
        }
        each = ", ".join(f"{r['first'] * 1e3:.0f}" for r in rs)
        print(
            f"  {mode:9s} bootstrap {figures['bootstrap']:6.1f}  first range {figures['first']:7.1f}"
            f"  same range again {figures['again']:7.1f}   first range, every run: {each}"
        )


def median_run(runs: list[dict]) -> dict:
    """The run with the median time (the upper one of an even count)."""
    return sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]


def run_child(mode: str, path: Path, workers: int | None) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, str(path)]
    if workers:
        cmd += ["--workers", str(workers)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{mode} on {path} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def stages(path: Path, flows: int, use_cprofile: bool) -> None:
    """Sequential per-stage cost on the first `flows` records: which stage dominates."""
    from phonehome.analysis.classify import classify_endpoint, classify_request
    from phonehome.analysis.decode import decode_request
    from phonehome.analysis.pipeline import build_analysis, default_labels, load_profiles
    from phonehome.analysis.records import HttpRecord, SourceReport
    from phonehome.analysis.rows import RowCollector, RowSettings
    from phonehome.analysis.sources.fastdump import iter_dump

    profile = load_profiles([path], None)
    labels = default_labels(path, None, None)
    report = SourceReport(str(path))
    clock = time.perf_counter
    t0 = clock()
    records = []
    for record in iter_dump(path, labels, report):
        records.append(record)
        if len(records) >= flows:
            break
    t_read = clock() - t0
    http_records = [r for r in records if isinstance(r, HttpRecord)]
    t0 = clock()
    decoded = [decode_request(r) for r in http_records]
    t_decode = clock() - t0
    t0 = clock()
    for record, dec in zip(http_records, decoded, strict=True):
        classify_request(record, dec, classify_endpoint(record.host, record.labels.app), profile)
    t_classify = clock() - t0
    t0 = clock()
    collector = RowCollector(RowSettings(profile))
    for record in records:
        collector.add(record)
    t_all = clock() - t0
    t0 = clock()
    build_analysis(collector.take(), [report], profile)
    t_tables = clock() - t0
    t_rows = max(0.0, t_all - t_decode - t_classify)
    n = len(records)
    print(f"\nStages, sequential, first {n} records ({len(http_records)} HTTP) of {path.name}:")
    total = t_read + t_decode + t_classify + t_rows + t_tables
    for name, seconds in [
        ("read (fast reader)", t_read),
        ("decode_request", t_decode),
        ("classify (endpoint+request)", t_classify),
        ("rows (RowCollector rest)", t_rows),
        ("DataFrames + persistence", t_tables),
    ]:
        print(f"  {name:30s} {seconds * 1e3 / n:7.3f} ms/flow  {100 * seconds / total:5.1f} %")
    if use_cprofile:
        prof = cProfile.Profile()
        prof.enable()
        collector = RowCollector(RowSettings(profile))
        for record in records:
            collector.add(record)
        prof.disable()
        print("\ncProfile of RowCollector.add over the same records (top 15 by own time):")
        pstats.Stats(prof, stream=sys.stdout).sort_stats("tottime").print_stats(15)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[5_000, 20_000, 100_000])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: cores)")
    parser.add_argument("--straight-max", type=int, default=20_000, help="largest size for `pipeline`")
    parser.add_argument("--repeat", type=int, default=1, help="alternating runs per side; medians")
    parser.add_argument("--stages", type=int, default=0, metavar="N", help="per-stage timing on N flows")
    parser.add_argument("--cprofile", action="store_true", help="with --stages: a cProfile too")
    parser.add_argument(
        "--worker-startup", type=int, default=0, metavar="N", help="a worker's start-up cost, N runs per side"
    )
    parser.add_argument("--dump", type=Path, default=VARIED / "flows.mitm", help="dump for --worker-startup")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        mode, path = args.child[0], Path(args.child[1])
        if mode.startswith("startup-"):
            print(json.dumps(startup_child(mode.removeprefix("startup-"), path)))
        else:
            print(json.dumps(child(mode, path, args.workers)))
        return 0
    if args.worker_startup:
        if not args.dump.exists():
            raise SystemExit(f"{args.dump} missing: run benchmarks/varied_session.py 5000, or pass --dump")
        worker_startup(args.dump, args.worker_startup)
        return 0

    from phonehome.analysis.parallel import available_cores

    print(f"python {sys.version.split()[0]}, {available_cores()} core(s) available")
    header = (
        f"{'flows':>7} {'MB':>6} | {'FlowReader':>10} | {'fast':>7} {'ratio':>6} {'cores':>5} {'RSS MB':>7}"
        f" | {'cli':>7} {'ratio':>6} | {'pipeline':>8} {'ratio':>6} {'RSS MB':>7} | same"
    )
    print(
        "ms/flow; ratio = analysis time / FlowReader time (goal <= 1); RSS = peak of process and workers;"
        " cli = `phonehome analyze -o DIR`, writing the tables"
    )
    print(header)
    path = None
    for size in args.sizes:
        path = ensure_dump(args.data_dir, size)
        runs = [
            (
                run_child("flowreader", path, None),
                run_child("fast", path, args.workers),
                run_child("cli", path, args.workers),
            )
            for _ in range(args.repeat)
        ]
        ratios = sorted(fast["seconds"] / bar["seconds"] for bar, fast, _ in runs)
        cli_ratios = sorted(cli["seconds"] / bar["seconds"] for bar, _, cli in runs)
        bar = median_run([b for b, _, _ in runs])
        fast = median_run([f for _, f, _ in runs])
        cli = median_run([c for _, _, c in runs])
        cli["flows"] = fast["flows"]
        ms = lambda r: r["seconds"] * 1e3 / r["flows"]  # noqa: E731
        line = (
            f"{size:>7} {path.stat().st_size / 1e6:>6.1f} | {ms(bar):>10.3f} | {ms(fast):>7.3f}"
            f" {statistics.median(ratios):>6.2f} {fast['cpu'] / fast['seconds']:>5.2f}"
            f" {fast['rss_mb']:>7.0f} | {ms(cli):>7.3f} {statistics.median(cli_ratios):>6.2f}"
        )
        if size <= args.straight_max:
            straight = run_child("pipeline", path, None)
            line += (
                f" | {ms(straight):>8.3f} {straight['seconds'] / bar['seconds']:>6.2f}"
                f" {straight['rss_mb']:>7.0f} | {'yes' if straight['digest'] == fast['digest'] else 'NO'}"
            )
        else:
            line += f" | {'-':>8} {'-':>6} {'-':>7} | -"
        print(line, flush=True)
        print(
            f"        FlowReader peak RSS {bar['rss_mb']:.0f} MB; fast: "
            f"{'byte ranges in workers (' + fast['start_method'] + ')' if fast['ranges'] else 'one process'},"
            f" parent peak RSS {fast['parent_rss_mb']:.0f} MB"
        )
        if len(ratios) > 1:
            listed = lambda xs: ", ".join(f"{x:.2f}" for x in xs)  # noqa: E731
            print(
                f"        ratios of the {len(ratios)} runs: fast {listed(ratios)}; cli {listed(cli_ratios)}"
            )
    if args.stages and path is not None:
        stages(ensure_dump(args.data_dir, args.sizes[0]), args.stages, args.cprofile)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
