"""`phonehome analyze` side by side with TrackHAR 1.0.0 and mitmproxy's FlowReader, whole processes.

Users compare wall time with the closest peer, TrackHAR (tweaselORG, Node): it reads a HAR and
reports the tracking data each request carries. This script times, each as its own process, on
the same varied Mi-Browser-like session (benchmarks/varied_session.py: every URL, id and body
differs), in alternating order:

- `phonehome HAR`:  `phonehome analyze S.har --profile known-values.json -o TMP -q`
- `phonehome dump`: `phonehome analyze S.mitm --profile known-values.json -o TMP -q` (same requests)
- `TrackHAR HAR`:   `node trackhar_run.mjs S.har known-values.json` (TrackHAR's `process()`, the
  profile's known values as its indicator values; see trackhar_run.mjs); with --no-profile
  neither tool gets known values
- `FlowReader dump`: `python -c "...FlowReader(fo).stream()..."` merely loading the dump, the floor
  any mitmproxy-based tool pays

and prints per size the median wall time, CPU time and peak RSS of each side, and the ratios
phonehome/TrackHAR and phonehome-dump/FlowReader (median of the per-round ratios, every round
listed). CPU is user+sys of the process and the children it waited for (os.wait4), so forked
phonehome workers count; peak RSS is GNU time's %M (the largest of the process and its
workers) when /usr/bin/time exists. Then the small-capture start-up: `phonehome analyze
captures/sample-mint-browser` (19 flows) against TrackHAR on the same requests as a HAR (18:
a HAR cannot hold the sample's DNS flow), with bare `python -c pass` / `node -e ""` for scale.

TrackHAR is installed with npm into --cache/trackhar (default ~/.cache/phonehome-bench/trackhar,
or $PHONEHOME_TRACKHAR_DIR, shared with bench_real.py) on first use; the sessions are generated
in --cache too. Needs only Python (this venv), node and npm.

`--baseline REV` adds the same phonehome sides run from git revision REV ("... @REV"; or from a
directory laid out like --pyroot's) to the same rounds, so a change is measured paired with what
it changes (same minutes, same load), and prints the ratios working-tree (or --rev/--pyroot) /
REV; `--sides WORD,...` runs only the sides whose name contains one of the words (e.g. `--sides
HAR` for the HAR sides alone).

    python benchmarks/bench_peer.py                         # 5k, 20k, 50k; 3 alternating rounds
    python benchmarks/bench_peer.py 5000 50000 100000 --repeat 5
    python benchmarks/bench_peer.py --small-only --repeat 11
    python benchmarks/bench_peer.py 5000 --rev HEAD --baseline HEAD~3 --sides phonehome --repeat 5 --no-small
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from varied_session import DEFAULT_OUT, ROOT, ensure_session, known_values

TRACKHAR_VERSION = "1.0.0"
DRIVER = Path(__file__).resolve().parent / "trackhar_run.mjs"
SAMPLE = ROOT / "captures" / "sample-mint-browser"
FLOWREADER = (
    "import sys\nfrom mitmproxy.io import FlowReader\n"
    "with open(sys.argv[1], 'rb') as fo:\n    n = sum(1 for _ in FlowReader(fo).stream())\nprint(n)"
)


def ensure_trackhar(cache: Path) -> Path:
    """TrackHAR installed in `cache` (npm, on first use) and the driver beside it; the driver's path."""
    installed = cache / "node_modules" / "trackhar" / "package.json"
    if not installed.exists() or json.loads(installed.read_text()).get("version") != TRACKHAR_VERSION:
        npm = shutil.which("npm")
        if not npm or not shutil.which("node"):
            raise SystemExit("bench_peer: node and npm are needed to install and run TrackHAR")
        cache.mkdir(parents=True, exist_ok=True)
        if not (cache / "package.json").exists():
            (cache / "package.json").write_text('{"name": "phonehome-bench-trackhar", "private": true}\n')
        print(f"installing trackhar@{TRACKHAR_VERSION} into {cache} ...", file=sys.stderr)
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", f"trackhar@{TRACKHAR_VERSION}"], cwd=cache, check=True
        )
    driver = cache / DRIVER.name
    if not driver.exists() or driver.read_bytes() != DRIVER.read_bytes():
        shutil.copyfile(DRIVER, driver)
    return driver


