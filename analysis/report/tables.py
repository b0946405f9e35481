"""The report's content: every table and headline a renderer shows, built from the verdicts.

ReportData is the one interface renderers (HTML, Markdown, notebooks) read. Its shape is a
contract: fields are added, never renamed. Pure functions on the findings, flows and contacts
tables (analysis.verdicts does the judging); the renderers only format.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from phonehome.analysis import redact as redaction
from phonehome.analysis.verdicts import comparison as comparing
from phonehome.analysis.verdicts import coverage as covering
from phonehome.analysis.verdicts.evidence import evidence_ids
from phonehome.analysis.verdicts.frames import apps_of, normalised
from phonehome.analysis.verdicts.headlines import BROWSING_TYPES, Headline
from phonehome.analysis.verdicts.headlines import headlines as build_headlines
from phonehome.analysis.verdicts.linkability import linkable as build_linkable
from phonehome.analysis.verdicts.overview import mixed_app_warnings
from phonehome.analysis.verdicts.overview import overview as build_overview

__all__ = [
    "BROWSING_TYPES",
    "DETAIL_SECTIONS",
    "FINDING_SECTIONS",
    "Headline",
    "ReportData",
    "Section",
    "app_label",
    "build_report",
    "table_frames",
]

#: How a report names traffic that carries no app label (its `app` is "").
UNLABELLED_APP = "(no app label)"


def app_label(app: str) -> str:
    """The heading for an app's section: its label, or UNLABELLED_APP for ""."""
    return app or UNLABELLED_APP


@dataclass(frozen=True)
class Section:
    """One table of the report, headed and explained the same way by every renderer.

    Every section's table has an `app` column: a renderer that groups each table by `app` gets a
    section per app. `optional`: a renderer may leave the section out when its table is empty
    (the overview exists only when a run holds several apps).
    """

    attribute: str  # the ReportData field holding the table
    heading: str
    intro: str
    empty: str = "None."
    level: int = 2
    optional: bool = False


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
        "overview",
        "Overview: apps × data types × destinations",
        "Every app of this run, what it sent where, in which modes, and in how many requests.",
        "One app in this run.",
        optional=True,
    ),
    Section(
        "comparison",
        "Normal vs each other mode",
        "Each destination and data type, per app: sent in both modes, only in one, not sent, or not seen "
        "(the caveat says what could not be seen), or the mode was not tested (no traffic captured in it).",
    ),
    Section(
        "linkable",
        "What links the sessions and modes",
        "Identifiers that recur across sessions or modes: the same value ties a private session to the "
        "normal one (links_modes), and other_apps names apps that sent the same value.",
        "No identifier recurs across sessions or modes.",
        level=3,
    ),
    Section("matrix", "Destinations × data types, per mode", "", "No findings."),
)
#: The tables for checking the findings: what could not be seen, and every finding's evidence.
DETAIL_SECTIONS: tuple[Section, ...] = (
    Section(
        "coverage",
        "Coverage: what could not be seen",
        "Hosts contacted but not decrypted — ca_not_trusted: the phone refused the proxy's CA (no HTTPS "
        "host of the app was decrypted, or TLS alert 'unknown ca' before any was); pinning_suspected: this "
        "host refused after other hosts of the app were decrypted; partly_decrypted; undetermined — DNS "
        "lookups with no decrypted request (dns_only), QUIC on UDP 443 (quic), other UDP (udp), and "
        "request bodies no decoder could open (opaque_payload, with their bytes), and requests whose "
        "decoding stopped early at a bound or on a decoder error (decode_incomplete, with their request "
        "bytes).",
        "Every contacted host was decrypted and every payload decoded.",
    ),
    Section(
        "evidence",
        "Evidence: every finding",
        "The request, where in it the value was found (field path), the encodings undone to reach it "
        "(outermost first), the value, and why it was classified so. evidence_id groups the findings of "
        "one app, mode, destination and data type; headlines and comparison rows link to it.",
        "No findings.",
    ),
)


@dataclass
class ReportData:
    """Everything a report shows, already redacted when asked; renderers only format it.

    title: the report's title. summary: counts for the summary box (sessions, apps, modes,
    requests, hosts, owners, findings, not_decrypted). apps: every app label in the run, sorted,
    "" (traffic without an app label, shown as app_label("")) last. pairs: the mode comparisons of
    the study, (baseline, other) — baseline `normal` against each other mode.
    headlines: Headline(app, mode, text, evidence_id, kind) in report order, app by app; str() of
    one is its text. evidence_id cells everywhere hold space-separated ids: `ev-…` = rows of
    `evidence` with that evidence_id, `cv-…` = the `coverage` row with that coverage_id.

    Tables (DataFrames), each with an `app` column:
    - overview: app, data_type, host, owner, category, modes, requests, evidence_id — empty unless
      the run holds several apps;
    - comparison: app, baseline, mode, host, owner, data_type, baseline_requests, mode_requests,
      status (sentence: 'sent in both (normal and incognito)', 'only in incognito', 'not sent in
      incognito', 'not seen in incognito', 'incognito not tested', 'only in incognito (normal not
      tested)'), caveat (what could not be seen), evidence_id;
    - linkable: app, data_type, value, modes, links_modes (bool), hosts, requests, other_apps,
      evidence_id;
    - matrix: app, mode, host, owner, category, data_type, count (findings);
    - coverage: app, mode, host, owner, kind, reason (see analysis.verdicts.coverage.REASONS),
      count, bytes, detail, coverage_id;
    - evidence: app, mode, timestamp, method, url, host, owner, location, field, encodings,
      data_type, value, confidence, evidence, evidence_id — one row per finding;
    - findings, flows, contacts: the analysis tables (modes in canonical spelling; flows carry
      opaque_bytes, the body bytes no decoder opened);
    - claims, canaries: filled by the report command (analysis.verdicts.claims / canaries).
    Headline.kind is one of analysis.verdicts.headlines.KINDS: browsing, identifiers, none_found,
    coverage, not_tested. redacted: values were replaced by tags. warnings: readers' warnings and
    mixed-app warnings.
    """

    title: str
    summary: dict[str, object]
    headlines: list[Headline]
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
    apps: list[str] = field(default_factory=list)
    overview: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["app"]))
    pairs: list[tuple[str, str]] = field(default_factory=list)
    # the Redactor that made the redacted tables (None unless redacted), so that what is added
    # later (claims, canaries) is scrubbed with the same values and tags without building another
    redactor: redaction.Redactor | None = None

    def for_app(self, frame: pd.DataFrame, app: str) -> pd.DataFrame:
        """The rows of one of this report's tables that belong to `app`."""
        return frame[frame["app"] == app] if "app" in frame.columns else frame

    def headlines_for(self, app: str) -> list[Headline]:
        return [h for h in self.headlines if h.app == app]


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


