"""HAR entries as records without building mitmproxy flows: the same records as `read_har`, faster.

Why: `phonehome analyze` on a HAR spent about a quarter of its time (cProfile, 5,000 varied
requests, docs/performance.md "Side by side with TrackHAR") in `mitmproxy.io.har.request_to_flow`,
which builds a whole HTTPFlow per entry: two `connection` objects whose every attribute is
type-checked, a Response whose body is re-encoded, and, for a request with `Content-Encoding`,
a request body compressed twice (request_to_flow's `Request.make`, then har.py's rebuild of it).
A record needs none of the connections and only three numbers of the response.

What stays mitmproxy's: the entry is made whole by har.py's `normalise_entry` and its body by
`_request_body`; the request is mitmproxy's own `Request.make` (URL parsing, header
normalisation, charset and Content-Encoding of the body, Content-Length), called once, exactly
as har.py's `_as_recorded` rebuilds it; response headers go through `mitmproxy.io.har.fix_headers`,
the response body length through `mitmproxy.net.http.encoding` as request_to_flow computes it;
the record is made by `sources.mitm.http_record`. Timestamps are parsed as request_to_flow
parses them, and an entry whose timestamp or response body is bad falls back as `read_har` does.

The records are equal to `read_har`'s, field by field (tests/test_har_fast.py compares them on
every HAR in tests/data and on mitmproxy's own HAR export of the bundled sample), and damaged
entries give the same warnings. Not wired into `read_source` here: `sources/har.py` and
`sources/__init__.py` belong to the hostile-input work (issue 15/13); the wiring is one line.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from mitmproxy import http
from mitmproxy.io import har as mitm_har
from mitmproxy.net.http.headers import infer_content_encoding

from phonehome.analysis.records import ContactRecord, HttpRecord, Labels, SourceReport
from phonehome.analysis.sources import CaptureError
from phonehome.analysis.sources.har import MAX_BODY_BYTES, _load, _request_body, normalise_entry
from phonehome.analysis.sources.mitm import http_record

_EPOCH = "1970-01-01T00:00:00Z"
# request_to_flow's mapping of HAR httpVersion strings (everything else is HTTP/1.1)
_HTTP_VERSIONS = {"http/2.0": "HTTP/2", "HTTP/2": "HTTP/2", "HTTP/3": "HTTP/3"}


def _timestamp(started: str) -> float:
    """As mitmproxy.io.har.request_to_flow parses startedDateTime (ValueError if it cannot)."""
    return datetime.fromisoformat(started.replace("Z", "+00:00")).timestamp()


def _response_size(content: dict[str, Any], headers: http.Headers) -> int:
    """len(raw_content) of the Response request_to_flow builds (binascii.Error on bad base64).

    normalise_entry has dropped the response's Content-Encoding header, so the final
    `encoding.encode(..., "identity")` of request_to_flow leaves the bytes as they are.
    """
    text = content.get("text", "")
    if content.get("encoding") == "base64":
        return len(base64.b64decode(text))
    try:
        body = http.encoding.encode(text, infer_content_encoding(headers.get("content-type", "")))
    except ValueError:
        body = text.encode("utf-8", errors="surrogateescape")
    return len(body)


def _record(fixed: dict[str, Any], source: str, labels: Labels) -> HttpRecord:
    """The record read_har makes of a normalised entry, without an HTTPFlow."""
    response_headers = mitm_har.fix_headers(fixed["response"]["headers"])
    try:
        timestamp = _timestamp(fixed["startedDateTime"])
        response_size = _response_size(fixed["response"]["content"], response_headers)
    except (ValueError, binascii.Error):  # read_har's fallback: epoch, no response body
        timestamp = _timestamp(_EPOCH)
        response_size = 0
    request = fixed["request"]
    post = request.get("postData")
    req = http.Request.make(
        request["method"],
        request["url"],
        post["text"] if post else "",
        mitm_har.fix_headers(request["headers"]),
    )
    req.timestamp_start = timestamp
    req.http_version = _HTTP_VERSIONS.get(request["httpVersion"], "HTTP/1.1")
    server = fixed.get("serverIPAddress")
    port = 80 if request["url"].startswith("http://") else 443
    # what http_record reads of a flow: the request, the connections' sni/peername, the response
    flow = SimpleNamespace(
        id="",
        metadata={},
        request=req,
        client_conn=SimpleNamespace(sni=None),
        # request_to_flow's Server(address=(ip, port)) has no peername until connected
        server_conn=SimpleNamespace(peername=None, address=(server, port) if server else None),
        response=SimpleNamespace(
            status_code=fixed["response"]["status"],
            headers=response_headers,
            raw_content=b"",  # http_record takes only its length: set below
        ),
    )
    record = http_record(flow, source, labels)  # type: ignore[arg-type]
    record.response_size = response_size
    return record


def read_har_fast(
    path: str | Path, defaults: Labels, report: SourceReport
) -> Iterator[HttpRecord | ContactRecord]:
    """Drop-in for sources.har.read_har: the same records and warnings, without mitmproxy flows."""
    path = Path(path)
    doc = _load(path)
    log = doc.get("log") if isinstance(doc, dict) else None
    entries = log.get("entries") if isinstance(log, dict) else None
    if entries is None and isinstance(doc, dict) and "request" in doc:
        entries = [doc]  # a lone entry, as some tools export one request
    if not isinstance(entries, list):
        raise CaptureError(path, "not a HAR file: no log.entries list")
    labels = defaults if defaults.session else Labels(path.stem, defaults.app, defaults.mode, defaults.phase)
    source = str(path)
    for index, entry in enumerate(entries):
        try:
            fixed = normalise_entry(entry)
            text, raw = _request_body(entry["request"].get("postData"), report, index)
            if text:
                fixed["request"]["postData"] = {"text": text}
            record = _record(fixed, source, labels)
            record.flow_id = f"{path.stem}#{index}"
            if fixed["response"]["status"] == 0:
                record.status = None
                record.response_headers = ()
                record.response_size = None
            body = raw if raw is not None else (record.request_body if text else b"")
            if len(body) > MAX_BODY_BYTES:
                report.warnings.append(f"entry {index}: request body cut at {MAX_BODY_BYTES} bytes")
                body = body[:MAX_BODY_BYTES]
            record.request_body = body
        except Exception as exc:  # one bad entry must not lose the others
            report.damaged(f"entry {index} skipped: {type(exc).__name__}: {str(exc)[:200]}")
            continue
        report.records += 1
        yield record
