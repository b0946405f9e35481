"""Evidence keys: the link from a verdict (a headline, a comparison row) to the findings deciding it.

A verdict is only publishable with its evidence one click away. Findings are grouped the way a
reader checks them — one app, one mode, one destination, one data type — and each group gets a
short stable id (`ev-` and 12 hex digits) that the evidence table carries on every row, so a
renderer can anchor the group once and link to it from anywhere. Ids depend only on the labels,
never on values, so a redacted report keeps the same ids as the unredacted one.
"""

from __future__ import annotations

import hashlib

import pandas as pd

EVIDENCE_PREFIX = "ev-"
COVERAGE_PREFIX = "cv-"


def _digest(parts: tuple[str, ...]) -> str:
    joined = "\x00".join(parts).encode("utf-8", "surrogatepass")
    return hashlib.sha1(joined, usedforsecurity=False).hexdigest()[:12]


def evidence_id(app: str, mode: str, host: str, data_type: str) -> str:
    """The id of the findings of `app` in `mode` sending `data_type` to `host`."""
    return EVIDENCE_PREFIX + _digest((app or "", mode or "", host or "", data_type or ""))


def coverage_id(app: str, mode: str, host: str, kind: str) -> str:
    """The id of a coverage row: what was not seen of `host` for `app` in `mode`."""
    return COVERAGE_PREFIX + _digest((app or "", mode or "", host or "", kind or ""))


def evidence_ids(findings: pd.DataFrame) -> pd.Series:
    """Each finding's evidence id (computed once per distinct group, not per row)."""
    if findings.empty:
        return pd.Series([], index=findings.index, dtype=object)
    keys = list(zip(findings["app"], findings["mode"], findings["host"], findings["data_type"], strict=True))
    ids = {key: evidence_id(*(str(k) for k in key)) for key in set(keys)}
    return pd.Series([ids[key] for key in keys], index=findings.index, dtype=object)


def join_ids(ids: list[str] | tuple[str, ...]) -> str:
    """Several ids in one cell: space-separated, in order, without repeats."""
    return " ".join(dict.fromkeys(i for i in ids if i))
