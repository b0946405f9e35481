"""read_har's records (built without mitmproxy flows) against records built through mitmproxy's own
mitmproxy.io.har.request_to_flow (tests/support_sources.reference_har_record): the same records.

Differential: every real HAR file in tests/data (mitmproxy's own test HARs from Chrome, Firefox,
Charles, a BOM file, POST data; tweasel's Android HAR; the real-traffic corpus), mitmproxy's own
HAR export (SaveHar) of the bundled sample, and entries damaged in the ways read_har falls back
on or skips. Records must be equal field by field and the SourceReports (warnings, damage,
counts) equal too.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from mitmproxy.addons.savehar import SaveHar
from mitmproxy.io import FlowReader

from phonehome.analysis.records import HttpRecord, Labels, SourceReport
from phonehome.analysis.sources.har import read_har
from tests.support_sources import har_entry_variant, reference_har_record

DATA = Path(__file__).parent / "data"
REAL_HARS = sorted((DATA / "sources" / "har").rglob("*.har")) + sorted((DATA / "real").glob("*.har"))
SAMPLE = Path(__file__).parent.parent / "captures" / "sample-mint-browser" / "flows.mitm"
LABELS = Labels(None, None, "normal", None)


def both(path: Path) -> tuple[list, SourceReport, list, SourceReport]:
    slow, fast = SourceReport(str(path)), SourceReport(str(path))
    reference = list(read_har(path, LABELS, slow, entry_record=reference_har_record))
    return reference, slow, list(read_har(path, LABELS, fast)), fast


def assert_same(path: Path) -> list[HttpRecord]:
    expected, slow, got, fast = both(path)
    assert len(got) == len(expected)
    for index, (a, b) in enumerate(zip(expected, got, strict=True)):
        assert b == a, f"{path.name} entry {index} differs"
    assert fast == slow
    return got


def test_real_har_files_are_there():
    assert len(REAL_HARS) >= 6


@pytest.mark.parametrize("path", REAL_HARS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_same_records_as_read_har_on_real_files(path):
    records = assert_same(path)
    assert records, f"{path} holds requests"


def test_same_records_on_mitmproxys_own_export_of_the_sample(tmp_path):
    with SAMPLE.open("rb") as fo:
        flows = list(FlowReader(fo).stream())
    har = tmp_path / "sample.har"
    har.write_text(json.dumps(SaveHar().make_har(flows)))
    records = assert_same(har)
    assert len(records) == sum(1 for f in flows if f.type == "http")
    # the paths that differ from a plain GET: a brotli request body, POST bodies, an IP-less server
    assert any(("content-encoding", "br") in {(k.lower(), v) for k, v in r.request_headers} for r in records)
    assert any(r.method == "POST" and r.request_body for r in records)
    assert len({r.timestamp for r in records}) == len(records)


def test_damaged_and_odd_entries_fall_back_and_warn_alike(tmp_path):
    good = {
        "startedDateTime": "2024-05-01T10:00:00.000Z",
        "time": 12,
        "request": {
            "method": "POST",
            "url": "https://t.example.com/collect?id=1",
            "httpVersion": "http/2.0",
            "headers": [{"name": "Content-Type", "value": "application/json"}],
            "postData": {"mimeType": "application/json", "text": '{"a": 1}'},
        },
        "response": {"status": 204, "httpVersion": "HTTP/2", "headers": [], "content": {}},
        "serverIPAddress": "192.0.2.7",
    }

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    def variant(**changes):
        return har_entry_variant(good, **changes)

    entries = [
        good,
        "not an entry",
        variant(**{"request.url": 7}),
        variant(startedDateTime="yesterday"),  # bad timestamp: epoch, no response body
        variant(**{"response.content": {"text": "%%%not base64", "encoding": "base64"}}),
        variant(**{"response.content": {"text": b64(b"\x89PNG...."), "encoding": "base64"}}),
        variant(**{"request.postData": {"text": "abc", "encoding": "base64"}}),
        variant(**{"request.postData": {"text": b64(b"\x00\x01bin"), "encoding": "base64"}}),
        variant(**{"request.url": "http://[::1]:8080/x", "serverIPAddress": None}),
        variant(**{"request.url": "https://93.184.216.34/p", "response.status": 0}),
        variant(**{"request.headers": [["Host", "pinned.example"], ["X-A", "1"]]}),
        variant(**{"request.url": "https://bad host/"}),
        variant(**{"response.headers": [{"name": "Content-Type", "value": "text/html; charset=latin-1"}],
                   "response.content": {"text": "caf\u00e9"}}),
    ]  # fmt: skip
    har = tmp_path / "odd.har"
    har.write_text(json.dumps({"log": {"version": "1.2", "entries": entries}}))
    records = assert_same(har)
    _, report, _, _ = both(har)
    assert 0 < len(records) < len(entries), "some entries kept, the broken ones skipped"
    assert report.damage and any("entry 1 skipped" in m for m in report.damage)
    assert any("base64" in w for w in report.warnings), "the bad base64 request body is warned about"
    assert 0.0 in {r.timestamp for r in records}, "the bad timestamp fell back to the epoch"
