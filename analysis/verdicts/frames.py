"""Table hygiene shared by the verdicts: one spelling of every mode, apps as text.

Readers normalise labels as they read (analysis.labels), but a verdict must not invert because an
older dump, a hand-built frame or a HAR comment said `Incognito`: the verdicts normalise the mode
column once more (cheap: once per distinct value) with the one vocabulary, analysis.modes.
"""

from __future__ import annotations

import pandas as pd

from phonehome.analysis.modes import LabelError, normalize_mode


def cell_text(value: object) -> str:
    """A cell as text: "" for None, NaN and NA (a missing owner is no owner, not "nan")."""
    missing = value is None or value is pd.NA or (isinstance(value, float) and value != value)
    return "" if missing else str(value)


def _mode_or_raw(value: object) -> str:
    text = cell_text(value)
    try:
        return normalize_mode(text)
    except LabelError:
        return text  # kept as it was: a reader has already warned about it


def normalised(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with its `mode` column in canonical spelling and `app` as text ("" = no app label).

    Returns the frame itself when nothing changes, a copy otherwise.
    """
    if frame.empty or "mode" not in frame.columns:
        return frame
    changes = {}
    modes = {m: _mode_or_raw(m) for m in frame["mode"].unique()}
    if any(k != v for k, v in modes.items()):
        changes["mode"] = frame["mode"].map(modes).astype(object)
    if "app" in frame.columns and frame["app"].isna().any():
        changes["app"] = frame["app"].where(frame["app"].notna(), "").astype(object)
    return frame.assign(**changes) if changes else frame


def apps_of(*frames: pd.DataFrame) -> list[str]:
    """Every app label in the tables, sorted, "" (traffic without an app label) last."""
    apps: set[str] = set()
    for frame in frames:
        if not frame.empty and "app" in frame.columns:
            apps |= {str(a) if a is not None else "" for a in frame["app"].unique()}
    return sorted(apps, key=lambda a: (a == "", a))


def modes_tested(flows: pd.DataFrame, contacts: pd.DataFrame) -> dict[str, set[str]]:
    """Per app, the modes with any captured traffic (decrypted requests or other contacts).

    A mode is "tested" for an app when something of that app was captured in it; a mode absent
    here is "not tested", whatever the findings say.
    """
    tested: dict[str, set[str]] = {}
    for frame in (flows, contacts):
        if frame.empty:
            continue
        for app, mode in frame[["app", "mode"]].drop_duplicates().itertuples(index=False):
            tested.setdefault(str(app or ""), set()).add(str(mode))
    return tested
