"""Redaction for sharing: identifier, token, cookie and Authorization values become short stable hashes.

The same value always maps to the same tag (``redacted-1a2b3c4d``), so a reader can still see that
the incognito session carried the same identifier as the normal one without learning the value.
"""

from __future__ import annotations

import hashlib

import pandas as pd

SENSITIVE_PREFIXES: tuple[str, ...] = ("device_id.", "token", "user_id", "contact.", "location.", "network.")
SENSITIVE_FIELD_WORDS: tuple[str, ...] = ("authorization", "cookie", "token", "session", "auth")


def tag(value: str) -> str:
    """A short stable stand-in for a sensitive value."""
    return "redacted-" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:8]


def is_sensitive(data_type: str, location: str, field: str) -> bool:
    """True for identifiers, tokens and anything carried in a cookie or an auth-like header."""
    if data_type.startswith(SENSITIVE_PREFIXES):
        return True
    if location == "cookie":
        return True
    return location == "header" and any(word in field.lower() for word in SENSITIVE_FIELD_WORDS)


def sensitive_mask(findings: pd.DataFrame) -> list[bool]:
    """Per findings row: does its value need hiding?"""
    return [
        is_sensitive(str(t), str(loc), str(f))
        for t, loc, f in zip(findings["data_type"], findings["location"], findings["field"], strict=True)
    ]


def sensitive_values(findings: pd.DataFrame) -> list[str]:
    """The values to hide, longest first so overlapping values are replaced whole."""
    if findings.empty:
        return []
    values = {str(v) for v in findings.loc[sensitive_mask(findings), "value"] if len(str(v)) >= 4}
    return sorted(values, key=len, reverse=True)


def scrub(text: str, values: list[str]) -> str:
    """text with every sensitive value replaced by its tag."""
    for value in values:
        if value in text:
            text = text.replace(value, tag(value))
    return text


def redact_frame(frame: pd.DataFrame, values: list[str], columns: tuple[str, ...]) -> pd.DataFrame:
    """A copy of frame with the sensitive values scrubbed from the given text columns."""
    out = frame.copy()
    for column in columns:
        if column in out.columns:
            out[column] = out[column].map(lambda v: scrub(v, values) if isinstance(v, str) else v)
    return out


TEXT_COLUMNS: tuple[str, ...] = ("url", "value", "field", "detail", "host")


def redact_tables(
    findings: pd.DataFrame, flows: pd.DataFrame, contacts: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The three tables with every sensitive value (from the findings) replaced by its tag."""
    values = sensitive_values(findings)
    return (
        redact_frame(findings, values, TEXT_COLUMNS),
        redact_frame(flows, values, TEXT_COLUMNS),
        redact_frame(contacts, values, TEXT_COLUMNS),
    )
