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
from phonehome.analysis.sources.fastdump import Unsupported, read_dump, records_from_record
from phonehome.analysis.sources.framing import record_offsets
from tests.support_sources import reference_read_dump, write_dump

DEFAULTS = Labels(session="s", app="com.example", mode="normal")


def http_record_from_record(buf: bytes, source: str, defaults, report=None, layouts=None) -> HttpRecord:
    """The HttpRecord of one whole record of an HTTP flow; Unsupported for any other."""
    records = records_from_record(buf, source, defaults, report, layouts)
    if len(records) != 1 or not isinstance(records[0], HttpRecord):
        raise Unsupported("not an HTTP flow")
    return records[0]


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


def test_key_sets_are_mitmproxys():
    """The key sets the fast reader checks records against are written out (so reading a dump
    does not import mitmproxy's flow classes); they must be exactly mitmproxy's, on every
    supported version, or records would be misread instead of handed to mitmproxy."""
    import dataclasses
    import typing

    from mitmproxy import dns, version, websocket

    from phonehome.analysis.sources import fastdump

    assert version.FLOW_FORMAT_VERSION == fastdump.FAST_FORMAT_VERSION  # else the fast path is off
    keys = lambda state: {k.encode() for k in state} - {b"backup"}  # noqa: E731
    assert keys(tflow.tflow(resp=True).get_state()) == fastdump._FLOW_KEYS
    assert keys(tflow.tdnsflow(resp=True).get_state()) == fastdump._DNS_FLOW_KEYS
    assert {f.name.encode() for f in dataclasses.fields(http.RequestData)} == fastdump._REQUEST_KEYS
    assert {f.name.encode() for f in dataclasses.fields(http.ResponseData)} == fastdump._RESPONSE_KEYS
    assert {int(op) for op in websocket.Opcode} == fastdump._OPCODES
    message = getattr(dns, "DNSMessage", None) or dns.Message  # mitmproxy 12 renamed it
    assert set(tflow.tdnsflow().request.get_state()) == fastdump._DNS_MESSAGE_KEYS
    hints = typing.get_type_hints(message)
    for name, kind in fastdump._DNS_MESSAGE_SCALARS.items():
        assert hints[name] is kind, name
    for cls, fields in ((dns.Question, fastdump._DNS_QUESTION), (dns.ResourceRecord, fastdump._DNS_RECORD)):
        assert {f.name: typing.get_type_hints(cls)[f.name] for f in dataclasses.fields(cls)} == fields
    assert {t: size for t, (size, _) in fastdump._DNS_ADDRESSES.items()} == {
        dns.types.A: 4,
        dns.types.AAAA: 16,
    }


def _dns_flows() -> list:
    """DNS flows: address answers (read by the fast reader) and others (left to mitmproxy)."""
    from mitmproxy import dns

    def answer(type_: int, data: bytes, name: str = "dns.google") -> dns.ResourceRecord:
        return dns.ResourceRecord(name, type_, dns.classes.IN, 300, data)

    plain = tflow.tdnsflow(resp=True)  # two A answers
    unanswered = tflow.tdnsflow()
    unanswered.metadata["phonehome"] = {"session": "lab", "app": "com.app", "mode": "incognito", "phase": "p"}
    v6 = tflow.tdnsflow(resp=True)
    v6.response.answers = [answer(dns.types.AAAA, bytes(range(16))), answer(dns.types.A, b"\x0a\x00\x00\x01")]
    several = tflow.tdnsflow(resp=True)
    several.request.questions = [
        dns.Question("tracker.example.", dns.types.A, dns.classes.IN),
        dns.Question("api.example.org", dns.types.AAAA, dns.classes.IN),
    ]
    several.response.answers = []
    zero_time = tflow.tdnsflow(resp=True)
    zero_time.request.timestamp = 0
    bad_label = tflow.tdnsflow(resp=True)
    bad_label.metadata["phonehome"] = {"session": "lab", "mode": "<script>"}
    cname = tflow.tdnsflow(resp=True)
    cname.response.answers = [answer(dns.types.CNAME, b"\x03www\x07example\x03com\x00")]
    short_a = tflow.tdnsflow(resp=True)
    short_a.response.answers = [answer(dns.types.A, b"\x01\x02\x03")]
    txt = tflow.tdnsflow(resp=True)
    txt.response.answers = [answer(dns.types.TXT, b"hello")]
    return [plain, unanswered, v6, several, zero_time, bad_label, cname, short_a, txt]


