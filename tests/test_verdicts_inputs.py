"""Inputs checked before they can mislead: --fail-on words, report suffixes, inputs with nothing in them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from phonehome.analysis.cli.main import main
from phonehome.analysis.findings import DATA_TYPES
from phonehome.analysis.verdicts.fail_on import FailOnError, parse_fail_on
from tests.support_report import PROFILE, browsing_flows, write_capture

T0 = 1_700_000_000.0


@pytest.fixture(scope="module")
def capture(tmp_path_factory) -> Path:
    """Browsing data and an Android ID sent to a tracker (known values from the profile)."""
    return write_capture(
        tmp_path_factory.mktemp("cap") / "c", browsing_flows("com.a", "normal", T0), profile=PROFILE
    )


def analyze_cli(tmp_path: Path, *args: str) -> int:
    return main(["analyze", *args, "-q", "-o", str(tmp_path / "out")])


@pytest.mark.parametrize(
    ("words", "code"),
    [
        ("url", 1),
        ("device_id", 1),  # the family: device_id.android_id is among the findings
        ("device_id.android_id", 1),
        ("search_query,token", 1),
        ("any", 1),
        ("token", 0),  # a valid type with no finding
        ("location,contact", 0),
    ],
)
def test_fail_on_types_and_families(tmp_path, capture, capsys, words, code):
    assert analyze_cli(tmp_path, str(capture), "--fail-on", words) == code
    if code == 1:
        assert "finding(s) of type" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("words", "hint"),
    [
        ("urls", "(did you mean 'url'?)"),
        ("device_ids", "(did you mean 'device_id'?)"),
        ("URL", "(did you mean 'url'?)"),
        ("url,imei", "(did you mean 'device_id.imei'?)"),
        ("everything", ""),
        (",", "no data type given"),
    ],
)
def test_fail_on_unknown_word_is_refused_before_reading(tmp_path, capture, capsys, words, hint):
    assert analyze_cli(tmp_path, str(capture), "--fail-on", words) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("phonehome: error: --fail-on: ")
    assert hint in err[0] and "device_id.android_id" in err[0] and "any" in err[0]
    assert not (tmp_path / "out").exists(), "refused before any reading or writing"


def test_fail_on_families_cover_every_dotted_type():
    for family in {t.split(".")[0] for t in DATA_TYPES if "." in t}:
        assert parse_fail_on(family) == {t for t in DATA_TYPES if t.startswith(family + ".")}
    assert parse_fail_on("any") == set(DATA_TYPES)
    with pytest.raises(FailOnError):
        parse_fail_on("device_id.")


@pytest.mark.parametrize("name", ["report.txt", "report.pdf", "report", "report.html.bak"])
def test_unknown_report_suffix_is_refused(tmp_path, capture, capsys, name):
    out = tmp_path / name
    assert main(["report", str(capture), "-q", "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(out) in err[0] and "unknown report format" in err[0] and ".md" in err[0]
    assert not out.exists() and not list(tmp_path.glob("*_tables"))


@pytest.mark.parametrize("name", ["r.HTML", "r.htm", "r.markdown"])
def test_known_report_suffixes_in_any_case(tmp_path, capture, name):
    assert main(["report", str(capture), "-q", "-o", str(tmp_path / name)]) == 0
    assert (tmp_path / name).stat().st_size > 0


def test_empty_har_is_warned_about(tmp_path, capsys):
    har = tmp_path / "empty.har"
    har.write_text(
        json.dumps({"log": {"version": "1.2", "creator": {"name": "x", "version": "1"}, "entries": []}})
    )
    assert analyze_cli(tmp_path, str(har)) == 0
    err = capsys.readouterr().err
    assert f"phonehome: warning: {har}: no HTTP request was read, nothing: the HAR file has no entries" in err


def test_pcap_without_http_is_warned_about(tmp_path, capsys):
    from scapy.layers.dns import DNS, DNSQR
    from scapy.layers.inet import IP, UDP
    from scapy.utils import wrpcap

    pcap = tmp_path / "dns-only.pcap"
    query = (
        IP(src="10.0.0.2", dst="10.0.0.1")
        / UDP(sport=5353, dport=53)
        / DNS(rd=1, qd=DNSQR(qname="a.example"))
    )
    query.time = T0
    wrpcap(str(pcap), [query])
    assert analyze_cli(tmp_path, str(pcap)) == 0
    err = capsys.readouterr().err
    assert f"{pcap}: no HTTP request was read, only other contacts (1 dns)" in err
    assert "--keylog" in err


def test_capture_with_requests_gets_no_empty_warning(tmp_path, capture, capsys):
    assert analyze_cli(tmp_path, str(capture)) == 0
    assert "no HTTP request was read" not in capsys.readouterr().err


def test_one_capture_mixing_apps_is_warned_about(tmp_path, capsys):
    flows = browsing_flows("com.a", "normal", T0) + browsing_flows("com.b", "normal", T0 + 100)
    mixed = write_capture(tmp_path / "mixed", flows, profile=PROFILE)
    assert analyze_cli(tmp_path, str(mixed)) == 0
    err = capsys.readouterr().err
    assert "phonehome: warning: session run: one capture holds traffic of 2 apps (com.a, com.b)" in err
    apart = [write_capture(tmp_path / a, browsing_flows(a, "normal", T0)) for a in ("com.a", "com.b")]
    # one app per capture, the two analysed together (same session name): nothing to warn about
    assert main(["analyze", *map(str, apart), "-q", "-o", str(tmp_path / "apart")]) == 0
    assert "holds traffic of" not in capsys.readouterr().err
