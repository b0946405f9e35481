"""The classifier on REAL recorded requests (tests/data/real/, hand-labelled; see its PROVENANCE.md).

Floors are set at what the classifier achieves today, so a regression fails; the figures and
TrackHAR's side by side come from benchmarks/bench_real.py (which needs npm; these tests do not).
"""

from __future__ import annotations

import json

import pytest

from tests.corpus.real_eval import REAL, findings, found_pairs, load, required_pairs, score_fields

# Floors at what the classifier achieves (benchmarks/bench_real.py prints the figures). Before issue 17
# it reached precision 0.967 and recall 0.652/0.663 (no profile/profile) on the development datasets.
# overall field-level (precision, recall), no profile and with profile
OVERALL = {False: (1.0, 0.970), True: (1.0, 0.970)}
# the development datasets the rules were written against, and the held-out one they never saw
DEVELOPMENT = {False: (1.0, 1.0), True: (1.0, 1.0)}
# Held out: 0.752 when first scored (before the identifier-cookie rule, which their misses motivated,
# so this floor no longer measures unseen traffic; see docs/classifier.md)
HELD_OUT = {False: (1.0, 0.948), True: (1.0, 0.948)}
# per data type recall floors (no profile, with profile); precision is 1.0 for every type
RECALL = {
    "app.id": (1.0, 1.0),
    "contact.email": (1.0, 1.0),
    "device.model": (1.0, 1.0),
    "device.os_version": (1.0, 1.0),
    "device_id.advertising_id": (1.0, 1.0),
    "device_id.android_id": (1.0, 1.0),
    "device_id.other": (0.938, 0.938),
    "network.local_ip": (1.0, 1.0),
    "search_query": (1.0, 1.0),
    "token": (1.0, 1.0),
    "url": (0.968, 0.968),
    "user_id": (1.0, 1.0),
}


def test_corpus_is_small_and_has_provenance():
    total = sum(p.stat().st_size for p in REAL.rglob("*") if p.is_file())
    assert total < 2_000_000
    provenance = (REAL / "PROVENANCE.md").read_text("utf-8")
    datasets, labels = load()
    for dataset in datasets.values():
        assert dataset.path.is_file()
        assert dataset.path.name in provenance
    assert all(label.reason for label in labels)
    assert {label.dataset for label in labels} <= set(datasets)


def test_labels_are_well_formed():
    raw = json.loads((REAL / "labels.json").read_text("utf-8"))
    vocabulary = {
        "url", "search_query", "device_id.imei", "device_id.android_id", "device_id.advertising_id",
        "device_id.oaid", "device_id.serial", "device_id.mac", "device_id.imsi", "device_id.iccid",
        "device_id.other", "token", "user_id", "location.gps", "location.wifi", "contact.email",
        "contact.phone", "network.local_ip", "device.model", "device.os_version", "app.id",
        "app.installed_list",
    }  # fmt: skip
    for label in raw["labels"]:
        assert set(label["types"]) <= vocabulary, label


@pytest.mark.parametrize("with_profile", [False, True], ids=["no-profile", "profile"])
def test_real_corpus_floors(with_profile):
    score = score_fields(with_profile=with_profile)
    precision, recall = score.overall()
    floor_p, floor_r = OVERALL[with_profile]
    assert precision >= floor_p, score.mistakes
    assert recall >= floor_r - 1e-9, score.mistakes
    table = score.table()
    column = 1 if with_profile else 0
    for dtype, floors in RECALL.items():
        assert table[dtype]["recall"] >= floors[column] - 1e-9, (dtype, score.mistakes)
        assert table[dtype]["precision"] == 1.0, (dtype, score.mistakes)


@pytest.mark.parametrize("with_profile", [False, True], ids=["no-profile", "profile"])
def test_development_and_held_out_floors(with_profile):
    datasets, _ = load()
    held = [name for name, d in datasets.items() if d.held_out]
    development = [name for name in datasets if name not in held]
    assert held and development
    for names, floors in ((development, DEVELOPMENT), (held, HELD_OUT)):
        score = score_fields(names, with_profile=with_profile)
        precision, recall = score.overall()
        assert precision >= floors[with_profile][0], score.mistakes
        assert recall >= floors[with_profile][1] - 1e-9, score.mistakes


def test_request_level_recall_misses_only_opaque_web_identifiers():
    """Per (request, data type), the granularity of the TrackHAR comparison: what is missed is two
    web trackers' visitor ids under one-letter query keys (VisualRevenue `c`, Chartbeat `u`)."""
    datasets, _ = load()
    missed = []
    for name, dataset in datasets.items():
        wanted = set(required_pairs(name))
        found = found_pairs(name, findings(dataset, False))
        missed += [(name, pair) for pair in sorted(wanted - found)]
    assert missed == [("cnn-web", (24, "device_id")), ("cnn-web", (40, "device_id"))], missed
