"""Reading mitmproxy dumps: every format version mitmproxy migrates, damage, labels, host names."""

from __future__ import annotations

from pathlib import Path

import pytest
from mitmproxy import connection, http
from mitmproxy.io import FlowReader
from mitmproxy.proxy.mode_specs import ProxyMode
from mitmproxy.test import tflow

from phonehome.analysis.records import ContactRecord, HttpRecord, Labels, SourceReport
from phonehome.analysis.sources import CaptureError, read_source
from tests.support_sources import reference_read_dump, write_dump

READABLE_DUMPS = [
    "dumpfile-011.mitm",
    "dumpfile-012.historical",
    "dumpfile-018.mitm",
    "dumpfile-019.mitm",
    "dumpfile-10.mitm",
    "dumpfile-19.mitm",
    "dumpfile-7.mitm",
    "dumpfile-7-websocket.mitm",
    "flows_websocket.mitm",
    "flows_diff_data.mitm",
    "flows_event_stream.mitm",
    "flows_successful_log.mitm",
    "flows_error_log.mitm",
    "flows_incomplete_log.mitm",
    "flows_corrupted_gzip_body.mitm",
]


def mitmproxy_http_flows(path: Path) -> list[http.HTTPFlow]:
    with path.open("rb") as fo:
        return [f for f in FlowReader(fo).stream() if isinstance(f, http.HTTPFlow)]


def read_all(path: Path, labels: Labels | None = None) -> tuple[list, SourceReport]:
    report = SourceReport(str(path))
    records = list(read_source(path, labels or Labels(session="s"), report))
    return records, report


@pytest.mark.parametrize("name", READABLE_DUMPS)
def test_every_version_mitmproxy_reads_gives_the_same_requests(dumps_dir: Path, name: str):
    path = dumps_dir / name
    expected = mitmproxy_http_flows(path)
    records, report = read_all(path)
    http_records = [r for r in records if isinstance(r, HttpRecord)]
    assert not report.warnings
    assert [r.flow_id for r in http_records] == [f.id for f in expected]
    assert [r.method for r in http_records] == [f.request.method for f in expected]
    assert [r.host for r in http_records] == [f.request.pretty_host for f in expected]
    assert [r.request_body for r in http_records] == [f.request.raw_content or b"" for f in expected]


def test_a_version_mitmproxy_refuses_is_a_clear_error(dumps_dir: Path):
    path = dumps_dir / "dumpfile-010.mitm"
    with pytest.raises(CaptureError) as excinfo:
        read_all(path)
    message = str(excinfo.value)
    assert str(path) in message and "\n" not in message
    assert "at byte 0" in message


def test_tcp_flows_become_contacts(dumps_dir: Path):
    records, _ = read_all(dumps_dir / "flows_diff_data.mitm")
    contacts = [r for r in records if isinstance(r, ContactRecord)]
    assert {c.kind for c in contacts} == {"tcp"}
    assert any("mtalk.google.com" in c.host or c.server_ip for c in contacts)


def test_truncated_dump_keeps_flows_before_the_damage(tmp_path: Path, sample_capture: Path):
    data = (sample_capture / "flows.mitm").read_bytes()
    cut = tmp_path / "cut.mitm"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    with cut.open("rb") as fo:
        complete = 0
        try:
            for _ in FlowReader(fo).stream():
                complete += 1
        except Exception:
            pass
    records, report = read_all(cut)
    assert len(records) == complete > 0
    assert len(report.warnings) == 1
    assert str(cut) in report.warnings[0]
    assert f"kept the {complete} flow(s)" in report.warnings[0]


def test_garbage_is_not_a_capture(tmp_path: Path):
    junk = tmp_path / "notes.txt"
    junk.write_text("these are my notes, not a capture\n")
    with pytest.raises(CaptureError, match="not a capture"):
        read_all(junk)


def test_empty_dump_is_an_error(tmp_path: Path):
    empty = tmp_path / "empty.mitm"
    empty.write_bytes(b"")
    with pytest.raises(CaptureError, match="empty"):
        read_all(empty)