def test_dns_flows_give_identical_records(tmp_path: Path):
    """DNS flows (issue 20: read without importing mitmproxy's flow classes) give exactly the
    contacts, labels and warnings of mitmproxy's path, also between HTTP flows; address answers
    are read by the fast reader itself, other answers are left to mitmproxy."""
    from phonehome.analysis.records import ContactRecord
    from phonehome.analysis.sources.fastdump import Layouts, records_from_record

    flows = _dns_flows()
    interleaved = [x for pair in zip(flows, _flows()[: len(flows)], strict=True) for x in pair]
    path = write_dump(tmp_path / "dns.mitm", interleaved)
    slow, fast = both(path)
    assert slow == fast
    contacts = [r for r in fast[0] if isinstance(r, ContactRecord) and r.kind == "dns"]
    assert len(contacts) == len(flows) + 1  # `several` asks two questions
    assert contacts[0].detail == "8.8.8.8; 8.8.4.4" and fast[1]  # a warning for the bad label
    assert "tracker.example" in {c.host for c in contacts}

    layouts = Layouts()
    direct = []
    for buf in record_bytes(write_dump(tmp_path / "only-dns.mitm", flows)):
        try:
            direct.append(records_from_record(buf, str(path), DEFAULTS, SourceReport("x"), layouts))
        except Unsupported:
            direct.append(None)
    assert [d is not None for d in direct] == [True] * 6 + [False] * 3  # CNAME, bad A, TXT: mitmproxy
    assert direct[2][0].detail == "1:203:405:607:809:a0b:c0d:e0f; 10.0.0.1"


def _tag_flips(buf: bytes, keys: tuple[bytes, ...]) -> list[bytes]:
    """The record with one tnetstring type tag inside the values of `keys` (top-level keys)
    changed into each other tag, one at a time."""
    from phonehome.analysis.sources.fastdump import _element, _spans

    top = _spans(buf, *_element(buf, 0)[:3])
    tags = b"}],;#^!~"
    out = []
    for key in keys:
        _, start, end = top[key]
        for i in range(start, end + 1):  # the value's own tag is at `end`
            if buf[i] in tags:
                out += [buf[:i] + bytes([t]) + buf[i + 1 :] for t in tags if t != buf[i]]
    return out


def test_dns_messages_with_a_changed_type_tag_read_as_mitmproxy_reads_them(tmp_path: Path):
    """Every type tag in DNS messages changed into every other tag: a value of another type (an
    int for a bool, bytes for a str, a float for an int, None, a list for a dict) is refused by
    the fast reader exactly where mitmproxy refuses or converts it, so both give the same records
    and warnings. (Like the HTTP path, the fast reader does not parse values it does not use:
    a flow's `backup` or `comment` damaged into a malformed literal is read by it but refused
    by mitmproxy.)"""
    flows = _dns_flows()
    records = record_bytes(write_dump(tmp_path / "dns.mitm", [flows[2], flows[1]]))  # A+AAAA, no response
    variants = [v for buf in records for v in _tag_flips(buf, (b"request", b"response"))]
    assert len(variants) > 250
    for n, data in enumerate(variants):
        path = tmp_path / f"flip{n % 4}.mitm"
        path.write_bytes(records[0] + data)
        slow, fast = both(path)
        assert slow == fast, n


def test_reading_http_and_dns_flows_does_not_import_mitmproxys_flow_classes(sample_capture: Path):
    """A small capture answers in well under a second partly because its reading imports none
    of mitmproxy's flow, connection or certificate modules (about 0.15 s); a flow the fast
    reader leaves alone (TCP) imports them when it is met."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        from phonehome.analysis.records import Labels, SourceReport
        from phonehome.analysis.sources.fastdump import read_dump
        records = list(read_dump(Path(sys.argv[1]), Labels(session="s"), SourceReport("x")))
        heavy = sorted(m for m in ("mitmproxy.http", "mitmproxy.io", "mitmproxy.dns", "mitmproxy.flow")
                       if m in sys.modules)
        print(len(records), ",".join(heavy))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(sample_capture / "flows.mitm")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert int(out[0]) > 10 and len(out) == 1, out


def test_a_flow_left_to_mitmproxy_is_read_by_it(tmp_path: Path):
    """The mitmproxy path is imported when first needed, and gives that flow's contacts."""
    import subprocess
    import sys

    path = write_dump(tmp_path / "tcp.mitm", [tflow.tflow(resp=True), tflow.ttcpflow()])
    code = (
        "import sys; from pathlib import Path; "
        "from phonehome.analysis.records import Labels, SourceReport; "
        "from phonehome.analysis.sources.fastdump import read_dump; "
        "r = list(read_dump(Path(sys.argv[1]), Labels(session='s'), SourceReport('x'))); "
        "print([type(x).__name__ for x in r], 'mitmproxy.io' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['HttpRecord', 'ContactRecord'] True"


def test_repeated_and_many_metadata_give_identical_labels(tmp_path: Path):
    """The reader remembers the metadata texts it has parsed (a phase's flows repeat them): flows
    cycling through more label sets than it keeps, each seen several times, some with a bad
    label (warned about once), read exactly as mitmproxy's path reads them."""
    from phonehome.analysis.sources.fastdump import Layouts

    flows = []
    for n in range(3 * (Layouts.METADATA_KEEP + 6)):
        f = tflow.tflow(resp=True)
        phase = n % (Layouts.METADATA_KEEP + 6)
        mode = "<bad>" if phase % 17 == 0 else ("incognito" if phase % 2 else "normal")
        f.metadata["phonehome"] = {"session": "lab", "app": "com.app", "mode": mode, "phase": f"p{phase}"}
        flows.append(f)
    path = write_dump(tmp_path / "labels.mitm", flows)
    slow, fast = both(path)
    assert slow == fast
    assert len({r.labels for r in fast[0]}) == Layouts.METADATA_KEEP + 6 and fast[1]