def matrix(findings: pd.DataFrame) -> pd.DataFrame:
    """Destination (host, owner, category) x data type, counted per app and mode; tidy long form."""
    columns = ["app", "mode", "host", "owner", "category", "data_type", "count"]
    if findings.empty:
        return pd.DataFrame(columns=columns)
    return findings.groupby(columns[:-1], sort=True).size().rename("count").reset_index()


EVIDENCE_COLUMNS: list[str] = [
    "app",
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
    "evidence_id",
]


def evidence(findings: pd.DataFrame) -> pd.DataFrame:
    """Every finding, traceable: request, field path, encoding chain, value, why, and its group id."""
    frame = findings.assign(evidence_id=evidence_ids(findings))
    ordered = frame.sort_values(["app", "mode", "timestamp", "field"], kind="stable")
    return ordered[EVIDENCE_COLUMNS].reset_index(drop=True)


def declared_modes(analysis) -> tuple[str, ...]:
    """The modes a study declares: `analysis.declared_modes`, else those of its captures' session.json."""
    explicit = tuple(getattr(analysis, "declared_modes", ()) or ())
    if explicit:
        return explicit
    found: dict[str, None] = {}
    for report in getattr(analysis, "sources", ()) or ():
        found.update(dict.fromkeys(getattr(report, "modes", ()) or ()))
    return tuple(found)


def _inputs(analysis) -> dict[str, list[str]]:
    """The test inputs (profile urls and search_terms, a plan's canaries merged in) for headline counts."""
    profile = getattr(analysis, "profile", None)
    values = getattr(profile, "values", None) or {}
    return {key: list(values.get(key) or []) for key in ("urls", "search_terms")}


def build_report(
    analysis, *, redact: bool = False, title: str | None = None, modes: tuple[str, ...] = ()
) -> ReportData:
    """The report's content from an analysis.pipeline.Analysis (or anything with flows/findings/contacts).

    `modes`: modes the study declares beyond normal and incognito (e.g. `incognito-optout`), so a
    declared mode without traffic is reported "not tested"; by default the `modes` list of the
    captures' session.json files.
    """
    findings, flows, contacts = analysis.findings, analysis.flows, analysis.contacts
    redactor = None
    if redact:  # redaction.redact_tables, keeping its redactor for the tables added later
        secrets = redaction.profile_secrets(getattr(analysis, "profile", None))
        redactor = redaction.tables_redactor(findings, flows, secrets)
        findings, flows, contacts = (
            redactor.findings(findings),
            redactor.frame(flows),
            redactor.frame(contacts),
        )
    findings, flows, contacts = normalised(findings), normalised(flows), normalised(contacts)
    declared = tuple(modes) or declared_modes(analysis)
    apps = apps_of(findings, flows, contacts)
    pairs = comparing.study_pairs(findings, flows, contacts, declared)
    cov = covering.coverage(flows, contacts)
    named = [a for a in apps if a]
    return ReportData(
        title=title or ("phonehome report: " + (", ".join(named) if named else "capture")),
        summary=summary(flows, findings, contacts),
        headlines=build_headlines(findings, flows, contacts, cov, pairs, _inputs(analysis)),
        matrix=matrix(findings),
        comparison=comparing.mode_comparison(findings, flows, contacts, cov, declared),
        linkable=build_linkable(findings),
        evidence=evidence(findings),
        coverage=cov,
        findings=findings,
        flows=flows,
        contacts=contacts,
        redacted=redact,
        redactor=redactor,
        warnings=[*list(getattr(analysis, "warnings", []) or []), *mixed_app_warnings(flows, contacts)],
        apps=apps,
        overview=build_overview(findings) if len(apps) > 1 else pd.DataFrame(columns=["app"]),
        pairs=pairs,
    )


def table_frames(report: ReportData) -> dict[str, pd.DataFrame]:
    """Every table of the report by file stem, for CSV/Parquet export."""
    return {
        "findings": report.findings,
        "flows": report.flows,
        "contacts": report.contacts,
        "overview": report.overview,
        "matrix": report.matrix,
        "comparison": report.comparison,
        "linkable": report.linkable,
        "evidence": report.evidence,
        "coverage": report.coverage,
        **{name: getattr(report, name) for name in ("claims", "canaries") if not getattr(report, name).empty},
    }
