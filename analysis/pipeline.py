"""The analysis pipeline: capture paths in, the three tidy tables out.

sources -> decode -> classify -> findings. This module only wires the stages together: each
input's kind is sniffed once here, read through the one reader seam (analysis.reader) into
rows (analysis.rows), and the rows become DataFrames (build_analysis). Each stage lives in its
own package and knows nothing of the others' I/O. docs/architecture.md draws the whole flow.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from phonehome.analysis.classify import mark_persistence
from phonehome.analysis.findings import CONTACTS_COLUMNS, FLOWS_COLUMNS, findings_from_rows
from phonehome.analysis.modes import normalize_mode
from phonehome.analysis.plan import merge_plan_canaries
from phonehome.analysis.profile import Profile
from phonehome.analysis.reader import collect_source
from phonehome.analysis.records import ContactRecord, HttpRecord, Labels, ProgressCallback, SourceReport
from phonehome.analysis.rows import RowCollector, Rows, RowSettings
from phonehome.analysis.sources import CaptureError, read_source, sniff_kind
from phonehome.analysis.sources.capture_dir import PROFILE_NAME
from phonehome.analysis.sources.dedup import drop_duplicates

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "Analysis",
    "ProgressCallback",
    "analyze",
    "build_analysis",
    "default_labels",
    "load_profiles",
    "write_tables",
]


@dataclass(slots=True)
class Analysis:
    """Everything one run of `phonehome analyze` found."""

    flows: pd.DataFrame
    findings: pd.DataFrame
    contacts: pd.DataFrame
    sources: list[SourceReport] = field(default_factory=list)
    profile: Profile | None = None

    @property
    def warnings(self) -> list[str]:
        """Every reader's warnings, each naming its file."""
        return [_named(report.path, w) for report in self.sources for w in report.warnings]

    @property
    def damaged(self) -> list[str]:
        """The inputs in which data was lost (damaged or skipped records); empty when all read."""
        return [report.path for report in self.sources if report.damage]

    @property
    def notes(self) -> list[str]:
        return [n for report in self.sources for n in report.notes]


def _named(path: str, message: str) -> str:
    return message if message.startswith(path) else f"{path}: {message}"


def default_labels(path: Path, app: str | None, mode: str | None) -> Labels:
    """Labels for records that carry none: --app/--mode, and the session named after the file.

    The mode is normalised (phonehome.analysis.modes); LabelError (a ValueError) if it cannot be.
    """
    if path.is_dir():
        session = ""  # the capture directory's reader names it (session.json or folder name)
    elif path.stem in ("flows", "capture", "dump") and path.parent.name:
        session = path.parent.name
    else:
        session = path.stem
    return Labels(session=session, app=app or None, mode=normalize_mode(mode) if mode else "normal")


def load_profiles(paths: Iterable[Path], explicit: Profile | None) -> Profile | None:
    """The explicit --profile, filled in from any profile.json inside capture directories."""
    profile = explicit
    for path in paths:
        candidate = path / PROFILE_NAME if path.is_dir() else path.parent / PROFILE_NAME
        if candidate.is_file():
            found = Profile.load(candidate)
            profile = found if profile is None else profile.merged(found)
    return merge_plan_canaries(profile, paths)  # a plan.json's canaries become known urls/search_terms


def analyze(
    paths: Sequence[str | os.PathLike[str]],
    *,
    profile: Profile | None = None,
    app: str | None = None,
    mode: str | None = None,
    keylog: str | os.PathLike[str] | None = None,
    progress: ProgressCallback | None = None,
    endpoint_lists: Sequence[str | os.PathLike[str]] = (),
    workers: int | None = 1,
    records_out: list[HttpRecord | ContactRecord] | None = None,
) -> Analysis:
    """Read every capture, decode and classify each request, return the tables.

    Raises CaptureError for a path that is missing or not a capture at all; damage inside a
    capture (a truncated dump) is a warning in the returned SourceReports, and the records
    before it are kept.

    Each input is read through analysis.reader: dumps and capture directories with the fast
    reader (no mitmproxy objects), and with `workers` > 1 (None: every core) a big dump in byte
    ranges in worker processes; the tables are the same either way. A caller passing
    workers != 1 needs the usual `if __name__ == "__main__":` guard.

    When HAR or pcap files are analysed together with other captures, the same request seen
    in two of them is counted once (analysis.sources.dedup), the richer source's copy kept.

    `records_out`, when given, receives the records the tables were built from (one read of the
    inputs, for callers such as the HAR export that need the requests themselves).
    """
    resolved = [Path(p) for p in paths]
    for path in resolved:
        if not path.exists():
            raise CaptureError(path, "no such file or directory")
    kinds = [sniff_kind(path) for path in resolved]
    profile = load_profiles(resolved, profile)
    collector = RowCollector(RowSettings(profile, tuple(str(p) for p in endpoint_lists)))
    collector.load_endpoint_lists()  # a bad list fails before any reading
    reports = [SourceReport(str(path)) for path in resolved]
    sources = list(zip(resolved, kinds, reports, strict=True))
    if records_out is not None or (len(resolved) > 1 and any(kind in ("har", "pcap") for kind in kinds)):
        kept = _collect_deduplicated(sources, collector, app, mode, keylog, progress)
        if records_out is not None:
            records_out.extend(kept)
        return build_analysis(collector.take(), reports, profile)
    for path, kind, report in sources:
        defaults = default_labels(path, app, mode)
        collect_source(
            path, kind, defaults, report, collector, keylog=keylog, workers=workers, progress=progress
        )
        if progress is not None:
            progress(str(path), report.records)
    return build_analysis(collector.take(), reports, profile)


