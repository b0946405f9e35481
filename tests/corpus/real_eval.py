"""Precision and recall of the classifier on REAL recorded requests (tests/data/real/), per data type.

The labels (tests/data/real/labels.json) were written by hand from reading the requests. A label
names a request (its position among the file's HTTP requests), a field path, the data types any
one of which counts, and a reason. Optional labels are neither required nor counted as false
alarms. Two granularities:
- field level: a finding is a true positive when (request, field) carries a label accepting its
  type; any other finding is a false alarm; a required label no finding matched is a miss.
- request level: (request, data type) pairs, the granularity a peer tool such as TrackHAR
  reports at; used for the side-by-side comparison.
Kept apart from the synthetic SDK corpus (tests/corpus/sdk_corpus.py).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from phonehome.analysis.classify import classify_endpoint, classify_request
from phonehome.analysis.decode import decode_request
from phonehome.analysis.profile import Profile
from phonehome.analysis.records import HttpRecord, Labels, SourceReport
from phonehome.analysis.sources import read_source

REAL = Path(__file__).resolve().parent.parent / "data" / "real"


@dataclass(frozen=True)
class Label:
    dataset: str
    request: int
    field: str
    types: tuple[str, ...]
    optional: bool
    reason: str

    def matches(self, request: int, field: str) -> bool:
        if request != self.request:
            return False
        if "*" not in self.field:
            return field == self.field
        return _glob(self.field).fullmatch(field) is not None


@lru_cache(maxsize=512)
def _glob(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")))


@dataclass(frozen=True)
class Dataset:
    name: str
    path: Path
    what: str
    profile: dict
    held_out: bool = False


def load() -> tuple[dict[str, Dataset], list[Label]]:
    raw = json.loads((REAL / "labels.json").read_text("utf-8"))
    datasets = {
        name: Dataset(
            name, REAL / info["file"], info["what"], info.get("profile") or {}, bool(info.get("held_out"))
        )
        for name, info in raw["datasets"].items()
    }
    labels = [
        Label(x["dataset"], x["request"], x["field"], tuple(x["types"]), bool(x.get("optional")), x["reason"])
        for x in raw["labels"]
    ]
    return datasets, labels


def records(dataset: Dataset) -> list[HttpRecord]:
    """The HTTP requests of a dataset file, in file order (the `request` index of a label)."""
    report = SourceReport(str(dataset.path))
    return [
        r
        for r in read_source(dataset.path, Labels(session=dataset.name), report)
        if isinstance(r, HttpRecord)
    ]


def findings(dataset: Dataset, with_profile: bool) -> list[tuple[int, str, str, str]]:
    """(request index, field, data type, value) of every finding phonehome makes."""
    profile = Profile.from_dict(dataset.profile, "labels.json") if with_profile and dataset.profile else None
    out = []
    for index, record in enumerate(records(dataset)):
        endpoint = classify_endpoint(record.host, None)
        for f in classify_request(record, decode_request(record), endpoint, profile):
            out.append((index, f.field, f.data_type, f.value))
    return out


@dataclass
class Score:
    tp: Counter
    fp: Counter
    fn: Counter
    mistakes: list[str]

    def table(self) -> dict[str, dict[str, float]]:
        table = {}
        for dtype in sorted(set(self.tp) | set(self.fp) | set(self.fn)):
            t, f, n = self.tp[dtype], self.fp[dtype], self.fn[dtype]
            table[dtype] = {
                "tp": t,
                "fp": f,
                "fn": n,
                "precision": t / (t + f) if t + f else 1.0,
                "recall": t / (t + n) if t + n else 1.0,
            }
        return table

    def overall(self) -> tuple[float, float]:
        t, f, n = sum(self.tp.values()), sum(self.fp.values()), sum(self.fn.values())
        return (t / (t + f) if t + f else 1.0), (t / (t + n) if t + n else 1.0)


def score_fields(names: list[str] | None = None, with_profile: bool = False) -> Score:
    """Field-level precision/recall over the named datasets (all when None)."""
    datasets, labels = load()
    tp, fp, fn = Counter(), Counter(), Counter()
    mistakes: list[str] = []
    for name, dataset in datasets.items():
        if names and name not in names:
            continue
        mine = [label for label in labels if label.dataset == name]
        found = findings(dataset, with_profile)
        matched: set[int] = set()
        for request, field, dtype, value in found:
            hit = next(
                (i for i, lb in enumerate(mine) if dtype in lb.types and lb.matches(request, field)), None
            )
            if hit is None:
                fp[dtype] += 1
                mistakes.append(f"FP {name}#{request} {field} {dtype} {value[:60]!r}")
            elif not mine[hit].optional:
                if hit not in matched:
                    tp[mine[hit].types[0]] += 1
                matched.add(hit)
        for i, label in enumerate(mine):
            if not label.optional and i not in matched:
                fn[label.types[0]] += 1
                mistakes.append(f"FN {name}#{label.request} {label.field} {'|'.join(label.types)}")
    return Score(tp, fp, fn, mistakes)


# Request-level comparison vocabulary: device identifiers other than the advertising id collapse into
# one class, because peers do not tell an Android ID from an SDK's own install id.
def coarse(dtype: str) -> str:
    if dtype.startswith("device_id.") and dtype != "device_id.advertising_id":
        return "device_id"
    return dtype


def required_pairs(name: str) -> dict[tuple[int, str], list[Label]]:
    """(request, coarse type) -> the required labels behind it."""
    _, labels = load()
    pairs: dict[tuple[int, str], list[Label]] = {}
    for label in labels:
        if label.dataset == name and not label.optional:
            pairs.setdefault((label.request, coarse(label.types[0])), []).append(label)
    return pairs


def found_pairs(name: str, found: list[tuple[int, str, str, str]]) -> set[tuple[int, str]]:
    """(request, coarse type) pairs phonehome found on a labelled field (any label accepting the type)."""
    _, labels = load()
    mine = [label for label in labels if label.dataset == name and not label.optional]
    pairs = set()
    for request, field, dtype, _ in found:
        for label in mine:
            if dtype in label.types and label.matches(request, field):
                pairs.add((request, coarse(label.types[0])))
    return pairs
