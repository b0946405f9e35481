"""Analysing a big mitmproxy dump on every core: record ranges in worker processes.

A dump's records are found from their length prefixes alone (analysis.sources.framing), and
split into contiguous byte ranges; each worker process reads its range with the fast reader
(analysis.sources.fastdump), turns the records into rows with its own RowCollector
(analysis.rows), and sends back only the rows. The parent concatenates them in file order, so
the result is the same as one sequential pass. analysis.reader decides when to come here.

Workers are only started when there is enough work (PARALLEL_MIN_RECORDS records and more
than one core). The start method is `fork` when this process has a single thread (a worker is
ready in milliseconds), else `forkserver` (about a second: it imports pandas and mitmproxy), or
`spawn` where neither exists.
Damage anywhere (a record that does not frame or does not load) sends the whole file back to
the sequential reader, whose resync keeps every good flow and reports the bad bytes.
"""

from __future__ import annotations

import importlib
import itertools
import multiprocessing
import os
import pickle
import sys
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

from phonehome.analysis.labels import internal_counts, note_internal
from phonehome.analysis.records import Labels, ProgressCallback, SourceReport
from phonehome.analysis.rows import RowCollector, Rows, RowSettings
from phonehome.analysis.sources.fastdump import DamageInRange, iter_dump
from phonehome.analysis.sources.framing import record_offsets

#: Below this many records a dump is analysed in-process (worker start-up would dominate).
PARALLEL_MIN_RECORDS = 2_000
#: Ranges per worker: several, so a slow range (big bodies) does not leave a core idle.
RANGES_PER_WORKER = 8
#: Environment variable that overrides the number of worker processes (1 = never parallel).
WORKERS_ENV = "PHONEHOME_WORKERS"


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


def plan_ranges(path: Path, size: int, workers: int) -> list[tuple[int, int]] | None:
    """Byte ranges for `workers` processes, or None when the dump is better read in one pass
    (irregular framing, fewer than PARALLEL_MIN_RECORDS records, a single worker)."""
    if workers <= 1:
        return None
    offsets = record_offsets(path, size)
    if offsets is None or len(offsets) < PARALLEL_MIN_RECORDS:
        return None
    return split_ranges(offsets, size, workers * RANGES_PER_WORKER)


@dataclass(slots=True)
class RangeRows:
    """What one worker sends back for one byte range: rows and what its reader said, never records."""

    rows: Rows = field(default_factory=Rows)
    records: int = 0
    warnings: list[str] = field(default_factory=list)  # label warnings; damage stops the range
    notes: list[str] = field(default_factory=list)  # e.g. internal flows left out (labels.note_internal)


# One RowCollector per settings per process, so its caches (endpoint lists, classifications)
# are built once per worker rather than once per range.
_COLLECTORS: dict[bytes, RowCollector] = {}


def _range_collector(settings: RowSettings) -> RowCollector:
    key = pickle.dumps(settings)
    collector = _COLLECTORS.get(key)
    if collector is None:
        if len(_COLLECTORS) >= 4:
            _COLLECTORS.clear()
        collector = _COLLECTORS[key] = RowCollector(settings)
    collector.take()  # start empty (a previous range that met damage may have left rows)
    return collector


def analyse_range(
    path: Path, start: int, end: int, defaults: Labels, settings: RowSettings, modes: tuple[str, ...] = ()
) -> RangeRows | None:
    """Rows for the records in [start, end) of a dump; None if the range holds damage.

    `modes`: the capture's declared modes (SourceReport.modes), so labels are read as in one pass.
    """
    collector = _range_collector(settings)
    report = SourceReport(str(path), modes=modes)
    try:
        for record in iter_dump(path, defaults, report, start=start, end=end, stop_on_damage=True):
            collector.add(record)
    except DamageInRange:
        return None
    return RangeRows(collector.take(), report.records, report.warnings, report.notes)


def _analyse_task(task: tuple[Path, int, int, Labels, RowSettings, tuple[str, ...]]) -> RangeRows | None:
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
        ctx.set_forkserver_preload(["phonehome.analysis.rows", "phonehome.analysis.sources.fastdump"])
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


def collect_ranges(
    path: Path,
    ranges: list[tuple[int, int]],
    defaults: Labels,
    report: SourceReport,
    collector: RowCollector,
    workers: int,
    progress: ProgressCallback | None = None,
) -> bool:
    """Rows added in order, records and warnings in `report`: True; False, with both
    untouched, when a range held damage (then the caller reads the file sequentially).

    This process is one of the `workers`: while `workers - 1` pool processes start up and
    take ranges from the front, it takes ranges from the back itself (a queued range that no
    worker has started can be cancelled and done here), so no core idles during start-up. A
    range whose worker died (e.g. a script without an `if __name__ == "__main__":` guard) is
    done here too: the result never depends on whether the workers worked.
    """
    tasks = [(path, start, end, defaults, collector.settings, report.modes) for start, end in ranges]
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
                return False
        for index, future in enumerate(futures):
            if parts[index] is not None:
                continue
            try:
                rows = future.result()
            except BrokenProcessPool:
                rows = analyse_range(*tasks[index])
            if not keep(index, rows):
                return False
    for rows in parts:
        assert rows is not None
        collector.rows.extend(rows.rows)
        for warning in rows.warnings:
            report.warn_once(warning)
        for kind, count in internal_counts(rows.notes).items():
            note_internal(report, kind, count)
    report.records += records
    _COLLECTORS.clear()
    return True
