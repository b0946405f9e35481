"""pcap/pcapng reader against real captures: plaintext HTTP, DNS, TLS SNI."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from phonehome.analysis.records import ContactRecord, HttpRecord, Labels
from phonehome.analysis.sources import CaptureError
from phonehome.analysis.sources.pcap import client_hello_sni
from tests.support_sources import PCAP, pcapng_with_keylog, read_all


def test_plain_http_requests_reassembled() -> None:
    records, report = read_all(PCAP / "scapy" / "http_content_length.pcap", Labels(app="x", mode="incognito"))
    http = [r for r in records if isinstance(r, HttpRecord)]
    assert len(http) == 2 and {r.host for r in http} == {"www.google.com"}
    assert all(r.labels.mode == "incognito" and r.labels.session == "http_content_length" for r in http)
    assert all(r.path.startswith("/") and r.scheme == "http" for r in http)
    assert report.records == len(records)


@pytest.mark.parametrize("name", ["http_chunk.pcap.gz", "http_head.pcapng.gz"])
def test_gzip_and_pcapng(name: str) -> None:
    records, _ = read_all(PCAP / "scapy" / name)
    assert len([r for r in records if isinstance(r, HttpRecord)]) == 1


@pytest.mark.parametrize("name", ["dns_udp.pcap", "dns_tcp.pcap"])
def test_dns_queries_and_answers(name: str) -> None:
    records, _ = read_all(PCAP / "tcpdump_tests" / name)
    assert [r.kind for r in records] == ["dns", "dns"]
    assert {r.host for r in records} == {"www.tcpdump.org"}
    assert records[0].detail == "query" and records[1].detail.startswith("answer")


def test_tls_client_hello_gives_sni_only_contact() -> None:
    records, _ = read_all(PCAP / "illustrated_tls13" / "capture.pcap")
    contacts = [r for r in records if isinstance(r, ContactRecord)]
    assert [(c.host, c.kind) for c in contacts] == [("example.ulfheim.net", "sni_only")]


def test_tls13_session_without_http_requests_is_reported() -> None:
    # illustrated-tls13 sends "ping"/"pong", not HTTP: the keys are used but no request comes out
    path = PCAP / "illustrated_tls13" / "capture.pcap"
    records, report = read_all(path, keylog=PCAP / "illustrated_tls13" / "keylog.txt")
    assert [r.kind for r in records] == ["sni_only"]
    assert any("no HTTP request could be decrypted" in w for w in report.warnings)


def test_sni_parser_rejects_garbage() -> None:
    assert client_hello_sni(b"\x16\x03\x01" + b"\xff" * 60) is None
    assert client_hello_sni(b"") is None


def test_not_a_pcap(tmp_path: Path) -> None:
    path = tmp_path / "x.pcap"
    path.write_bytes(b"hello world, not a pcap at all")
    with pytest.raises(CaptureError) as exc:
        read_all(path)
    assert str(path) in str(exc.value) and "\n" not in str(exc.value)


def test_keylog_decrypts_tls12_and_tls13_http() -> None:
    # scapy's example: the same GET over TLS 1.2 (client port 41386) and TLS 1.3 (41402)
    path = PCAP / "scapy" / "tls_nss_example.pcap"
    plain, _ = read_all(path)
    assert not [r for r in plain if isinstance(r, HttpRecord)], "without keys nothing is readable"
    records, report = read_all(path, keylog=PCAP / "scapy" / "tls_nss_example.keys.txt")
    http = [r for r in records if isinstance(r, HttpRecord)]
    assert [(r.method, r.scheme, r.path) for r in http] == [("GET", "https", "/pki/srv_key.pem")] * 2
    assert len({r.flow_id for r in http}) == 2
    assert report.warnings == []


def test_decryption_secrets_block_decrypts_like_keylog(tmp_path: Path) -> None:
    pcap, keys = PCAP / "scapy" / "tls_nss_example.pcap", PCAP / "scapy" / "tls_nss_example.keys.txt"
    ng = pcapng_with_keylog(pcap, keys, tmp_path / "dsb.pcapng")
    with_dsb, _ = read_all(ng)
    with_keylog, _ = read_all(pcap, keylog=keys)
    assert [(type(r).__name__, r.host) for r in with_dsb] == [(type(r).__name__, r.host) for r in with_keylog]
    assert any(isinstance(r, HttpRecord) and r.path == "/pki/srv_key.pem" for r in with_dsb)


def test_missing_keylog_is_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(CaptureError) as exc:
        read_all(PCAP / "scapy" / "tls_nss_example.pcap", keylog=tmp_path / "nope.txt")
    assert "nope.txt" in str(exc.value)


# --- issue 15: reassembly with scapy's TCPSession + h11, damage named with the packet ----------


def _tcp_packets(segments: list[tuple[int, bytes]], dport: int = 8080, sport: int = 40000) -> list:
    """Client-to-server packets carrying `segments` ((relative seq, payload)), after a handshake."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from scapy.layers.inet import IP, TCP
        from scapy.layers.l2 import Ether
    base = 1000
    ip = Ether() / IP(src="10.0.0.2", dst="10.0.0.9")
    pkts = [ip / TCP(sport=sport, dport=dport, flags="S", seq=base - 1)]
    for i, (offset, data) in enumerate(segments):
        p = ip / TCP(sport=sport, dport=dport, flags="PA", seq=base + offset) / data
        p.time = 1_700_000_000 + i
        pkts.append(p)
    return pkts


def _write(path: Path, pkts: list) -> Path:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from scapy.utils import wrpcap
    wrpcap(str(path), pkts)
    return path


