"""Persistence: identifiers that recur across sessions or modes link them.

An incognito session that sends the same distinct_id as the normal one is linkable to it, however
"anonymous" each request looks. Only identifier-shaped values count; constants such as version
strings, app ids and model names recur everywhere and link nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

from phonehome.analysis.classify.shapes import (
    is_identifier_like,
    is_imei,
    is_mac,
    is_mac_bare,
    is_user_id_like,
    is_uuid,
)

LINKING_PREFIXES = ("device_id.", "user_id", "token", "contact.")


def _linking_value(value: str) -> bool:
    return (
        is_identifier_like(value)
        or is_imei(value)
        or is_mac(value)
        or is_mac_bare(value)
        or is_uuid(value)
        or is_user_id_like(value)
        or "@" in value
    )


def mark_persistence(findings: pd.DataFrame) -> pd.DataFrame:
    """Add `persistence` to the evidence of identifier findings whose value recurs across
    (session, mode) pairs; a low-confidence one becomes medium, since recurrence is itself
    evidence that the value identifies the device or user."""
    if findings.empty:
        return findings
    findings = findings.copy()
    # tests per distinct value, then vectorised lookups: findings tables repeat a few values a lot
    data_types = findings["data_type"]
    typed = data_types.isin([t for t in data_types.unique() if t.startswith(LINKING_PREFIXES)])
    values = findings["value"]
    candidate = typed & values.isin([v for v in values[typed].unique() if _linking_value(v)])
    if not candidate.any():
        return findings
    scope = findings.loc[candidate, "session"] + "\x00" + findings.loc[candidate, "mode"]
    spread = scope.groupby(values[candidate]).nunique()
    recurring = set(spread[spread >= 2].index)
    hit = candidate & values.isin(recurring)
    if not hit.any():
        return findings
    evidence = findings.loc[hit, "evidence"]
    marked = {e: e if "persistence" in e.split("+") else f"{e}+persistence" for e in evidence.unique()}
    findings.loc[hit, "evidence"] = evidence.map(marked)
    findings.loc[hit & (findings["confidence"] == "low"), "confidence"] = "medium"
    return findings
