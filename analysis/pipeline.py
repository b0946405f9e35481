"""The analysis pipeline: capture paths in, the three tidy tables out.

sources -> decode -> classify -> findings. This module only wires the stages together: each
input's kind is sniffed once here, read through the one reader seam (analysis.reader) into
rows (analysis.rows), and the rows become tables (build_analysis: Arrow tables, DataFrames on
demand). Each stage lives in its own package and knows nothing of the others' I/O.
docs/architecture.md draws the whole flow.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from phonehome.analysis.arrow_tables import CHUNK_ROWS
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
    import pyarrow as pa

__all__ = [
    "Analysis",
    "ProgressCallback",
    "analyze",
    "build_analysis",
    "default_labels",
    "load_profiles",
    "write_tables",
]


TABLES = ("flows", "findings", "contacts")


@dataclass(eq=False)
class Analysis:
    """Everything one run of `phonehome analyze` found: three tables, the inputs' reports, the profile.

    The tables are built as Arrow tables (analysis.arrow_tables), which is all `phonehome
    analyze` needs to write them, so that command never imports pandas. `flows`, `findings` and
    `contacts` give them as DataFrames, built on first access; from then on the DataFrame is the
    table (a caller may change or replace it, and write_tables writes what it holds).
    """

    flows: pd.DataFrame
    findings: pd.DataFrame
    contacts: pd.DataFrame
    sources: list[SourceReport] = field(default_factory=list)
    profile: Profile | None = None

    @classmethod
    def from_tables(
        cls, tables: dict[str, pa.Table], sources: list[SourceReport], profile: Profile | None
    ) -> Analysis:
        """An Analysis of Arrow tables (arrow_tables.arrow_table), one per name in TABLES."""
        analysis = cls.__new__(cls)
        analysis._arrow = {name: tables[name] for name in TABLES}
        analysis._frames = {}
        analysis.sources, analysis.profile = sources, profile
        return analysis

    def _frame(self, name: str) -> pd.DataFrame:
        found = self._frames.get(name)
        if found is None:
            from phonehome.analysis.arrow_tables import frame

            found = frame(self._arrow[name], name)  # the table stays until the frame exists (Ctrl-C)
            self._frames[name] = found
            del self._arrow[name]
        return found

    def _set(self, name: str, value: pd.DataFrame) -> None:
        if "_frames" not in self.__dict__:  # the dataclass __init__ sets the tables first
            self._arrow, self._frames = {}, {}
        self._arrow.pop(name, None)
        self._frames[name] = value

    def table(self, name: str) -> pa.Table:
        """Table `name` as Arrow, without building a DataFrame when none was asked for. The findings
        may be held in dictionary-encoded chunks: arrow_tables.plain() gives the plain table."""
        found = self._arrow.get(name)
        if found is not None:
            return found
        import pyarrow as pa

        return pa.Table.from_pandas(self._frames[name], preserve_index=False)

    def size(self, name: str) -> int:
        """Rows in table `name`."""
        found = self._arrow.get(name)
        return found.num_rows if found is not None else len(self._frames[name])

    def count_true(self, name: str, column: str) -> int:
        """Rows of table `name` where boolean `column` is true (0 when there is no such column)."""
        found = self._arrow.get(name)
        if found is None:
            frame = self._frames[name]
            return int(frame[column].fillna(False).astype(bool).sum()) if column in frame else 0
        if column not in found.column_names:
            return 0
        from phonehome.analysis.arrow_tables import count_true

        return count_true(found.column(column))

    def distinct(self, name: str, column: str) -> int:
        """Distinct non-missing values in one column of table `name` (DataFrame.nunique)."""
        found = self._arrow.get(name)
        if found is None:
            return int(self._frames[name][column].nunique())
        from phonehome.analysis.arrow_tables import distinct

        return distinct(found.column(column))

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


def _table_property(name: str) -> property:
    return property(
        lambda self: self._frame(name),
        lambda self, value: self._set(name, value),
        doc=f"The {name} table as a DataFrame (built from the Arrow table on first access).",
    )


for _name in TABLES:  # after @dataclass, which made them fields: __init__ and replace() go through these
    setattr(Analysis, _name, _table_property(_name))
del _name


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
    resolved, repeated = _once_each(resolved)
    kinds = [sniff_kind(path) for path in resolved]
    profile = load_profiles(resolved, profile)
    # findings packed into compact Arrow chunks as they come (arrow_tables.pack_findings)
    settings = RowSettings(profile, tuple(str(p) for p in endpoint_lists))
    collector = RowCollector(settings, pack_every=CHUNK_ROWS)
    collector.load_endpoint_lists()  # a bad list fails before any reading
    reports = [SourceReport(str(path)) for path in resolved]
    for index, times in repeated.items():
        reports[index].notes.append(f"{resolved[index]}: given {times} times, read once")
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


def _once_each(paths: list[Path]) -> tuple[list[Path], dict[int, int]]:
    """The inputs with repeats of one file or folder left out (every request would be counted
    twice, under one flow id), and how many times each repeated one was given, by its index."""
    first: dict[Path, int] = {}
    unique: list[Path] = []
    times: dict[int, int] = {}
    for path in paths:
        key = path.resolve()
        if key in first:
            times[first[key]] = times.get(first[key], 1) + 1
            continue
        first[key] = len(unique)
        unique.append(path)
    return unique, times


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
    """The three tables from collected rows; persistence needs all the findings first.

    Arrow tables, no pandas (analysis.arrow_tables): the rows are consumed, the findings' a chunk
    at a time, so their tuples and the table never both exist whole.
    """
    from phonehome.analysis.arrow_tables import arrow_table, findings_table

    # chunk by chunk, the rows freed as it goes; persistence marked on the table
    tables = {"findings": findings_table(*rows.take_findings())}
    for name in ("flows", "contacts"):
        tables[name] = arrow_table(getattr(rows, name), name)
        setattr(rows, name, [])
    return Analysis.from_tables(tables, reports, profile)


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
    from phonehome.analysis.arrow_tables import CHUNK_ROWS, plain, plain_schema

    findings = analysis.table("findings")
    # One pass over the findings, a slice at a time, decoded once for both files: the plain
    # table is never whole in memory. findings.csv by Arrow's CSV writer (7x faster than
    # DataFrame.to_csv), formula-leading cells neutralised, CR/LF quoted (issue 15). Parquet row
    # groups of CHUNK_ROWS rows whatever the chunks (which follow the workers' ranges), so the
    # file's bytes do not depend on -j; a table of one row group is written as pq.write_table does.
    with (
        sharing.spreadsheet_csv(written[0], findings.schema) as write_csv_rows,
        pq.ParquetWriter(written[1], plain_schema(findings.schema)) as parquet,
    ):
        for offset in range(0, max(1, findings.num_rows), CHUNK_ROWS):
            part = plain(findings.slice(offset, CHUNK_ROWS))
            write_csv_rows(part)
            parquet.write_table(part, row_group_size=CHUNK_ROWS)
            del part
    pa.default_memory_pool().release_unused()  # the slices' memory back before the next files
    pq.write_table(analysis.table("flows"), written[2])  # what DataFrame.to_parquet(index=False) does
    pq.write_table(analysis.table("contacts"), written[3])
    for path in written:
        os.chmod(path, 0o600)
    return written
