"""An uncompressed HAR's entries are read from the open file, not held in memory (issue 20).

analysis.sources.har splits a HAR once (msgspec.Raw views of its bytes), keeps only where each
entry's text lies (FileEntries), drops the bytes, and reads each entry with os.pread when it is
analysed, in this process or in forked workers. That is only right if the spans are exactly the
texts msgspec found, the file is closed whatever happens, a file cut short while it is analysed
costs only the entries past the cut (as damage, never a crash), and where the spans cannot be had
(no ctypes, no os.pread, a compressed HAR) the entries stay views of the bytes, as before.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import tracemalloc
import zlib
from pathlib import Path

import pytest

from phonehome.analysis.records import Labels, SourceReport
from phonehome.analysis.sources import har

DATA = Path(__file__).parent / "data"
HARS = sorted((DATA / "sources" / "har").rglob("*.har")) + sorted((DATA / "real").glob("*.har"))
LABELS = Labels(session="s")


def records(path: Path) -> tuple[list, SourceReport]:
    report = SourceReport(str(path))
    return list(har.read_har(path, LABELS, report)), report


def repeated(path: Path, out: Path, times: int, indent: int | None = None) -> Path:
    doc = json.loads(path.read_text(encoding="utf-8-sig"))
    out.write_text(
        json.dumps({"log": {"version": "1.2", "entries": doc["log"]["entries"] * times}}, indent=indent)
    )
    return out


def open_files() -> set[str]:
    """What this process's file descriptors point to (Linux)."""
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the descriptor listdir itself used is gone
            found.add(os.readlink(f"/proc/self/fd/{fd}"))
    return found


@pytest.mark.parametrize("path", HARS, ids=lambda p: p.name)
def test_every_har_entry_read_from_the_file_is_the_text_msgspec_found(path: Path):
    raw = har._read(path)
    texts = har._split_entries(raw)
    if texts is None:
        pytest.skip("not split (parsed whole): tests/test_har_split.py")
    with har.load_har(path, LABELS) as entries:
        assert isinstance(entries.entries, har.FileEntries) and entries.unparsed
        assert [entries.entries[i] for i in range(entries.count)] == [bytes(t) for t in texts]
        assert entries.count == len(texts) > 0
    assert entries.entries.file.closed


@pytest.mark.parametrize(
    "document",
    [
        b'{"log":{"entries":[{"a":1},{"b":[2]}]}}',
        b'\xef\xbb\xbf{"log":{"entries":[ {"a":1} ,\n\t{"b":"]"}\r\n, "x" ,3]}}',  # BOM, odd whitespace
        b'{"log":{"entries":[]}}',
        b'{"log":{"pages":[{"entries":[9]}],"entries":[[1,{"c":"\\u00e9,"}], null]}}',
    ],
)
def test_spans_are_the_entries_texts_whatever_lies_between_them(document: bytes, tmp_path: Path, monkeypatch):
    texts = har._split_entries(document)
    assert texts is not None
    expected = [bytes(t) for t in texts]
    starts, lengths = har._entry_spans(document, texts)
    assert [document[s : s + n] for s, n in zip(starts, lengths, strict=True)] == expected
    # the walk between entries confirmed by the last entry's address; if it were not, every entry's
    # address is taken instead: the same spans
    monkeypatch.setattr(har, "_BETWEEN_ENTRIES", __import__("re").compile(rb"(?!)"))
    assert har._entry_spans(document, texts) == (starts, lengths)
    path = tmp_path / "odd.har"
    path.write_bytes(document)
    with har.load_har(path, LABELS) as entries:
        assert [entries.entries[i] for i in range(entries.count)] == expected


def test_the_file_bytes_are_not_held_after_the_split(tmp_path: Path):
    path = repeated(HARS[-1], tmp_path / "big.har", times=60)
    size = path.stat().st_size
    assert size > 2 << 20
    tracemalloc.start()
    try:
        with har.load_har(path, LABELS) as entries:
            held, peak = tracemalloc.get_traced_memory()
            assert entries.count == 60 * 16
    finally:
        tracemalloc.stop()
    assert peak >= size, "the split reads the whole file once"
    assert held < size / 8, f"{held} bytes held after the split of a {size}-byte HAR"


