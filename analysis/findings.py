"""The findings table: the one output every report, plot and test agrees on (DESIGN.md)."""

from __future__ import annotations

from dataclasses import astuple, dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pandas is imported where frames are built: analysing starts without it
    import pandas as pd

FINDINGS_COLUMNS: tuple[str, ...] = (
    "session",
    "app",
    "mode",
    "flow_id",
    "timestamp",
    "method",
    "host",
    "site",
    "owner",
    "category",
    "party",
    "url",
    "location",
    "field",
    "encodings",
    "data_type",
    "value",
    "confidence",
    "evidence",
    # added after DESIGN.md's columns (which it allows): the request's phase label, "" when none
    "phase",
)

FLOWS_COLUMNS: tuple[str, ...] = (
    "session",
    "app",
    "mode",
    "phase",
    "flow_id",
    "timestamp",
    "method",
    "host",
    "site",
    "owner",
    "category",
    "party",
    "url",
    "status",
    "request_size",
    "response_size",
    "request_content_type",
    "response_content_type",
    "fields",
    "decode_truncated",
    "source",
    "opaque_bytes",  # request body bytes no decoder could open (coverage: payloads sent but opaque)
    "tls_version",  # negotiated with the destination ("TLSv1.2"), empty when unknown or plain HTTP
    "tls_cipher",
)

CONTACTS_COLUMNS: tuple[str, ...] = (
    "session",
    "app",
    "mode",
    "phase",
    "timestamp",
    "host",
    "site",
    "owner",
    "category",
    "kind",
    "detail",
    "server_ip",
    "source",
)

CATEGORIES: tuple[str, ...] = (
    "analytics",
    "advertising",
    "crash_reporting",
    "telemetry",
    "social",
    "cdn",
    "push",
    "api",
    "unknown",
)

DATA_TYPES: tuple[str, ...] = (
    "url",
    "search_query",
    "device_id.imei",
    "device_id.android_id",
    "device_id.advertising_id",
    "device_id.oaid",
    "device_id.serial",
    "device_id.mac",
    "device_id.imsi",
    "device_id.iccid",
    "device_id.other",
    "token",
    "user_id",
    "location.gps",
    "location.wifi",
    "contact.email",
    "contact.phone",
    "network.local_ip",
    "device.model",
    "device.os_version",
    "app.id",
    "app.installed_list",
)

LOCATIONS: tuple[str, ...] = ("url_path", "query", "header", "cookie", "body")
CONFIDENCES: tuple[str, ...] = ("high", "medium", "low")
EVIDENCE: tuple[str, ...] = ("known-value", "key-name", "value-shape", "persistence")


@dataclass(slots=True)
class Finding:
    """One piece of data detected in one request; field order is FINDINGS_COLUMNS."""

    session: str
    app: str | None
    mode: str
    flow_id: str
    timestamp: float
    method: str
    host: str
    site: str
    owner: str
    category: str
    party: str
    url: str
    location: str
    field: str
    encodings: str
    data_type: str
    value: str
    confidence: str
    evidence: str
    phase: str = ""


def opaque_mask(flows: pd.DataFrame) -> pd.Series:
    """Requests with a body no decoder opened (`opaque_bytes` > 0; all False without the column)."""
    import pandas as pd

    if "opaque_bytes" not in flows:
        return pd.Series(False, index=flows.index)
    return pd.to_numeric(flows["opaque_bytes"], errors="coerce").fillna(0) > 0


def incomplete_mask(flows: pd.DataFrame) -> pd.Series:
    """Requests not fully decoded (`decode_truncated`; all False without the column). True only
    for a true cell: booleans, and the text "True" of a flows table read back from CSV."""
    import pandas as pd

    if "decode_truncated" not in flows:
        return pd.Series(False, index=flows.index)
    column = flows["decode_truncated"]
    if column.dtype == bool:
        return column
    text = column.astype("string").str.strip().str.lower()  # NA stays NA: nullable booleans too
    return (text.eq("true") | text.eq("1")).fillna(False).astype(bool)


def findings_frame(findings: list[Finding] | None = None) -> pd.DataFrame:
    """A findings DataFrame with the DESIGN.md columns in order, also when empty."""
    return findings_from_rows([astuple(f) for f in findings or ()])


def findings_from_rows(rows: list[tuple]) -> pd.DataFrame:
    """The findings DataFrame of row tuples in FINDINGS_COLUMNS order, normalised.

    Built as object columns from the start: letting pandas infer its `str` dtype first and
    converting back cost 20 s per million findings."""
    import pandas as pd

    frame = pd.DataFrame(rows, columns=list(FINDINGS_COLUMNS), dtype=object)
    return normalise_findings(frame)


def normalise_findings(frame: pd.DataFrame) -> pd.DataFrame:
    """Fix dtypes so CSV and Parquet round-trips compare equal: float64 timestamps, every other
    column object dtype holding str ("" for missing)."""
    import pandas as pd
    from pandas.api.types import infer_dtype

    frame = frame.reindex(columns=list(FINDINGS_COLUMNS))
    for column in FINDINGS_COLUMNS:
        values = frame[column]
        if column == "timestamp":
            frame[column] = pd.to_numeric(values, errors="coerce").astype("float64")
        elif values.dtype != object or infer_dtype(values, skipna=False) != "string":
            values = values.astype("object").where(values.notna(), None)
            frame[column] = values.map(lambda v: "" if v is None else str(v)).astype("object")
        # else: already object dtype holding only str (as collected rows are): nothing to fix
    return frame.reset_index(drop=True)
