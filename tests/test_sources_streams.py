"""WebSocket, TCP/UDP and proxy-internal flows in the analysis (issue 14), read by both dump readers.

Dumps are written with mitmproxy's own test flows (mitmproxy.test.tflow) and FlowWriter, as the
recorder writes them; both readers (the fast one and mitmproxy's objects) must give the same records.
"""

from __future__ import annotations

import json
from pathlib import Path

from mitmproxy import http
from mitmproxy.test import tflow

from phonehome.analysis.labels import LABEL_KEY
from phonehome.analysis.pipeline import analyze
from phonehome.analysis.records import HttpRecord, Labels, SourceReport
from phonehome.analysis.sources.fastdump import read_dump
from phonehome.analysis.verdicts.coverage import coverage
from tests.support_sources import reference_read_dump, write_dump

DEFAULTS = Labels(session="s", app="com.example", mode="normal")
ANDROID_ID = "9774d56d682e549c"


def read_both(path: Path) -> tuple[list, SourceReport]:
    """The records of `path` from both readers, asserted equal (records, warnings, notes, counts)."""
    results = []
    for reader in (reference_read_dump, read_dump):
        report = SourceReport(str(path))
        results.append((list(reader(path, DEFAULTS, report)), report))
    (slow, slow_report), (fast, fast_report) = results
    assert fast == slow
    assert (fast_report.warnings, fast_report.notes, fast_report.records) == (
        slow_report.warnings,
        slow_report.notes,
        slow_report.records,
    )
    return fast, fast_report


def app_flow(host: str = "api.example.com", body: bytes = b"") -> http.HTTPFlow:
    f = tflow.tflow(resp=True)
    f.request.host = host
    f.request.headers["host"] = host
    f.request.method = "POST" if body else "GET"
    f.request.content = body
    f.metadata[LABEL_KEY] = {"session": "s", "app": "com.example", "mode": "normal", "phase": None}
    return f


def internal_flow(host: str, kind: str | None) -> http.HTTPFlow:
    """A flow the proxy answered itself; kind None: a capture from before the recorder marked them."""
    f = app_flow(host, json.dumps({"android_id": ANDROID_ID}).encode())
    if kind is not None:
        f.metadata[LABEL_KEY] = {**f.metadata[LABEL_KEY], "internal": True, "kind": kind}
    return f


def test_internal_flows_are_left_out_by_both_readers(tmp_path: Path):
    keep = app_flow()
    dump = write_dump(
        tmp_path / "flows.mitm",
        [
            internal_flow("mitm.it", "onboarding"),
            keep,
            internal_flow("127.0.0.1", "refused"),
            internal_flow("mitm.it", None),  # old capture: known by its host
            internal_flow("phonehome.mark", None),
        ],
    )
    records, report = read_both(dump)
    assert [r.flow_id for r in records] == [keep.id]
    assert report.records == 1
    assert len(report.notes) == 1
    assert "4 flow(s) the proxy answered itself left out" in report.notes[0]
    assert "1 marker, 2 onboarding, 1 refused" in report.notes[0]


def test_internal_flows_are_in_no_table(tmp_path: Path):
    """End to end through analyze(): no flow row, finding or contact from internal flows, though they
    carry an identifier; the capture directory's .lock and session.json.tmp are ignored."""
    capture = tmp_path / "cap"
    capture.mkdir()
    sent = app_flow("tracker.example.net", json.dumps({"android_id": ANDROID_ID}).encode())
    write_dump(
        capture / "flows.mitm",
        [internal_flow("mitm.it", "onboarding"), sent, internal_flow("10.0.0.1", "refused")],
    )
    (capture / "session.json").write_text(json.dumps({"schema": 1, "session": "cap", "phases": []}))
    (capture / ".lock").write_text("4242\n")
    (capture / "session.json.tmp").write_text('{"schema": 1, "sess')  # a rename in progress
    result = analyze([capture])
    assert list(result.flows["flow_id"]) == [sent.id]
    assert set(result.findings["flow_id"]) == {sent.id}
    assert "mitm.it" not in set(result.findings["host"]) | set(result.contacts.get("host", []))
    assert (result.findings["data_type"] == "device_id.android_id").any()
    assert not result.warnings
    assert any("2 flow(s) the proxy answered itself left out" in n for n in result.notes)


def ws_flow(client: list[bytes], server: list[bytes]) -> http.HTTPFlow:
    """A WebSocket flow (mitmproxy's test flow) whose messages alternate client, server."""
    from mitmproxy import websocket

    f = tflow.twebsocketflow()
    f.request.host = "push.example.net"
    f.request.headers["host"] = "push.example.net"
    f.metadata[LABEL_KEY] = {"session": "s", "app": "com.example", "mode": "incognito", "phase": None}
    f.websocket.messages = []
    for i in range(max(len(client), len(server))):
        for content, from_client in ((client[i : i + 1], True), (server[i : i + 1], False)):
            if content:
                f.websocket.messages.append(
                    websocket.WebSocketMessage(websocket.Opcode.TEXT, from_client, content[0], 1.0)
                )
    return f


def test_websocket_client_messages_are_records_of_both_readers(tmp_path: Path):
    sent = json.dumps({"event": "open", "android_id": ANDROID_ID}).encode()
    f = ws_flow([b"hello", sent], [b'{"android_id": "aaaaaaaaaaaaaaaa"}', b"ok"])
    dump = write_dump(tmp_path / "ws.mitm", [f, app_flow()])
    records, _ = read_both(dump)
    assert records[0].ws_messages == ((0, b"hello"), (2, sent))  # indexes among all messages
    assert records[1].ws_messages == ()


