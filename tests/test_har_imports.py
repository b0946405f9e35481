"""Reading a HAR imports mitmproxy's flow classes only for an entry that needs mitmproxy's own
Request (issue 20: about 0.1 s of start-up, paid before the workers start)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

_READ = """
import sys
from pathlib import Path
from phonehome.analysis.records import Labels, SourceReport
from phonehome.analysis.sources import read_source
records = list(read_source(Path(sys.argv[1]), Labels(session="s"), SourceReport("x"), kind="har"))
heavy = [m for m in ("mitmproxy.http", "mitmproxy.io", "mitmproxy.connection") if m in sys.modules]
print(len(records), ",".join(heavy) or "-")
"""


def _entry(url: str) -> dict:
    return {
        "startedDateTime": "2026-12-07T06:00:00.000Z",
        "time": 1,
        "request": {
            "method": "POST",
            "url": url,
            "httpVersion": "HTTP/1.1",
            "headers": [{"name": "Content-Type", "value": "application/json"}],
            "queryString": [],
            "cookies": [],
            "headersSize": -1,
            "bodySize": 12,
            "postData": {"mimeType": "application/json", "text": '{"id": "ab"}'},
        },
        "response": {
            "status": 200,
            "statusText": "OK",
            "httpVersion": "HTTP/1.1",
            "headers": [],
            "cookies": [],
            "content": {"size": 0, "mimeType": "text/plain"},
            "redirectURL": "",
            "headersSize": -1,
            "bodySize": 0,
        },
        "cache": {},
        "timings": {"send": 0, "wait": 1, "receive": 0},
    }


def _read(tmp_path: Path, urls: list[str]) -> list[str]:
    path = tmp_path / "x.har"
    path.write_text(json.dumps({"log": {"version": "1.2", "entries": [_entry(u) for u in urls]}}))
    out = subprocess.run([sys.executable, "-c", _READ, str(path)], capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_plain_entries_need_no_mitmproxy_flow_classes(tmp_path: Path):
    assert _read(tmp_path, ["https://sa.api.intl.miui.com/sa?project=x", "http://example.org/p"]) == [
        "2",
        "-",
    ]


def test_an_entry_needing_request_make_imports_them(tmp_path: Path):
    count, heavy = _read(tmp_path, ["https://example.org/p", "https://example.org/p;a?q=1"])  # ";": not plain
    assert count == "2" and "mitmproxy.http" in heavy