def checkout(rev: str, cache: Path) -> Path:
    """The tree of git revision `rev` (git archive, read-only for the checkout) laid out as the
    `phonehome` namespace, so a fixed commit can be timed while others edit the working tree."""
    sha = subprocess.run(
        ["git", "rev-parse", "--verify", f"{rev}^{{commit}}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    tree = cache / "trees" / sha[:12]
    if not (tree / "pyroot" / "phonehome").exists():
        (tree / "src").mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "archive", sha], cwd=ROOT, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tree / "src")], input=archive, check=True)
        ns = tree / "pyroot" / "phonehome"
        ns.mkdir(parents=True)
        for folder in ("analysis", "addons", "captures"):
            (ns / folder).symlink_to(tree / "src" / folder)
    return tree / "pyroot"


PYROOT: Path | None = None  # set by --rev: run phonehome from this tree instead of the installed one


def phonehome_command(pyroot: Path | None = None) -> list[str]:
    """argv that runs `phonehome` from `pyroot` (see checkout), PYROOT, or the installed command."""
    if (pyroot or PYROOT) is not None:
        return [
            sys.executable,
            "-c",
            "import sys\nfrom phonehome.analysis.cli.main import main\nsys.exit(main())",
        ]
    script = Path(sys.executable).parent / "phonehome"
    if script.exists():
        return [str(script)]
    found = shutil.which("phonehome")
    if not found:
        raise SystemExit("bench_peer: the phonehome command is not installed in this environment")
    return [found]


GNU_TIME = shutil.which("time") or ("/usr/bin/time" if Path("/usr/bin/time").exists() else None)