def reference_read_all(path: Path, labels: Labels | None = None) -> tuple[list, SourceReport]:
    report = SourceReport(str(path))
    return list(reference_read_dump(path, labels or Labels(), report)), report


def test_labels_come_from_metadata_and_fall_back_to_defaults(tmp_path: Path):
    labelled, bare = tflow.tflow(resp=True), tflow.tflow(resp=True)
    labelled.metadata["phonehome"] = {"session": "s1", "app": "com.a", "mode": "incognito", "phase": "p"}
    dump = tmp_path / "two.mitm"
    write_dump(dump, [labelled, bare])
    records, _ = read_all(dump, Labels(session="file", app="com.default", mode="normal"))
    assert records[0].labels == Labels("s1", "com.a", "incognito", "p")
    assert records[1].labels == Labels("file", "com.default", "normal", None)


ODD_LABELS = [
    # (labels as some writer stored them, what the analysis reads, how many warnings)
    (
        {"session": "s1", "app": "com.a", "mode": " Private ", "phase": "p"},
        ("s1", "com.a", "incognito", "p"),
        0,
    ),
    ({"mode": "INCOGNITO%20Tab"}, ("file", "com.default", "incognito", None), 0),
    ({"mode": "Incognito OptOut"}, ("file", "com.default", "incognito-optout", None), 1),
    ({"app": 7, "mode": ["x"], "phase": {"a": 1}, "session": 3}, ("file", "com.default", "normal", None), 4),
    ({"app": "x" * 500, "phase": "a\x00b", "mode": "no/slash"}, ("file", "com.default", "normal", None), 3),
    ({"app": "", "mode": None, "phase": False}, ("file", "com.default", "normal", None), 1),
    ("not a dict", ("file", "com.default", "normal", None), 0),
]


@pytest.mark.parametrize(("stored", "expected", "warnings"), ODD_LABELS)
def test_labels_of_any_type_are_read_one_way_by_both_readers(tmp_path: Path, stored, expected, warnings):
    flow = tflow.tflow(resp=True)
    flow.metadata["phonehome"] = stored
    dump = tmp_path / "odd.mitm"
    write_dump(dump, [flow, flow])
    defaults = Labels(session="file", app="com.default", mode="normal")
    fast, fast_report = read_all(dump, defaults)
    slow, slow_report = reference_read_all(dump, defaults)
    assert [r.labels for r in fast] == [r.labels for r in slow] == [Labels(*expected)] * 2
    assert fast_report.warnings == slow_report.warnings
    assert len(fast_report.warnings) == warnings  # said once per input, not once per flow
    assert not fast_report.damage  # an odd label loses no data


def test_unknown_mode_and_bad_label_warnings_reach_the_analysis(tmp_path: Path):
    from phonehome.analysis.pipeline import analyze

    odd, bad = tflow.tflow(resp=True), tflow.tflow(resp=True)
    odd.metadata["phonehome"] = {"session": "s", "mode": "Sleepy"}
    bad.metadata["phonehome"] = {"session": "s", "app": 12}
    dump = tmp_path / "odd.mitm"
    write_dump(dump, [odd, bad, odd])
    result = analyze([dump])
    assert sorted(result.flows["mode"]) == ["normal", "sleepy", "sleepy"]
    assert len(result.warnings) == 2
    assert "unknown mode 'sleepy'" in result.warnings[0] and result.warnings[0].startswith(str(dump))
    assert "app must be text, got int" in result.warnings[1]
    assert result.damaged == []


