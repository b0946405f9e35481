"""The fast dump reader gives exactly the records of the mitmproxy path, on every dump."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from mitmproxy import connection, http
from mitmproxy.io import FlowWriter
from mitmproxy.test import tflow

from phonehome.analysis.records import HttpRecord, Labels, SourceReport
from phonehome.analysis.sources import CaptureError
from phonehome.analysis.sources.fastdump import Unsupported, http_record_from_record, read_dump
from phonehome.analysis.sources.framing import record_offsets
from tests.support_sources import reference_read_dump, write_dump

DEFAULTS = Labels(session="s", app="com.example", mode="normal")


def both(path: Path, **kwargs) -> tuple[tuple, tuple]:
    """(records, warnings, record count, error) from the mitmproxy path and the fast path."""
    out = []
    for reader in (reference_read_dump, read_dump):
        report = SourceReport(str(path))
        try:
            records, error = list(reader(path, DEFAULTS, report, **kwargs)), None
        except CaptureError as exc:
            records, error = None, str(exc)
        out.append((records, report.warnings, report.records, error))
    return out[0], out[1]


def dump_files(dumps_dir: Path) -> list[Path]:
    return sorted(p for p in dumps_dir.iterdir() if p.suffix in (".mitm", ".historical"))


def test_sample_capture_gives_identical_records(sample_capture: Path):
    slow, fast = both(sample_capture / "flows.mitm")
    assert slow == fast
    assert any(isinstance(r, HttpRecord) for r in fast[0])


def test_every_real_dump_gives_identical_records_or_error(dumps_dir: Path):
    files = dump_files(dumps_dir)
    assert len(files) >= 15
    for path in files:
        slow, fast = both(path)
        assert slow == fast, path.name


def record_bytes(path: Path) -> list[bytes]:
    data = path.read_bytes()
    offsets = record_offsets(path)
    assert offsets is not None
    return [data[a:b] for a, b in itertools.pairwise([*offsets, len(data)])]


def test_sample_http_flows_take_the_fast_path(sample_capture: Path):
    """Equality alone could hide a fast path that always falls back; check it does the work."""
    path = sample_capture / "flows.mitm"
    report = SourceReport(str(path))
    expected = [r for r in reference_read_dump(path, DEFAULTS, report) if isinstance(r, HttpRecord)]
    fast = []
    for buf in record_bytes(path):
        try:
            fast.append(http_record_from_record(buf, str(path), DEFAULTS))
        except Unsupported:
            continue  # DNS flows are for the mitmproxy path
    assert fast == expected


def test_old_format_record_is_left_to_mitmproxy(dumps_dir: Path):
    buf = record_bytes(dumps_dir / "flows_diff_data.mitm")[0]
    with pytest.raises(Unsupported):
        http_record_from_record(buf, "x", DEFAULTS)


def _flows() -> list:
    """Flows covering every branch of the host/header logic, plus non-HTTP flows."""
    plain = tflow.tflow(resp=True)
    plain.request.headers["Host"] = "www.example.com:8080"
    plain.metadata["phonehome"] = {"session": "lab", "app": "com.app", "mode": "incognito", "phase": "p1"}

    h2 = tflow.tflow(resp=True)
    h2.request.http_version = "HTTP/2.0"
    h2.request.authority = "api.example.org:8443"
    h2.request.headers["Host"] = "ignored.example"

    ip_with_sni = tflow.tflow(resp=False)
    ip_with_sni.request.host = "203.0.113.7"
    ip_with_sni.request.headers.pop("Host", None)
    ip_with_sni.client_conn.sni = "tracker.example.net"
    ip_with_sni.server_conn.peername = None

    odd_headers = tflow.tflow(resp=True)
    odd_headers.request.headers = http.Headers(
        [(b"Host", b"a.example"), (b"host", b"b.example"), (b"X-Bin", b"\xff\xfe caf\xc3\xa9")]
    )
    odd_headers.request.raw_content = None
    odd_headers.response.raw_content = None
    odd_headers.request.method = "post"
    odd_headers.request.path = "/p\xe4th?q=\udcff"

    idna = tflow.tflow(resp=True)
    idna.request.http_version = "HTTP/3"
    idna.request.data.authority = b"xn--bcher-kva.example"

    bad_authority = tflow.tflow(resp=True)
    bad_authority.request.http_version = "HTTP/2.0"
    bad_authority.request.data.authority = b"\xff\xfe"

    ws = tflow.twebsocketflow()
    err = tflow.tflow(err=True)
    tcp = tflow.ttcpflow()
    udp = tflow.tudpflow()
    dns = tflow.tdnsflow(resp=True)
    return [plain, h2, ip_with_sni, odd_headers, idna, bad_authority, ws, err, tcp, udp, dns]


def test_edge_case_flows_give_identical_records(tmp_path: Path):
    path = write_dump(tmp_path / "edge.mitm", _flows())
    slow, fast = both(path)
    assert slow == fast
    hosts = [r.host for r in fast[0] if isinstance(r, HttpRecord)]
    assert "api.example.org" in hosts and "tracker.example.net" in hosts


def _websocket_flows() -> list:
    """WebSocket flows: mitmproxy's test flow (two client messages, one server), one with no
    messages, one with a binary client message and an internal flow carrying a socket."""
    from mitmproxy import websocket

    plain = tflow.twebsocketflow()
    empty = tflow.twebsocketflow()
    empty.websocket.messages = []
    binary = tflow.twebsocketflow()
    binary.websocket.messages.append(
        websocket.WebSocketMessage(websocket.Opcode.BINARY, True, b"\x00\xff\x08\x96\x01", 2.0)
    )
    internal = tflow.twebsocketflow()
    internal.metadata["phonehome"] = {"session": "s", "mode": "normal", "internal": True, "kind": "refused"}
    return [plain, empty, binary, internal]


def test_websocket_flows_give_identical_records_on_the_fast_path(tmp_path: Path):
    """Client messages are payload (issue 14): both readers agree, and the fast reader parses
    WebSocket flows itself rather than falling back for them."""
    path = write_dump(tmp_path / "ws.mitm", _websocket_flows())
    slow, fast = both(path)
    assert slow == fast
    records = fast[0]
    assert [r.ws_messages for r in records] == [
        ((0, b"hello binary"), (1, b"hello text")),
        (),
        ((0, b"hello binary"), (1, b"hello text"), (3, b"\x00\xff\x08\x96\x01")),
    ]
    direct = [http_record_from_record(buf, str(path), DEFAULTS) for buf in record_bytes(path)[:3]]
    assert direct == records


def test_client_connection_without_sni_key_falls_back(tmp_path: Path):
    f = tflow.tflow(resp=True)
    f.client_conn = connection.Client(peername=("10.0.0.2", 5000), sockname=("10.0.0.1", 8080))
    path = write_dump(tmp_path / "nosni.mitm", [f])
    slow, fast = both(path)
    assert slow == fast


def _damaged_variants(good: bytes) -> dict[str, bytes]:
    half = len(good) // 2
    return {
        "truncated": good[: len(good) - 40],
        "garbage_between": good[:half] + b"GARBAGE" + good[half:],
        "flipped_tag": good.replace(b"4:type;4:http;", b"4:type;4:http]", 1),
        "oversized_prefix": b"999999999999:" + good,
        "not_a_dump": b"12:hello world!" + b"\x00" * 10,
    }


@pytest.mark.parametrize("kind", list(_damaged_variants(b"x" * 100)))
def test_damage_gives_identical_records_and_warnings(tmp_path: Path, kind: str):
    good = write_dump(tmp_path / "good.mitm", _flows()[:6]).read_bytes()
    path = tmp_path / f"{kind}.mitm"
    path.write_bytes(_damaged_variants(good)[kind])
    slow, fast = both(path)
    assert slow == fast


def test_empty_dump_is_the_same_error_or_warning(tmp_path: Path):
    path = tmp_path / "empty.mitm"
    path.write_bytes(b"")
    slow, fast = both(path)
    assert slow == fast and fast[3] is not None
    slow, fast = both(path, allow_empty=True)
    assert slow == fast and fast[1]


def _reordered(buf: bytes, rng) -> bytes:
    """The record with the keys of its flow, request and connection dicts in another order
    (mitmproxy reads a dict's keys in any order; the fast reader's layouts must not care)."""
    from mitmproxy.io import tnetstring

    state = tnetstring.loads(buf)

    def shuffle(d: dict) -> dict:
        items = list(d.items())
        rng.shuffle(items)
        return dict(items)

    for key in ("request", "client_conn", "server_conn"):
        state[key] = shuffle(state[key])
    return tnetstring.dumps(shuffle(state))


def test_layouts_change_nothing_when_records_differ_in_layout(tmp_path: Path, sample_capture: Path):
    """Records whose dicts list their keys in another order, with a key more (`backup`) or less
    (no `sni`), between records laid out alike: the same records, warnings and errors as
    mitmproxy's path, and the same answer, record by record, as reading without layouts."""
    import random

    from phonehome.analysis.sources.fastdump import Layouts

    rng = random.Random(20)
    nosni = tflow.tflow(resp=True)
    nosni.client_conn = connection.Client(peername=("10.0.0.2", 5000), sockname=("10.0.0.1", 8080))
    backup = tflow.tflow(resp=True)
    backup.backup()
    extra = write_dump(tmp_path / "extra.mitm", [nosni, backup, *_flows()])
    records = record_bytes(sample_capture / "flows.mitm") + record_bytes(extra)
    mixed = []
    for buf in records:
        mixed += [buf, _reordered(buf, rng), buf] if rng.random() < 0.4 else [buf]
    path = tmp_path / "mixed.mitm"
    path.write_bytes(b"".join(mixed))
    slow, fast = both(path)
    assert slow == fast
    assert sum(isinstance(r, HttpRecord) for r in fast[0]) > len(records)

    layouts = Layouts()
    for buf in mixed:
        answers = []
        for shared in (layouts, None):
            try:
                answers.append(http_record_from_record(buf, "x", DEFAULTS, None, shared))
            except Exception as exc:  # the same kind of refusal either way
                answers.append(type(exc))
        assert answers[0] == answers[1]
    assert {"flow", "request", "client", "server", "response"} <= layouts.known.keys()


