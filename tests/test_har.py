"""HAR reader against real HAR files from Chrome, Firefox, Charles, Insomnia-style posts and tweasel."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from phonehome.analysis.records import HttpRecord, Labels
from phonehome.analysis.sources import CaptureError
from tests.support_sources import HAR, read_all

REAL = sorted(HAR.rglob("*.har"))


@pytest.mark.parametrize("path", REAL, ids=lambda p: p.name)
def test_every_real_har_reads_all_entries(path: Path) -> None:
    doc = json.loads(path.read_text(encoding="utf-8-sig"))
    records, report = read_all(path)
    assert len(records) == len(doc["log"]["entries"])
    assert report.records == len(records)
    assert report.warnings == []
    for rec, entry in zip(records, doc["log"]["entries"], strict=True):
        assert isinstance(rec, HttpRecord)
        assert rec.url.split("#")[0].startswith(entry["request"]["url"].split("?")[0].split("#")[0][:40])
        assert rec.method == entry["request"]["method"]
        assert rec.timestamp > 1e9


def test_tweasel_har_without_response_content_keeps_body_and_labels() -> None:
    path = HAR / "tweasel" / "android_first-run.har"
    records, _ = read_all(path, Labels(app="tld.sample.app", mode="normal"))
    assert {r.host for r in records} >= {"graph.facebook.com", "api2.branch.io"}
    assert all(r.labels.app == "tld.sample.app" and r.labels.session == path.stem for r in records)
    posts = [r for r in records if r.method == "POST" and r.request_body]
    assert posts, "POST bodies must survive"


def test_postdata_body_is_the_sent_text() -> None:
    path = HAR / "mitmproxy_repo" / "postdata.har"
    doc = json.loads(path.read_text(encoding="utf-8-sig"))
    text = doc["log"]["entries"][0]["request"]["postData"]["text"]
    (rec,), _ = read_all(path)
    assert text.encode() in rec.request_body or rec.request_body.startswith(b"\x1f\x8b")


def _har(tmp_path: Path, entries: list) -> Path:
    path = tmp_path / "t.har"
    path.write_text(json.dumps({"log": {"version": "1.2", "entries": entries}}))
    return path


def test_base64_request_body_and_missing_fields(tmp_path: Path) -> None:
    body = b"\x00\x01binary\xff"
    path = _har(
        tmp_path,
        [
            {
                "request": {
                    "method": "POST",
                    "url": "https://sa.api.intl.miui.com/sa?project=x",
                    "postData": {
                        "mimeType": "application/octet-stream",
                        "text": base64.b64encode(body).decode(),
                        "encoding": "base64",
                    },
                }
            },
            {"request": {"url": "http://example.com/a"}, "startedDateTime": "not a date"},
            {"nothing": True},
        ],
    )
    records, report = read_all(path)
    assert [r.host for r in records] == ["sa.api.intl.miui.com", "example.com"]
    assert records[0].request_body == body
    assert records[0].status is None
    assert any("entry 2" in w for w in report.warnings)


def test_compressed_request_is_read_as_sent_whatever_the_mitmproxy_version(tmp_path: Path) -> None:
    # mitmproxy 12's request_to_flow decodes the request (dropping Content-Encoding) and rewrites
    # the response's Content-Length; records must be alike on mitmproxy 11 and 12
    import gzip

    text = '{"imei": "867530912345673", "q": "caf\u00e9"}'
    path = _har(
        tmp_path,
        [
            {
                "startedDateTime": "2024-01-01T00:00:00Z",
                "request": {
                    "method": "POST",
                    "url": "https://api.example.com/v1/log",
                    "headers": [
                        {"name": "Content-Type", "value": "application/json"},
                        {"name": "Content-Encoding", "value": "gzip"},
                        {"name": "X-After", "value": "1"},
                    ],
                    "postData": {"mimeType": "application/json", "text": text},
                },
                "response": {
                    "status": 200,
                    "headers": [
                        {"name": "Content-Type", "value": "text/plain"},
                        {"name": "Content-Encoding", "value": "gzip"},
                        {"name": "Content-Length", "value": "31"},
                    ],
                    "content": {"mimeType": "text/plain", "text": "ok, logged"},
                },
            },
            {
                "startedDateTime": "2024-01-01T00:00:01Z",
                "request": {
                    "method": "GET",
                    "url": "https://api.example.com/v1/ping",
                    "headers": [{"name": "Content-Encoding", "value": "gzip"}],
                },
            },
        ],
    )
    (post, get), report = read_all(path)
    assert report.warnings == []
    names = [k for k, _ in post.request_headers]
    assert names == ["Content-Type", "Content-Encoding", "X-After", "content-length"]
    assert post.header("content-encoding") == "gzip"
    assert gzip.decompress(post.request_body) == text.encode()
    assert post.header("content-length") == str(len(post.request_body))
    assert post.response_headers == (("Content-Type", "text/plain"), ("Content-Length", "31"))
    assert post.response_size == len("ok, logged")
    assert get.header("content-encoding") == "gzip" and get.request_body == b""


def test_not_a_har_is_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.har"
    path.write_text('{"log": {"entries": [')
    with pytest.raises(CaptureError) as exc:
        read_all(path)
    assert str(path) in str(exc.value) and "\n" not in str(exc.value)
    assert exc.value.position is not None
