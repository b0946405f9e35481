"""Classifier figures: precision/recall per data type on the labelled SDK corpus, with and without a
device profile, and the cost of classification per request on the sample capture.

    python benchmarks/bench_classify.py

`--varied N` instead times `classify_request` alone over the varied N-request session of
benchmarks/varied_session.py (issue 20's hot path): the requests are read and decoded first, then
classified with the session's known values and without, as CPU seconds. Pass 1 with the known
values runs with cold caches, as `phonehome analyze` does in a fresh process (per-key, per-path
and per-host caches fill during the pass); later passes, and the runs without a profile that
follow, show the warm figure. To time another revision, put its tree first:

    python benchmarks/bench_classify.py --varied 5000 --passes 3
    PYTHONPATH=~/.cache/phonehome-bench/trees/<sha>/pyroot python benchmarks/bench_classify.py --varied 5000

Compare revisions in alternating fresh processes (the machine is shared): CPU, not wall.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from phonehome.analysis.classify import classify_endpoint, classify_request  # noqa: E402
from phonehome.analysis.decode import decode_request  # noqa: E402
from phonehome.analysis.profile import Profile  # noqa: E402
from phonehome.analysis.records import HttpRecord, Labels, SourceReport  # noqa: E402
from phonehome.analysis.sources import read_source  # noqa: E402

CACHE = Path.home() / ".cache" / "phonehome-bench"


def print_table(title: str, profile: Profile | None) -> None:
    from tests.corpus.evaluate import evaluate, overall

    table, mistakes = evaluate(profile)
    precision, recall = overall(table)
    print(f"\n{title}: precision {precision:.3f}, recall {recall:.3f}")
    print(f"  {'data type':26} {'P':>5} {'R':>5} {'tp':>3} {'fp':>3} {'fn':>3}")
    for dtype, row in table.items():
        counts = f"{row['tp']:3} {row['fp']:3} {row['fn']:3}"
        print(f"  {dtype:26} {row['precision']:5.2f} {row['recall']:5.2f} {counts}")
    for mistake in mistakes:
        print(f"  {mistake}")


def cost_per_request(repeat: int = 200) -> None:
    sample = REPO / "captures" / "sample-mint-browser"
    profile = Profile.load(sample / "profile.json")
    records = [
        r for r in read_source(sample, Labels(), SourceReport(str(sample))) if isinstance(r, HttpRecord)
    ]
    decoded = [(r, decode_request(r), classify_endpoint(r.host, r.labels.app)) for r in records]
    for use_profile in (None, profile):
        start = time.perf_counter()
        found = 0
        for _ in range(repeat):
            for record, fields, endpoint in decoded:
                found += len(classify_request(record, fields, endpoint, use_profile))
        elapsed = time.perf_counter() - start
        per = elapsed / (repeat * len(decoded)) * 1000
        label = "with profile" if use_profile else "no profile"
        print(
            f"classify_request on the sample ({label}): {per:.3f} ms per request, {found // repeat} findings"
        )


def varied(size: int, passes: int) -> None:
    """CPU seconds of classify_request over the varied session, per pass, with and without known values."""
    import phonehome.analysis

    session = CACHE / f"varied-v1-{size}"
    if not (session / "flows.mitm").exists():
        generator = REPO / "benchmarks" / "varied_session.py"
        subprocess.run([sys.executable, str(generator), str(size)], check=True)
    dump = session / "flows.mitm"
    profile = Profile.load(session / "known-values.json")
    clock = time.process_time
    t0 = clock()
    records = [r for r in read_source(dump, Labels(), SourceReport(str(dump))) if isinstance(r, HttpRecord)]
    work = [(r, decode_request(r), classify_endpoint(r.host, r.labels.app)) for r in records]
    print(f"phonehome.analysis from {next(iter(phonehome.analysis.__path__))}")
    print(f"{len(work)} requests read and decoded in {clock() - t0:.2f} s CPU")
    for label, use_profile in (("with known values", profile), ("without a profile", None)):
        times = []
        for _ in range(passes):
            t0 = clock()
            found = sum(len(classify_request(r, d, e, use_profile)) for r, d, e in work)
            times.append(clock() - t0)
        figures = ", ".join(f"{t:.3f}" for t in times)
        print(
            f"classify_request {label}: pass 1 {times[0]:.3f} s CPU"
            f" ({1e3 * times[0] / len(work):.3f} ms/request), all passes [{figures}], {found} findings"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--varied", type=int, metavar="N", help="time classify_request on the varied session")
    parser.add_argument("--passes", type=int, default=1, help="passes over the requests (with --varied)")
    args = parser.parse_args()
    if args.varied:
        varied(args.varied, args.passes)
    else:
        from tests.corpus.sdk_corpus import PROFILE

        print_table("Labelled SDK corpus, no profile", None)
        print_table("Labelled SDK corpus, with profile", PROFILE)
        print()
        cost_per_request()