def timed(argv: list[str], pyroot: Path | None = None) -> dict:
    """Run argv as a child process (phonehome from `pyroot` or PYROOT if set); wall and CPU
    seconds, peak RSS (MB) and its stdout.

    Peak RSS comes from GNU time's %M when /usr/bin/time exists: a child's ru_maxrss also counts
    the image it was forked from before exec (this benchmark, 40-70 MB), which GNU time, a small
    C program, keeps out. Without it the figure is wait4's, with that floor.
    """
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile() as rss,
    ):
        env = None
        root = pyroot or PYROOT
        if root is not None:
            path = os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))
            env = dict(os.environ, PYTHONPATH=path)
        wrapped = [GNU_TIME, "-f", "%M", "-o", rss.name, *argv] if GNU_TIME else argv
        start = time.perf_counter()
        proc = subprocess.Popen(wrapped, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
        rss_kb = usage.ru_maxrss
        if GNU_TIME:
            lines = Path(rss.name).read_text().split()
            rss_kb = int(lines[-1]) if lines and lines[-1].isdigit() else rss_kb
    if proc.returncode != 0:
        raise SystemExit(f"bench_peer: {' '.join(argv)} exited {proc.returncode}:\n{stderr[-2000:]}")
    return {
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "rss_mb": rss_kb / 1024,
        "stdout": stdout,
    }


BASELINE: tuple[str, Path] | None = None  # set by --baseline: (revision, its tree's pyroot)
SIDES: tuple[str, ...] = ()  # set by --sides: only sides whose name contains one of these


def sides_for(dump: Path, har: Path, profile: Path | None, driver: Path, jobs: int | None) -> dict:
    """name -> (a function returning the argv for one run (fresh output dir each time), pyroot)."""
    prof = ["--profile", str(profile)] if profile else []
    extra = ["-j", str(jobs)] if jobs else []

    def analyze(path: Path, pyroot: Path | None = None):
        ph = phonehome_command(pyroot)
        return lambda out: [*ph, "analyze", str(path), *prof, *extra, "-o", out, "-q"]

    sides = {
        "phonehome HAR": (analyze(har), None),
        "phonehome dump": (analyze(dump), None),
        "TrackHAR HAR": (
            lambda out: ["node", str(driver), str(har), *([str(profile)] if profile else [])],
            None,
        ),
        "FlowReader dump": (lambda out: [sys.executable, "-c", FLOWREADER, str(dump)], None),
    }
    if BASELINE is not None:
        rev, root = BASELINE
        sides[f"phonehome HAR @{rev}"] = (analyze(har, root), root)
        sides[f"phonehome dump @{rev}"] = (analyze(dump, root), root)
    return chosen(sides)


def chosen(sides: dict) -> dict:
    """The sides --sides asks for (all without it)."""
    if not SIDES:
        return sides
    kept = {name: side for name, side in sides.items() if any(word in name for word in SIDES)}
    if not kept:
        raise SystemExit(f"bench_peer: --sides {','.join(SIDES)} matches none of {', '.join(sides)}")
    return kept


def run_rounds(sides: dict, repeat: int) -> dict[str, list[dict]]:
    """`repeat` rounds, each side once per round, the order rotating from round to round."""
    names = list(sides)
    runs: dict[str, list[dict]] = {name: [] for name in names}
    for r in range(repeat):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            argv, pyroot = sides[name]
            with tempfile.TemporaryDirectory(prefix="phonehome-peer-") as out:
                runs[name].append(timed(argv(out), pyroot))
    return runs


def med(values: list[float]) -> float:
    return statistics.median(values)


def ratio(runs: dict, top: str, bottom: str, what: str = "wall") -> tuple[float, list[float]]:
    """Median over rounds of top/bottom, each round's pair run back to back; and every round's."""
    per_round = [a[what] / b[what] for a, b in zip(runs[top], runs[bottom], strict=True)]
    return med(per_round), per_round


def print_size(requests: int, runs: dict, har: Path, dump: Path) -> None:
    print(
        f"\n{requests:,} requests  (HAR {har.stat().st_size / 1e6:.0f} MB,"
        f" dump {dump.stat().st_size / 1e6:.0f} MB, {len(next(iter(runs.values())))} rounds)"
    )
    print(f"  {'side':16s} {'wall s':>8s} {'ms/req':>7s} {'cpu s':>7s} {'peak RSS':>9s}   every run (s)")
    for name, rs in runs.items():
        walls = [r["wall"] for r in rs]
        cpu, rss = med([r["cpu"] for r in rs]), med([r["rss_mb"] for r in rs])
        print(
            f"  {name:16s} {med(walls):8.2f} {med(walls) * 1e3 / requests:7.3f} {cpu:7.2f}"
            f" {rss:6.0f} MB   {', '.join(f'{w:.2f}' for w in walls)}"
        )
    pairs = [
        ("phonehome HAR", "TrackHAR HAR"),
        ("phonehome dump", "TrackHAR HAR"),
        ("phonehome dump", "FlowReader dump"),
        ("phonehome HAR", "FlowReader dump"),
    ]
    if BASELINE is not None:
        pairs += [(f"phonehome {kind}", f"phonehome {kind} @{BASELINE[0]}") for kind in ("HAR", "dump")]
    for top, bottom in pairs:
        if top not in runs or bottom not in runs:
            continue
        m, each = ratio(runs, top, bottom)
        c, each_cpu = ratio(runs, top, bottom, "cpu")
        print(
            f"  {top} / {bottom}: {m:.2f}x wall ({', '.join(f'{x:.2f}' for x in each)});"
            f" {c:.2f}x CPU ({', '.join(f'{x:.2f}' for x in each_cpu)})"
        )
    if "TrackHAR HAR" not in runs:
        return
    tr = json.loads(runs["TrackHAR HAR"][0]["stdout"].strip().splitlines()[-1])
    print(
        f"  TrackHAR: {tr['handled']} of {tr['requests']} requests handled,"
        f" {tr['transmissions']} transmissions;"
        f" in-process ms: read {tr['ms']['read']:.0f}, JSON.parse {tr['ms']['parse']:.0f},"
        f" process {tr['ms']['process']:.0f}"
    )


def sample_har(cache: Path) -> Path:
    """The bundled sample's HTTP flows as a HAR (mitmproxy's SaveHar), for TrackHAR's start-up figure."""
    from mitmproxy.addons.savehar import SaveHar
    from mitmproxy.io import FlowReader

    har = cache / "sample-mint-browser.har"
    dump = SAMPLE / "flows.mitm"
    if not har.exists() or har.stat().st_mtime < dump.stat().st_mtime:
        with dump.open("rb") as fo:
            flows = list(FlowReader(fo).stream())
        har.write_text(json.dumps(SaveHar().make_har(flows)))
    return har


def small(cache: Path, driver: Path, repeat: int) -> dict:
    har = sample_har(cache)
    ph = phonehome_command()
    sides = {
        "phonehome sample": (lambda out: [*ph, "analyze", str(SAMPLE), "-o", out, "-q"], None),
        "TrackHAR sample": (lambda out: ["node", str(driver), str(har), str(SAMPLE / "profile.json")], None),
        "python -c pass": (lambda out: [sys.executable, "-c", "pass"], None),
        'node -e ""': (lambda out: ["node", "-e", ""], None),
    }
    runs = run_rounds(sides, repeat)
    print(
        "\nSmall capture: captures/sample-mint-browser (19 flows; the HAR holds its 18 HTTP requests),"
        f" {repeat} rounds"
    )
    for name, rs in runs.items():
        walls = [r["wall"] for r in rs]
        print(
            f"  {name:18s} {med(walls):6.3f} s  cpu {med([r['cpu'] for r in rs]):6.3f} s"
            f"  peak RSS {med([r['rss_mb'] for r in rs]):4.0f} MB   ({', '.join(f'{w:.2f}' for w in walls)})"
        )
    m, each = ratio(runs, "phonehome sample", "TrackHAR sample")
    c, _ = ratio(runs, "phonehome sample", "TrackHAR sample", "cpu")
    print(f"  phonehome / TrackHAR: {m:.2f}x wall ({', '.join(f'{x:.2f}' for x in each)}); {c:.2f}x CPU")
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[5_000, 20_000, 50_000])
    parser.add_argument("--repeat", type=int, default=3, help="alternating rounds; figures are medians")
    parser.add_argument("--cache", type=Path, default=DEFAULT_OUT, help="sessions and TrackHAR live here")
    parser.add_argument("--no-profile", action="store_true", help="run both tools without known values")
    parser.add_argument("-j", "--jobs", type=int, default=None, help="passed to phonehome analyze")
    parser.add_argument("--small-only", action="store_true", help="only the small-capture start-up figure")
    parser.add_argument("--no-small", action="store_true", help="skip the small-capture start-up figure")
    parser.add_argument("--json", type=Path, help="also write every run's figures here")
    parser.add_argument(
        "--rev", help="time phonehome as of this git revision (e.g. HEAD), not the working tree"
    )
    parser.add_argument(
        "--pyroot",
        type=Path,
        help="time phonehome from DIR/phonehome/{analysis,...} (e.g. a patched --rev tree)",
    )
    parser.add_argument(
        "--baseline",
        metavar="REV",
        help="also run phonehome as of git revision REV (or from a --pyroot-like DIR) in the same rounds,"
        " and print the paired ratios",
    )
    parser.add_argument(
        "--sides", help="comma-separated words: run only the sides whose name contains one (e.g. HAR)"
    )
    args = parser.parse_args(argv)

    global PYROOT, BASELINE, SIDES
    if args.rev:
        PYROOT = checkout(args.rev, args.cache)
    if args.pyroot:
        PYROOT = args.pyroot.resolve()
    if args.baseline and (Path(args.baseline) / "phonehome").is_dir():  # a tree laid out like --pyroot
        root = Path(args.baseline).resolve()
        BASELINE = (root.parent.name if root.name == "pyroot" else root.name, root)
    elif args.baseline:
        BASELINE = (args.baseline, checkout(args.baseline, args.cache))
    if args.sides:
        SIDES = tuple(word.strip() for word in args.sides.split(",") if word.strip())

    driver = ensure_trackhar(Path(os.environ.get("PHONEHOME_TRACKHAR_DIR", args.cache / "trackhar")))
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    print(
        f"bench_peer: {time.strftime('%Y-%m-%d %H:%M')} on {os.cpu_count()} cores;"
        f" python {sys.version.split()[0]}, node {node},"
        f" trackhar {TRACKHAR_VERSION}; whole processes, wall-time medians of alternating rounds"
    )
    print(f"phonehome: {'from ' + str(PYROOT) if PYROOT else 'the installed working tree'}")
    if BASELINE is not None:
        print(f"baseline: phonehome as of {BASELINE[0]}, from {BASELINE[1]}")
    record: dict = {}
    if not args.small_only:
        for requests in args.sizes:
            dump, har = ensure_session(args.cache, requests)
            profile = None if args.no_profile else known_values(dump)
            runs = run_rounds(sides_for(dump, har, profile, driver, args.jobs), args.repeat)
            print_size(requests, runs, har, dump)
            record[str(requests)] = runs
    if not args.no_small:
        record["small"] = small(args.cache, driver, max(args.repeat, 5))
    if args.json:
        args.json.write_text(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