def test_chunked_body_is_dechunked_across_segments(tmp_path: Path) -> None:
    from phonehome.analysis.decode import decode_request

    head = b"POST /collect HTTP/1.1\r\nHost: t.example.com\r\nTransfer-Encoding: chunked\r\n\r\n"
    body = b'9\r\n{"a":"b"}\r\n0\r\n\r\n'
    req2 = b"GET /next?x=1 HTTP/1.1\r\nHost: t.example.com\r\n\r\n"
    stream = head + body + req2
    cuts = [0, 30, len(head) + 4, len(head) + len(body) + 5, len(stream)]
    segments = [(a, stream[a:b]) for a, b in itertools.pairwise(cuts)]
    segments.insert(2, segments[1])  # a retransmission must not duplicate bytes
    records, report = read_all(_write(tmp_path / "chunked.pcap", _tcp_packets(segments)))
    http = [r for r in records if isinstance(r, HttpRecord)]
    assert [(r.method, r.path) for r in http] == [("POST", "/collect"), ("GET", "/next?x=1")]
    assert http[0].request_body == b'{"a":"b"}' and http[0].host == "t.example.com" and http[0].port == 8080
    fields = {f.path: f.value for f in decode_request(http[0]).fields}
    assert fields.get("body.a") == "b"
    assert report.damage == []


def test_client_hello_split_over_two_segments_gives_sni(tmp_path: Path) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from scapy.layers.inet import TCP
        from scapy.utils import rdpcap
    hello = next(
        bytes(p[TCP].payload)
        for p in rdpcap(str(PCAP / "illustrated_tls13" / "capture.pcap"))
        if p.haslayer(TCP) and bytes(p[TCP].payload)[:1] == b"\x16" and bytes(p[TCP].payload)[5:6] == b"\x01"
    )
    assert client_hello_sni(hello) == "example.ulfheim.net"
    assert client_hello_sni(hello[:60]) is None  # the first segment alone has no name
    pkts = _tcp_packets([(0, hello[:60]), (60, hello[60:])], dport=443)
    records, _ = read_all(_write(tmp_path / "split.pcap", pkts))
    contacts = [r for r in records if isinstance(r, ContactRecord) and r.kind == "sni_only"]
    assert [c.host for c in contacts] == ["example.ulfheim.net"]


def test_incomplete_request_at_the_end_is_kept_with_a_warning(tmp_path: Path) -> None:
    stream = b"POST /u HTTP/1.1\r\nHost: a.example\r\nContent-Length: 100\r\n\r\n" + b"x" * 40
    records, report = read_all(_write(tmp_path / "cut.pcap", _tcp_packets([(0, stream)])))
    http = [r for r in records if isinstance(r, HttpRecord)]
    assert len(http) == 1 and http[0].request_body == b"x" * 40
    assert any("incomplete at the end of the capture" in w for w in report.warnings)


def test_not_http_stream_is_dropped_with_a_warning(tmp_path: Path) -> None:
    stream = b"GET / HTTP/1.1\r\nbad header line without colon\r\n\r\n"
    records, report = read_all(_write(tmp_path / "bad.pcap", _tcp_packets([(0, stream)])))
    assert not [r for r in records if isinstance(r, HttpRecord)]
    assert any("not valid HTTP/1" in w and "packet 2" in w for w in report.warnings)
    assert not any("without colon" in w for w in report.warnings)  # captured bytes are not repeated


def _packet_ends(data: bytes) -> set[int]:
    """Offsets in a classic pcap where a record ends (a cut there is a clean, shorter capture)."""
    import struct

    endian = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    ends, pos = {24}, 24
    while pos + 16 <= len(data):
        caplen = struct.unpack(endian + "I", data[pos + 8 : pos + 12])[0]
        pos += 16 + caplen
        ends.add(pos)
    return ends


@pytest.mark.parametrize(
    "seed",
    [
        PCAP / "scapy" / "http_content_length.pcap",
        PCAP / "tcpdump_tests" / "dns_udp.pcap",
        PCAP / "illustrated_tls13" / "capture.pcap",
    ],
    ids=lambda p: p.name,
)
def test_every_cut_inside_a_packet_is_named_damage(tmp_path: Path, seed: Path) -> None:
    data = seed.read_bytes()
    ends = _packet_ends(data)
    full, _ = read_all(seed)
    checked = 0
    for cut in range(25, len(data), max(1, len(data) // 60)):
        path = tmp_path / "cut.pcap"
        path.write_bytes(data[:cut])
        records, report = read_all(path)
        if cut in ends:
            assert report.damage == []
            continue
        checked += 1
        assert report.damage, cut
        assert all(d.startswith("packet ") for d in report.damage)
        assert len(records) <= len(full)
    assert checked >= 20


def test_garbage_after_the_last_packet_is_damage(tmp_path: Path) -> None:
    seed = PCAP / "tcpdump_tests" / "dns_udp.pcap"
    path = tmp_path / "tail.pcap"
    path.write_bytes(seed.read_bytes() + b"\x01\x02\x03")
    records, report = read_all(path)
    assert len(records) == 2 and report.damage and "packet 3" in report.damage[0]


def test_cli_exits_2_naming_file_and_packet(tmp_path: Path, capsys) -> None:
    from phonehome.analysis.cli.main import main

    data = (PCAP / "scapy" / "http_content_length.pcap").read_bytes()
    path = tmp_path / "cut.pcap"
    path.write_bytes(data[:-10])
    assert main(["analyze", str(path), "-o", str(tmp_path / "out"), "-q"]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "packet 18" in err
    assert "has been truncated" not in err.replace("packet has been truncated (", "")  # said by us, once
