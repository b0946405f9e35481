"""Analysing a big mitmproxy dump on every core: record ranges in worker processes.

A dump is a sequence of tnetstring records `<length>:<payload><tag>`, so record boundaries are
found by reading length prefixes and seeking, without parsing anything. The records are split
into contiguous byte ranges; each worker process reads its range with the fast reader
(analysis.sources.fastdump), decodes and classifies, and sends back only the table rows. The
parent concatenates them in file order, so the result is the same as one sequential pass.

Workers are only started when there is enough work (PARALLEL_MIN_RECORDS records and more
than one core). The start method is `fork` when this process has a single thread (a worker is
ready in milliseconds), else `forkserver` (about a second: it imports pandas and mitmproxy), or
`spawn` where neither exists.
Damage anywhere (a record that does not frame or does not load) sends the whole file to the
sequential reader, whose resync keeps every good flow and reports the bad bytes.
"""

from __future__ import annotations

import dataclasses
import importlib
import itertools
import multiprocessing
import os
import pickle
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

try:
    import resource
except ImportError:  # Windows
    resource = None  # type: ignore[assignment]

from phonehome.analysis.records import Labels, SourceReport
from phonehome.analysis.sources import CaptureError, sniff_kind
from phonehome.analysis.sources.capture_dir import DUMP_NAME, EVENTS_NAME, read_events, session_name
from phonehome.analysis.sources.fastdump import DamageInRange, iter_dump
from phonehome.analysis.sources.mitm import MAX_RECORD_BYTES

if TYPE_CHECKING:
    from phonehome.analysis.pipeline import RowCollector

#: Below this many records a dump is analysed in-process (worker start-up would dominate).
PARALLEL_MIN_RECORDS = 2_000
#: Ranges per worker: several, so a slow range (big bodies) does not leave a core idle.
RANGES_PER_WORKER = 8
#: Environment variable that overrides the number of worker processes (1 = never parallel).
WORKERS_ENV = "PHONEHOME_WORKERS"

ProgressCallback = Callable[[str, int], None]


