"""Record ranges in worker processes give the same tables as one sequential pass."""

from __future__ import annotations

import itertools
import os
import shutil
from pathlib import Path

import pytest
from mitmproxy.io import FlowWriter, tnetstring
from mitmproxy.test import tflow

from phonehome.analysis import parallel
from phonehome.analysis.pipeline import analyze, build_analysis, default_labels, load_profiles
from phonehome.analysis.reader import collect_dump, collect_source
from phonehome.analysis.records import SourceReport
from phonehome.analysis.rows import RowCollector, RowSettings
from phonehome.analysis.sources import CaptureError, read_source, sniff_kind
from phonehome.analysis.sources.framing import record_offsets
from tests.support_sources import reference_analysis


def fast_analysis(path: Path, workers: int):
    """What pipeline.analyze does for one capture, through the reader seam; says whether the
    byte-range path was taken."""
    profile = load_profiles([path], None)
    collector = RowCollector(RowSettings(profile))
    report = SourceReport(str(path))
    defaults = default_labels(path, None, None)
    in_ranges = collect_source(path, sniff_kind(path), defaults, report, collector, workers=workers)
    return build_analysis(collector.take(), [report], profile), report, in_ranges


def assert_same(a, b):
    assert a.flows.equals(b.flows)
    assert a.findings.equals(b.findings)
    assert a.contacts.equals(b.contacts)
    assert [r.warnings for r in a.sources] == [r.warnings for r in b.sources]
    assert [r.records for r in a.sources] == [r.records for r in b.sources]


def test_record_offsets_match_tnetstring_positions(sample_capture: Path):
    path = sample_capture / "flows.mitm"
    expected = []
    with path.open("rb") as fo:
        size = path.stat().st_size
        while fo.tell() < size:
            expected.append(fo.tell())
            tnetstring.load(fo)
    assert record_offsets(path) == expected


def test_record_offsets_refuse_irregular_framing(tmp_path: Path, sample_capture: Path):
    good = (sample_capture / "flows.mitm").read_bytes()
    for name, data in {"cut": good[:-5], "junk": good + b"xyz", "zero": b"012:" + good}.items():
        path = tmp_path / name
        path.write_bytes(data)
        assert record_offsets(path) is None, name


def test_split_ranges_are_contiguous_and_on_boundaries():
    offsets = [0, 10, 25, 26, 90, 100, 150]
    for parts in range(1, 10):
        ranges = parallel.split_ranges(offsets, 200, parts)
        assert ranges[0][0] == 0 and ranges[-1][1] == 200
        assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
        assert all(start in offsets for start, _ in ranges)
        assert len(ranges) <= min(parts, len(offsets))
    assert parallel.split_ranges([], 0, 4) == []


def test_sequential_fast_path_equals_straightforward_on_sample(sample_capture: Path, sample_analysis):
    fast, _, in_ranges = fast_analysis(sample_capture, workers=1)
    assert not in_ranges
    assert_same(fast, reference_analysis(sample_capture))
    assert_same(fast, sample_analysis)
    assert len(fast.findings) > 0


@pytest.fixture
def many_records(sample_capture: Path, tmp_path: Path, monkeypatch) -> Path:
    """The sample capture with its dump repeated, and the parallel threshold lowered to fit."""
    target = tmp_path / "capture"
    shutil.copytree(sample_capture, target)
    dump = (sample_capture / "flows.mitm").read_bytes()
    (target / "flows.mitm").write_bytes(dump * 5)
    monkeypatch.setattr(parallel, "PARALLEL_MIN_RECORDS", 10)
    return target


def test_workers_give_the_same_tables_as_the_straightforward_path(many_records: Path, sample_analysis):
    expected = reference_analysis(many_records)
    fast, _, in_ranges = fast_analysis(many_records, workers=2)
    assert in_ranges
    assert_same(fast, expected)
    assert len(fast.flows) == 5 * len(sample_analysis.flows)


def test_every_finding_carries_its_requests_phase(many_records: Path, sample_analysis):
    """`phase` is the findings' column after DESIGN.md's; it is the phase of the finding's own
    request (flows table), in one process and in worker ranges alike."""
    from phonehome.analysis.findings import FINDINGS_COLUMNS

    assert FINDINGS_COLUMNS[-1] == "phase" and FINDINGS_COLUMNS.index("evidence") == 18
    fast, _, in_ranges = fast_analysis(many_records, workers=2)
    assert in_ranges
    for analysis in (sample_analysis, fast):
        findings, flows = analysis.findings, analysis.flows
        assert list(findings.columns) == list(FINDINGS_COLUMNS)
        phase_of = dict(zip(flows["flow_id"], flows["phase"], strict=True))
        assert findings["phase"].tolist() == [phase_of[f] for f in findings["flow_id"]]
        assert {"normal-browsing", "incognito-browsing"} <= set(findings["phase"])


