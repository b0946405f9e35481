"""Canary recall (DESIGN.md "Test plan and canaries"): which canaries of a plan left the device.

A canary's token is unguessable, so a finding whose value holds it proves that the step which
used it left the device, whatever the classifier thought of the field. Recall is counted per app,
per mode the canary was *opened* in (the plan's mode, even if the batch holding it was uploaded
after the tester moved on to the next mode: the `sent_in` column says when it went), and per
destination, with the encodings that had to be undone to see it, and every canary not seen named.

A mode without traffic for the app is "not tested", never "0 of N left"; when nothing was seen
but hosts were contacted without being decrypted in that mode, the sentence says that canaries
may have gone there unseen.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from phonehome.analysis.plan import Canary, Plan
from phonehome.analysis.verdicts.evidence import evidence_ids, join_ids

COLUMNS: tuple[str, ...] = (
    "app",
    "mode",
    "canaries",
    "destination",
    "seen",
    "planned",
    "encodings",
    "sent_in",
    "not_seen",
    "finding_ids",
    "summary",
    "evidence_ids",
)
KIND_WORDS = {
    "url": ("canary URL", "canary URLs", "opened"),
    "search_query": ("canary search", "canary searches", "typed"),
}
ANY_DESTINATION = "(any)"


def finding_ids(rows: pd.DataFrame) -> list[str]:
    """Stable ids of findings, `<flow_id>#<field>`: the request and the place in it, enough to find
    the row in the evidence table and the flow in mitmweb."""
    return [f"{flow}#{path}" for flow, path in zip(rows["flow_id"], rows["field"], strict=True)]


def _matches(findings: pd.DataFrame, canary: Canary) -> pd.DataFrame:
    if findings.empty:
        return findings
    values = findings["value"].astype(str).str.lower()
    return findings[values.str.contains(canary.token, regex=False)]


def _chains(rows: pd.DataFrame) -> str:
    chains = sorted({c.replace(">", "+") for c in rows["encodings"] if c})
    plain = (rows["encodings"] == "").any()
    return " / ".join(chains + (["plain"] if plain else []))


def _where(host: str, owner: str) -> str:
    return f"{host} ({owner})" if owner else host


def _apps(plans: Sequence[Plan], findings: pd.DataFrame, flows: pd.DataFrame) -> list[str]:
    apps = sorted({a for a in flows["app"] if a}) if not flows.empty else []
    wanted = {p.app for p in plans if p.app}
    if wanted and wanted & set(apps):
        apps = sorted(wanted & set(apps))
    return apps or sorted(wanted) or [""]


def canary_recall(
    plans: Sequence[Plan],
    findings: pd.DataFrame,
    flows: pd.DataFrame,
    contacts: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per (app, mode, kind): how many canaries left and to where; then one per destination."""
    rows: list[tuple] = []
    if not plans:
        return pd.DataFrame(columns=list(COLUMNS))
    canaries = [c for plan in plans for c in plan.canaries]
    modes = list(dict.fromkeys(c.mode for c in canaries))
    for app in _apps(plans, findings, flows):
        app_findings = findings[findings["app"].fillna("") == app] if not findings.empty else findings
        app_flows = flows[flows["app"].fillna("") == app] if not flows.empty else flows
        for mode in modes:
            for kind in KIND_WORDS:
                planned = [c for c in canaries if c.mode == mode and c.kind == kind]
                if planned:
                    rows += _rows(app, mode, kind, planned, app_findings, app_flows, contacts)
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _rows(
    app: str,
    mode: str,
    kind: str,
    planned: list[Canary],
    findings: pd.DataFrame,
    flows: pd.DataFrame,
    contacts: pd.DataFrame | None,
) -> list[tuple]:
    one, many, verb = KIND_WORDS[kind]
    noun = one if len(planned) == 1 else many
    hits = {c.id: _matches(findings, c) for c in planned}
    left = [c for c in planned if not hits[c.id].empty]
    missing = [c for c in planned if hits[c.id].empty]
    tested = (not flows.empty and (flows["mode"] == mode).any()) or bool(left)
    who = f"{app}: " if app else ""
    if not tested:
        sentence = (
            f"{who}{mode} mode not tested: no traffic in {mode} mode, so none of the {len(planned)} "
            f"{noun} {verb} in it can be judged."
        )
        return [
            (app, mode, many, ANY_DESTINATION, 0, len(planned), "", "", _names(missing), "", sentence, "")
        ]
    all_hits = pd.concat([hits[c.id] for c in left]) if left else findings.iloc[0:0]
    destinations = []
    for (host, owner), group in all_hits.groupby(["host", "owner"], sort=True):
        seen_here = [c for c in planned if not hits[c.id].empty and (hits[c.id]["host"] == host).any()]
        destinations.append((host, owner, group, seen_here))
    destinations.sort(key=lambda d: (-len(d[3]), d[0]))
    if left:
        to = "; ".join(f"to {_where(h, o)}, {_chains(g)}" for h, o, g, _ in destinations)
        sentence = f"{who}{len(left)} of {len(planned)} {noun} {verb} in {mode} left the device, {to}."
    else:
        sentence = f"{who}0 of {len(planned)} {noun} {verb} in {mode} were seen leaving the device."
        blind = _not_decrypted(contacts, app, mode)
        if blind:
            sentence += (
                f" {len(blind)} host(s) contacted in {mode} mode were not decrypted "
                f"({', '.join(blind[:5])}{', ...' if len(blind) > 5 else ''}): "
                "canaries may have gone there unseen."
            )
    if missing:
        sentence += f" Not seen: {_names(missing)}."
    out = [
        (
            app,
            mode,
            many,
            ANY_DESTINATION,
            len(left),
            len(planned),
            _chains(all_hits) if left else "",
            _sent_in(all_hits),
            _names(missing),
            "; ".join(finding_ids(all_hits)),
            sentence,
            join_ids(list(evidence_ids(all_hits))),
        )
    ]
    for host, owner, group, seen_here in destinations:
        absent = [c for c in planned if c not in seen_here]
        line = (
            f"{who}{len(seen_here)} of {len(planned)} {noun} {verb} in {mode} reached {_where(host, owner)}, "
            f"{_chains(group)}."
        )
        out.append(
            (
                app,
                mode,
                many,
                host,
                len(seen_here),
                len(planned),
                _chains(group),
                _sent_in(group),
                _names(absent),
                "; ".join(finding_ids(group)),
                line,
                join_ids(list(evidence_ids(group))),
            )
        )
    return out


def _names(canaries: list[Canary]) -> str:
    return ", ".join(f"{c.id} ({c.value})" for c in canaries)


def _sent_in(rows: pd.DataFrame) -> str:
    return ", ".join(sorted({str(m) for m in rows["mode"]})) if not rows.empty else ""


def _not_decrypted(contacts: pd.DataFrame | None, app: str, mode: str) -> list[str]:
    if contacts is None or contacts.empty:
        return []
    rows = contacts[(contacts["kind"] != "dns") & (contacts["mode"] == mode)]
    if app:
        rows = rows[rows["app"].fillna("") == app]
    return sorted(set(rows["host"]))
