"""A captured value that urllib refuses to split never stops an analysis.

Telemetry bodies are written by apps and servers: a field holding `http://[abc/x?a=1` (a bracket
that opens an IPv6 host and never closes) made `phonehome analyze` stop with "Invalid IPv6 URL"
and lose every other finding. Such a value is still a URL-shaped string: it is classified, its
query read, and the rest of the capture analysed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mitmproxy.test import tflow

from phonehome.analysis import pipeline
from tests.support_sources import write_dump

HOSTILE = [
    "http://[abc/x?a=1",  # unclosed IPv6 bracket
    "https://[::1/p?q=2#f",
    "https://exa\uff03mple.com/?q=3",  # a netloc invalid under NFKC normalisation
    "http://example.org:99999999/?q=4",  # a port urllib refuses to read
    "https://example.org]/?q=5",
]


def _flows() -> list:
    flows = []
    for n, value in enumerate(HOSTILE):
        f = tflow.tflow(resp=True)
        f.request.method = "POST"
        f.request.host = "collector.example.net"
        f.request.path = f"/track?page={value}"
        f.request.headers["content-type"] = "application/json"
        f.request.content = json.dumps({"page": value, "referrer": value, "n": n}).encode()
        flows.append(f)
    good = tflow.tflow(resp=True)
    good.request.host = "collector.example.net"
    good.request.path = "/track?page=https://news.example.com/a?q=1"
    flows.append(good)
    return flows


@pytest.mark.parametrize("workers", [1, 2])
def test_hostile_url_values_are_findings_not_errors(tmp_path: Path, workers: int, monkeypatch):
    from phonehome.analysis import parallel

    monkeypatch.setattr(parallel, "PARALLEL_MIN_RECORDS", 2)
    dump = write_dump(tmp_path / "flows.mitm", _flows())
    result = pipeline.analyze([dump], workers=workers)
    findings = result.findings
    assert len(result.flows) == len(HOSTILE) + 1
    for value in HOSTILE:
        assert value in set(findings["value"]), value
    assert "https://news.example.com/a?q=1" in set(findings["value"])
