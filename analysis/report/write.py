"""Writing reports to disk, user-only (files 0600, directories 0700): captured data is sensitive."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from phonehome.analysis.report.evidence import evidence_groups
from phonehome.analysis.report.html import render_html
from phonehome.analysis.report.markdown import render_markdown
from phonehome.analysis.report.provenance import Provenance, from_tables
from phonehome.analysis.report.tables import ReportData, table_frames
from phonehome.analysis.sharing import csv_bytes


def _private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, 0o600)


def tables_dir_for(report_path: Path) -> Path:
    """Where the CSV/Parquet tables of a report go: `<stem>_tables/` next to it."""
    return report_path.with_name(report_path.stem + "_tables")


def report_tables(report: ReportData, groups: pd.DataFrame | None = None) -> dict[str, pd.DataFrame]:
    """Every table of the report by file stem: the tables module's, plus the evidence groups."""
    frames = dict(table_frames(report))
    if "evidence_groups" not in frames:
        frames["evidence_groups"] = (
            evidence_groups(report.findings, report.flows) if groups is None else groups
        )
    return frames


def write_report_tables(
    report: ReportData, out_dir: Path, *, groups: pd.DataFrame | None = None
) -> list[Path]:
    """Every table as CSV and Parquet in out_dir."""
    _private_dir(out_dir)
    written = []
    for name, frame in report_tables(report, groups).items():
        csv_path, parquet_path = out_dir / f"{name}.csv", out_dir / f"{name}.parquet"
        _write_private(csv_path, csv_bytes(frame))  # spreadsheet-safe: no formula runs on opening
        _write_private(parquet_path, b"")
        frame.to_parquet(parquet_path, index=False)
        os.chmod(parquet_path, 0o600)
        written += [csv_path, parquet_path]
    return written


REPORT_SUFFIXES: dict[str, str] = {
    ".html": "html",
    ".htm": "html",
    ".md": "markdown",
    ".markdown": "markdown",
}


class ReportPathError(ValueError):
    """A report path whose suffix names no report format (refused rather than guessed)."""


def report_format(path: str | os.PathLike[str]) -> str:
    """`html` or `markdown` from the report path's suffix; ReportPathError for any other suffix."""
    suffix = Path(path).suffix.lower()
    if suffix not in REPORT_SUFFIXES:
        raise ReportPathError(
            f"{path}: unknown report format {suffix or '(no suffix)'!r}; use {', '.join(REPORT_SUFFIXES)}"
        )
    return REPORT_SUFFIXES[suffix]


def render(
    report: ReportData,
    path: Path,
    *,
    provenance: Provenance | None = None,
    groups: pd.DataFrame | None = None,
) -> str:
    """The report's text in the format its path's suffix names (.html/.htm or .md/.markdown)."""
    markdown = report_format(path) == "markdown"
    provenance = provenance or from_tables(
        report.flows, report.contacts, options={"--redact": "yes" if report.redacted else "no"}
    )
    if markdown:
        return render_markdown(report, provenance=provenance, groups=groups)
    return render_html(report, provenance=provenance, groups=groups)


def write_report(
    report: ReportData, path: str | os.PathLike[str], *, provenance: Provenance | None = None
) -> list[Path]:
    """The report (format from the suffix: .html/.htm or .md/.markdown) plus its tables; paths written.

    provenance: the inputs, versions and options for the footer (the CLI gathers it); without it the
    inputs named in the tables' `source` column are hashed.
    """
    target = Path(path)
    report_format(target)  # refused before anything is written
    _private_dir(target.parent)
    groups = evidence_groups(report.findings, report.flows)  # once, for the page and its table
    text = render(report, target, provenance=provenance, groups=groups)
    _write_private(target, text.encode("utf-8"))
    return [target, *write_report_tables(report, tables_dir_for(target), groups=groups)]
