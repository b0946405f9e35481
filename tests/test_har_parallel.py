"""A big HAR analysed in ranges of entries on several cores gives what one sequential pass gives.

The sequential pass is today's reader seam with one worker (`collect_source(..., workers=1)`, which
reads through `sources.read_source`); the parallel one parses the HAR once and hands ranges of entry
indexes to forked workers (analysis.parallel.collect_entry_ranges). Compared: the three tables and
the whole SourceReport (records, warnings, damage, notes), on every real HAR in tests/data (as it is
and with its entries repeated so that they spread over several ranges), on damaged and odd entries,
on compressed HARs, through `analyze` and the CLI with -j 1 and -j 2, and with a start method other
than fork. PARALLEL_MIN_RECORDS is lowered so that small files take the parallel path.
"""

from __future__ import annotations

import base64
import itertools
import json
import subprocess
import sys
import threading
import zlib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd
import pytest

from phonehome.analysis import parallel
from phonehome.analysis.classify import request as classify_request_module
from phonehome.analysis.cli.main import main
from phonehome.analysis.findings import FLOWS_COLUMNS
from phonehome.analysis.pipeline import analyze, default_labels, load_profiles
from phonehome.analysis.profile import Profile
from phonehome.analysis.reader import collect_source
from phonehome.analysis.records import SourceReport
from phonehome.analysis.rows import RowCollector, RowSettings
from phonehome.analysis.sources import CaptureError
from phonehome.analysis.sources.har import load_har
from tests.support_sources import har_entry_variant

DATA = Path(__file__).parent / "data"
REAL_HARS = sorted((DATA / "sources" / "har").rglob("*.har")) + sorted((DATA / "real").glob("*.har"))
SAMPLE = Path(__file__).parent.parent / "captures" / "sample-mint-browser"


@pytest.fixture
def low_threshold(monkeypatch):
    """Workers for any HAR of at least one entry."""
    monkeypatch.setattr(parallel, "PARALLEL_MIN_RECORDS", 1)


def run(path: Path, workers: int, profile: Profile | None = None, progress=None):
    """What pipeline.analyze does for one input, up to the table rows: (rows, report, whether
    ranges were used). Rows are the tables' content, compared exactly (tuples, not frames)."""
    profile = profile or load_profiles([path], None)
    collector = RowCollector(RowSettings(profile))
    report = SourceReport(str(path))
    in_ranges = collect_source(
        path, "har", default_labels(path, None, None), report, collector, workers=workers, progress=progress
    )
    return collector.take(), report, in_ranges


def assert_same_both_ways(path: Path, profile: Profile | None = None):
    """Sequential and parallel agree on every row and on the report; returns the parallel run's."""
    one, one_report, one_ranges = run(path, 1, profile)
    two, two_report, two_ranges = run(path, 2, profile)
    assert not one_ranges and two_ranges
    assert two.flows == one.flows
    assert two.findings == one.findings
    assert two.contacts == one.contacts
    assert two_report == one_report  # records, warnings, damage and notes, in the same order
    return two, two_report


def repeated(path: Path, out: Path, times: int) -> Path:
    """`path`'s entries `times` over (the same requests again, spread over several ranges)."""
    doc = json.loads(path.read_text(encoding="utf-8-sig"))
    entries = doc["log"]["entries"] if "log" in doc else [doc]
    out.write_text(json.dumps({"log": {"version": "1.2", "entries": entries * times}}))
    return out


def test_real_har_files_are_there():
    assert len(REAL_HARS) >= 10


