"""A HAR split into its entries' JSON texts (msgspec.Raw) reads exactly as the stdlib's whole parse.

analysis.sources.har keeps a HAR's bytes and parses one entry at a time, so that memory is bounded
by the file rather than by its parsed objects. That is only safe if the split never reads a file
differently: every document it takes must also be valid for the stdlib `json` and give the same
entries, and every document it refuses goes through the stdlib parse as before (same records, same
errors). Checked on every HAR in tests/data, on hand-made odd documents, and on random damage.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from phonehome.analysis.records import Labels, SourceReport
from phonehome.analysis.sources import CaptureError, har

DATA = Path(__file__).parent / "data"
HARS = sorted((DATA / "sources" / "har").rglob("*.har")) + sorted((DATA / "real").glob("*.har"))
SMALL = json.dumps(
    {
        "log": {
            "version": "1.2",
            "creator": {"name": "t", "version": "1"},
            "entries": [
                {"request": {"method": "GET", "url": "https://a.example/?q=1", "headers": []}, "n": [1, 2.5]},
                {"request": {"method": "POST", "url": "https://b.example/", "postData": {"text": "x=é"}}},
            ],
        }
    },
    ensure_ascii=False,
).encode()


def stdlib_entries(raw: bytes):
    doc = json.loads(raw.decode("utf-8-sig", errors="surrogateescape"), parse_int=har._parse_int)
    return doc["log"]["entries"]


def records(path: Path, split: bool, monkeypatch) -> tuple[list, SourceReport]:
    if not split:
        monkeypatch.setattr(har, "_split_entries", lambda raw: None)
    report = SourceReport(str(path))
    found = list(har.read_har(path, Labels(session="s"), report))
    monkeypatch.undo()
    return found, report


@pytest.mark.parametrize("path", HARS, ids=lambda p: p.name)
def test_every_har_reads_the_same_split_or_parsed_whole(path, monkeypatch):
    raw = har._read(path)
    texts = har._split_entries(raw)
    if texts is not None:
        assert [har.parse_entry(t) for t in texts] == stdlib_entries(raw)
    split, split_report = records(path, True, monkeypatch)
    whole, whole_report = records(path, False, monkeypatch)
    assert split == whole
    assert (split_report.records, split_report.warnings) == (whole_report.records, whole_report.warnings)


def test_the_real_hars_take_the_split_path():
    taken = [path.name for path in HARS if har._split_entries(har._read(path)) is not None]
    assert len(taken) >= len(HARS) - 2, taken  # a HAR with a lone surrogate escape goes the old way


@pytest.mark.parametrize(
    "document",
    [
        b'{"log":{"entries":[NaN]}}',  # the stdlib takes NaN: refused by the split, parsed whole
        b'{"log":{"entries":["\\ud800"]}}',  # a lone surrogate escape: likewise
        b'{"request":{"url":"https://a.example/"}}',  # a lone entry
        b'{"log":{"entries":{}}}',
        b'{"log":{}}',
        b'{"log":{"entries":[1,]}}',
        b'{"log":{"creator":"a\tb","entries":[]}}',
        b'{"log":{"entries":[]}} trailing',
        b'\xef\xbb\xbf{"log":{"entries":[{"a":1}]}}',
        b'{"log":{"entries":["\xff\xfe"]}}',  # not UTF-8: kept as the stdlib path keeps it
        b'{"log":{"entries":[{"a":1,"a":2}]},"log":{"entries":[3]}}',
        b'{"log":{"entries":[1e999999, 123456789012345678901234567890]}}',
    ],
)
def test_odd_documents_are_read_as_the_stdlib_reads_them(document, tmp_path):
    path = tmp_path / "odd.har"
    path.write_bytes(document)
    texts = har._split_entries(document)
    try:
        expected = stdlib_entries(document)
    except (ValueError, KeyError, TypeError):
        assert texts is None  # what the stdlib refuses, the split refuses
        return
    if texts is not None:
        assert [har.parse_entry(t) for t in texts] == expected
    try:
        entries = har.load_har(path, Labels(session="s"))
    except CaptureError:
        assert not isinstance(expected, list)
        return
    with entries:
        parsed = [har.parse_entry(e) if entries.unparsed else e for e in entries.entries]
    assert parsed == (expected if isinstance(expected, list) else [json.loads(document)])


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, len(SMALL) - 1),
            st.sampled_from([b"", b",", b'"', b"\\", b"]", b"}", b"{", b"\t", b"0", b"\xff"]),
        ),
        min_size=1,
        max_size=3,
    )
)
def test_damaged_documents_are_never_read_differently(edits):
    document = bytearray(SMALL)
    for position, replacement in edits:
        position = min(position, len(document) - 1)
        document[position : position + 1] = replacement
    document = bytes(document)
    texts = har._split_entries(document)
    if texts is None:
        return  # parsed whole by the stdlib, as before
    expected = stdlib_entries(document)  # must not raise: the split is at least as strict
    assert [har.parse_entry(t) for t in texts] == expected
