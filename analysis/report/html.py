"""Self-contained HTML report: every captured string escaped, no script, a strict Content-Security-Policy.

The page carries no JavaScript at all and forbids it (``default-src 'none'``); images are embedded PNGs
(data: URLs) and the only style is the page's own. Even if escaping were ever missed, the CSP stops
injected scripts, event handlers, ``javascript:`` links and remote CSS.
"""

from __future__ import annotations

import base64
from html import escape

import pandas as pd

from phonehome.analysis.plots import png_bytes, report_figures
from phonehome.analysis.report.tables import DETAIL_SECTIONS, FINDING_SECTIONS, ReportData, Section

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;color:#222}
h1{font-size:1.6em} .headline{background:#fff3f0;border-left:5px solid #c0392b;padding:.6em 1em;margin:.4em 0}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:3px 6px;vertical-align:top;text-align:left}
th{background:#f4f4f4} td{max-width:40em;overflow-wrap:anywhere}
.summary td:first-child{font-weight:bold} img{max-width:100%} .note{color:#666;font-size:.9em}
.wide{overflow-x:auto}
"""


def _text(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def table_html(frame: pd.DataFrame, empty: str = "None.") -> str:
    """An HTML table with every header and cell escaped."""
    if frame.empty:
        return f"<p class='note'>{_text(empty)}</p>"
    head = "".join(f"<th>{_text(c)}</th>" for c in frame.columns)
    rows = "".join(
        "<tr>" + "".join(f"<td>{_text(v)}</td>" for v in row) + "</tr>"
        for row in frame.itertuples(index=False)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _matrix_wide(matrix: pd.DataFrame) -> pd.DataFrame:
    if matrix.empty:
        return matrix
    wide = matrix.pivot_table(
        index=["mode", "host", "owner", "category"],
        columns="data_type",
        values="count",
        fill_value=0,
        aggfunc="sum",
    )
    wide.columns.name = None
    return wide.reset_index().astype({c: "object" for c in wide.columns}).replace({0: ""})


def _sections_html(report: ReportData, sections: tuple[Section, ...]) -> list[str]:
    parts = []
    for section in sections:
        frame = getattr(report, section.attribute)
        parts.append(f"<h{section.level}>{_text(section.heading)}</h{section.level}>")
        if section.intro:
            parts.append(f"<p>{_text(section.intro)}</p>")
        if section.attribute == "matrix":  # one column per mode and data type reads better here
            parts.append("<div class='wide'>" + table_html(_matrix_wide(frame), section.empty) + "</div>")
        else:
            parts.append(table_html(frame, section.empty))
    return parts


def render_html(report: ReportData, *, plots: bool = True) -> str:
    """The whole report as one HTML document."""
    s = report.summary
    summary_rows = [
        ("Apps", ", ".join(s["apps"]) or "(unlabelled)"),
        ("Sessions", ", ".join(s["sessions"])),
        ("Modes", ", ".join(s["modes"])),
        ("Requests decrypted", s["requests"]),
        ("Hosts contacted", s["hosts"]),
        ("Owners", ", ".join(s["owners"])),
        ("Findings", s["findings"]),
        ("Hosts contacted but not decrypted", s["not_decrypted"]),
    ]
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<meta http-equiv='Content-Security-Policy' content=\"{CSP}\">",
        "<meta name='referrer' content='no-referrer'>",
        f"<title>{_text(report.title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{_text(report.title)}</h1>",
    ]
    if report.redacted:
        parts.append(
            "<p class='note'>Identifiers, tokens and cookies are replaced by short stable hashes.</p>"
        )
    parts.append("<h2>What left the device</h2>")
    parts += [f"<p class='headline'>{_text(line)}</p>" for line in report.headlines]
    parts.append("<h2>Summary</h2><table class='summary'>")
    parts += [f"<tr><td>{_text(k)}</td><td>{_text(v)}</td></tr>" for k, v in summary_rows]
    parts.append("</table>")
    parts += _sections_html(report, FINDING_SECTIONS)
    if plots:
        parts.append("<h2>Plots</h2>")
        for name, figure in report_figures(report.findings, report.flows).items():
            data = base64.b64encode(png_bytes(figure)).decode("ascii")
            parts.append(
                f"<h3>{_text(name)}</h3><img alt='{_text(name)}' src='data:image/png;base64,{data}'>"
            )
    parts += _sections_html(report, DETAIL_SECTIONS)
    if report.warnings:
        parts.append(
            "<h2>Warnings</h2><ul>" + "".join(f"<li>{_text(w)}</li>" for w in report.warnings) + "</ul>"
        )
    parts.append("<p class='note'>Generated by phonehome.</p></body></html>")
    return "\n".join(parts)
