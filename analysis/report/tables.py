"""The report's tables, built with pandas from the findings, flows and contacts tables (DESIGN.md)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from phonehome.analysis.report import redact as redaction

# Data types a reader cares about most: what they did in the browser.
BROWSING_TYPES: tuple[str, ...] = ("url", "search_query")
PRIVATE_MODES: tuple[str, ...] = ("incognito", "private")


@dataclass(frozen=True)
class Section:
    """One table of the report, headed and explained the same way by every renderer."""

    attribute: str  # the ReportData field holding the table
    heading: str
    intro: str
    empty: str = "None."
    level: int = 2


#: The tables about what was sent, in report order (the HTML report puts its plots after them).
FINDING_SECTIONS: tuple[Section, ...] = (
    Section(
        "claims",
        "Claims vs observations",
        "What the vendor, a policy or a store label says (paraphrased, with its source), and whether the "
        "capture contradicts it, is consistent with it, or cannot decide (and why); finding ids are "
        "flow id#field in the evidence table.",
        "No claims file was given (--claims, or claims.toml in the capture folder).",
    ),
    Section(
        "canaries",
        "Canary recall",
        "The test plan's canary URLs and searches: how many left the device, per mode they were used in "
        "and per destination, and which were not seen.",
        "No test plan (plan.json in the capture folder).",
        level=3,
    ),
    Section(
        "comparison",
        "Normal vs incognito",
        "Each destination and data type: sent in both modes, only in incognito, or not in incognito.",
    ),
    Section(
        "linkable",
        "What the incognito session is linkable by",
        "Values sent in more than one mode: the same value ties the private session to the normal one.",
        "No value was seen in more than one mode.",
        level=3,
    ),
    Section("matrix", "Destinations × data types, per mode", "", "No findings."),
)
#: The tables for checking the findings: what could not be seen, and every finding's evidence.
DETAIL_SECTIONS: tuple[Section, ...] = (
    Section(
        "coverage",
        "Coverage: hosts contacted but not seen",
        "tls_failed: the app refused our certificate (pinning), so its content is unknown; "
        "dns: the name was looked up but no decrypted request followed.",
        "Every contacted host was decrypted.",
    ),
    Section(
        "evidence",
        "Evidence: every finding",
        "The request, where in it the value was found (field path), the encodings undone to reach it "
        "(outermost first), the value, and why it was classified so.",
        "No findings.",
    ),
)


@dataclass
class ReportData:
    """Everything a report shows, already redacted when asked; renderers only format it."""

    title: str
    summary: dict[str, object]
    headlines: list[str]
    matrix: pd.DataFrame
    comparison: pd.DataFrame
    linkable: pd.DataFrame
    evidence: pd.DataFrame
    coverage: pd.DataFrame
    findings: pd.DataFrame
    flows: pd.DataFrame
    contacts: pd.DataFrame
    redacted: bool = False
    warnings: list[str] = field(default_factory=list)
    # filled by the report command from a claims file and a plan (analysis.verdicts.claims/canaries)
    claims: pd.DataFrame = field(default_factory=pd.DataFrame)
    canaries: pd.DataFrame = field(default_factory=pd.DataFrame)


def destination(frame: pd.DataFrame) -> pd.Series:
    """'host (owner)' labels, the way a reader names a destination."""
    owner = frame["owner"].fillna("").astype(str)
    return frame["host"].astype(str) + owner.map(lambda o: f" ({o})" if o else "")


def summary(flows: pd.DataFrame, findings: pd.DataFrame, contacts: pd.DataFrame) -> dict[str, object]:
    """Counts for the summary box."""
    hosts = set(flows["host"]) | set(contacts["host"])
    owners = {o for o in set(flows["owner"]) | set(contacts["owner"]) if o}
    return {
        "sessions": sorted({s for s in flows["session"] if s}),
        "apps": sorted({a for a in flows["app"] if a}),
        "modes": sorted({m for m in flows["mode"] if m}),
        "requests": len(flows),
        "hosts": len(hosts),
        "owners": sorted(owners),
        "findings": len(findings),
        "not_decrypted": int((contacts["kind"] != "dns").sum()) if not contacts.empty else 0,
    }


def headlines(findings: pd.DataFrame) -> list[str]:
    """Plain-words sentences, most important first: browsing data leaving in a private mode."""
    lines: list[str] = []
    if findings.empty:
        return ["No personal data was found in the decrypted requests."]
    modes = [m for m in findings["mode"].unique() if m in PRIVATE_MODES] + [
        m for m in findings["mode"].unique() if m not in PRIVATE_MODES
    ]
    for mode in modes:
        rows = findings[(findings["mode"] == mode) & findings["data_type"].isin(BROWSING_TYPES)]
        groups = sorted(
            rows.groupby(["host", "owner"], sort=True),
            key=lambda item: -item[1]["data_type"].nunique() - (item[1]["encodings"] != "").any(),
        )
        for (host, owner), group in groups:
            kinds = []
            if (group["data_type"] == "url").any():
                kinds.append("visited URLs")
            if (group["data_type"] == "search_query").any():
                kinds.append("search terms")
            chains = sorted({c.replace(">", "+") for c in group["encodings"] if c})
            how = f", {' / '.join(chains)}-encoded" if chains else ", in plain text"
            who = f" ({owner})" if owner else ""
            lines.append(f"In {mode} mode, {' and '.join(kinds)} left the device to {host}{who}{how}.")
    ids = findings[findings["data_type"].str.startswith("device_id.")]
    for mode in modes:
        hosts = sorted(set(ids.loc[ids["mode"] == mode, "host"]))
        if hosts:
            lines.append(
                f"In {mode} mode, device identifiers were sent to {len(hosts)} host(s): {', '.join(hosts)}."
            )
    return lines or ["No browsing data or device identifiers were found in the decrypted requests."]


def matrix(findings: pd.DataFrame) -> pd.DataFrame:
    """Destination (host, owner, category) x data type, counted per mode; tidy long form."""
    if findings.empty:
        return pd.DataFrame(columns=["mode", "host", "owner", "category", "data_type", "count"])
    return (
        findings.groupby(["mode", "host", "owner", "category", "data_type"], sort=True)
        .size()
        .rename("count")
        .reset_index()
    )


def comparison(findings: pd.DataFrame, private: str = "incognito", normal: str = "normal") -> pd.DataFrame:
    """Each (destination, data type) pair: seen in both modes ('persists'), only private, or vanishes."""
    columns = ["host", "owner", "data_type", normal, private, "status"]
    if findings.empty:
        return pd.DataFrame(columns=columns)
    counts = findings.groupby(["host", "owner", "data_type", "mode"]).size().unstack("mode", fill_value=0)
    for mode in (normal, private):
        if mode not in counts.columns:
            counts[mode] = 0
    counts = counts[[normal, private]].reset_index()
    status = []
    for n, p in zip(counts[normal], counts[private], strict=True):
        status.append(
            "persists in " + private if n and p else f"only in {private}" if p else f"vanishes in {private}"
        )
    counts["status"] = status
    counts.columns.name = None
    return counts[columns].sort_values(["status", "host", "data_type"]).reset_index(drop=True)


def linkable(findings: pd.DataFrame) -> pd.DataFrame:
    """Identifiers marked `persistence` (recurring across sessions or modes): what links a private
    session to you. Constants that recur everywhere (model, OS version, app id) link nothing and
    are left out, as the classifier leaves them unmarked."""
    columns = ["data_type", "value", "modes", "hosts", "requests"]
    if findings.empty:
        return pd.DataFrame(columns=columns)
    candidates = findings[~findings["data_type"].isin(BROWSING_TYPES) & (findings["value"] != "")]
    rows = []
    for (data_type, value), group in candidates.groupby(["data_type", "value"], sort=True):
        modes = sorted(set(group["mode"]))
        if group["evidence"].str.contains("persistence").any():
            rows.append(
                (data_type, value, ", ".join(modes), ", ".join(sorted(set(group["host"]))), len(group))
            )
    return pd.DataFrame(rows, columns=columns)


def evidence(findings: pd.DataFrame) -> pd.DataFrame:
    """Every finding, traceable: request, field path, encoding chain, value and why."""
    columns = [
        "mode",
        "timestamp",
        "method",
        "url",
        "host",
        "owner",
        "location",
        "field",
        "encodings",
        "data_type",
        "value",
        "confidence",
        "evidence",
    ]
    return findings.sort_values(["mode", "timestamp", "field"], kind="stable")[columns].reset_index(drop=True)


def coverage(flows: pd.DataFrame, contacts: pd.DataFrame) -> pd.DataFrame:
    """Hosts contacted but not decrypted (pinning), DNS-only hosts: what the report could not see."""
    columns = ["host", "owner", "kind", "modes", "count", "detail"]
    if contacts.empty:
        return pd.DataFrame(columns=columns)
    seen = set(flows["host"])
    rows = []
    for (host, kind), group in contacts.groupby(["host", "kind"], sort=True):
        if kind == "dns" and host in seen:
            continue  # looked up, then decrypted: covered
        details = sorted({str(d) for d in group["detail"] if d})
        rows.append(
            (
                host,
                group["owner"].iloc[0],
                kind,
                ", ".join(sorted(set(group["mode"]))),
                len(group),
                "; ".join(details),
            )
        )
    return pd.DataFrame(rows, columns=columns)


def build_report(analysis, *, redact: bool = False, title: str | None = None) -> ReportData:
    """The report's content from an analysis.pipeline.Analysis (or anything with flows/findings/contacts)."""
    findings, flows, contacts = analysis.findings, analysis.flows, analysis.contacts
    if redact:
        findings, flows, contacts = redaction.redact_tables(findings, flows, contacts)
    apps = sorted({a for a in flows["app"] if a})
    return ReportData(
        title=title or ("phonehome report: " + (", ".join(apps) if apps else "capture")),
        summary=summary(flows, findings, contacts),
        headlines=headlines(findings),
        matrix=matrix(findings),
        comparison=comparison(findings),
        linkable=linkable(findings),
        evidence=evidence(findings),
        coverage=coverage(flows, contacts),
        findings=findings,
        flows=flows,
        contacts=contacts,
        redacted=redact,
        warnings=list(getattr(analysis, "warnings", []) or []),
    )


def table_frames(report: ReportData) -> dict[str, pd.DataFrame]:
    """Every table of the report by file stem, for CSV/Parquet export."""
    return {
        "findings": report.findings,
        "flows": report.flows,
        "contacts": report.contacts,
        "matrix": report.matrix,
        "comparison": report.comparison,
        "linkable": report.linkable,
        "evidence": report.evidence,
        "coverage": report.coverage,
        **{name: getattr(report, name) for name in ("claims", "canaries") if not getattr(report, name).empty},
    }
