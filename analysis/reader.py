"""The analysis' one way of reading a capture into rows: the seam between sources and rows.

Every input goes through `collect_source`, with its kind sniffed once by the caller. Records
are read in order in this process (analysis.sources.read_source and the fast dump reader) and
fed to a RowCollector, except where that is slow, with more than one worker allowed: a big,
well-framed mitmproxy dump (alone, or as a capture directory's flows.mitm), whose byte ranges
analysis.parallel analyses in worker processes, and a big HAR, split into its entries once here and analysed
in ranges of entries by forked workers. Both paths give the same rows, in the same order,
with the same SourceReport (tests/test_parallel.py, tests/test_har_parallel.py).
"""

from __future__ import annotations

import os
from pathlib import Path

from phonehome.analysis import parallel
from phonehome.analysis.records import Labels, ProgressCallback, SourceReport
from phonehome.analysis.rows import RowCollector
from phonehome.analysis.sources import CaptureError, app_traffic, read_source
from phonehome.analysis.sources.capture_dir import capture_parts, read_events
from phonehome.analysis.sources.fastdump import iter_dump
from phonehome.analysis.sources.framing import has_records

#: Records between two progress calls on the sequential path.
PROGRESS_EVERY = 1000


def collect_source(
    path: Path,
    kind: str,
    defaults: Labels,
    report: SourceReport,
    collector: RowCollector,
    *,
    keylog: str | os.PathLike[str] | None = None,
    workers: int | None = 1,
    progress: ProgressCallback | None = None,
) -> bool:
    """Add the rows of every record of `path` (of `kind`, see sources.sniff_kind) to `collector`.

    `workers`: processes for a big dump or HAR (None: parallel.default_workers()). Returns
    whether the records were analysed in ranges. Raises CaptureError when `path` holds nothing
    readable.
    """
    if kind == "har" and workers != 1:
        return collect_har(path, defaults, report, collector, workers=workers, progress=progress)
    if kind == "dump":
        return collect_dump(path, defaults, report, collector, workers=workers, progress=progress)
    if kind == "capture_dir":
        parts = capture_parts(path, defaults, report)
        in_ranges = False
        if parts.dump is not None:
            in_ranges = collect_dump(
                parts.dump,
                parts.defaults,
                report,
                collector,
                allow_empty=True,
                workers=workers,
                progress=progress,
            )
        if parts.events is not None:
            for record in read_events(parts.events, parts.defaults, report):
                collector.add(record)
        return in_ranges
    _feed(read_source(path, defaults, report, keylog, kind=kind), path, collector, progress)
    return False


def collect_dump(
    path: Path,
    defaults: Labels,
    report: SourceReport,
    collector: RowCollector,
    *,
    allow_empty: bool = False,
    workers: int | None = 1,
    progress: ProgressCallback | None = None,
) -> bool:
    """A dump's rows, in byte ranges on several cores when worth it, else in one pass here.

    Same rows, in the same order, with the same report either way; damage met in a range
    sends the file to the sequential reader, which resyncs past it and says what was lost.
    """
    if not has_records(path, report, allow_empty=allow_empty):
        return False
    workers = parallel.default_workers() if workers is None else max(1, workers)
    ranges = parallel.plan_ranges(path, path.stat().st_size, workers)
    if ranges and parallel.collect_ranges(path, ranges, defaults, report, collector, workers, progress):
        return True
    _feed(iter_dump(path, defaults, report), path, collector, progress)
    return False


def collect_har(
    path: Path,
    defaults: Labels,
    report: SourceReport,
    collector: RowCollector,
    *,
    workers: int | None = None,
    progress: ProgressCallback | None = None,
) -> bool:
    """A HAR's rows: read and split into entries once here, then its entries in ranges on several
    cores when worth it (PARALLEL_MIN_RECORDS entries, more than one worker), else in one pass here.

    Same rows, in the same order, with the same report (records, warnings, damage, notes) as
    read_source's pass; a damaged entry is skipped with its warning on either path.
    """
    from phonehome.analysis.sources.har import har_records, load_har  # not needed for a dump

    if not path.exists():
        raise CaptureError(path, "no such file or directory")
    with load_har(path, defaults) as har:  # closes the file its entries are read from
        workers = parallel.default_workers() if workers is None else max(1, workers)
        ranges = parallel.plan_entry_ranges(har.count, workers)
        if ranges:
            parallel.collect_entry_ranges(har, ranges, report, collector, workers, progress)
            return True
        _feed(app_traffic(har_records(har, report, release=True), report), path, collector, progress)
        return False


def _feed(records, path: Path, collector: RowCollector, progress: ProgressCallback | None) -> None:
    add = collector.add
    if progress is None:
        for record in records:
            add(record)
        return
    for count, record in enumerate(records, 1):
        add(record)
        if count % PROGRESS_EVERY == 0:
            progress(str(path), count)
