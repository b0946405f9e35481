"""The bundled sample capture: a real mitmproxy dump, labelled, reproducible from its script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from mitmproxy import http
from mitmproxy.io import FlowReader

from phonehome.analysis.records import Labels, SourceReport
from phonehome.analysis.sources import read_source

REPO = Path(__file__).resolve().parent.parent


def test_sample_is_a_labelled_mitmproxy_dump(sample_capture: Path):
    with (sample_capture / "flows.mitm").open("rb") as fo:
        flows = list(FlowReader(fo).stream())
    http_flows = [f for f in flows if isinstance(f, http.HTTPFlow)]
    assert len(http_flows) >= 15
    labels = [f.metadata["phonehome"] for f in flows]
    assert {label["mode"] for label in labels} == {"normal", "incognito", "incognito-optout"}
    assert {label["app"] for label in labels} == {"com.mi.globalbrowser.mini"}
    modes = [label["mode"] for label in labels]
    order = ["normal", "incognito", "incognito-optout"]
    assert modes == sorted(modes, key=order.index), "normal first, then incognito, then incognito-optout"
    session = json.loads((sample_capture / "session.json").read_text())
    assert session["schema"] == 1 and session["synthetic"] is True
    assert [p["mode"] for p in session["phases"]] == order
    profile = json.loads((sample_capture / "profile.json").read_text())
    assert profile["android_id"] and profile["urls"] and profile["search_terms"]


def test_sample_hides_data_under_several_layers(sample_capture: Path):
    with (sample_capture / "flows.mitm").open("rb") as fo:
        flows = [f for f in FlowReader(fo).stream() if isinstance(f, http.HTTPFlow)]
    batches = [f for f in flows if f.request.pretty_host == "sa.api.intl.miui.com"]
    assert batches and all(b"data_list=H4sI" in f.request.raw_content for f in batches), "base64 of gzip"
    profile = json.loads((sample_capture / "profile.json").read_text())
    for f in batches:  # nothing readable in the clear
        assert profile["android_id"].encode() not in f.request.raw_content
        assert b"example" not in f.request.raw_content


def test_regenerating_gives_the_same_flows(tmp_path: Path, sample_capture: Path):
    out = tmp_path / "regen"
    subprocess.run(
        [sys.executable, str(REPO / "captures" / "make_sample.py"), str(out)], check=True, timeout=60
    )
    regenerated, shipped = _comparable(out), _comparable(sample_capture)
    assert len(shipped) == 24
    assert regenerated == shipped
    assert (out / "profile.json").read_text() == (sample_capture / "profile.json").read_text()


def test_optout_phase_adds_the_collection_off_mode(tmp_path: Path):
    """`make_sample.py --optout` adds incognito with the vendor's switch off after the two modes."""
    out = tmp_path / "optout"
    subprocess.run(
        [sys.executable, str(REPO / "captures" / "make_sample.py"), "--optout", str(out)],
        check=True,
        timeout=60,
    )
    with (out / "flows.mitm").open("rb") as fo:
        modes = [f.metadata["phonehome"]["mode"] for f in FlowReader(fo).stream()]
    assert modes[-3:] == ["incognito-optout"] * 3 and modes[:-3] == [
        m for m in modes[:-3] if m != "incognito-optout"
    ]
    session = json.loads((out / "session.json").read_text())
    assert (
        session["modes"]
        == [p["mode"] for p in session["phases"]]
        == ["normal", "incognito", "incognito-optout"]
    )
    assert "second opinion oncology" in json.loads((out / "profile.json").read_text())["search_terms"]


def test_sample_records_negotiated_tls(sample_capture: Path):
    """The vendor's hosts spoke TLS 1.2, the others TLS 1.3 (the tls_min claim needs it)."""
    with (sample_capture / "flows.mitm").open("rb") as fo:
        flows = [f for f in FlowReader(fo).stream() if isinstance(f, http.HTTPFlow)]
    versions = {(f.request.pretty_host, f.server_conn.tls_version) for f in flows}
    assert {v for h, v in versions if h.endswith((".miui.com", ".xiaomi.com"))} == {"TLSv1.2"}
    assert {v for h, v in versions if not h.endswith((".miui.com", ".xiaomi.com"))} == {"TLSv1.3"}
    assert all(f.server_conn.cipher and f.client_conn.tls_version == "TLSv1.3" for f in flows)
    # both dump readers (the fast one reads the tnetstrings itself) record what mitmproxy reads
    expected = {f.id: (f.server_conn.tls_version, f.server_conn.cipher) for f in flows}
    records = read_source(sample_capture, Labels(), SourceReport(str(sample_capture)))
    assert {
        r.flow_id: (r.tls_version, r.tls_cipher) for r in records if hasattr(r, "tls_version")
    } == expected
    from phonehome.analysis.pipeline import analyze

    tables = analyze([sample_capture]).flows
    pairs = zip(tables["tls_version"], tables["tls_cipher"], strict=True)
    assert dict(zip(tables["flow_id"], pairs, strict=True)) == expected


def _comparable(path: Path) -> list[dict]:
    """Every record's fields except `source` (the file it was read from)."""
    records = read_source(path, Labels(), SourceReport(str(path)))
    return [{name: getattr(r, name) for name in r.__slots__ if name != "source"} for r in records]


def test_sample_sensors_batches_carry_the_sdks_crc(sample_capture: Path, sample_analysis):
    """`crc` is Java's String.hashCode of data_list, as the SDK sends it, so the schema's findings
    are high-confidence (a crc that fails verification makes them medium)."""
    from urllib.parse import parse_qsl

    from phonehome.analysis.classify.sensors import java_string_hash

    with (sample_capture / "flows.mitm").open("rb") as fo:
        flows = [f for f in FlowReader(fo).stream() if isinstance(f, http.HTTPFlow)]
    batches = [dict(parse_qsl(f.request.raw_content.decode())) for f in flows if "/sa?" in f.request.url]
    assert len(batches) == 6
    assert all(java_string_hash(b["data_list"]) == int(b["crc"]) for b in batches)
    f = sample_analysis.findings
    sensors = f[(f["host"] == "sa.api.intl.miui.com") & f["evidence"].str.contains("schema")]
    assert not sensors.empty and set(sensors["confidence"]) == {"high"}


def test_sample_pinned_host_reads_as_pinning_suspected(sample_capture: Path, sample_analysis):
    """The refused handshake comes after other hosts of the app were decrypted, as with a pinning app."""
    from phonehome.analysis.verdicts.coverage import coverage

    table = coverage(sample_analysis.flows, sample_analysis.contacts)
    refused = table[table["host"] == "api.sec.intl.miui.com"]
    assert refused["reason"].tolist() == ["pinning_suspected"]
    assert refused["mode"].tolist() == ["normal"]
