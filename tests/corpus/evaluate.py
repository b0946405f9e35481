"""Precision and recall of the classifier on the labelled SDK corpus, per data type."""

from __future__ import annotations

from collections import Counter

from phonehome.analysis.classify import classify_endpoint, classify_request
from phonehome.analysis.decode import decode_request
from phonehome.analysis.profile import Profile
from tests.corpus.sdk_corpus import cases


def evaluate(profile: Profile | None) -> tuple[dict[str, dict[str, float]], list[str]]:
    """{data_type: {tp, fp, fn, precision, recall}} and a list of the mistakes, for reading."""
    tp, fp, fn = Counter(), Counter(), Counter()
    mistakes: list[str] = []
    for case in cases():
        record = case.record
        findings = classify_request(
            record, decode_request(record), classify_endpoint(record.host, "com.example.app"), profile
        )
        found = {(f.data_type, f.value) for f in findings}
        for item in found & case.labels:
            tp[item[0]] += 1
        for item in found - case.labels:
            fp[item[0]] += 1
            mistakes.append(f"FP {case.name}: {item}")
        for item in case.labels - found:
            fn[item[0]] += 1
            mistakes.append(f"FN {case.name}: {item}")
    table = {}
    for dtype in sorted(set(tp) | set(fp) | set(fn)):
        t, f, n = tp[dtype], fp[dtype], fn[dtype]
        table[dtype] = {
            "tp": t,
            "fp": f,
            "fn": n,
            "precision": t / (t + f) if t + f else 1.0,
            "recall": t / (t + n) if t + n else 1.0,
        }
    return table, mistakes


def overall(table: dict[str, dict[str, float]]) -> tuple[float, float]:
    t = sum(r["tp"] for r in table.values())
    f = sum(r["fp"] for r in table.values())
    n = sum(r["fn"] for r in table.values())
    return t / (t + f), t / (t + n)
