"""Moved to phonehome.analysis.redact, so that the HAR export (and anything else that redacts) need
not import the report package and matplotlib. Re-exported here only until the last importers
(tests/test_report.py, analysis/cli/analyze.py) use the new path; then this file goes."""

from __future__ import annotations

from phonehome.analysis.redact import (
    NOTICE,
    REDACTION_NOTICE,
    SENSITIVE_FIELD_WORDS,
    SENSITIVE_PREFIXES,
    is_sensitive,
    redact_frame,
    redact_tables,
    scrub,
    sensitive_mask,
    sensitive_values,
    tag,
)

__all__ = [
    "NOTICE",
    "REDACTION_NOTICE",
    "SENSITIVE_FIELD_WORDS",
    "SENSITIVE_PREFIXES",
    "is_sensitive",
    "redact_frame",
    "redact_tables",
    "scrub",
    "sensitive_mask",
    "sensitive_values",
    "tag",
]
