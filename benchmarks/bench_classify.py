"""Classifier figures: precision/recall per data type on the labelled SDK corpus, with and without a
device profile, and the cost of classification per request on the sample capture.

    python benchmarks/bench_classify.py
"""

from __future__ import annotations

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
from tests.corpus.evaluate import evaluate, overall  # noqa: E402
from tests.corpus.sdk_corpus import PROFILE  # noqa: E402


def print_table(title: str, profile: Profile | None) -> None:
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


if __name__ == "__main__":
    print_table("Labelled SDK corpus, no profile", None)
    print_table("Labelled SDK corpus, with profile", PROFILE)
    print()
    cost_per_request()