def _collect_deduplicated(
    sources: list[tuple[Path, str, SourceReport]],
    collector: RowCollector,
    app: str | None,
    mode: str | None,
    keylog: str | os.PathLike[str] | None,
    progress: ProgressCallback | None,
) -> list[HttpRecord | ContactRecord]:
    """All records in memory, duplicates across sources dropped, then rows; returns the records.

    Used when a HAR or pcap sits beside other captures (sizes that fit in memory) or when the
    caller wants the records too; a lone big dump analysed for its tables never comes here.
    """
    records = []
    reports = [report for _, _, report in sources]
    for path, kind, report in sources:
        records.extend(read_source(path, default_labels(path, app, mode), report, keylog, kind=kind))
        if progress is not None:
            progress(str(path), report.records)
    kept = drop_duplicates(records)
    if len(kept) < len(records):
        kept_ids = {id(record) for record in kept}
        dropped: dict[str, int] = {}
        for record in records:
            if id(record) not in kept_ids:
                dropped[record.source] = dropped.get(record.source, 0) + 1
        for source, count in dropped.items():
            report = next(
                (r for r in reports if source == r.path or source.startswith(r.path.rstrip(os.sep) + os.sep)),
                reports[0],
            )
            report.notes.append(
                f"{source}: {count} request(s) also in another capture of this run, counted once"
            )
    for record in kept:
        collector.add(record)
    return kept


def build_analysis(rows: Rows, reports: list[SourceReport], profile: Profile | None) -> Analysis:
    """The three DataFrames from collected rows; persistence needs the whole findings table."""
    import pandas as pd  # not at module level: see analysis.parallel.import_table_libraries

    findings = mark_persistence(findings_from_rows(rows.findings))
    flows = pd.DataFrame.from_records(rows.flows, columns=list(FLOWS_COLUMNS))
    flows = flows.astype(
        {"status": "Int64", "request_size": "int64", "response_size": "Int64", "fields": "int64"}
    )
    flows["decode_truncated"] = flows["decode_truncated"].astype(bool)
    flows["timestamp"] = flows["timestamp"].astype("float64")
    contacts = pd.DataFrame.from_records(rows.contacts, columns=list(CONTACTS_COLUMNS))
    contacts["timestamp"] = contacts["timestamp"].astype("float64")
    return Analysis(flows, findings, contacts, reports, profile)


def write_tables(analysis: Analysis, out_dir: str | os.PathLike[str]) -> list[Path]:
    """findings.csv, findings.parquet, flows.parquet (DESIGN.md) and contacts.parquet, user-only."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    written = [
        out / "findings.csv",
        out / "findings.parquet",
        out / "flows.parquet",
        out / "contacts.parquet",
    ]
    import pyarrow as pa
    import pyarrow.parquet as pq

    from phonehome.analysis import sharing

    findings = pa.Table.from_pandas(analysis.findings, preserve_index=False)
    # Arrow's CSV writer: 7x faster than DataFrame.to_csv; quotes every string value
    sharing.write_csv(findings, written[0])  # formula-leading cells neutralised, CR/LF quoted (issue 15)
    pq.write_table(findings, written[1])
    analysis.flows.to_parquet(written[2], index=False)
    analysis.contacts.to_parquet(written[3], index=False)
    for path in written:
        os.chmod(path, 0o600)
    return written
