"""Markdown report for the terminal and for pasting into an issue or article.

Captured strings are neutralised so they cannot break a table or inject markup: pipes, backticks,
newlines and HTML special characters are escaped.
"""

from __future__ import annotations

import pandas as pd

from phonehome.analysis.report.tables import DETAIL_SECTIONS, FINDING_SECTIONS, ReportData

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
}


def md_text(value: object, limit: int = 200) -> str:
    """One table cell or line of captured text, safe in Markdown: one line, no markup."""
    text = "" if value is None else str(value)
    text = " ".join(text.split())  # newlines, tabs, CR
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return "".join(_ESCAPES.get(ch, ch) if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in text)


def table_md(frame: pd.DataFrame, empty: str = "None.") -> str:
    """A GitHub-flavoured Markdown table with every cell escaped."""
    if frame.empty:
        return f"_{md_text(empty)}_\n"
    lines = ["| " + " | ".join(md_text(c) for c in frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(md_text(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def render_markdown(report: ReportData) -> str:
    """The whole report as Markdown."""
    s = report.summary
    out = [f"# {md_text(report.title)}", ""]
    if report.redacted:
        out += ["_Identifiers, tokens and cookies are replaced by short stable hashes._", ""]
    out += (
        ["## What left the device", ""] + [f"- **{md_text(line, 500)}**" for line in report.headlines] + [""]
    )
    out += [
        "## Summary",
        "",
        f"- Apps: {md_text(', '.join(s['apps']) or '(unlabelled)')}",
        f"- Sessions: {md_text(', '.join(s['sessions']))}",
        f"- Modes: {md_text(', '.join(s['modes']))}",
        f"- Requests decrypted: {s['requests']}; hosts contacted: {s['hosts']}; findings: {s['findings']}",
        f"- Owners: {md_text(', '.join(s['owners']))}",
        f"- Hosts contacted but not decrypted: {s['not_decrypted']}",
        "",
    ]
    for section in (*FINDING_SECTIONS, *DETAIL_SECTIONS):
        out += ["#" * section.level + " " + md_text(section.heading), ""]
        out += [md_text(section.intro, 500), ""] if section.intro else []
        out.append(table_md(getattr(report, section.attribute), section.empty))
    if report.warnings:
        out += ["## Warnings", ""] + [f"- {md_text(w, 500)}" for w in report.warnings] + [""]
    return "\n".join(out)
