"""Dropping requests that two sources of one session both saw."""

from __future__ import annotations

from phonehome.analysis.records import ContactRecord, HttpRecord, Labels
from phonehome.analysis.sources.dedup import drop_duplicates, source_rank


def rec(source: str, ts: float, body: bytes = b"x", path: str = "/sa") -> HttpRecord:
    return HttpRecord(
        source,
        f"{source}-{ts}",
        Labels("s"),
        ts,
        "POST",
        "https",
        "sa.api.intl.miui.com",
        443,
        path,
        request_body=body,
    )


def test_same_request_from_pcap_and_dump_kept_once_from_dump() -> None:
    pcap, dump = rec("a.pcap", 10.0), rec("flows.mitm", 10.4)
    out = drop_duplicates([pcap, dump])
    assert out == [dump]


def test_far_apart_different_body_or_same_source_are_kept() -> None:
    records = [
        rec("flows.mitm", 10.0),
        rec("a.har", 30.0),
        rec("a.har", 10.0, body=b"y"),
        rec("flows.mitm", 10.1),
    ]
    assert drop_duplicates(records) == records


def test_har_loses_to_pcap_and_contacts_pass() -> None:
    contact = ContactRecord("a.pcap", Labels("s"), 1.0, "x.com", "dns")
    har, pcap = rec("a.har", 5.0), rec("a.pcap.gz", 5.5)
    assert drop_duplicates([har, contact, pcap]) == [contact, pcap]
    assert source_rank("x/flows.mitm") < source_rank("a.pcapng") < source_rank("a.HAR")


def test_compressed_body_compares_by_content_not_compressor_output() -> None:
    import gzip

    import brotli

    text = b'{"imei": "867530912345673", "events": ["open", "search"]}' * 4

    def compressed(source: str, ts: float, coding: str, body: bytes) -> HttpRecord:
        r = rec(source, ts, body=body)
        r.request_headers = (("Content-Type", "application/json"), ("Content-Encoding", coding))
        return r

    # the same request, compressed by the app and compressed again (at another level) by a HAR reader
    dump = compressed("flows.mitm", 10.0, "gzip", gzip.compress(text, compresslevel=9, mtime=0))
    har = compressed("a.har", 10.2, "gzip", gzip.compress(text, compresslevel=1, mtime=0))
    assert dump.request_body != har.request_body
    assert drop_duplicates([dump, har]) == [dump]
    dump_br = compressed("flows.mitm", 10.0, "br", brotli.compress(text, quality=11))
    har_br = compressed("a.har", 10.2, "br", brotli.compress(text, quality=0))
    assert drop_duplicates([dump_br, har_br]) == [dump_br]
    other = compressed("a.har", 10.2, "gzip", gzip.compress(text + b" ", mtime=0))
    assert drop_duplicates([dump, other]) == [dump, other]
    # a body that does not decode as its Content-Encoding says is compared as sent
    bogus = compressed("flows.mitm", 10.0, "gzip", b"not gzip")
    assert drop_duplicates([bogus, compressed("a.har", 10.1, "gzip", b"not gzip")]) == [bogus]
    assert drop_duplicates([bogus, har]) == [bogus, har]


def test_dump_and_its_har_export_count_once(tmp_path) -> None:
    import json
    from pathlib import Path

    import pytest

    from phonehome.analysis.export import records_to_har
    from tests.support_sources import read_all

    sample = Path(__file__).resolve().parent.parent / "captures" / "sample-mint-browser"
    if not (sample / "flows.mitm").exists():
        pytest.skip("sample capture not generated")
    dump, _ = read_all(sample)
    http = [r for r in dump if isinstance(r, HttpRecord)]
    har = tmp_path / "same-session.har"
    har.write_text(json.dumps(records_to_har(http)))
    again, _ = read_all(har)
    assert len(again) == len(http)
    merged = drop_duplicates(dump + again)
    assert merged == dump
