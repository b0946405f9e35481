"""Evidence a reader can check: findings grouped by (app, mode, destination, data type), with counts.

At 30,000 flows a report holds tens of thousands of findings; one HTML row each made a 17 MB page
nobody could open. A reader checks a claim group by group ("did the incognito session send visited
URLs to sa.api.intl.miui.com?"), so the report shows one entry per group with its counts and one
worked example, and the full rows stay in the CSV/Parquet tables written next to the report.

Each group has a stable anchor id (`ev-` + 12 hex digits of the labels, never of values, so a
redacted report keeps the same ids): the verdicts package defines it, and headlines and comparison
rows link to it.
"""

from __future__ import annotations

import hashlib

import pandas as pd

try:  # the one definition, in the verdicts package (issue 16)
    from phonehome.analysis.verdicts.evidence import evidence_id
except ImportError:  # pragma: no cover - until the verdicts package ships it

    def evidence_id(app: str, mode: str, host: str, data_type: str) -> str:
        """The id of the findings of `app` in `mode` sending `data_type` to `host`."""
        joined = "\x00".join((app or "", mode or "", host or "", data_type or "")).encode(
            "utf-8", "surrogatepass"
        )
        return "ev-" + hashlib.sha1(joined, usedforsecurity=False).hexdigest()[:12]


GROUP_KEYS: tuple[str, ...] = ("app", "mode", "host", "data_type")

#: Columns of the groups table, in order (also written as evidence_groups.csv/.parquet).
GROUP_COLUMNS: tuple[str, ...] = (
    "evidence_id",
    "app",
    "mode",
    "host",
    "owner",
    "category",
    "data_type",
    "findings",
    "requests",
    "values",
    "phases",
    "first_seen",
    "last_seen",
    "fields",
    "encodings",
    "evidence",
    "confidence",
    "example_flow_id",
    "example_field",
    "example_value",
    "example_url",
    "example_method",
    "example_location",
    "example_encodings",
    "example_timestamp",
    "example_phase",
)

_CONFIDENCE_RANK = {"high": 0, "medium": 1, "low": 2}
_TYPE_ORDER = ("url", "search_query", "device_id.", "token", "user_id", "contact.", "location.")
_MAX_LISTED = 4  # field paths named per group; the CSV holds every row


def type_rank(data_type: str) -> int:
    """What a reader cares about first: browsing data, then identifiers, then the rest."""
    for rank, prefix in enumerate(_TYPE_ORDER):
        if data_type == prefix or (prefix.endswith(".") and data_type.startswith(prefix)):
            return rank
    return len(_TYPE_ORDER)


def mode_rank(mode: str) -> tuple[int, str]:
    """The baseline first, then incognito, then the other modes by name."""
    return ({"normal": 0, "incognito": 1}.get(mode, 2), mode)


def phases_of(findings: pd.DataFrame, flows: pd.DataFrame) -> pd.Series:
    """Each finding's phase: its own column when the findings carry it, else its flow's."""
    if "phase" in findings.columns:
        return findings["phase"].fillna("").astype(str)
    if flows.empty or "phase" not in flows.columns or findings.empty:
        return pd.Series([""] * len(findings), index=findings.index, dtype=object)
    by_flow = dict(zip(flows["flow_id"], flows["phase"].fillna("").astype(str), strict=True))
    return findings["flow_id"].map(lambda f: by_flow.get(f, "")).astype(object)


def _joined(values: pd.Series, limit: int = _MAX_LISTED) -> str:
    distinct = sorted({str(v) for v in values if str(v)})
    more = len(distinct) - limit
    return ", ".join(distinct[:limit]) + (f", … ({more} more)" if more > 0 else "")


def evidence_groups(findings: pd.DataFrame, flows: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (app, mode, host, data type): counts, and the example a reader should look at.

    The example is the group's most confident finding, earliest first: the request a worked example
    re-decodes step by step.
    """
    flows = flows if flows is not None else pd.DataFrame()
    if findings.empty:
        return pd.DataFrame(columns=list(GROUP_COLUMNS))
    frame = findings.assign(
        phase_=phases_of(findings, flows),
        app=findings["app"].fillna("").astype(str) if "app" in findings.columns else "",
        rank_=findings["confidence"].map(lambda c: _CONFIDENCE_RANK.get(str(c), 3)),
    )
    rows = []
    for key, group in frame.groupby(list(GROUP_KEYS), sort=False):
        app, mode, host, data_type = (str(k) for k in key)
        example = group.sort_values(["rank_", "timestamp"], kind="stable").iloc[0]
        evidence_kinds = sorted({part for e in group["evidence"] for part in str(e).split("+") if part})
        rows.append(
            (
                evidence_id(app, mode, host, data_type),
                app,
                mode,
                host,
                str(example["owner"] or ""),
                str(example["category"] or ""),
                data_type,
                len(group),
                group["flow_id"].nunique(),
                group["value"].nunique(),
                _joined(group["phase_"]),
                float(group["timestamp"].min()),
                float(group["timestamp"].max()),
                _joined(group["field"]),
                _joined(group["encodings"]),
                "+".join(evidence_kinds),
                min(group["confidence"], key=lambda c: _CONFIDENCE_RANK.get(str(c), 3)),
                str(example["flow_id"]),
                str(example["field"]),
                str(example["value"]),
                str(example["url"]),
                str(example["method"]),
                str(example["location"]),
                str(example["encodings"]),
                float(example["timestamp"]),
                str(example["phase_"]),
            )
        )
    groups = pd.DataFrame(rows, columns=list(GROUP_COLUMNS))
    order = sorted(
        range(len(groups)),
        key=lambda i: (
            groups.at[i, "app"] == "",
            groups.at[i, "app"],
            mode_rank(groups.at[i, "mode"]),
            type_rank(groups.at[i, "data_type"]),
            groups.at[i, "data_type"],
            -groups.at[i, "findings"],
            groups.at[i, "host"],
        ),
    )
    return groups.iloc[order].reset_index(drop=True)
