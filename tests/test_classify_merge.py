"""classify_request's cached merge of two verdicts on one (field, data type) (issue 20) answers as
the computation it caches, for every pair of confidences and evidence combinations."""

from __future__ import annotations

import itertools

from phonehome.analysis.classify.fields import Verdict
from phonehome.analysis.classify.request import EVIDENCE_ORDER, merged


def _reference(old: Verdict, new: Verdict) -> Verdict:
    """The merge as offer() wrote it inline before the cache (e2dd3d4)."""
    rank = {"high": 3, "medium": 2, "low": 1}
    confidence = {number: name for name, number in rank.items()}[
        max(rank[old.confidence], rank[new.confidence])
    ]
    names = {name for part in (old.evidence, new.evidence) for name in part.split("+") if name}
    return Verdict(old.data_type, confidence, "+".join(name for name in EVIDENCE_ORDER if name in names))


def test_merged_is_the_inline_merge():
    evidences = [
        "+".join(combo)
        for size in (1, 2, 3)
        for combo in itertools.combinations(("known-value", "schema", "key-name", "value-shape"), size)
    ]
    evidences += ["value-shape+key-name", "key-name+value-shape+key-name"]
    checked = 0
    for data_type in ("device_id.android_id", "url", "token"):
        for old_confidence, new_confidence in itertools.product(("high", "medium", "low"), repeat=2):
            for old_evidence, new_evidence in itertools.product(evidences, repeat=2):
                old = Verdict(data_type, old_confidence, old_evidence)
                new = Verdict("other", new_confidence, new_evidence)
                assert merged(old, new) == _reference(old, new), (old, new)
                assert merged(old, new) == _reference(old, new)  # from the cache
                checked += 1
    assert checked > 5000
    assert merged(Verdict("url", "low", "value-shape"), Verdict("url", "high", "schema")) == Verdict(
        "url", "high", "schema+value-shape"
    )


def test_verdict_of_is_the_verdict_made_once():
    from phonehome.analysis.classify.fields import verdict_of

    made = verdict_of("device_id.imei", "high", "key-name+value-shape")
    assert made == Verdict("device_id.imei", "high", "key-name+value-shape") and type(made) is Verdict
    assert verdict_of("device_id.imei", "high", "key-name+value-shape") is made
    assert verdict_of("device_id.imei", "medium", "key-name+value-shape") != made
