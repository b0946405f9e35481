"""Flow ids of inputs without their own (HAR entries, pcap requests) are unique across a run's
inputs, also when two inputs share a file name (`capture.har` in each session folder): every join
by flow id (finding -> request, claims, worked examples, redaction) depends on it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from phonehome.analysis.pipeline import analyze
from phonehome.analysis.sources.flow_ids import file_tag

ROOT = Path(__file__).resolve().parent
HARS = (ROOT / "data/real/reporthar_android_first-run.har", ROOT / "data/real/pagexray_linkedin.har")
PCAPS = (
    ROOT / "data/sources/pcap/scapy/http_content_length.pcap",
    ROOT / "data/sources/pcap/scapy/http_chunk.pcap.gz",
)


@pytest.mark.parametrize(("inputs", "name"), [(HARS, "capture.har"), (PCAPS, "capture.pcap")])
def test_same_file_names_in_two_folders_keep_their_requests_apart(tmp_path: Path, inputs, name):
    copies = []
    for folder, original in zip(("normal", "incognito"), inputs, strict=True):
        (tmp_path / folder).mkdir()
        target = tmp_path / folder / (name + (".gz" if original.suffix == ".gz" else ""))
        copies.append(Path(shutil.copyfile(original, target)))
    alone = [analyze([c]) for c in copies]
    both = analyze(copies)
    flows = both.flows
    assert len(flows) == sum(len(a.flows) for a in alone) > 2
    assert flows["flow_id"].is_unique
    # each input numbers its requests as it does alone, under an id of its own
    assert [set(a.flows["flow_id"]) for a in alone] == [
        set(flows.loc[flows["source"] == str(c), "flow_id"]) for c in copies
    ]
    assert not set(alone[0].flows["flow_id"]) & set(alone[1].flows["flow_id"])
    # a finding's flow id names its own request
    host_of = dict(zip(flows["flow_id"], flows["host"], strict=True))
    findings = both.findings
    assert len(findings) and all(
        host_of[f] == h for f, h in zip(findings["flow_id"], findings["host"], strict=True)
    )


def test_the_same_file_gives_the_same_ids_wherever_it_lies(tmp_path: Path):
    copy = Path(shutil.copyfile(HARS[0], tmp_path / HARS[0].name))
    assert file_tag(copy) == file_tag(HARS[0])
    assert file_tag(copy).startswith(HARS[0].stem + "~")
    other = Path(shutil.copyfile(HARS[1], tmp_path / "o.har"))
    assert file_tag(other).split("~")[1] != file_tag(copy).split("~")[1]


def test_requests_one_packet_completes_get_ids_of_their_own(tmp_path: Path):
    """Pipelined requests in one TCP segment, and requests cut off by the capture's end, are all
    completed by one packet: each still gets its own id (a worked example found by flow id must
    show its own request)."""
    from scapy.all import IP, TCP, Ether, wrpcap

    two = b"".join(b"GET /%s HTTP/1.1\r\nHost: t.example.com\r\n\r\n" % p for p in (b"a?x=1", b"b?x=2"))
    cut = b"POST /%s HTTP/1.1\r\nHost: %s.example.com\r\nContent-Length: 100\r\n\r\nabc"
    packets = [
        Ether() / IP(src="10.0.0.2", dst="10.0.0.1") / TCP(sport=40000, dport=80, flags="PA", seq=1) / two,
        Ether()
        / IP(src="10.0.0.2", dst="10.0.0.3")
        / TCP(sport=40001, dport=80, flags="PA", seq=1)
        / (cut % (b"d", b"v")),
        Ether()
        / IP(src="10.0.0.2", dst="10.0.0.4")
        / TCP(sport=40002, dport=80, flags="PA", seq=1)
        / (cut % (b"e", b"w")),
    ]
    for i, packet in enumerate(packets):
        packet.time = 1_700_000_000 + i
    path = tmp_path / "pipelined.pcap"
    wrpcap(str(path), packets)
    flows = analyze([path]).flows
    assert sorted(flows["url"].str.rsplit("/", n=1).str[-1]) == ["a?x=1", "b?x=2", "d", "e"]
    assert flows["flow_id"].is_unique
    assert sorted(i.split("#")[1] for i in flows["flow_id"]) == ["1", "1.1", "3", "3.1"]


def test_a_file_rewritten_in_place_or_edited_near_its_end_gets_another_tag(tmp_path: Path):
    import os

    path = Path(shutil.copyfile(HARS[0], tmp_path / "capture.har"))
    before = file_tag(path)
    data = bytearray(path.read_bytes())
    assert len(data) > 3 * 64 * 1024
    data[-20] = ord(" ") if data[-20] != ord(" ") else ord("\t")  # same size, an edit near the end
    path.write_bytes(bytes(data))
    os.utime(path, ns=(os.stat(path).st_atime_ns, os.stat(path).st_mtime_ns + 10**9))
    assert file_tag(path) != before


def test_an_input_given_twice_is_read_once(tmp_path: Path, capsys):
    from phonehome.analysis.cli.main import main

    har = HARS[1]
    once, twice = analyze([har]), analyze([har, har.parent / ".." / "real" / har.name])
    assert len(twice.flows) == len(once.flows) and twice.flows["flow_id"].is_unique
    assert twice.notes == [f"{har}: given 2 times, read once"]
    assert main(["analyze", str(har), str(har), "-o", str(tmp_path / "out")]) == 0
    assert "given 2 times, read once" in capsys.readouterr().err
