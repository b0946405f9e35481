"""Markdown report for the terminal and for pasting into an issue or article.

It carries the same sections as the HTML page, from the same view (analysis.report.html.build_view).
Captured text (apps, hosts, URLs, values, fields) is written as inline code, so nothing in it becomes
a link, emphasis or HTML, and bidi controls are shown as visible escapes; the words the report itself
writes are plain Markdown.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from phonehome.analysis.report.provenance import Provenance
from phonehome.analysis.report.tables import ReportData
from phonehome.analysis.report.text import md_code, plain_line

_ESCAPES = {
    "\\": "\\\\",
    "|": "\\|",
    "`": "\\`",
    "<": "&lt;",
    ">": "&gt;",
    "&": "&amp;",
    "*": "\\*",
    "_": "\\_",
    "[": "\\[",
    "]": "\\]",
    "@": "\\@",  # no e-mail autolink
}


def md_text(value: object, limit: int = 200) -> str:
    """Text the report writes itself (headings, sentences), safe in Markdown: one line, no markup."""
    text = plain_line(value, limit)
    text = "".join(_ESCAPES.get(ch, ch) for ch in text)
    # no GFM extended autolinks: `http://`, `www.`
    return text.replace("://", "\\://").replace("www.", "www\\.").replace("WWW.", "WWW\\.")


def _cell(cell: Any) -> str:
    if cell.code:  # a vocabulary word with its code
        text = f"{md_text(cell.text)} ({md_code(cell.code)})"
    elif cell.cls == "num":
        text = md_text(cell.text)
    else:
        text = md_code(cell.text)
    if cell.links:
        text = (text + " " if text else "") + ", ".join(
            f"{md_text(link['text'])} {md_code(link['href'].lstrip('#'))}" for link in cell.links
        )
    return text


def table_md(view: Any) -> list[str]:
    """A table view (analysis.report.html.TableView) as a GitHub-flavoured Markdown table."""
    if not view.rows:
        return [f"_{md_text(view.empty)}_", ""]
    lines = []
    if view.caption:
        lines += [md_text(view.caption), ""]
    if view.cards:  # rows of sentences (claims): one list per row reads better than a wide table
        for row in view.rows:
            items = [(h, c) for h, c in zip(view.header, row["cells"], strict=True) if c.text or c.links]
            lines += [f"- {md_text(h.text)}: {_cell(c)}" if n == 0 else f"  - {md_text(h.text)}: {_cell(c)}"
                      for n, (h, c) in enumerate(items)]  # fmt: skip
        return [*lines, ""]
    lines.append("| " + " | ".join(md_text(h.text) for h in view.header) + " |")
    lines.append("|" + "---|" * len(view.header))
    lines += ["| " + " | ".join(_cell(c) for c in row["cells"]) + " |" for row in view.rows]
    if view.more:
        lines += ["", md_text(view.more, 500)]
    return [*lines, ""]


def frame_md(frame: pd.DataFrame, empty: str = "None.") -> str:
    """Any DataFrame as a Markdown table with every cell as inline code (for ad-hoc use)."""
    from phonehome.analysis.report.html import table_view

    return "\n".join(table_md(table_view(frame, empty)))


def _example_md(example: Any) -> list[str]:
    out = ["", f"Worked example: {md_code(example.request, 500)}", ""]
    for n, step in enumerate(example.steps, 1):
        out.append(f"{n}. {md_text(step.title, 500)}")
        body = step.body_text
        if body:
            fence = "~" * max(
                3, max((len(r.strip()) for r in body.split("\n") if set(r.strip()) == {"~"}), default=0) + 1
            )
            out += ["", f"   {fence}"] + [f"   {line}" for line in body.split("\n")] + [f"   {fence}", ""]
    if example.note:
        out += ["", md_text(example.note, 500)]
    return [*out, ""]


def render_markdown(
    report: ReportData,
    *,
    provenance: Provenance | None = None,
    examples: dict[str, Any] | None = None,
    groups: pd.DataFrame | None = None,
) -> str:
    """The whole report as Markdown: the HTML report's sections, in the same order."""
    from phonehome.analysis.report.html import build_view

    view = build_view(report, plots=False, provenance=provenance, examples=examples, groups=groups)
    out = [f"# {md_text(view['title'], 300)}", ""]
    if view["redaction"]:
        out += [f"> **Redacted report.** {md_text(view['redaction'], 1000)}", ""]
    out += [md_text(view["lede"], 1000), ""]
    if view["overview"]:
        out += ["## Overview: every app", ""]
        out += [f"- **{md_text(h['text'], 500)}**" for h in view["overview"]["headlines"]]
        out += table_md(view["overview"]["table"])
    for app in view["apps"]:
        out += [f"## {md_text(app['heading'])} {md_code(app['name'])}".replace("##  ", "## "), ""]
        out += ["### What left the device", ""]
        for h in app["headlines"]:
            ids = ", ".join(md_code(link["href"].lstrip("#")) for link in h["links"])
            out.append(f"- **{md_text(h['text'], 500)}** (evidence: {ids})")
        out += ["", md_text(app["counts"], 1000), ""]
        for section in app["sections"]:
            out += [f"### {md_text(section['heading'])}", ""]
            if section["intro"]:
                out += [md_text(section["intro"], 1000), ""]
            out += table_md(section["table"])
        out += ["### Evidence", "", md_text(view["evidence_intro"], 1000), ""]
        for g in app["groups"]:
            out += [
                f"#### {md_code(g['id'])}: {md_text(g['mode'])}, {md_code(g['destination'])}, "
                f"{md_text(g['data_type'])} ({md_code(g['code'])})",
                "",
                md_text(g["summary"]),
                "",
            ]
            out += [f"- {md_text(k)}: {md_code(v, 500)}" for k, v in g["facts"]]
            if g["example"]:
                out += _example_md(g["example"])
            out.append("")
        if app["group_rows"].rows:
            out += ["#### More groups, fewest findings last", ""]
            out += table_md(app["group_rows"])
        if app["groups_more"]:
            out += [md_text(app["groups_more"], 500), ""]
    for section in view["shared_sections"]:
        out += [f"## {md_text(section['heading'])}", ""]
        if section["intro"]:
            out += [md_text(section["intro"], 1000), ""]
        out += table_md(section["table"])
    if view["warnings"]:
        out += ["## Warnings", ""] + [f"- {md_code(w, 500)}" for w in view["warnings"]] + [""]
    out += _provenance_md(view)
    return "\n".join(out)


def _provenance_md(view: dict[str, Any]) -> list[str]:
    p = view["provenance"]
    out = ["## How this report was made", ""]
    if view["redaction"]:
        out += [f"**Redacted report.** {md_text(view['redaction'], 1000)}", ""]
    out += [f"- {md_text(k)}: {md_code(v, 500)}" for k, v in p["facts"]]
    if p["inputs"]:
        out += ["", "| input | role | bytes | SHA-256 |", "|---|---|---|---|"]
        for f in p["inputs"]:
            cells = (md_code(f["path"], 500), md_text(f["role"]), md_text(f["size"]), md_code(f["sha256"]))
            out.append("| " + " | ".join(cells) + " |")
    return [*out, "", f"Generated by phonehome {md_text(p['version'])}.", ""]
