"""The run at a glance when it holds several apps, and the warning when one capture mixes apps.

A report covers each app on its own (DESIGN.md "Modes and apps"); the overview lines them up:
apps × data types × destinations, in long form (one row per app, data type and destination).
Apps are told apart only by their labels: the label active when a request was recorded. One phone
runs many apps at once, so a capture holding several apps may attribute one app's background
traffic to another — worth a warning.
"""

from __future__ import annotations

import os

import pandas as pd

from phonehome.analysis.modes import BASELINE
from phonehome.analysis.verdicts.evidence import evidence_id, join_ids
from phonehome.analysis.verdicts.frames import apps_of

COLUMNS: list[str] = ["app", "data_type", "host", "owner", "category", "modes", "requests", "evidence_id"]


def overview(findings: pd.DataFrame) -> pd.DataFrame:
    """apps × data types × destinations: modes and distinct requests for each."""
    if findings.empty:
        return pd.DataFrame(columns=COLUMNS)
    rows = []
    for (app, data_type, host), group in findings.groupby(["app", "data_type", "host"], sort=True):
        modes = sorted(set(group["mode"]), key=lambda m: (m != BASELINE, m))
        rows.append(
            (
                app,
                data_type,
                host,
                str(group["owner"].iloc[0] or ""),
                str(group["category"].iloc[0] or ""),
                ", ".join(modes),
                int(group["flow_id"].nunique()),
                join_ids([evidence_id(app, m, host, data_type) for m in modes]),
            )
        )
    return pd.DataFrame(rows, columns=COLUMNS)


def mixed_app_warnings(flows: pd.DataFrame, contacts: pd.DataFrame) -> list[str]:
    """One warning per capture (session name and folder) whose traffic carries several app labels."""
    frames = [f[["session", "app", "source"]] for f in (flows, contacts) if not f.empty and "source" in f]
    if not frames:
        return []
    labels = pd.concat(frames, ignore_index=True)
    labels["folder"] = labels["source"].astype(str).map(os.path.dirname)
    labels = labels.drop(columns="source").drop_duplicates()
    warnings = []
    for (session, _), group in labels.groupby(["session", "folder"], sort=True):
        apps = apps_of(group)
        if len(apps) > 1:
            names = ", ".join(a or "(no app label)" for a in apps)
            warnings.append(
                f"session {session or '(unnamed)'}: one capture holds traffic of {len(apps)} apps ({names}); "
                "each request is attributed to the app label active when it was recorded, so background "
                "traffic of one app can carry another's label"
            )
    return warnings