@pytest.mark.parametrize("path", REAL_HARS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_real_hars_as_they_are(path: Path, low_threshold):
    rows, report = assert_same_both_ways(path)
    assert report.records == len(rows.flows) > 0


@pytest.mark.parametrize("path", REAL_HARS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_real_hars_repeated_over_many_ranges(path: Path, tmp_path: Path, monkeypatch):
    with load_har(path, default_labels(path, None, None)) as har:
        entries = har.count
    big = repeated(path, tmp_path / f"{path.stem}.har", times=40)
    monkeypatch.setattr(parallel, "PARALLEL_MIN_RECORDS", 40 * entries)  # exactly at the threshold
    rows, report = assert_same_both_ways(big)
    assert report.records == 40 * entries == len(rows.flows)
    flow_ids = [row[FLOWS_COLUMNS.index("flow_id")] for row in rows.flows]
    assert len(set(flow_ids)) == len(flow_ids), "entries are numbered across ranges as in one pass"


def test_below_the_threshold_a_har_stays_in_process(tmp_path: Path, monkeypatch):
    path = repeated(REAL_HARS[0], tmp_path / "few.har", times=3)
    monkeypatch.setattr(parallel, "PARALLEL_MIN_RECORDS", 4)
    with load_har(path, default_labels(path, None, None)) as har:
        assert har.count == 3
    _, report, in_ranges = run(path, 2)
    assert not in_ranges and report.records == 3
    assert parallel.plan_entry_ranges(10_000, 1) is None, "one worker: never ranges"


def test_entry_ranges_cover_every_entry_once(monkeypatch):
    assert parallel.plan_entry_ranges(parallel.PARALLEL_MIN_RECORDS - 1, 2) is None
    assert parallel.plan_entry_ranges(parallel.PARALLEL_MIN_RECORDS, 2) is not None
    monkeypatch.setattr(parallel, "PARALLEL_MIN_RECORDS", 1)
    for count in (1, 2, 15, 16, 17, 2_000, 5_001):
        for workers in (2, 3, 8):
            ranges = parallel.plan_entry_ranges(count, workers)
            assert ranges is not None
            assert ranges[0][0] == 0 and ranges[-1][1] == count
            assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
            assert all(a < b for a, b in ranges)
            assert len(ranges) == min(count, workers * parallel.RANGES_PER_WORKER)


BINARY_BODY = base64.b64encode(b"\x00\x01bin").decode()


def _odd_entries() -> list:
    """Entries of every kind the reader skips, warns about or leaves out."""
    good = {
        "startedDateTime": "2024-05-01T10:00:00.000Z",
        "request": {
            "method": "POST",
            "url": "https://t.example.com/collect?id=1",
            "headers": [{"name": "Content-Type", "value": "application/json"}],
            "postData": {"mimeType": "application/json", "text": '{"android_id": "9774d56d682e549c"}'},
        },
        "response": {"status": 204, "headers": [], "content": {}},
    }

    def variant(**changes):
        return har_entry_variant(good, **changes)

    return [
        good,
        "not an entry",  # skipped: damage
        variant(**{"request.url": 7}),  # skipped: damage
        variant(startedDateTime="yesterday"),
        variant(**{"request.postData": {"text": "abc", "encoding": "base64"}}),  # warning
        variant(**{"request.postData": {"text": BINARY_BODY, "encoding": "base64"}}),
        variant(**{"request.url": "http://mitm.it/cert/pem"}),  # left out, counted in a note
        variant(**{"request.url": "http://phonehome.mark/mode/incognito"}),  # left out too
        variant(**{"request.url": "https://93.184.216.34/p", "response.status": 0}),
        variant(**{"request.url": "https://bad host/"}),
    ]  # fmt: skip


def test_damaged_and_odd_entries_give_the_same_report(tmp_path: Path, low_threshold):
    path = tmp_path / "odd.har"
    path.write_text(json.dumps({"log": {"entries": _odd_entries() * 7}}))
    rows, report = assert_same_both_ways(path)
    assert report.damage and len(report.damage) >= 14, "every damaged entry of every range is reported"
    assert report.damage[0].startswith("entry 1 skipped") and "entry 61 skipped" in " ".join(report.damage)
    assert any("marked base64" in w for w in report.warnings)
    assert any("left out" in n and "14" in n for n in report.notes), report.notes
    assert "mitm.it" not in {row[FLOWS_COLUMNS.index("host")] for row in rows.flows}


def test_compressed_hars_and_a_lone_entry(tmp_path: Path, low_threshold):
    plain = repeated(REAL_HARS[-1], tmp_path / "plain.har", times=5)
    (tmp_path / "z.zhar").write_bytes(zlib.compress(plain.read_bytes()))
    import zipfile

    with zipfile.ZipFile(tmp_path / "zip.zhar", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("inner.har", plain.read_bytes())
    records = []
    for name in ("z.zhar", "zip.zhar"):
        _, report = assert_same_both_ways(tmp_path / name)
        records.append(report.records)
    assert records[0] == records[1] == 5 * 16
    lone = tmp_path / "lone.har"
    lone.write_text(json.dumps(_odd_entries()[0]))
    _, report = assert_same_both_ways(lone)
    assert report.records == 1


def test_not_a_har_is_the_same_error_either_way(tmp_path: Path, low_threshold):
    path = tmp_path / "x.har"
    path.write_text('{"log": {"pages": []}}')
    messages = []
    for workers in (1, 2):
        with pytest.raises(CaptureError) as exc:
            run(path, workers)
        messages.append(str(exc.value))
    assert messages[0] == messages[1] and "no log.entries list" in messages[0]
    path.write_text('{"log": {"entries": []}}')
    assert run(path, 2)[1].records == 0


def test_progress_reaches_every_record(tmp_path: Path, low_threshold):
    path = repeated(REAL_HARS[-1], tmp_path / "p.har", times=20)
    calls: list[tuple[str, int]] = []
    _, report, in_ranges = run(path, 2, progress=lambda name, count: calls.append((name, count)))
    assert in_ranges and len(calls) >= 2
    counts = [count for _, count in calls]
    assert counts == sorted(counts) and counts[-1] == report.records == 20 * 16
    assert {name for name, _ in calls} == {str(path)}


def _worker_sees_prepared(settings_key: bytes, profile_id: int) -> tuple[bool, bool, int]:
    """In a worker: is the parent's collector there with its classifier, and the profile's matcher?"""
    import os

    collector = parallel._COLLECTORS.get(settings_key)
    ready = collector is not None and collector._classifier is not None
    return ready, profile_id in classify_request_module._matchers, os.getpid()


def test_forked_workers_inherit_the_prepared_collector(tmp_path: Path):
    import os
    import pickle

    profile = Profile.load(SAMPLE / "profile.json")
    settings = RowSettings(profile)
    parallel._COLLECTORS.clear()
    try:
        parallel._prepare_collector(settings)
        with ProcessPoolExecutor(1, mp_context=parallel._context()) as pool:
            ready, matcher, pid = pool.submit(
                _worker_sees_prepared, pickle.dumps(settings), id(profile)
            ).result()
    finally:
        parallel._COLLECTORS.clear()
    assert pid != os.getpid()
    if parallel._context().get_start_method() == "fork":
        assert ready and matcher, "a forked worker starts with what the parent built"


def test_a_worker_process_gives_the_rows_this_process_gives(tmp_path: Path):
    path = repeated(REAL_HARS[-1], tmp_path / "w.har", times=6)
    settings = RowSettings(Profile.load(SAMPLE / "profile.json"))
    with load_har(path, default_labels(path, None, None)) as har:
        ranges = [(0, 30), (30, 31), (31, har.count)]
        tasks = [(0, a, b, (har.part(a, b), settings)) for a, b in ranges]
        with ProcessPoolExecutor(1, mp_context=parallel._context()) as pool:
            remote = list(pool.map(parallel._analyse_entries_task, tasks))
        local = [parallel.analyse_entries(har, a, b, settings) for a, b in ranges]
    assert [r.rows for r in remote] == [r.rows for r in local]
    assert sum(r.records for r in remote) == har.count == 6 * 16


def test_other_start_methods_ship_the_entries(tmp_path: Path, low_threshold):
    """With another thread running, workers are not forked (analysis.parallel._context): each
    range's entries then travel pickled, and the tables are still the same."""
    path = repeated(REAL_HARS[-1], tmp_path / "t.har", times=4)
    stop = threading.Event()
    other = threading.Thread(target=stop.wait, daemon=True)
    other.start()
    try:
        assert parallel._context().get_start_method() != "fork"
        assert_same_both_ways(path)
    finally:
        stop.set()
        other.join()


def test_analyze_and_the_cli_with_one_and_two_jobs(tmp_path: Path, low_threshold):
    path = repeated(REAL_HARS[-1], tmp_path / "cli.har", times=10)
    profile = Profile.load(SAMPLE / "profile.json")
    one, two = analyze([path], profile=profile, workers=1), analyze([path], profile=profile, workers=2)
    for table in ("flows", "findings", "contacts"):
        assert getattr(one, table).equals(getattr(two, table))
    assert one.sources == two.sources and len(one.flows) == 160 and len(one.findings) > 0
    out1, out2 = tmp_path / "one", tmp_path / "two"
    assert main(["analyze", str(path), "-o", str(out1), "-q", "-j", "1"]) == 0
    assert main(["analyze", str(path), "-o", str(out2), "-q", "-j", "2"]) == 0
    assert (out1 / "findings.csv").read_bytes() == (out2 / "findings.csv").read_bytes()
    for name in ("findings.parquet", "flows.parquet", "contacts.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(out1 / name), pd.read_parquet(out2 / name))
    assert len(pd.read_parquet(out2 / "flows.parquet")) == 160


def test_the_command_on_workers_never_imports_pandas(tmp_path: Path):
    """The tables are Arrow tables; pandas (0.4 s of CPU to import) is for library users only."""
    path = repeated(REAL_HARS[-1], tmp_path / "np.har", times=4)
    script = f"""
import sys
from phonehome.analysis import parallel
parallel.PARALLEL_MIN_RECORDS = 1
used = []
collect = parallel.collect_entry_ranges
parallel.collect_entry_ranges = lambda *a, **k: used.append(1) or collect(*a, **k)
from phonehome.analysis.cli.main import main
code = main(["analyze", {str(path)!r}, "-o", {str(tmp_path / "out")!r}, "-q", "-j", "2"])
print(code, bool(used), "pandas" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.stdout.splitlines()[-1].split() == ["0", "True", "False"], done.stderr[-2000:]


def test_a_worker_that_dies_costs_its_ranges_nothing_and_prints_no_traceback(tmp_path: Path):
    """A worker killed mid-run (the OOM killer, say): its ranges are done in the parent, the tables
    are whole, and nothing but the result is printed (Python 3.11's pool printed a traceback from
    its manager thread when the parent had cancelled futures to take them itself)."""
    path = repeated(REAL_HARS[-1], tmp_path / "die.har", times=3)
    script = f"""
import os
from phonehome.analysis import parallel
from phonehome.analysis.pipeline import analyze
PARENT = os.getpid()
work = parallel._analyse_entries_task
def dying(task):
    if os.getpid() != PARENT and task[1] >= 8:
        os.write(2, b"worker dies\\n")
        os._exit(1)
    return work(task)
parallel._analyse_entries_task = dying
parallel.PARALLEL_MIN_RECORDS = 1
if __name__ == "__main__":
    one, two = analyze([{str(path)!r}], workers=1), analyze([{str(path)!r}], workers=2)
    same = two.flows.equals(one.flows), two.findings.equals(one.findings), two.sources == one.sources
    print(len(two.flows), *same)
"""
    (tmp_path / "die.py").write_text(script)
    done = subprocess.run(
        [sys.executable, str(tmp_path / "die.py")], capture_output=True, text=True, timeout=120
    )
    assert done.stdout.split() == ["48", "True", "True", "True"], done.stderr[-2000:]
    assert "worker dies" in done.stderr, "the worker did die"
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
