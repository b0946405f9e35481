"""The analysis pipeline: capture paths in, the three tidy tables out.

sources -> decode -> classify -> findings. This module only wires the stages together and
collects rows; each stage lives in its own package and knows nothing of the others' I/O.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from operator import attrgetter
from pathlib import Path
from typing import TYPE_CHECKING

from phonehome.analysis.classify import Endpoint, EndpointClassifier, classify_request, mark_persistence
from phonehome.analysis.classify.endpoints import default_classifier
from phonehome.analysis.decode import decode_request
from phonehome.analysis.findings import (
    CONTACTS_COLUMNS,
    FINDINGS_COLUMNS,
    FLOWS_COLUMNS,
    Finding,
    findings_from_rows,
)
from phonehome.analysis.plan import merge_plan_canaries
from phonehome.analysis.profile import Profile
from phonehome.analysis.records import ContactRecord, HttpRecord, Labels, SourceReport, safe_text
from phonehome.analysis.sources import CaptureError, read_source, sniff_kind
from phonehome.analysis.sources.capture_dir import PROFILE_NAME
from phonehome.analysis.sources.dedup import drop_duplicates

if TYPE_CHECKING:
    import pandas as pd

ProgressCallback = Callable[[str, int], None]

# A finding's values in column order; dataclasses.astuple deep-copies and cost a quarter of a run.
_finding_row = attrgetter(*(f.name for f in fields(Finding)))
# Columns whose values repeat over many rows: each distinct value stored once (RowCollector._strings).
_SHARED_COLUMNS = ("session", "app", "mode", "method", "host", "url", "location", "field", "encodings")
_SHARED_COLUMNS += ("value",)  # a device's identifiers recur in request after request
_FINDING_SHARED = tuple(FINDINGS_COLUMNS.index(c) for c in _SHARED_COLUMNS)


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


@dataclass(slots=True)
class RowCollector:
    """Turns records into table rows. One per worker; holds the per-run caches."""

    profile: Profile | None = None
    endpoint_lists: tuple[str, ...] = ()  # user lists (hosts, Disconnect, DDG TDS) on top of ours
    flow_rows: list[tuple] = field(default_factory=list)
    finding_rows: list[tuple] = field(default_factory=list)
    contact_rows: list[tuple] = field(default_factory=list)
    _endpoints: dict[tuple[str, str | None], Endpoint] = field(default_factory=dict)
    _classifier: EndpointClassifier | None = None
    # one str object per distinct label, host, field path...: rows repeat them, and a worker's
    # pickle then carries each once (the parent's rows at 100,000 flows: 420 MB -> see docs)
    _strings: dict[str, str] = field(default_factory=dict)

    def endpoint(self, host: str, app: str | None) -> Endpoint:
        key = (host, app)
        found = self._endpoints.get(key)
        if found is None:
            if self._classifier is None:
                lists = list(self.endpoint_lists)
                self._classifier = EndpointClassifier(lists) if lists else default_classifier()
            found = self._endpoints[key] = self._classifier.classify(host, app)
        return found

    def add(self, record: HttpRecord | ContactRecord) -> None:
        if isinstance(record, HttpRecord):
            self.add_http(record)
        else:
            self.add_contact(record)

    def add_http(self, record: HttpRecord) -> None:
        labels = record.labels
        endpoint = self.endpoint(record.host, labels.app)
        decoded = decode_request(record)
        findings = classify_request(record, decoded, endpoint, self.profile)
        share = self._strings.setdefault
        for finding in findings:
            row = list(_safe_row(_finding_row(finding)))
            for i in _FINDING_SHARED:
                row[i] = share(row[i], row[i])
            self.finding_rows.append(tuple(row))
        host = share(record.host, record.host)
        self.flow_rows.append(
            _safe_row(
                (
                    share(labels.session, labels.session),
                    labels.app or "",
                    share(labels.mode, labels.mode),
                    labels.phase or "",
                    record.flow_id,
                    record.timestamp,
                    share(record.method, record.method),
                    host,
                    endpoint.site,
                    endpoint.owner,
                    endpoint.category,
                    endpoint.party,
                    record.url,
                    record.status,
                    len(record.request_body),
                    record.response_size,
                    record.header("content-type") or "",
                    record.response_header("content-type") or "",
                    len(decoded.fields),
                    decoded.truncated,
                    record.source,
                )
            )
        )

    def add_contact(self, record: ContactRecord) -> None:
        labels = record.labels
        endpoint = self.endpoint(record.host, labels.app)
        self.contact_rows.append(
            _safe_row(
                (
                    labels.session,
                    labels.app or "",
                    labels.mode,
                    labels.phase or "",
                    record.timestamp,
                    record.host,
                    endpoint.site,
                    endpoint.owner,
                    endpoint.category,
                    record.kind,
                    record.detail,
                    record.server_ip,
                    record.source,
                )
            )
        )


def _named(path: str, message: str) -> str:
    return message if message.startswith(path) else f"{path}: {message}"


def _safe_row(row: tuple) -> tuple:
    """The row with every string made valid UTF-8 (Parquet and reports need it)."""
    for value in row:  # the common case, all ASCII, returns the row as it is (4x faster)
        if value.__class__ is str and not value.isascii():
            return tuple(safe_text(v) if isinstance(v, str) else v for v in row)
    return row


def default_labels(path: Path, app: str | None, mode: str | None) -> Labels:
    """Labels for records that carry none: --app/--mode, and the session named after the file."""
    if path.is_dir():
        session = ""  # the capture directory's reader names it (session.json or folder name)
    elif path.stem in ("flows", "capture", "dump") and path.parent.name:
        session = path.parent.name
    else:
        session = path.stem
    return Labels(session=session, app=app, mode=mode or "normal")


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

    Dumps and capture directories take the fast path (analysis.parallel): a reader that skips
    building mitmproxy objects, and with `workers` > 1 (None: every core) record ranges in
    worker processes; the tables are the same as the straightforward path's. A caller passing
    workers != 1 needs the usual `if __name__ == "__main__":` guard.

    When HAR or pcap files are analysed together with other captures, the same request seen
    in two of them is counted once (analysis.sources.dedup), the richer source's copy kept.

    `records_out`, when given, receives the records the tables were built from (one read of the
    inputs, for callers such as the HAR export that need the requests themselves).
    """
    from phonehome.analysis.parallel import collect_source

    resolved = [Path(p) for p in paths]
    for path in resolved:
        if not path.exists():
            raise CaptureError(path, "no such file or directory")
    kinds = [sniff_kind(path) for path in resolved]
    profile = load_profiles(resolved, profile)
    collector = RowCollector(profile=profile, endpoint_lists=tuple(str(p) for p in endpoint_lists))
    collector.endpoint("", None)  # load user lists now, so a bad list fails before any reading
    reports = [SourceReport(str(path)) for path in resolved]
    if records_out is not None or (len(resolved) > 1 and any(kind in ("har", "pcap") for kind in kinds)):
        kept = _collect_deduplicated(resolved, reports, collector, app, mode, keylog, progress)
        if records_out is not None:
            records_out.extend(kept)
        return build_analysis(collector, reports, profile)
    for path, report in zip(resolved, reports, strict=True):
        defaults = default_labels(path, app, mode)
        run = collect_source(path, defaults, report, collector, workers=workers, progress=progress)
        if run is None:  # HAR or pcap
            for count, record in enumerate(read_source(path, defaults, report, keylog), 1):
                collector.add(record)
                if progress is not None and count % 1000 == 0:
                    progress(str(path), count)
        if progress is not None:
            progress(str(path), report.records)
    return build_analysis(collector, reports, profile)


