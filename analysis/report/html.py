"""Self-contained HTML report, through Jinja2 templates with autoescape: no script, a strict CSP.

The page carries no JavaScript at all and forbids it (``default-src 'none'``); images are embedded
PNGs (data: URLs) and the only style is the page's own. Every captured string reaches the page
through Jinja2's autoescape; captured text is isolated (<bdi>, ``unicode-bidi: isolate``) so a
right-to-left override in an app label cannot reverse the title or a table. Even if escaping were
ever missed, the CSP stops injected scripts, event handlers, ``javascript:`` links and remote CSS.

This module only shapes ReportData into a view (lists and dicts of text); the template lays it out.
It renders generically: every Section the tables module lists, per app when the table carries an
`app` column, so new tables (claims, canaries) appear without a change here.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from phonehome.analysis.report import tables as report_tables
from phonehome.analysis.report import vocabulary
from phonehome.analysis.report.evidence import evidence_groups, evidence_id
from phonehome.analysis.report.provenance import Provenance, shown_path
from phonehome.analysis.report.tables import ReportData, Section
from phonehome.analysis.report.text import bidi_visible, count, plain_line, plural, readable_time

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
TEMPLATES = Path(__file__).resolve().parent / "templates"

#: Rows a table shows in the page; the rest are in <stem>_tables/<name>.csv.
MAX_TABLE_ROWS = 300
#: Characters a table cell shows; the CSV next to the report holds the whole cell.
MAX_CELL_CHARS = 400
#: Evidence groups shown per app, and how many of them get a worked example.
MAX_GROUPS = 3000  # anchored; beyond it, links are dropped and the CSV has them
MAX_DETAILED = 150  # groups shown in full (facts, example); the others as one table row each
MAX_EXAMPLES = 60

#: Columns whose text must not break inside a word (hosts, codes, names, numbers).
KEEP_COLUMNS = frozenset(
    {"app", "mode", "host", "site", "owner", "category", "party", "kind", "status", "confidence"}
    | {"session", "phase", "method", "location", "verdict", "baseline", "claim"}
)
#: Columns of long captured text that may break anywhere.
LONG_COLUMNS = frozenset(
    {"url", "value", "field", "detail", "hosts", "values", "fields", "source", "caveat", "finding_ids"}
)
#: Link columns: shown as links to the evidence, not as text; the row's own anchor.
HIDDEN_COLUMNS = frozenset({"evidence_id", "evidence_ids", "coverage_id"})
#: Label columns that, when one value fills the whole table, are said once above it instead.
CAPTION_COLUMNS = frozenset({"app", "session", "baseline", "mode"})
TIME_COLUMNS = frozenset({"timestamp", "first_seen", "last_seen", "time", "created"})


@dataclass
class Cell:
    text: str
    cls: str = ""
    href: str = ""
    code: str = ""
    title: str = ""
    links: list[dict[str, Anchor]] = field(default_factory=list)


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The Jinja2 environment: autoescape on for every template, undefined names are errors."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


# -- shapes of ReportData that change while the verdicts work lands --------------------------------


@dataclass(frozen=True)
class Headline:
    app: str
    mode: str
    text: str
    evidence_id: str
    structured: bool = True  # False: a plain string, which names no app


def headlines_of(report: ReportData) -> list[Headline]:
    """Headlines as (app, mode, text, evidence_id), from plain strings or structured records."""
    out = []
    for item in report.headlines or []:
        if isinstance(item, str):
            out.append(Headline("", "", item, "", structured=False))
        elif isinstance(item, dict):
            out.append(
                Headline(
                    str(item.get("app") or ""),
                    str(item.get("mode") or ""),
                    str(item.get("text") or ""),
                    str(item.get("evidence_id") or ""),
                )
            )
        else:
            out.append(
                Headline(
                    str(getattr(item, "app", "") or ""),
                    str(getattr(item, "mode", "") or ""),
                    str(getattr(item, "text", item) or ""),
                    str(getattr(item, "evidence_id", "") or ""),
                )
            )
    return out


def apps_of(report: ReportData) -> list[str]:
    """The report's apps: ReportData.apps when it has them, else every app label in the tables."""
    apps = getattr(report, "apps", None)
    if apps:
        return [str(a or "") for a in apps]
    found: set[str] = set()
    for frame in (report.findings, report.flows, report.contacts):
        if not frame.empty and "app" in frame.columns:
            found |= {str(a) if a is not None and a == a else "" for a in frame["app"].unique()}
    return sorted(found, key=lambda a: (a == "", a)) or [""]


