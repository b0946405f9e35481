"""Analysing a big mitmproxy dump or HAR on every core: record ranges in worker processes.

A dump's records are found from their length prefixes alone (analysis.sources.framing), and
split into contiguous byte ranges; each worker process reads its range with the fast reader
(analysis.sources.fastdump), turns the records into rows with its own RowCollector
(analysis.rows), and sends back only the rows. A HAR is split into its entries' JSON texts once
here (sources.har; each entry is read from the open file and parsed where it is needed) and into
ranges of entry indexes; forked workers inherit the entries (where each lies in the file, and the
open file) and turn their ranges into records and rows. The parent
concatenates the rows in file order, so the result is the same as one sequential pass.
analysis.reader decides when to come here.

Workers are only started when there is enough work (PARALLEL_MIN_RECORDS records and more
than one core). The start method is `fork` when this process has a single thread (a worker is
ready in milliseconds), else `forkserver` (about a second: it imports mitmproxy and the classifier), or
`spawn` where neither exists.
Damage anywhere in a dump (a record that does not frame or does not load) sends the whole file
back to the sequential reader, whose resync keeps every good flow and reports the bad bytes. A
HAR entry that cannot be read is skipped with a warning wherever it is read, so a HAR's ranges
bring back their warnings and damage in order instead.

Whatever a worker would build before its first record (the known-value matcher, the endpoint
tables, the public-suffix list, the schemas) is built here before the fork, so every worker
inherits it ready.
"""

from __future__ import annotations

import gc
import importlib
import itertools
import multiprocessing
import os
import pickle
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from phonehome.analysis.classify.endpoints import site_of
from phonehome.analysis.classify.request import known_values_for
from phonehome.analysis.classify.schemas import shipped_schemas
from phonehome.analysis.labels import internal_counts, note_internal
from phonehome.analysis.records import Labels, ProgressCallback, SourceReport
from phonehome.analysis.rows import RowCollector, Rows, RowSettings
from phonehome.analysis.sources import app_traffic
from phonehome.analysis.sources.fastdump import DamageInRange, iter_dump
from phonehome.analysis.sources.framing import record_offsets

if TYPE_CHECKING:  # sources.har is imported where a HAR is read (a dump-only run never needs it)
    import multiprocessing.sharedctypes  # with ctypes: only when a pool is started

    from phonehome.analysis.sources.har import HarEntries

#: Below this many records (dump) or entries (HAR) a file is analysed in-process (worker
#: start-up would dominate).
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