def available_cores() -> int:
    """Cores this process may run on (the affinity mask, not the machine's total)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def default_workers() -> int:
    """$PHONEHOME_WORKERS if set (an integer >= 1), else the available cores."""
    raw = os.environ.get(WORKERS_ENV, "").strip()
    if raw.isdigit() and int(raw) >= 1:
        return int(raw)
    return available_cores()


def record_offsets(path: Path, size: int | None = None) -> list[int] | None:
    """Start offset of every record, from the length prefixes alone; None if anything is off.

    None (irregular framing, a record over MAX_RECORD_BYTES, a record running past the end)
    means "let the sequential reader handle this file": it knows how to resync.
    """
    size = os.path.getsize(path) if size is None else size
    offsets: list[int] = []
    position = 0
    with path.open("rb", buffering=64 * 1024) as fo:
        while position < size:
            fo.seek(position)
            digits, colon, _ = fo.read(13).partition(b":")
            if not colon or not digits.isdigit() or (len(digits) > 1 and digits[:1] == b"0"):
                return None
            length = int(digits)
            if length > MAX_RECORD_BYTES:
                return None
            offsets.append(position)
            position += len(digits) + 1 + length + 1
    return offsets if position == size else None


def split_ranges(offsets: list[int], size: int, parts: int) -> list[tuple[int, int]]:
    """Contiguous (start, end) byte ranges on record boundaries, about equal in bytes."""
    if not offsets:
        return []
    parts = max(1, min(parts, len(offsets)))
    bounds = [offsets[0]]
    target = size / parts
    index = 0
    for part in range(1, parts):
        goal = part * target
        while index < len(offsets) and offsets[index] < goal:
            index += 1
        if index < len(offsets) and offsets[index] > bounds[-1]:
            bounds.append(offsets[index])
    bounds.append(size)
    return list(itertools.pairwise(bounds))


@dataclass(slots=True)
class RangeRows:
    """What one worker sends back for one byte range: rows only, never records."""

    flow_rows: list[tuple] = field(default_factory=list)
    finding_rows: list[tuple] = field(default_factory=list)
    contact_rows: list[tuple] = field(default_factory=list)
    records: int = 0
    pid: int = 0
    cpu_seconds: float = 0.0  # the worker process's CPU time so far (cumulative)
    peak_rss_kb: int = 0


@dataclass(slots=True)
class DumpRun:
    """How a dump was analysed: for benchmarks and progress output, not for results."""

    workers: int = 1  # processes that analysed ranges, this one included (1 = this one only)
    worker_cpu_seconds: float = 0.0
    worker_peak_rss_kb: int = 0
    start_method: str = ""  # fork: the workers were this process's children (RUSAGE_CHILDREN has them)


_ROW_FIELDS = ("flow_rows", "finding_rows", "contact_rows")
# One RowCollector per settings per process, so its caches (endpoint lists, classifications)
# are built once per worker rather than once per range.
_COLLECTORS: dict[bytes, RowCollector] = {}


def collector_settings(collector: RowCollector) -> dict[str, Any]:
    """The collector's settings (public init fields other than rows): what a worker needs.

    Private fields are caches and rows are output, so neither is sent to workers.
    """
    return {
        f.name: getattr(collector, f.name)
        for f in dataclasses.fields(collector)
        if f.init and not f.name.startswith("_") and f.name not in _ROW_FIELDS
    }


def _range_collector(settings: dict[str, Any]) -> RowCollector:
    from phonehome.analysis.pipeline import RowCollector

    key = pickle.dumps(sorted(settings.items()))
    collector = _COLLECTORS.get(key)
    if collector is None:
        if len(_COLLECTORS) >= 4:
            _COLLECTORS.clear()
        collector = _COLLECTORS[key] = RowCollector(**settings)
    collector.flow_rows, collector.finding_rows, collector.contact_rows = [], [], []
    collector._strings.clear()  # shared within a range's pickle only; keeps a worker's dict small
    return collector


def analyse_range(
    path: Path, start: int, end: int, defaults: Labels, settings: dict[str, Any]
) -> RangeRows | None:
    """Rows for the records in [start, end) of a dump; None if the range holds damage.

    `settings` are the RowCollector's (collector_settings), e.g. the profile.
    """
    collector = _range_collector(settings)
    report = SourceReport(str(path))
    try:
        for record in iter_dump(path, defaults, report, start=start, end=end, stop_on_damage=True):
            collector.add(record)
    except DamageInRange:
        return None
    usage = resource.getrusage(resource.RUSAGE_SELF) if resource else None
    return RangeRows(
        collector.flow_rows,
        collector.finding_rows,
        collector.contact_rows,
        report.records,
        os.getpid(),
        usage.ru_utime + usage.ru_stime if usage else 0.0,
        usage.ru_maxrss if usage else 0,
    )


def _analyse_task(task: tuple[Path, int, int, Labels, dict[str, Any]]) -> RangeRows | None:
    return analyse_range(*task)


def _context() -> multiprocessing.context.BaseContext:
    """`fork` when this process has a single thread (workers start in milliseconds, with every
    module already imported); otherwise `forkserver`, or `spawn` where that does not exist.

    Forking is unsafe only when other threads may hold locks; with one thread it is not.
    ProcessPoolExecutor forks all its workers before it starts its own manager thread.
    """
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1 and sys.platform == "linux":
        return multiprocessing.get_context("fork")
    if "forkserver" in methods:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["phonehome.analysis.pipeline", "phonehome.analysis.sources.fastdump"])
        return ctx
    return multiprocessing.get_context("spawn")


TABLE_LIBRARIES = ("pandas", "pyarrow", "pyarrow.csv", "pyarrow.parquet")


def import_table_libraries() -> threading.Thread | None:
    """Import pandas and pyarrow in a background thread, unless done already.

    Only the parent builds DataFrames and writes tables; importing pandas takes about 0.6 s of
    CPU, which at 5,000 flows is a fifth of the run. Imported up front it kept the second core
    idle; imported while the workers read and classify (the parent's own range work yields it the
    GIL), it costs about half. Workers never import it.
    """
    missing = [name for name in TABLE_LIBRARIES if name not in sys.modules]
    if not missing:
        return None

    def load() -> None:
        for name in missing:
            try:
                importlib.import_module(name)
            except ImportError:  # reported where the tables are built, not here
                return

    thread = threading.Thread(target=load, name="phonehome-import-tables", daemon=True)
    thread.start()
    return thread


def collect_dump(
    path: Path,
    defaults: Labels,
    report: SourceReport,
    collector: RowCollector,
    *,
    allow_empty: bool = False,
    workers: int | None = None,
    progress: ProgressCallback | None = None,
) -> DumpRun:
    """Add the rows of every record of a dump to `collector`; says how (workers used).

    Same rows, in the same order, with the same report, as feeding read_dump's records to
    collector.add one by one.
    """
    size = path.stat().st_size
    if size == 0:
        if not allow_empty:
            raise CaptureError(path, "empty file (no flows)")
        report.warnings.append(f"{path}: empty (no flows recorded)")
        return DumpRun()
    workers = default_workers() if workers is None else max(1, workers)
    offsets = record_offsets(path, size) if workers > 1 else None
    if offsets is not None and len(offsets) >= PARALLEL_MIN_RECORDS:
        ranges = split_ranges(offsets, size, workers * RANGES_PER_WORKER)
        run = _collect_in_workers(path, ranges, defaults, collector, workers, progress, report)
        if run is not None:
            return run
    for count, record in enumerate(iter_dump(path, defaults, report), 1):
        collector.add(record)
        if progress is not None and count % 1000 == 0:
            progress(str(path), count)
    return DumpRun()


def _collect_in_workers(
    path: Path,
    ranges: list[tuple[int, int]],
    defaults: Labels,
    collector: RowCollector,
    workers: int,
    progress: ProgressCallback | None,
    report: SourceReport,
) -> DumpRun | None:
    """Rows added in order, records counted in `report`; None (both untouched) on damage.

    This process is one of the `workers`: while `workers - 1` pool processes start up and
    take ranges from the front, it takes ranges from the back itself (a queued range that no
    worker has started can be cancelled and done here), so no core idles during start-up. A
    range whose worker died (e.g. a script without an `if __name__ == "__main__":` guard) is
    done here too: the result never depends on whether the workers worked.
    """
    settings = collector_settings(collector)
    tasks = [(path, start, end, defaults, settings) for start, end in ranges]
    parts: list[RangeRows | None] = [None] * len(tasks)
    records = 0

    def keep(index: int, rows: RangeRows | None) -> bool:
        """Store a range's rows; False when the range held damage (then everything stops)."""
        nonlocal records
        if rows is None:
            _COLLECTORS.clear()
            pool.shutdown(wait=True, cancel_futures=True)
            return False
        parts[index] = rows
        records += rows.records
        if progress is not None:
            progress(str(path), records)
        return True

    context = _context()
    with ProcessPoolExecutor(max(1, workers - 1), mp_context=context) as pool:
        futures = [pool.submit(_analyse_task, task) for task in tasks]
        import_table_libraries()  # the workers exist now: no fork will copy the importing thread
        for index in reversed(range(len(tasks))):
            if not futures[index].cancel():
                break  # a worker has it; every earlier range is taken too
            if not keep(index, analyse_range(*tasks[index])):
                return None
        for index, future in enumerate(futures):
            if parts[index] is not None:
                continue
            try:
                rows = future.result()
            except BrokenProcessPool:
                rows = analyse_range(*tasks[index])
            if not keep(index, rows):
                return None
    cpu: dict[int, float] = {}
    rss: dict[int, int] = {}
    for rows in parts:
        assert rows is not None
        collector.flow_rows.extend(rows.flow_rows)
        collector.finding_rows.extend(rows.finding_rows)
        collector.contact_rows.extend(rows.contact_rows)
        cpu[rows.pid] = max(cpu.get(rows.pid, 0.0), rows.cpu_seconds)
        rss[rows.pid] = max(rss.get(rows.pid, 0), rows.peak_rss_kb)
    report.records += records
    _COLLECTORS.clear()
    cpu.pop(os.getpid(), None)  # this process's own time is the caller's to measure
    rss.pop(os.getpid(), None)
    return DumpRun(len(cpu) + 1, sum(cpu.values()), max(rss.values(), default=0), context.get_start_method())


def collect_source(
    path: Path,
    defaults: Labels,
    report: SourceReport,
    collector: RowCollector,
    *,
    workers: int | None = None,
    progress: ProgressCallback | None = None,
) -> DumpRun | None:
    """Collect a dump or capture directory the fast way; None for other kinds (HAR, pcap).

    For a capture directory this does what analysis.sources.capture_dir.read_capture_dir
    does (session name, flows.mitm, then events.jsonl), with the dump read by collect_dump.
    """
    kind = sniff_kind(path)
    if kind == "dump":
        return collect_dump(path, defaults, report, collector, workers=workers, progress=progress)
    if kind != "capture_dir":
        return None
    dump = path / DUMP_NAME
    events = path / EVENTS_NAME
    if not dump.exists() and not events.exists():
        raise CaptureError(path, f"not a capture directory (no {DUMP_NAME} or {EVENTS_NAME} inside)")
    defaults = replace(defaults, session=defaults.session or session_name(path, report))
    run = DumpRun()
    if dump.exists():
        run = collect_dump(
            dump, defaults, report, collector, allow_empty=True, workers=workers, progress=progress
        )
    if events.exists():
        for record in read_events(events, defaults, report):
            collector.add(record)
    return run
