"""Persistence: identifiers that recur across sessions or modes link them.

An incognito session that sends the same distinct_id as the normal one is linkable to it, however
"anonymous" each request looks. Only identifier-shaped values count; constants such as version
strings, app ids and model names recur everywhere and link nothing.

The rule is written once (`recurring_values`, `marked`) and applied two ways: to the Arrow
findings table `phonehome analyze` builds (analysis.arrow_tables.mark_persistence: no pandas)
and to a findings DataFrame (`mark_persistence`, for library callers holding a frame).
"""

from __future__ import annotations

from collections.abc import Iterable
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


def recurring_values(findings: Iterable[tuple[str, str, str, str]]) -> set[str]:
    """The values of identifier findings seen in at least two (session, mode) pairs.

    `findings`: (data_type, value, session, mode) of every finding. A finding counts when its
    data type is a linking one and its value is identifier-shaped; each distinct data type and
    value is tested once (findings tables repeat a few values a lot).
    """
    typed: dict[str, bool] = {}
    linking: dict[str, bool] = {}
    scopes: dict[str, set[str]] = {}
    for data_type, value, session, mode in findings:
        is_typed = typed.get(data_type)
        if is_typed is None:
            is_typed = typed[data_type] = data_type.startswith(LINKING_PREFIXES)
        if not is_typed:
            continue
        links = linking.get(value)
        if links is None:
            links = linking[value] = _linking_value(value)
        if links:
            scopes.setdefault(value, set()).add(session + "\x00" + mode)
    return {value for value, seen in scopes.items() if len(seen) >= 2}


def marked(evidence: str, confidence: str) -> tuple[str, str]:
    """(evidence, confidence) of a finding whose value recurs: `persistence` added to the
    evidence once, and a low confidence raised to medium, since recurrence is itself evidence
    that the value identifies the device or user."""
    return marked_evidence(evidence), marked_confidence(confidence)


def marked_evidence(evidence: str) -> str:
    """`marked`'s evidence (it does not depend on the confidence: each is mapped on its own)."""
    return evidence if "persistence" in evidence.split("+") else f"{evidence}+persistence"


def marked_confidence(confidence: str) -> str:
    """`marked`'s confidence (it does not depend on the evidence)."""
    return "medium" if confidence == "low" else confidence


def mark_persistence(findings: pd.DataFrame) -> pd.DataFrame:
    """Add `persistence` to the evidence of identifier findings whose value recurs across
    (session, mode) pairs; a low-confidence one becomes medium (see `marked`)."""
    if findings.empty:
        return findings
    findings = findings.copy()
    data_types, values = findings["data_type"], findings["value"]
    recurring = recurring_values(
        zip(
            data_types.tolist(),
            values.tolist(),
            findings["session"].tolist(),
            findings["mode"].tolist(),
            strict=True,
        )
    )
    if not recurring:
        return findings
    typed = data_types.isin([t for t in data_types.unique() if t.startswith(LINKING_PREFIXES)])
    hit = typed & values.isin(recurring)
    updated = [
        marked(*pair)
        for pair in zip(findings.loc[hit, "evidence"], findings.loc[hit, "confidence"], strict=True)
    ]
    findings.loc[hit, "evidence"] = [evidence for evidence, _ in updated]
    findings.loc[hit, "confidence"] = [confidence for _, confidence in updated]
    return findings