def reference_analysis(path: str | os.PathLike[str]) -> Analysis:
    """One capture through the straightforward path: mitmproxy's own reader, record by record,
    in this process. The fast path (`analyze`) must give exactly these tables; the tests and
    benchmarks/bench_analyze.py compare against it."""
    source = Path(path)
    profile = load_profiles([source], None)
    collector = RowCollector(profile=profile)
    report = SourceReport(str(source))
    for record in read_source(source, default_labels(source, None, None), report):
        collector.add(record)
    return build_analysis(collector, [report], profile)


def _collect_deduplicated(
    paths: list[Path],
    reports: list[SourceReport],
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
    for path, report in zip(paths, reports, strict=True):
        records.extend(read_source(path, default_labels(path, app, mode), report, keylog))
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


def build_analysis(collector: RowCollector, reports: list[SourceReport], profile: Profile | None) -> Analysis:
    """The three DataFrames from collected rows; persistence needs the whole findings table."""
    import pandas as pd  # not at module level: see analysis.parallel.import_table_libraries

    findings = mark_persistence(findings_from_rows(collector.finding_rows))
    flows = pd.DataFrame.from_records(collector.flow_rows, columns=list(FLOWS_COLUMNS))
    flows = flows.astype(
        {"status": "Int64", "request_size": "int64", "response_size": "Int64", "fields": "int64"}
    )
    flows["decode_truncated"] = flows["decode_truncated"].astype(bool)
    flows["timestamp"] = flows["timestamp"].astype("float64")
    contacts = pd.DataFrame.from_records(collector.contact_rows, columns=list(CONTACTS_COLUMNS))
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
