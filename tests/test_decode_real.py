"""The decoder on real third-party captures (tests/data/dumps, see its PROVENANCE.md)."""

from __future__ import annotations

import pytest

from phonehome.analysis.decode import decode_request
from phonehome.analysis.records import HttpRecord, Labels, SourceReport
from phonehome.analysis.sources import read_source


def http_records(path) -> list[HttpRecord]:
    return [r for r in read_source(path, Labels(), SourceReport(str(path))) if isinstance(r, HttpRecord)]


def test_google_search_term_found_five_layers_deep(dumps_dir):
    """A real Chrome sync request carries the search words in gzip>protobuf>form>base64>protobuf."""
    hits = []
    for rec in http_records(dumps_dir / "flows_diff_data.mitm"):
        for f in decode_request(rec).fields:
            if f.value == "how to start tcp connection":
                hits.append((rec.host, f))
    assert {host for host, _ in hits} == {"clients4.google.com"}
    chains = {f.encodings for _, f in hits}
    assert ("gzip", "protobuf", "form") in chains  # the `q` parameter of a URL kept in the message
    assert ("gzip", "protobuf", "form", "base64", "protobuf") in chains  # `gs_lp`, base64 protobuf
    assert all(f.location == "body" for _, f in hits)


@pytest.mark.parametrize("name", ["flows_diff_data.mitm", "dumpfile-7.mitm", "flows_successful_log.mitm"])
def test_real_dumps_decode_cleanly(dumps_dir, name):
    records = http_records(dumps_dir / name)
    assert records
    for rec in records:
        decoded = decode_request(rec)
        assert not any(n.startswith("internal error") for n in decoded.notes), (rec.url, decoded.notes)
        assert all(isinstance(f.value, str) for f in decoded.fields)