def test_layouts_refuse_damage_as_the_full_parse_does():
    """A value running past its dict, a negative length, a key written another way: with a
    learned layout the record is refused with the same exception type as without one."""
    from phonehome.analysis.sources.fastdump import Layouts

    f = tflow.tflow(resp=True)
    good = write_bytes([f])
    damaged = [  # each the same length as the original, so the record's own frame still holds
        good.replace(b"8:HTTP/1.1,}7:request;", b"9:HTTP/1.1,}7:request;", 1),  # past the request
        good.replace(b"6:method;3:GET,", b"6:method;-3:GE,", 1),  # a negative length
        good.replace(b"4:port;2:22#", b"4:port;02:2#", 1),  # a length with a leading zero
        good.replace(b"4:path;5:/path", b"4:path,5:/path", 1),  # a bytes key
        good.replace(b"4:host;7:address", b"04:host7:address", 1),  # a key written another way
    ]
    for buf in damaged:
        assert buf != good and len(buf) == len(good)
        layouts = Layouts()
        http_record_from_record(good, "x", DEFAULTS, None, layouts)
        answers = []
        for shared in (layouts, None):
            try:
                answers.append(http_record_from_record(buf, "x", DEFAULTS, None, shared))
            except Exception as exc:
                answers.append(type(exc))
        assert answers[0] == answers[1], buf


def write_bytes(flows: list) -> bytes:
    import io

    fo = io.BytesIO()
    writer = FlowWriter(fo)
    for f in flows:
        writer.add(f)
    return fo.getvalue()