def test_a_worker_process_gives_the_rows_this_process_gives(many_records: Path):
    from concurrent.futures import ProcessPoolExecutor

    dump = many_records / "flows.mitm"
    settings = RowSettings(load_profiles([many_records], None))
    assert settings.profile is not None
    offsets = record_offsets(dump)
    ranges = parallel.split_ranges(offsets, dump.stat().st_size, 3)
    tasks = [(dump, a, b, default_labels(dump, None, None), settings) for a, b in ranges]
    with ProcessPoolExecutor(1, mp_context=parallel._context()) as pool:
        remote = list(pool.map(parallel._analyse_task, tasks))
        assert pool.submit(os.getpid).result() != os.getpid()  # the ranges above ran elsewhere
    local = [parallel.analyse_range(*task) for task in tasks]
    assert [r.rows.flows for r in remote] == [r.rows.flows for r in local]
    assert [r.rows.findings for r in remote] == [r.rows.findings for r in local]
    assert sum(r.records for r in remote) == sum(1 for _ in read_source(dump, tasks[0][3], SourceReport("x")))


def test_damage_inside_a_range_falls_back_to_the_sequential_reader(many_records: Path):
    dump = many_records / "flows.mitm"
    data = bytearray(dump.read_bytes())
    # keep the framing intact but break one record's content: a tag byte inside the payload
    position = data.index(b"4:type;4:http;", len(data) // 2)
    data[position + 13] = ord("]")
    dump.write_bytes(bytes(data))
    assert record_offsets(dump) is not None  # framing looks fine, so workers start
    expected = reference_analysis(many_records)
    fast, report, in_ranges = fast_analysis(many_records, workers=2)
    assert not in_ranges  # the damaged range sent the file to the sequential reader
    assert_same(fast, expected)
    assert report.warnings and "damaged record" in report.warnings[0]


def test_har_goes_through_the_same_seam(tmp_path: Path):
    har = tmp_path / "x.har"
    har.write_text('{"log": {"entries": []}}')
    report = SourceReport(str(har))
    assert not collect_source(har, "har", default_labels(har, None, None), report, RowCollector())
    assert report.records == 0


def test_empty_capture_directory_is_the_same_error(tmp_path: Path):
    with pytest.raises(CaptureError) as fast:
        collect_source(
            tmp_path, "capture_dir", default_labels(tmp_path, None, None), SourceReport("x"), RowCollector()
        )
    with pytest.raises(CaptureError) as slow:
        list(read_source(tmp_path, default_labels(tmp_path, None, None), SourceReport("x")))
    assert str(fast.value) == str(slow.value)
    with pytest.raises(CaptureError) as analysed:
        analyze([tmp_path])
    assert str(analysed.value) == str(slow.value)


def test_default_workers_reads_the_environment(monkeypatch):
    monkeypatch.setenv(parallel.WORKERS_ENV, "3")
    assert parallel.default_workers() == 3
    monkeypatch.setenv(parallel.WORKERS_ENV, "zero")
    assert parallel.default_workers() == parallel.available_cores() >= 1


def test_small_dump_stays_in_process(tmp_path: Path):
    path = tmp_path / "small.mitm"
    with path.open("wb") as fo:
        FlowWriter(fo).add(tflow.tflow(resp=True))
    collector = RowCollector()
    report = SourceReport(str(path))
    assert not collect_dump(path, default_labels(path, None, None), report, collector, workers=2)
    assert report.records == 1 and len(collector.rows.flows) == 1


def test_label_warnings_from_workers_reach_the_report_once(tmp_path: Path, monkeypatch):
    odd = tflow.tflow(resp=True)
    odd.metadata["phonehome"] = {"session": "s", "mode": "Sleepy", "app": 5}
    path = tmp_path / "odd.mitm"
    with path.open("wb") as fo:
        writer = FlowWriter(fo)
        for _ in range(40):
            writer.add(odd)
    monkeypatch.setattr(parallel, "PARALLEL_MIN_RECORDS", 10)
    fast, report, in_ranges = fast_analysis(path, workers=2)
    assert in_ranges
    assert_same(fast, reference_analysis(path))
    assert len(report.warnings) == 2 and any("unknown mode 'sleepy'" in w for w in report.warnings)
    assert set(fast.flows["mode"]) == {"sleepy"}


def test_events_file_labels_are_read_the_same_way(sample_capture: Path, tmp_path: Path):
    target = tmp_path / "capture"
    shutil.copytree(sample_capture, target)
    events = target / "events.jsonl"
    lines = [
        '{"type": "tls_failed", "host": "a.example", "labels": {"mode": "Private", "app": ["x"]}}',
        '{"type": "tls_failed", "host": "b.example", "labels": 7, "server_ip": 12}',
    ]
    events.write_text("\n".join(lines) + "\n")
    result = analyze([target])
    contacts = result.contacts[result.contacts["host"].isin(["a.example", "b.example"])]
    assert list(contacts["mode"]) == ["incognito", "normal"]
    assert list(contacts["server_ip"]) == [None, None]
    assert any("app must be text, got list" in w for w in result.warnings)
    assert result.damaged == []


def test_a_callers_frozen_objects_stay_frozen(many_records: Path):
    """The workers' run freezes objects only when nothing is frozen yet: it never thaws what the
    caller froze (a pre-fork server does that)."""
    import gc

    def tracked(obj) -> bool:  # frozen objects are in no generation gc.get_objects() lists
        return any(o is obj for o in gc.get_objects())

    callers = [object()]
    gc.freeze()
    try:
        assert not tracked(callers)
        _, _, in_ranges = fast_analysis(many_records, workers=2)
        assert in_ranges
        assert not tracked(callers), "the run thawed the caller's frozen objects"
    finally:
        gc.unfreeze()
    assert tracked(callers)
