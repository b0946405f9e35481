"""Mode comparison: per app, the baseline mode (`normal`) against each other mode of the study.

For every destination and data type an app sent in either mode of a pair, the row says whether it
was sent in both, only in one, or not seen in the other — and, when the other mode has no traffic
of this app at all, that the mode was **not tested** (never "vanishes": absence of a test is not a
result). A row where the data was not seen says why it may still have been sent (the host was not
decrypted in that mode, payloads were opaque or not fully decoded, the host was not contacted), from
the coverage table.
Pairs come from phonehome.analysis.modes.comparison_pairs: incognito always, every mode seen in the
run, and any mode the study declares (e.g. `incognito-optout`).
"""

from __future__ import annotations

import pandas as pd

from phonehome.analysis.modes import BASELINE, comparison_pairs
from phonehome.analysis.verdicts.coverage import describe_holes
from phonehome.analysis.verdicts.evidence import evidence_id, join_ids
from phonehome.analysis.verdicts.frames import apps_of, modes_tested

COLUMNS: list[str] = [
    "app",
    "baseline",
    "mode",
    "host",
    "owner",
    "data_type",
    "baseline_requests",
    "mode_requests",
    "status",
    "caveat",
    "evidence_id",
]

# Status codes, in report order (the `status` column holds the sentence; see status_text).
BOTH, ONLY_MODE, NOT_SENT, NOT_SEEN, NOT_TESTED, BASELINE_NOT_TESTED = (
    "both",
    "only_mode",
    "not_sent",
    "not_seen",
    "not_tested",
    "baseline_not_tested",
)
_ORDER = {BOTH: 0, ONLY_MODE: 1, NOT_SEEN: 2, NOT_SENT: 3, NOT_TESTED: 4, BASELINE_NOT_TESTED: 5}


def status_text(code: str, baseline: str, mode: str) -> str:
    """The words for a status code: 'sent in both', 'only in incognito', 'incognito not tested'..."""
    return {
        BOTH: f"sent in both ({baseline} and {mode})",
        ONLY_MODE: f"only in {mode}",
        NOT_SENT: f"not sent in {mode}",
        NOT_SEEN: f"not seen in {mode}",
        NOT_TESTED: f"{mode} not tested",
        BASELINE_NOT_TESTED: f"only in {mode} ({baseline} not tested)",
    }[code]


def all_modes(*frames: pd.DataFrame) -> set[str]:
    modes: set[str] = set()
    for frame in frames:
        if not frame.empty:
            modes |= {str(m) for m in frame["mode"].unique()}
    return modes


def study_pairs(
    findings: pd.DataFrame, flows: pd.DataFrame, contacts: pd.DataFrame, declared: tuple[str, ...] = ()
) -> list[tuple[str, str]]:
    """(baseline, other) for the whole run: every app is compared on the same modes."""
    return comparison_pairs(all_modes(findings, flows, contacts), declared)


def mode_comparison(
    findings: pd.DataFrame,
    flows: pd.DataFrame,
    contacts: pd.DataFrame,
    coverage: pd.DataFrame,
    declared: tuple[str, ...] = (),
) -> pd.DataFrame:
    """Baseline vs each other mode, per app, destination and data type (COLUMNS)."""
    if findings.empty:
        return pd.DataFrame(columns=COLUMNS)
    pairs = study_pairs(findings, flows, contacts, declared)
    tested = modes_tested(flows, contacts)
    for app, mode in findings[["app", "mode"]].drop_duplicates().itertuples(index=False):
        tested.setdefault(str(app), set()).add(str(mode))  # a finding is traffic too
    requests = findings.groupby(["app", "host", "data_type", "mode"], sort=True)["flow_id"].nunique()
    owners = findings.groupby(["app", "host"], sort=False)["owner"].first()
    decrypted = (
        flows.groupby(["app", "mode", "host"], sort=False).size() if not flows.empty else pd.Series(dtype=int)
    )
    rows = []
    for app in apps_of(findings):
        app_requests = requests.loc[app]
        app_tested = tested.get(app, set())
        targets = sorted({(h, d) for h, d, _ in app_requests.index})
        for base, other in pairs:
            for host, data_type in targets:
                b = int(app_requests.get((host, data_type, base), 0))
                o = int(app_requests.get((host, data_type, other), 0))
                if not b and not o:
                    continue
                code, caveat = _judge(app, base, other, host, b, o, app_tested, decrypted, coverage)
                ids = []
                if o:
                    ids.append(evidence_id(app, other, host, data_type))
                if b:
                    ids.append(evidence_id(app, base, host, data_type))
                rows.append(
                    (
                        app,
                        base,
                        other,
                        host,
                        str(owners.get((app, host), "") or ""),
                        data_type,
                        b,
                        o,
                        code,
                        caveat,
                        join_ids(ids),
                    )
                )
    frame = pd.DataFrame(rows, columns=COLUMNS)
    if frame.empty:
        return frame
    frame["_order"] = frame["status"].map(_ORDER)
    frame["_pair"] = frame["mode"].map({o: i for i, (_, o) in enumerate(pairs)})
    frame = frame.sort_values(["app", "_pair", "_order", "host", "data_type"], kind="stable")
    frame["status"] = [
        status_text(c, b, m)
        for c, b, m in zip(frame["status"], frame["baseline"], frame["mode"], strict=True)
    ]
    return frame[COLUMNS].reset_index(drop=True)


def status_code(text: str, baseline: str, mode: str) -> str:
    """The code of a status sentence (the inverse of status_text)."""
    for code in _ORDER:
        if status_text(code, baseline, mode) == text:
            return code
    raise ValueError(f"not a comparison status: {text!r}")


def _judge(
    app: str,
    base: str,
    other: str,
    host: str,
    b: int,
    o: int,
    tested: set[str],
    decrypted: pd.Series,
    coverage: pd.DataFrame,
) -> tuple[str, str]:
    """(status code, caveat) of one destination and data type in one pair."""
    if other not in tested:
        return NOT_TESTED, f"no traffic of this app was captured in {other} mode"
    if b and o:
        return BOTH, ""
    if o:
        if base not in tested:
            return BASELINE_NOT_TESTED, f"no traffic of this app was captured in {base} mode"
        return ONLY_MODE, _hole_note(app, base, host, decrypted, coverage)
    # sent in the baseline, absent from `other`: say what `other` could and could not see
    note = _hole_note(app, other, host, decrypted, coverage)
    seen = int(decrypted.get((app, other, host), 0))
    if seen and not note:
        return NOT_SENT, f"{seen} decrypted request(s) to this host in {other} mode did not carry it"
    return NOT_SEEN, note or f"this host was not contacted in {other} mode"


def _hole_note(app: str, mode: str, host: str, decrypted: pd.Series, coverage: pd.DataFrame) -> str:
    """What of `host` was not seen for `app` in `mode` ('' when it was all decrypted)."""
    if coverage.empty:
        return ""
    rows = coverage[(coverage["app"] == app) & (coverage["mode"] == mode) & (coverage["host"] == host)]
    if rows.empty:
        return ""
    seen = int(decrypted.get((app, mode, host), 0))
    prefix = f"{seen} decrypted request(s) to this host in {mode} mode, but " if seen else f"in {mode} mode, "
    return prefix + describe_holes(rows)


__all__ = ["BASELINE", "COLUMNS", "mode_comparison", "status_code", "status_text", "study_pairs"]
