"""The classifier on REAL recorded requests (tests/data/real/, hand-labelled; see its PROVENANCE.md).

Floors are set at what the classifier achieves today, so a regression fails; the figures and
TrackHAR's side by side come from benchmarks/bench_real.py (which needs npm; these tests do not).
"""

from __future__ import annotations

import json

import pytest

from tests.corpus.real_eval import REAL, load, score_fields

# overall field-level (precision, recall) floors
OVERALL = {False: (0.96, 0.65), True: (0.96, 0.66)}
# per data type recall floors (no profile, with profile)
RECALL = {
    "device_id.advertising_id": (1.0, 1.0),
    "network.local_ip": (1.0, 1.0),
    "url": (1.0, 1.0),
    "contact.email": (1.0, 1.0),
    "device_id.other": (0.8, 0.8),
    "user_id": (0.8, 0.8),
}
PRECISION = {"device_id.advertising_id": 1.0, "device_id.other": 1.0, "user_id": 1.0, "url": 0.85}


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
    assert recall >= floor_r, score.mistakes
    table = score.table()
    column = 1 if with_profile else 0
    for dtype, floors in RECALL.items():
        assert table[dtype]["recall"] >= floors[column], (dtype, score.mistakes)
    for dtype, floor in PRECISION.items():
        assert table[dtype]["precision"] >= floor, (dtype, score.mistakes)