def plan_entry_ranges(count: int, workers: int) -> list[tuple[int, int]] | None:
    """Contiguous [start, end) ranges of `count` HAR entries for `workers` processes, or None when
    they are better read in one pass (fewer than PARALLEL_MIN_RECORDS, a single worker)."""
    if workers <= 1 or count < PARALLEL_MIN_RECORDS:
        return None
    parts = min(count, workers * RANGES_PER_WORKER)
    bounds = [count * part // parts for part in range(parts + 1)]
    return list(itertools.pairwise(bounds))


@dataclass(slots=True)
class RangeRows:
    """What one worker sends back for one byte range: rows and what its reader said, never records."""

    rows: Rows = field(default_factory=Rows)
    records: int = 0
    warnings: list[str] = field(default_factory=list)  # label warnings (dump), entry warnings (HAR)
    notes: list[str] = field(default_factory=list)  # e.g. internal flows left out (labels.note_internal)
    damage: list[str] = field(default_factory=list)  # HAR entries skipped; in a dump damage stops the range


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


def _prepare_collector(settings: RowSettings) -> None:
    """Build, before the fork, what every worker's collector would otherwise build at its first
    record: the endpoint classifier (user lists included), the profile's known-value matcher,
    the public-suffix list and the shipped schemas. Forked workers inherit them ready (and this
    process uses them for its own ranges)."""
    collector = _range_collector(settings)
    collector.load_endpoint_lists()
    known_values_for(settings.profile)
    site_of("example.com")
    shipped_schemas()


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


# The HAR being analysed, set before the workers are forked so that they inherit its entries
# (copy-on-write) instead of receiving them pickled: token -> (entries, settings).
_HAR_JOBS: dict[int, tuple[HarEntries, RowSettings]] = {}


def analyse_entries(har: HarEntries, start: int, end: int, settings: RowSettings) -> RangeRows:
    """Rows for entries [start, end) of a split HAR (sources.har.load_har), with that range's
    warnings, damage and notes, as the sequential reader would have put them in its SourceReport."""
    from phonehome.analysis.sources.har import har_records

    collector = _range_collector(settings)
    report = SourceReport(str(har.path))
    for record in app_traffic(har_records(har, report, start, end, release=True), report):
        collector.add(record)
    return RangeRows(collector.take(), report.records, report.warnings, report.notes, report.damage)


def _analyse_entries_task(
    task: tuple[int, int, int, tuple[HarEntries, RowSettings] | None],
) -> RangeRows:
    token, start, end, shipped = task
    har, settings = _HAR_JOBS[token] if shipped is None else shipped
    return analyse_entries(har, start, end, settings)


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


#: What the parent needs to build and write the tables (analysis.arrow_tables, sharing.write_csv).
#: Not pandas: the tables are Arrow tables, and DataFrames are made (and pandas imported) only
#: when a library user asks for one; importing it here cost every parallel run 0.4 s of CPU.
TABLE_LIBRARIES = ("pyarrow", "pyarrow.compute", "pyarrow.csv", "pyarrow.parquet")


def import_table_libraries() -> threading.Thread | None:
    """Import pyarrow and its writers in a background thread, unless done already.

    Only the parent builds and writes tables; importing pyarrow with its CSV and Parquet modules
    takes about 0.2 s of CPU. Imported while the workers read and classify (the parent's own
    range work yields it the GIL), it does not hold them up. Workers never import it.
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
    """A dump's byte ranges: rows added in order, records and warnings in `report`: True; False,
    with both untouched, when a range held damage (then the caller reads the file sequentially)."""
    tasks = [(path, start, end, defaults, collector.settings, report.modes) for start, end in ranges]
    parts = _run_ranges(tasks, _analyse_task, collector.settings, workers, _context(), str(path), progress)
    if parts is None:
        return False
    _merge(parts, report, collector, repeated_warnings=False)
    return True


def collect_entry_ranges(
    har: HarEntries,
    ranges: list[tuple[int, int]],
    report: SourceReport,
    collector: RowCollector,
    workers: int,
    progress: ProgressCallback | None = None,
) -> None:
    """A split HAR's entry ranges: rows added in order; records, warnings, damage and notes in
    `report`, exactly as one sequential pass puts them there."""
    token, context = id(har), _context()
    settings = collector.settings
    # forked workers find the entries in _HAR_JOBS; others get their range pickled
    forked = context.get_start_method() == "fork"
    tasks = [(token, a, b, None if forked else (har.part(a, b), settings)) for a, b in ranges]
    _HAR_JOBS[token] = (har, settings)
    try:
        parts = _run_ranges(tasks, _analyse_entries_task, settings, workers, context, str(har.path), progress)
    finally:
        _HAR_JOBS.pop(token, None)
    assert parts is not None  # a HAR range never stops on damage
    _merge(parts, report, collector, repeated_warnings=True)


# In a worker: the flags by which it and the parent claim tasks (set by the pool's initializer).
_CLAIMS: multiprocessing.sharedctypes.SynchronizedArray | None = None
#: What a worker returns for a task the parent claimed first.
TAKEN = "taken"
#: Seconds to wait for the claims' lock (held for microseconds; only a killed holder keeps it).
CLAIM_TIMEOUT = 10.0


def _start_worker(claims, parent: int | None) -> None:
    """A pool worker's start: the claim flags, and its end when the parent dies.

    A pool worker whose parent is killed (kill -9, the OOM killer, a timeout) would otherwise wait
    forever on the pool's queues, each end of which it holds itself, keeping the memory it
    inherited. On Linux the kernel kills it with its parent (PR_SET_PDEATHSIG); elsewhere a
    daemon thread watches for the parent to change. `parent`: the pid that started the pool
    (None for a forkserver's workers: their parent is the forkserver, which exits with it).
    """
    global _CLAIMS
    _CLAIMS = claims
    if parent is None:
        parent = os.getppid()
    asked = _die_with_parent()  # asked first: a parent dying after the check below is covered
    if os.getppid() != parent:  # the parent died before the kernel was asked
        os._exit(1)
    if asked:
        return

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="phonehome-parent-watch", daemon=True).start()


def _die_with_parent() -> bool:
    """Ask Linux to SIGKILL this process when its parent exits; False where that cannot be asked."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        PR_SET_PDEATHSIG = 1
        return ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL) == 0
    except (OSError, AttributeError):
        return False


def _claim(claims, index: int) -> bool:
    """Take task `index` unless someone has: True for the first caller only. False too if the
    lock cannot be had (a worker killed while holding it): the parent then does the task itself."""
    lock = claims.get_lock()
    if not lock.acquire(timeout=CLAIM_TIMEOUT):
        return False
    try:
        if claims[index]:
            return False
        claims[index] = 1
        return True
    finally:
        lock.release()


def _claimed(work: Callable[[tuple], RangeRows | None], index: int, task: tuple) -> RangeRows | str | None:
    """A worker's task: done here unless the parent claimed it first (then TAKEN)."""
    assert _CLAIMS is not None
    return work(task) if _claim(_CLAIMS, index) else TAKEN


def _run_ranges(
    tasks: list[tuple],
    work: Callable[[tuple], RangeRows | None],
    settings: RowSettings,
    workers: int,
    context: multiprocessing.context.BaseContext,
    name: str,
    progress: ProgressCallback | None,
) -> list[RangeRows] | None:
    """Every task's rows, in task order; None as soon as one comes back None (damage).

    This process is one of the `workers`: while `workers - 1` pool processes start up and
    take tasks from the front, it takes tasks from the back itself (a task that no worker has
    claimed yet is claimed and done here), so no core idles during start-up. A
    task whose worker died (e.g. a script without an `if __name__ == "__main__":` guard) is
    done here too: the result never depends on whether the workers worked.
    """
    parts: list[RangeRows | None] = [None] * len(tasks)
    records = 0

    def keep(index: int, rows: RangeRows | None) -> bool:
        """Store a task's rows; False when its range held damage (then everything stops)."""
        nonlocal records
        if rows is None:
            _COLLECTORS.clear()
            pool.shutdown(wait=True, cancel_futures=True)
            return False
        rows.rows.pack()  # findings into compact Arrow chunks now, not held as tuples to the end
        parts[index] = rows
        records += rows.records
        if progress is not None:
            progress(name, records)
        return True

    def keep_finished() -> bool:
        """Keep what the workers have finished so far. Called between this process's own tasks,
        so that packing their rows is not all left for the end, when the workers are idle."""
        for index, future in enumerate(futures):
            if parts[index] is None and future.done() and future.exception() is None:
                rows = future.result()
                if rows != TAKEN and not keep(index, rows):
                    return False
        return True

    _prepare_collector(settings)  # before the fork: the workers inherit it built
    # Objects that exist now (a HAR's entries, the modules, the prepared collector) are
    # left out of garbage collections until the ranges are done: a worker's collections then
    # never write to (and copy) the pages it inherited, nor does this process walk them again.
    freezing = gc.get_freeze_count() == 0  # a caller's own frozen objects are not ours to thaw
    if freezing:
        gc.freeze()
    try:
        # Who does a task is settled by a claim (a shared flag per task), not by cancelling its
        # future: a cancelled future makes Python 3.11's pool print a traceback from its manager
        # thread when a worker dies (terminate_broken), and every future here completes.
        claims = context.Array("b", len(tasks))
        with ProcessPoolExecutor(
            max(1, workers - 1),
            mp_context=context,
            initializer=_start_worker,
            initargs=(claims, None if context.get_start_method() == "forkserver" else os.getpid()),
        ) as pool:
            futures = [pool.submit(_claimed, work, index, task) for index, task in enumerate(tasks)]
            import_table_libraries()  # the workers exist now: no fork will copy the importing thread
            for index in reversed(range(len(tasks))):
                if not _claim(claims, index):
                    break  # a worker has it; every earlier task is taken too
                if not keep(index, work(tasks[index])) or not keep_finished():
                    return None
            for index, future in enumerate(futures):
                if parts[index] is not None:
                    continue  # done here (the worker's future says TAKEN)
                try:
                    rows = future.result()
                except BrokenProcessPool:
                    rows = work(tasks[index])
                if rows == TAKEN:  # nobody could claim it (see _claim): done here
                    rows = work(tasks[index])
                if not keep(index, rows):
                    return None
    finally:
        if freezing:
            gc.unfreeze()
        _COLLECTORS.clear()  # also after an exception: a later run must not reuse stale settings
    return parts  # type: ignore[return-value]  # every part is set


def _merge(
    parts: list[RangeRows], report: SourceReport, collector: RowCollector, *, repeated_warnings: bool
) -> None:
    """Ranges' rows and reports into the input's, in file order.

    `repeated_warnings`: a HAR's warnings name their entry and are appended as the sequential
    reader appends them; a dump's label warnings are said once per input (warn_once)."""
    for rows in parts:
        collector.rows.extend(rows.rows)
        if repeated_warnings:
            report.warnings.extend(rows.warnings)
        else:
            for warning in rows.warnings:
                report.warn_once(warning)
        report.damage.extend(rows.damage)
        for kind, count in internal_counts(rows.notes).items():
            note_internal(report, kind, count)
        report.records += rows.records