def test_transparent_mode_host_is_what_the_app_meant(tmp_path: Path):
    """WireGuard/transparent mode connects to an IP; the Host header (or SNI) names the host."""
    with_header = tflow.tflow(resp=True)
    with_header.request.host = "203.0.113.7"
    with_header.request.headers["Host"] = "tracking.intl.miui.com"
    with_header.client_conn.proxy_mode = ProxyMode.parse("wireguard")

    sni_only = tflow.tflow(resp=True)
    sni_only.request.host = "203.0.113.8"
    assert "Host" not in sni_only.request.headers
    sni_only.client_conn = connection.Client(
        peername=("10.0.0.2", 5555), sockname=("10.0.0.1", 51820), sni="sa.api.intl.miui.com"
    )
    dump = tmp_path / "wg.mitm"
    write_dump(dump, [with_header, sni_only])
    records, _ = read_all(dump)
    assert [r.host for r in records] == ["tracking.intl.miui.com", "sa.api.intl.miui.com"]
    assert records[0].server_ip == "203.0.113.7" or records[0].server_ip is not None
    assert records[1].url.startswith("http://sa.api.intl.miui.com")


def test_capture_directory_reads_dump_and_events(sample_capture: Path):
    records, report = read_all(sample_capture, Labels())
    kinds = {type(r).__name__ for r in records}
    assert kinds == {"HttpRecord", "ContactRecord"}
    pinned = [r for r in records if isinstance(r, ContactRecord) and r.kind == "tls_failed"]
    assert [p.host for p in pinned] == ["api.sec.intl.miui.com"]
    assert report.records == len(records)


def test_damage_in_the_middle_loses_only_the_damaged_flow(tmp_path: Path, sample_capture: Path):
    data = (sample_capture / "flows.mitm").read_bytes()
    with (sample_capture / "flows.mitm").open("rb") as fo:
        total = sum(1 for _ in FlowReader(fo).stream())
    middle = len(data) // 2
    broken = tmp_path / "broken.mitm"
    broken.write_bytes(data[:middle] + b"\x00garbage\xff" * 10 + data[middle + 40 :])
    records, report = read_all(broken)
    assert total - 2 <= len(records) < total
    assert len(report.damage) == 1 and "resumed at byte" in report.damage[0]
    assert report.damage[0] in report.warnings  # (besides, perhaps, a mode the lone dump does not declare)
    # the flows after the damage are there
    ids = [r.flow_id for r in records if isinstance(r, HttpRecord)]
    shipped = [r.flow_id for r in read_all(sample_capture / "flows.mitm")[0] if isinstance(r, HttpRecord)]
    assert ids[-1] == shipped[-1]


def test_oversized_record_is_skipped_not_loaded(tmp_path: Path, monkeypatch):
    from phonehome.analysis.sources import framing

    small, big = tflow.tflow(resp=True), tflow.tflow(resp=True)
    big.request.content = b"x" * 50_000
    dump = tmp_path / "big.mitm"
    write_dump(dump, [small, big, small])
    monkeypatch.setattr(framing, "MAX_RECORD_BYTES", 20_000)
    for read in (read_all, reference_read_all):  # the fast reader and mitmproxy's objects agree
        records, report = read(dump)
        assert [r.flow_id for r in records] == [small.id, small.id]
        assert "over the 20000 byte limit; skipped" in report.warnings[0]
    assert framing.record_offsets(dump) is None  # so the dump is never split into byte ranges


@pytest.mark.parametrize("declared", [True, False])
def test_modes_the_session_declares_are_not_warned_about(tmp_path: Path, declared: bool):
    import json

    from phonehome.analysis.pipeline import analyze

    capture = tmp_path / "study"
    capture.mkdir()
    flow = tflow.tflow(resp=True)
    flow.metadata["phonehome"] = {"session": "study", "mode": "Incognito OptOut"}
    write_dump(capture / "flows.mitm", [flow, flow])
    modes = ["normal", "incognito", "incognito-optout"] if declared else ["normal"]
    (capture / "session.json").write_text(json.dumps({"schema": 1, "session": "study", "modes": modes}))
    result = analyze([capture])
    assert list(result.flows["mode"]) == ["incognito-optout"] * 2
    assert [w for w in result.warnings if "unknown mode" in w] == ([] if declared else [result.warnings[0]])
    assert len(result.warnings) == (0 if declared else 1)
