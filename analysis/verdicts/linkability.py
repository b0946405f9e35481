"""Linkability: which values tie one session or mode of an app to another (per app).

An incognito session is only private if nothing in it recurs elsewhere. The classifier marks a
value `persistence` when it recurs across sessions or modes (analysis.classify.persistence);
constants every phone sends (model, OS version, app id) are left unmarked and link nothing. Here
each such value is listed per app with the modes it was seen in, its destinations, and the other
apps that sent the same value (a cross-app identifier).
"""

from __future__ import annotations

import pandas as pd

from phonehome.analysis.modes import BASELINE
from phonehome.analysis.verdicts.evidence import evidence_id, join_ids

COLUMNS: list[str] = [
    "app",
    "data_type",
    "value",
    "modes",
    "links_modes",
    "hosts",
    "requests",
    "other_apps",
    "evidence_id",
]

# Browsing data recurs because the user repeats it, not because it identifies them.
_NOT_IDENTIFIERS = ("url", "search_query")


def linkable(findings: pd.DataFrame) -> pd.DataFrame:
    """Persistence-marked values per app: modes, hosts, requests, other apps, evidence ids."""
    if findings.empty:
        return pd.DataFrame(columns=COLUMNS)
    findings = findings[["app", "mode", "host", "flow_id", "data_type", "value", "evidence"]]
    candidates = findings[
        ~findings["data_type"].isin(_NOT_IDENTIFIERS)
        & (findings["value"] != "")
        & findings["evidence"].str.contains("persistence", regex=False)
    ]
    if candidates.empty:
        return pd.DataFrame(columns=COLUMNS)
    apps_by_value = candidates.groupby("value")["app"].agg(lambda s: set(s))
    rows = []
    for (app, data_type, value), group in candidates.groupby(["app", "data_type", "value"], sort=True):
        modes = sorted(set(group["mode"]), key=lambda m: (m != BASELINE, m))
        hosts = sorted(set(group["host"]))
        others = sorted(apps_by_value[value] - {app})
        ids = [evidence_id(app, m, h, data_type) for m in modes for h in hosts if _has(group, m, h)]
        rows.append(
            (
                app,
                data_type,
                value,
                ", ".join(modes),
                len(modes) > 1,
                ", ".join(hosts),
                int(group["flow_id"].nunique()),
                ", ".join(a or "(no app label)" for a in others),
                join_ids(ids),
            )
        )
    frame = pd.DataFrame(rows, columns=COLUMNS)
    return frame.sort_values(
        ["app", "links_modes", "data_type", "value"], ascending=[True, False, True, True], kind="stable"
    ).reset_index(drop=True)


def _has(group: pd.DataFrame, mode: str, host: str) -> bool:
    return bool(((group["mode"] == mode) & (group["host"] == host)).any())
