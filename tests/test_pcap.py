"""pcap/pcapng reader against real captures: plaintext HTTP, DNS, TLS SNI."""

from __future__ import annotations

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