_PREFERRED_ORDER = ("claims", "canaries", "comparison", "linkable", "matrix", "coverage", "evidence")


def sections_of(report: ReportData) -> list[Section]:
    """Every Section the tables module lists, in story order: claims and canaries first, then the
    mode comparison, linkability, the matrix, coverage; tables without data in the report skipped."""
    found: dict[str, Section] = {}
    for name in dir(report_tables):
        value = getattr(report_tables, name)
        if name.isupper() and isinstance(value, tuple):
            for item in value:
                if isinstance(item, Section) and item.attribute not in found:
                    found[item.attribute] = item
    for name in ("claims", "canaries"):  # tables another part adds before listing their Sections
        if name not in found and isinstance(getattr(report, name, None), pd.DataFrame):
            found[name] = Section(name, name.capitalize(), "")
    sections = [s for s in found.values() if isinstance(getattr(report, s.attribute, None), pd.DataFrame)]

    def rank(section: Section) -> tuple[int, str]:
        if section.attribute in _PREFERRED_ORDER:
            return (_PREFERRED_ORDER.index(section.attribute), "")
        return (2, section.attribute)  # new tables go after claims/canaries, before the comparison

    return sorted(sections, key=rank)


# -- tables ----------------------------------------------------------------------------------------


def slug(text: str) -> str:
    """An id-safe slug of captured text (a-z, 0-9, '-'), bounded."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "x"


def _column_class(name: str, values: pd.Series) -> str:
    if name in KEEP_COLUMNS:
        return "keep"
    if name in LONG_COLUMNS:
        return "long"
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return "num"
    return ""


def _cell(column: str, value: object, cls: str) -> Cell:
    if value is None or (isinstance(value, float) and value != value):
        return Cell("", cls)
    if column in TIME_COLUMNS:
        return Cell(readable_time(value), "keep")
    words = vocabulary.label(column, value)
    if words is not None and words != str(value):
        return Cell(words, cls, code=str(value))
    if cls == "num":
        return Cell(count(value), cls)
    text = str(value)
    if len(text) > MAX_CELL_CHARS:  # the CSV next to the report holds the whole cell
        text = f"{text[:MAX_CELL_CHARS]}… ({len(text):,} characters in all; the table's CSV has them)"
    return Cell(text, cls)


def _header(column: str, cls: str) -> Cell:
    return Cell(column.replace("_", " "), cls)


@dataclass
class TableView:
    header: list[Cell]
    rows: list[dict[str, Any]]
    empty: str
    more: str = ""
    caption: str = ""
    cards: bool = False  # rows of prose (claims): one card per row, columns as a list


#: A table whose cells average more characters than this reads better as cards than as a grid.
PROSE_CHARS = 45


def is_prose(frame: pd.DataFrame) -> bool:
    """Tables of sentences (a claim, its source, why it was decided) rather than of values."""
    text = [c for c in frame.columns if pd.api.types.is_string_dtype(frame[c]) and c not in HIDDEN_COLUMNS]
    if not text or frame.empty:
        return False
    sample = frame[text].head(50).astype(str)
    return float(sample.apply(lambda col: col.str.len().mean()).mean()) > PROSE_CHARS


def table_view(
    frame: pd.DataFrame,
    empty: str,
    *,
    anchors: dict[str, Anchor] | None = None,
    modes: set[str] | None = None,
    app: str = "",
    csv_name: str = "",
) -> TableView:
    """A frame as header cells and rows of cells; rows naming a host and data type link to evidence."""
    if frame is None or frame.empty:
        return TableView([], [], empty)
    columns = [c for c in frame.columns if c not in HIDDEN_COLUMNS]
    constant = [c for c in columns if c in CAPTION_COLUMNS and len(frame) > 1 and frame[c].nunique() == 1]
    caption = "; ".join(f"{c.replace('_', ' ')}: {frame[c].iloc[0]}" for c in constant)
    columns = [c for c in columns if c not in constant]
    classes = {c: _column_class(str(c), frame[c]) for c in columns}
    linkable = {"evidence_id", "evidence_ids"} & set(frame.columns) or {"host", "data_type"} <= set(
        frame.columns
    )
    can_link = anchors is not None and bool(linkable)
    shown = frame.head(MAX_TABLE_ROWS)
    header = [_header(str(c), classes[c]) for c in columns]
    if can_link:
        header.append(Cell("evidence", "keep"))
    rows = []
    for record in shown.to_dict("records"):
        cells = [_cell(str(c), record[c], classes[c]) for c in columns]
        if can_link:
            cells.append(Cell("", "keep", links=_evidence_links(record, anchors, modes or set(), app)))
        rows.append({"cells": cells, "id": str(record.get("coverage_id") or "")})
    more = ""
    if len(frame) > len(shown):
        where = f" in the table {csv_name}.csv next to this report" if csv_name else ""
        more = f"Showing {len(shown):,} of {len(frame):,} rows; all of them are{where}."
    return TableView(header, rows, empty, more, caption, cards=is_prose(frame[columns]))


def _evidence_links(
    record: dict, anchors: dict[str, Anchor], modes: set[str], app: str
) -> list[dict[str, Anchor]]:
    """Links to the evidence a table row stands on: its evidence_id cell when the table has one,
    else the groups of its (app, mode, host, data type), one link per mode with findings."""
    ids = str(record.get("evidence_id") or record.get("evidence_ids") or "").split()
    if not ids and "host" in record and "data_type" in record:
        row_app = str(record.get("app") or app)
        candidates = [str(record[k]) for k in ("mode", "baseline") if record.get(k)]
        candidates += [m for m in sorted(modes) if m in record and _positive(record[m])]
        ids = [evidence_id(row_app, m, str(record["host"]), str(record["data_type"])) for m in candidates]
    found = [i for i in dict.fromkeys(ids) if i in anchors]
    if "host" in record:  # the row names its destination: the mode says which group
        return [{"href": "#" + i, "text": anchors[i].mode} for i in found]
    return [
        {"href": "#" + i, "text": f"{a.mode}: {a.data_type} at {a.host}"} for i in found for a in [anchors[i]]
    ]


def _positive(value: object) -> bool:
    try:
        return float(value) > 0  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def matrix_wide(matrix: pd.DataFrame) -> pd.DataFrame:
    """The long (mode, destination, data type, count) table as one column per data type."""
    if matrix.empty:
        return matrix
    index = [c for c in ("app", "mode", "host", "owner", "category") if c in matrix.columns]
    wide = matrix.pivot_table(index=index, columns="data_type", values="count", fill_value=0, aggfunc="sum")
    wide.columns.name = None
    ordered = sorted(wide.columns, key=lambda t: (_type_rank(t), t))
    return wide[ordered].reset_index()


def _type_rank(data_type: str) -> int:
    from phonehome.analysis.report.evidence import type_rank

    return type_rank(data_type)


def _matrix_view(frame: pd.DataFrame, empty: str) -> TableView:
    wide = matrix_wide(frame)
    if wide.empty:
        return TableView([], [], empty)
    view = table_view(wide, empty, csv_name="matrix")
    for cell in view.header:  # data types as headers: words, with the code under them
        code = cell.text.replace(" ", "_")
        if code in vocabulary.DATA_TYPES:
            cell.text, cell.code, cell.cls = vocabulary.DATA_TYPES[code], code, "num"
    for row in view.rows:
        for cell in row["cells"]:
            if cell.cls == "num" and cell.text == "0":
                cell.text = ""
    return view


def _frame_for_app(frame: pd.DataFrame, app: str) -> pd.DataFrame:
    if "app" not in frame.columns:
        return frame
    return frame[frame["app"].fillna("").astype(str) == app].drop(columns=["app"])


# -- the page --------------------------------------------------------------------------------------


def _group_facts(g: dict) -> list[tuple[str, str]]:
    facts = [
        ("Seen", f"{readable_time(g['first_seen'])} to {readable_time(g['last_seen'])}"),
        ("Phases", g["phases"] or "(none recorded)"),
        ("Where in the request", g["fields"]),
        (
            "Encodings undone",
            f"{vocabulary.encoding_words(g['example_encodings'])} ({g['encodings'] or 'plain'})",
        ),
        ("Why it was classified so", vocabulary.evidence_words(g["evidence"])),
        ("Confidence", vocabulary.CONFIDENCE.get(g["confidence"], g["confidence"])),
        ("Example value", plain_line(g["example_value"], 200)),
    ]
    return facts


def _chain_words(chain: str) -> str:
    if not chain or chain.startswith("…"):
        return chain
    return f"{vocabulary.encoding_words(chain)} ({chain})"


def _group_rows(groups: pd.DataFrame) -> TableView:
    """The groups after the detailed ones, one anchored table row each (small at 30,000 flows)."""
    rest = groups.iloc[MAX_DETAILED:MAX_GROUPS]
    header = [Cell(h, c) for h, c in (("mode", "keep"), ("destination", "keep"), ("data type", ""))]
    header += [Cell(h, "num") for h in ("findings", "requests", "values")]
    header += [Cell("phases", ""), Cell("seen", "keep")]
    rows = []
    for g in rest.to_dict("records"):
        owner = f" ({g['owner']})" if g["owner"] else ""
        cells = [
            Cell(g["mode"], "keep"),
            Cell(g["host"] + owner, "keep"),
            Cell(vocabulary.data_type_name(g["data_type"]), "", code=g["data_type"]),
            Cell(count(g["findings"]), "num"),
            Cell(count(g["requests"]), "num"),
            Cell(count(g["values"]), "num"),
            Cell(g["phases"], ""),
            Cell(readable_time(g["first_seen"]), "keep"),
        ]
        rows.append({"cells": cells, "id": g["evidence_id"]})
    return TableView(header, rows, "")


def _group_views(groups: pd.DataFrame, examples: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for g in groups.head(MAX_DETAILED).to_dict("records"):
        owner = f" ({g['owner']})" if g["owner"] else ""
        out.append(
            {
                "id": g["evidence_id"],
                "mode": f"{g['mode']} mode",
                "destination": g["host"] + owner,
                "data_type": vocabulary.data_type_name(g["data_type"]),
                "code": g["data_type"],
                "summary": (
                    f"{plural(g['findings'], 'finding')} in {plural(g['requests'], 'request')}, "
                    f"{plural(g['values'], 'distinct value')}."
                ),
                "facts": _group_facts(g),
                "example": examples.get(g["evidence_id"]),
            }
        )
    return out


def _story_counts(app: str, report: ReportData) -> str:
    flows = _frame_for_app(report.flows, app) if "app" in report.flows.columns else report.flows
    findings = _frame_for_app(report.findings, app) if "app" in report.findings.columns else report.findings
    contacts = _frame_for_app(report.contacts, app) if "app" in report.contacts.columns else report.contacts
    modes = (
        sorted(set(flows["mode"]) | set(contacts["mode"])) if not flows.empty or not contacts.empty else []
    )
    hosts = set(flows["host"]) | set(contacts["host"])
    owners = {o for o in set(flows["owner"]) | set(contacts["owner"]) if o}
    unseen = int((contacts["kind"] != "dns").sum()) if not contacts.empty and "kind" in contacts else 0
    text = (
        f"Recorded: {plural(len(flows), 'decrypted request')} to {plural(len(hosts), 'host')} "
        f"({plural(len(owners), 'known owner')}) in {', '.join(modes) or 'no'} mode"
        f"{'s' if len(modes) != 1 else ''}; {plural(len(findings), 'finding')} of "
        f"{plural(findings['data_type'].nunique() if not findings.empty else 0, 'data type')}."
    )
    if unseen:
        text += f" {plural(unseen, 'connection')} could not be decrypted (see Coverage)."
    if not flows.empty:
        text += (
            f" From {readable_time(flows['timestamp'].min())} to {readable_time(flows['timestamp'].max())}."
        )
    return text


def _headline_view(h: Headline, app: str, groups: pd.DataFrame, anchors: dict[str, Anchor]) -> dict[str, Any]:
    """The sentence and its links: one per evidence id it names (labelled by data type or 'coverage')."""
    links = []
    found = [anchors[i] for i in dict.fromkeys(h.evidence_id.split()) if i in anchors]
    names = [vocabulary.data_type_name(a.data_type) if a.data_type else "not seen" for a in found]
    for i, anchor, name in zip(
        [i for i in dict.fromkeys(h.evidence_id.split()) if i in anchors], found, names, strict=True
    ):
        text = f"{name} ({anchor.host})" if names.count(name) > 1 or not anchor.data_type else name
        links.append({"href": "#" + i, "text": text})
    if not links:
        links.append({"href": _headline_href(h, app, groups, anchors), "text": "the evidence"})
    return {"text": h.text, "links": links}


def _headline_href(h: Headline, app: str, groups: pd.DataFrame, anchors: dict[str, Anchor]) -> str:
    if h.evidence_id:
        first = h.evidence_id.split()[0]
        if first in anchors:
            return "#" + first
    mine = groups[groups["app"] == app] if not groups.empty else groups
    if h.mode and not mine.empty:
        mine = mine[mine["mode"] == h.mode] if (mine["mode"] == h.mode).any() else mine
    for g in mine.itertuples(index=False):  # the first group whose destination the sentence names
        if g.host and g.host in h.text and g.evidence_id in anchors:
            return "#" + g.evidence_id
    return f"#{_app_id(app)}-evidence"


def _app_id(app: str) -> str:
    return "app-" + slug(app or "unlabelled") + "-" + evidence_id(app, "", "", "")[3:9]


@dataclass(frozen=True)
class Anchor:
    """What an anchor on the page points at, for the words of the links to it."""

    mode: str
    host: str
    data_type: str


def anchor_labels(groups: pd.DataFrame, coverage: pd.DataFrame) -> dict[str, Anchor]:
    """Every anchor the page will have: evidence groups and coverage rows."""
    anchors = {}
    if not groups.empty:
        for g in groups[["evidence_id", "mode", "host", "data_type"]].itertuples(index=False):
            anchors[g.evidence_id] = Anchor(g.mode, g.host, g.data_type)
    if not coverage.empty and "coverage_id" in coverage.columns:
        for c in coverage.to_dict("records"):
            if c.get("coverage_id"):
                anchors[str(c["coverage_id"])] = Anchor(str(c.get("mode", "")), str(c.get("host", "")), "")
    return anchors


def _skipped(section: Section, frame: pd.DataFrame, multi: bool) -> bool:
    """Sections that only appear when present: claims, canaries, optional tables (the overview)."""
    if section.attribute == "evidence":
        return True  # the HTML shows evidence groups; every row is in evidence.csv
    if section.attribute == "overview":
        return not multi or frame.empty
    return frame.empty and (
        section.attribute in ("claims", "canaries") or getattr(section, "optional", False)
    )


def build_view(
    report: ReportData,
    *,
    plots: bool = True,
    provenance: Provenance | None = None,
    examples: dict[str, Any] | None = None,
    groups: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """Everything the template shows, as plain data (groups and examples: when already computed)."""
    from phonehome.analysis.report.provenance import from_tables

    apps = apps_of(report)
    groups = evidence_groups(report.findings, report.flows) if groups is None else groups
    shown = groups.groupby("app", sort=False).head(MAX_GROUPS) if not groups.empty else groups
    anchors = anchor_labels(shown, report.coverage)
    modes = set(report.findings["mode"]) | set(report.flows["mode"]) if not report.flows.empty else set()
    headlines = headlines_of(report)
    sections = sections_of(report)
    multi = len(apps) > 1
    if examples is None:
        from phonehome.analysis.report.worked import worked_examples

        examples = worked_examples(groups, report.flows, redacted=report.redacted, per_app=MAX_EXAMPLES)
    app_views = []
    shared = []
    for section in sections:
        frame = getattr(report, section.attribute)
        if _skipped(section, frame, multi) or (
            section.attribute != "overview" and ("app" in frame.columns or not multi)
        ):
            continue
        shared.append(  # a table without an app column in a several-app report: shown once
            {
                "id": "all-" + slug(section.attribute),
                "heading": section.heading + " (all apps)",
                "intro": section.intro,
                "table": _section_table(section, frame, anchors, modes, ""),
            }
        )
    toc = []
    for app in apps:
        app_id = _app_id(app)
        name = app or "(traffic without an app label)"
        own = headlines if not multi else [h for h in headlines if h.structured and h.app == app]
        app_sections = []
        for section in sections:
            frame = getattr(report, section.attribute)
            if _skipped(section, frame, multi) or section.attribute == "overview":
                continue
            if multi and "app" not in frame.columns:
                continue
            sid = f"{app_id}-{slug(section.attribute)}"
            app_sections.append(
                {
                    "id": sid,
                    "heading": section.heading,
                    "intro": section.intro,
                    "table": _section_table(section, _frame_for_app(frame, app), anchors, modes, app),
                }
            )
        app_groups = groups[groups["app"] == app] if not groups.empty else groups
        more = ""
        if len(app_groups) > MAX_GROUPS:
            more = (
                f"Showing {MAX_GROUPS:,} of {len(app_groups):,} groups; every group is in "
                "evidence_groups.csv and every finding in evidence.csv next to this report."
            )
        elif len(app_groups) > MAX_DETAILED:
            more = "Every finding of these groups is in evidence.csv next to this report."
        app_views.append(
            {
                "id": app_id,
                "name": name,
                "heading": "App:" if app else "",
                "headlines": [_headline_view(h, app, groups, anchors) for h in own],
                "counts": _story_counts(app, report),
                "sections": app_sections,
                "plots": _plots(report, app, multi) if plots else [],
                "groups": _group_views(app_groups, examples),
                "group_rows": _group_rows(app_groups),
                "groups_more": more,
            }
        )
        children = [{"id": f"{app_id}-story", "text": "What left the device"}]
        children += [{"id": s["id"], "text": s["heading"]} for s in app_sections]
        if plots:
            children.append({"id": f"{app_id}-plots", "text": "Plots"})
        children.append({"id": f"{app_id}-evidence", "text": "Evidence"})
        toc.append({"id": app_id, "text": name, "children": children})
    toc += [{"id": s["id"], "text": s["heading"], "children": []} for s in shared]
    if report.warnings:
        toc.append({"id": "warnings", "text": "Warnings", "children": []})
    toc.append({"id": "provenance", "text": "How this report was made", "children": []})
    provenance = provenance or from_tables(
        report.flows, report.contacts, options={"--redact": "yes" if report.redacted else "no"}
    )
    return {
        "csp": CSP,
        "title": report.title,
        "title_plain": plain_line(bidi_visible(report.title), 200),
        "redaction": redaction_notice() if report.redacted else "",
        "lede": _lede(report, apps),
        "toc": toc,
        "overview": _overview(report, apps, [h for h in headlines if not h.structured]) if multi else None,
        "apps": app_views,
        "shared_sections": shared,
        "warnings": [plain_line(w, 500) for w in report.warnings],
        "evidence_intro": (
            "Findings grouped by mode, destination and data type, with counts. Each group names where "
            "in the request the data was, the encodings undone to reach it and why it was classified so; "
            "open a worked example to follow one request from its raw bytes to the value. Every single "
            "finding is in evidence.csv / findings.csv next to this report."
        ),
        "provenance": provenance_view(provenance, redacted=report.redacted),
    }


def _section_table(
    section: Section, frame: pd.DataFrame, anchors: dict[str, Anchor], modes: set[str], app: str
):
    if section.attribute == "matrix":
        return _matrix_view(frame, section.empty)
    return table_view(frame, section.empty, anchors=anchors, modes=modes, app=app, csv_name=section.attribute)


def _lede(report: ReportData, apps: list[str]) -> str:
    s = report.summary
    named = [a for a in apps if a]
    who = ", ".join(named) if named else "the phone"
    return (
        f"What {who} sent home while it was recorded: {count(s.get('requests', 0))} decrypted requests "
        f"to {count(s.get('hosts', 0))} hosts, in {', '.join(s.get('modes', [])) or 'no'} mode(s), "
        f"and what the report could not see."
    )


def _overview(report: ReportData, apps: list[str], headlines: list[Headline]) -> dict[str, Any]:
    rows = []
    for app in apps:
        flows = _frame_for_app(report.flows, app)
        findings = _frame_for_app(report.findings, app)
        rows.append(
            {
                "app": app or "(no app label)",
                "requests": len(flows),
                "hosts": flows["host"].nunique() if not flows.empty else 0,
                "findings": len(findings),
                "data types": ", ".join(sorted(set(findings["data_type"]))) if not findings.empty else "",
            }
        )
    frame = pd.DataFrame(rows)
    view = table_view(frame, "No traffic.")
    for row, app in zip(view.rows, apps, strict=True):
        row["cells"][0].href = "#" + _app_id(app)
    lines = [{"text": h.text, "href": "#" + _app_id(h.app)} for h in headlines]
    return {"intro": "Each app has its own section below.", "table": view, "headlines": lines}


def _plots(report: ReportData, app: str, multi: bool) -> list[dict[str, Any]]:
    from phonehome.analysis.plots import png_bytes, report_figures

    findings = _frame_for_app(report.findings, app).assign(app=app) if multi else report.findings
    flows = _frame_for_app(report.flows, app).assign(app=app) if multi else report.flows
    out = []
    for name, figure in report_figures(findings, flows).items():
        width, height = (round(v * 96) for v in figure.get_size_inches())
        data = base64.b64encode(png_bytes(figure)).decode("ascii")
        out.append(
            {
                "alt": name,
                "caption": name,
                "src": "data:image/png;base64," + data,
                "width": width,
                "height": height,
            }
        )
    return out


def redaction_notice() -> str:
    """The notice a redacted report shows at its top and in its footer."""
    try:
        from phonehome.analysis.redact import NOTICE  # the hostile-input work's wording, when present

        return str(NOTICE)
    except ImportError:
        return (
            "Identifiers, tokens, cookies, contact data and locations are replaced by short stable tags "
            "(redacted- and 8 hex digits of the value's SHA-256): the same value gets the same tag "
            "everywhere, so links between sessions stay visible. Visited URLs and search terms are kept."
        )


def provenance_view(p: Provenance, *, redacted: bool = False) -> dict[str, Any]:
    """The footer's facts and input table."""
    facts = [
        ("Built", readable_time(p.created)),
        ("phonehome", p.phonehome),
        ("mitmproxy", p.mitmproxy),
        ("Python", p.python),
    ]
    facts += [(f"Option {k}", v) for k, v in sorted(p.options.items())]
    inputs = [
        {
            "path": shown_path(f.path, redacted),
            "role": f.role,
            "size": count(f.size) if f.size >= 0 else "?",
            "sha256": f.sha256,
        }
        for f in p.inputs
    ]
    return {"facts": facts, "inputs": inputs, "version": p.phonehome}


def render_html(
    report: ReportData,
    *,
    plots: bool = True,
    provenance: Provenance | None = None,
    examples: dict[str, Any] | None = None,
    groups: pd.DataFrame | None = None,
) -> str:
    """The whole report as one HTML document."""
    view = build_view(report, plots=plots, provenance=provenance, examples=examples, groups=groups)
    return environment().get_template("report.html.j2").render(**view)
