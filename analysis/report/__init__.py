"""Per-app leakage reports: tables (pandas), HTML and Markdown renderers, redaction, writers."""

from __future__ import annotations

from phonehome.analysis.report.html import render_html
from phonehome.analysis.report.markdown import render_markdown
from phonehome.analysis.report.tables import Headline, ReportData, build_report, table_frames
from phonehome.analysis.report.write import write_report, write_report_tables

__all__ = [
    "Headline",
    "ReportData",
    "build_report",
    "render_html",
    "render_markdown",
    "table_frames",
    "write_report",
    "write_report_tables",
]