def test_a_compressed_har_keeps_its_inflated_bytes_and_reads_the_same(tmp_path: Path):
    plain = repeated(HARS[-1], tmp_path / "plain.har", times=3)
    packed = tmp_path / "packed.zhar"
    packed.write_bytes(zlib.compress(plain.read_bytes()))
    with har.load_har(packed, LABELS) as entries:
        assert isinstance(entries.entries, list) and entries.unparsed  # msgspec.Raw views
    (plain_records, plain_report), (packed_records, packed_report) = records(plain), records(packed)
    assert [r.url for r in packed_records] == [r.url for r in plain_records] and len(plain_records) == 48
    assert packed_report.warnings == plain_report.warnings


@pytest.mark.parametrize("missing", ["ctypes", "pread"])
def test_without_ctypes_or_pread_the_entries_stay_in_memory_and_read_the_same(
    missing: str, tmp_path: Path, monkeypatch
):
    path = repeated(HARS[-1], tmp_path / "m.har", times=2)
    expected, expected_report = records(path)
    if missing == "ctypes":

        def no_ctypes():
            raise ImportError("No module named 'ctypes'")

        monkeypatch.setattr(har, "_buffer_address", no_ctypes)
    else:
        monkeypatch.delattr(har.os, "pread")
    with har.load_har(path, LABELS) as entries:
        assert isinstance(entries.entries, list) and entries.unparsed
    found, report = records(path)
    assert found == expected and len(found) == 32
    assert (report.records, report.warnings, report.damage) == (
        expected_report.records,
        expected_report.warnings,
        expected_report.damage,
    )


def test_a_file_cut_short_while_analysed_costs_only_the_entries_past_the_cut(tmp_path: Path):
    path = repeated(HARS[-1], tmp_path / "cut.har", times=4, indent=1)
    with har.load_har(path, LABELS) as entries:
        cut = entries.entries.starts[40] + 10  # inside entry 40
        os.truncate(path, cut)
        report = SourceReport(str(path))
        found = list(har.har_records(entries, report))
    assert len(found) == report.records == 40
    assert len(report.damage) == 64 - 40
    assert report.damage[0].startswith("entry 40 skipped: OSError: the file ends before this entry does")


def test_the_file_is_closed_however_reading_ends(tmp_path: Path):
    path = repeated(HARS[-1], tmp_path / "close.har", times=2)
    before = open_files()
    reader = har.read_har(path, LABELS, SourceReport(str(path)))
    next(reader)
    assert str(path) in open_files() - before, "entries are read from the open file"
    reader.close()  # a caller that stops early
    assert str(path) not in open_files()
    bad = tmp_path / "bad.har"
    bad.write_text('{"log": {"entries": 3}}')  # not split, parsed whole, refused
    with pytest.raises(har.CaptureError):
        har.load_har(bad, LABELS)
    assert str(bad) not in open_files()


def test_a_har_from_a_pipe_keeps_its_bytes(tmp_path: Path):
    """A pipe cannot be read again at an offset: its entries stay views of the bytes read."""
    source = repeated(HARS[-1], tmp_path / "source.har", times=2)
    fifo = tmp_path / "pipe.har"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(source.read_bytes()))
    writer.start()
    try:
        with har.load_har(fifo, LABELS) as entries:
            assert isinstance(entries.entries, list) and entries.unparsed
            report = SourceReport(str(fifo))
            found = list(har.har_records(entries, report))
    finally:
        writer.join()
    expected, _ = records(source)
    assert [r.url for r in found] == [r.url for r in expected] and len(found) == 32 and not report.damage


@pytest.mark.parametrize("workers", [1, 2])
def test_the_reader_seam_closes_the_file_on_either_path(workers: int, tmp_path: Path, monkeypatch):
    from phonehome.analysis import parallel
    from phonehome.analysis.pipeline import default_labels, load_profiles
    from phonehome.analysis.reader import collect_source
    from phonehome.analysis.rows import RowCollector, RowSettings

    monkeypatch.setattr(parallel, "PARALLEL_MIN_RECORDS", 1)
    path = repeated(HARS[-1], tmp_path / "seam.har", times=3)
    collector = RowCollector(RowSettings(load_profiles([path], None)))
    report = SourceReport(str(path))
    in_ranges = collect_source(
        path, "har", default_labels(path, None, None), report, collector, workers=workers
    )
    assert in_ranges == (workers == 2) and report.records == 48 == len(collector.take().flows)
    assert str(path) not in open_files()