def test_websocket_messages_decode_like_bodies(tmp_path: Path):
    """End to end: an identifier the app sent over a WebSocket is a finding (field ws[<i>]...);
    one the server sent is not; the flow's request_size counts what the app sent."""
    sent = json.dumps({"event": "open", "android_id": ANDROID_ID}).encode()
    received = json.dumps({"android_id": "1f2e3d4c5b6a7988"}).encode()
    f = ws_flow([b"hello", sent], [received])
    result = analyze([write_dump(tmp_path / "ws.mitm", [f])])
    ids = result.findings[result.findings["data_type"] == "device_id.android_id"]
    assert list(ids["value"]) == [ANDROID_ID]
    assert list(ids["location"]) == ["body"]
    assert ids["field"].iloc[0].startswith("ws[2]")
    assert list(ids["mode"]) == ["incognito"]
    assert "1f2e3d4c5b6a7988" not in set(result.findings["value"])
    assert list(result.flows["request_size"]) == [len(b"hello") + len(sent)]


def test_real_websocket_dumps_carry_their_client_messages(dumps_dir: Path):
    """mitmproxy's own sample dumps with WebSockets: both readers give the same client messages,
    exactly those mitmproxy's reader shows as from_client."""
    from mitmproxy.io import FlowReader

    for name in ("flows_websocket.mitm", "dumpfile-7-websocket.mitm"):
        path = dumps_dir / name
        with path.open("rb") as fo:
            expected = [
                tuple((i, m.content) for i, m in enumerate(f.websocket.messages) if m.from_client)
                for f in FlowReader(fo).stream()
                if isinstance(f, http.HTTPFlow) and f.websocket is not None
            ]
        records, _ = read_both(path)
        got = [r.ws_messages for r in records if isinstance(r, HttpRecord) and r.ws_messages]
        assert expected and any(expected), name
        assert got == [m for m in expected if m], name


def test_tcp_and_udp_flows_are_contacts_with_their_port(tmp_path: Path):
    """Raw TCP and UDP flows (the recorder saves them at their end) are contacts of both readers,
    kind tcp/udp, detail `port N` (UDP 443: QUIC for the coverage verdict)."""
    tcp_flow = tflow.ttcpflow()
    udp_flow = tflow.tudpflow()
    udp_flow.server_conn.address = ("142.250.1.1", 443)
    udp_flow.client_conn.sni = "www.google.com"
    dump = write_dump(tmp_path / "streams.mitm", [tcp_flow, udp_flow, app_flow()])
    records, report = read_both(dump)
    contacts = [(r.kind, r.host, r.detail) for r in records if not isinstance(r, HttpRecord)]
    assert contacts == [
        ("tcp", "address", "port 22"),
        ("udp", "www.google.com", "port 443"),
    ]
    assert report.records == 3
    result = analyze([dump])
    assert sorted(result.contacts["kind"]) == ["tcp", "udp"]
    cov = coverage(result.flows, result.contacts)
    quic = cov[cov["host"] == "www.google.com"]
    assert list(quic["reason"]) == ["quic"]
    assert list(cov[cov["host"] == "address"]["reason"]) == ["raw_tcp"]


def test_har_requests_to_internal_hosts_are_left_out(tmp_path: Path):
    """A HAR (mitmproxy's own HAR export of an old capture) with the CA download page: not app traffic."""
    from mitmproxy.addons.savehar import SaveHar

    sent = app_flow("tracker.example.net", json.dumps({"android_id": ANDROID_ID}).encode())
    flows = [internal_flow("mitm.it", None), sent, internal_flow("phonehome.mark", None)]
    har = tmp_path / "old.har"
    har.write_text(json.dumps(SaveHar().make_har(flows)))
    result = analyze([har])
    assert list(result.flows["host"]) == ["tracker.example.net"]
    assert set(result.findings["host"]) == {"tracker.example.net"}
    assert result.sources[0].records == 1
    assert any(
        "2 flow(s) the proxy answered itself left out (not the app's traffic): 1 marker, 1 onboarding" in n
        for n in result.notes
    )


def test_byte_ranges_leave_internal_flows_out_and_count_them(tmp_path: Path, monkeypatch):
    """A dump big enough for worker processes: the same tables and the same note as one pass."""
    from phonehome.analysis import parallel

    monkeypatch.setattr(parallel, "PARALLEL_MIN_RECORDS", 50)
    flows = []
    for i in range(120):
        flows.append(app_flow(f"h{i}.example.net", json.dumps({"android_id": ANDROID_ID}).encode()))
        if i % 10 == 0:
            flows.append(internal_flow("mitm.it", "onboarding" if i % 20 else None))
    dump = write_dump(tmp_path / "big.mitm", flows)
    one = analyze([dump], workers=1)
    many = analyze([dump], workers=2)
    assert len(one.flows) == 120 and "mitm.it" not in set(one.flows["host"])
    assert one.flows.equals(many.flows) and one.findings.equals(many.findings)
    assert one.notes == many.notes
    assert any("12 flow(s) the proxy answered itself left out" in n for n in many.notes)
    assert parallel.plan_ranges(dump, dump.stat().st_size, 2)  # the byte-range path was possible
