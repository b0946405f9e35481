"""The parent keeps (and packs) the workers' finished ranges between its own ranges.

Packing a range's findings into Arrow chunks is the parent's work; left for the end, it runs
while the workers have nothing left to do. These tests drive analysis.parallel._run_ranges with
tasks that only sleep, so which process does which task is set by timing alone.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import signal
import subprocess
import sys
import time

import pytest

from phonehome.analysis import parallel
from phonehome.analysis.rows import RowSettings


def _sleep_then_count(task: tuple[float, int]) -> parallel.RangeRows:
    """A task: sleep `task[0]` seconds, report `task[1]` records (a mark of which task it was)."""
    time.sleep(task[0])
    return parallel.RangeRows(records=task[1])


def test_finished_worker_ranges_are_kept_before_the_parents_last_range():
    """The worker takes tasks from the front (a quick one, then a long one), the parent from the
    back (two of half a second): the worker's quick task is kept as soon as the parent finishes
    its first task, not after its second."""
    tasks = [(0.0, 1), (2.0, 10), (0.5, 100), (0.5, 1000)]
    seen: list[int] = []
    parts = parallel._run_ranges(
        tasks,
        _sleep_then_count,
        RowSettings(),
        2,
        multiprocessing.get_context("fork"),
        "sleepy",
        lambda name, records: seen.append(records),
    )
    assert parts is not None and [p.records for p in parts] == [1, 10, 100, 1000]
    # each range's records, in the order the ranges were kept: task 3 (the parent's first), the
    # worker's quick task 0, task 2 (the parent's second), the worker's long task 1
    kept = [b - a for a, b in itertools.pairwise([0, *seen])]
    assert kept == [1000, 1, 100, 10]


def test_damage_in_a_finished_worker_range_stops_the_run():
    """A worker range that comes back None (damage) ends the run with None when it is kept
    between the parent's tasks, as it does when kept at the end."""
    tasks = [(0.0, 1), (0.0, None), (1.0, 100), (1.0, 1000)]
    parts = parallel._run_ranges(
        tasks,
        _sleep_then_none_or_count,
        RowSettings(),
        2,
        multiprocessing.get_context("fork"),
        "damaged",
        None,
    )
    assert parts is None


def _sleep_then_none_or_count(task: tuple[float, int | None]) -> parallel.RangeRows | None:
    time.sleep(task[0])
    return None if task[1] is None else parallel.RangeRows(records=task[1])


_ORPHAN_SCRIPT = """
import multiprocessing, sys, time
from phonehome.analysis import parallel
from phonehome.analysis.rows import RowSettings

def work(task):
    time.sleep(task)
    return parallel.RangeRows()

if __name__ == "__main__":
    method = sys.argv[1]
    parallel._run_ranges([60.0, 60.0], work, RowSettings(), 2, multiprocessing.get_context(method), "x", None)
"""


def _children(pid: int) -> list[int]:
    from pathlib import Path

    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def _alive(pid: int) -> bool:
    """Running (not gone, not a zombie)."""
    from pathlib import Path

    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_a_killed_analysis_leaves_no_worker_behind(tmp_path, method):
    """kill -9 of the process running the ranges (a timeout, the OOM killer) takes its pool
    workers with it; they used to wait forever on the pool's queues, holding what they inherited."""
    script = tmp_path / "ranges.py"
    script.write_text(_ORPHAN_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), method], cwd=tmp_path)
    try:
        deadline = time.monotonic() + 30
        workers: list[int] = []
        while time.monotonic() < deadline and not workers:
            time.sleep(0.1)
            workers = [c for c in _children(proc.pid) if _alive(c)]
        assert workers, "no worker started"
        time.sleep(1.0)  # the worker is sleeping in its task now
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(w) for w in workers):
            time.sleep(0.1)
        assert not any(_alive(w) for w in workers)
    finally:
        proc.kill()
        for w in _children(proc.pid):
            os.kill(w, signal.SIGKILL)
