"""Cost of the claims and canary verdicts: the sample's tables replicated N times (each copy with its
own flow ids), the sample's claims.toml judged, and canary recall for a fresh plan. Prints the best
of three rounds per size; nothing is asserted.

    python benchmarks/bench_claims.py [N ...]     (default: 1 100 1000; 1000 = 19,000 flows)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pandas as pd

from phonehome.analysis.claims import load_claims
from phonehome.analysis.pipeline import analyze
from phonehome.analysis.plan import make_plan
from phonehome.analysis.verdicts.canaries import canary_recall
from phonehome.analysis.verdicts.claims import claims_table, judge_claims, known_identifiers

SAMPLE = Path(__file__).resolve().parent.parent / "captures" / "sample-mint-browser"


def replicate(frame: pd.DataFrame, copies: int) -> pd.DataFrame:
    parts = []
    for i in range(copies):
        part = frame.copy()
        part["flow_id"] = part["flow_id"] + f"-{i}"
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def main(sizes: list[int]) -> None:
    analysis = analyze([SAMPLE])
    claims = load_claims(SAMPLE / "claims.toml")
    known = known_identifiers(analysis.profile.values if analysis.profile else None)
    plan = make_plan(["normal", "incognito"])
    for copies in sizes:
        findings, flows = replicate(analysis.findings, copies), replicate(analysis.flows, copies)
        rounds = []
        for _ in range(3):
            start = time.perf_counter()
            claims_table(judge_claims([claims], findings, flows, analysis.contacts, known))
            middle = time.perf_counter()
            canary_recall([plan], findings, flows, analysis.contacts)
            rounds.append((middle - start, time.perf_counter() - middle))
        claims_s, canaries_s = min(rounds)
        print(
            f"x{copies}: {len(flows)} flows, {len(findings)} findings, {len(claims.claims)} claims: "
            f"claims {claims_s * 1000:.0f} ms, canary recall {canaries_s * 1000:.0f} ms (best of 3)"
        )


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [1, 100, 1000])
