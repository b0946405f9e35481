"""HAR export: records + findings -> HAR 1.2 that our own (mitmproxy-based) reader reads back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support_sources import HAR, read_all

from analysis.cli import main
from analysis.export import records_to_har
from analysis.records import HttpRecord

SAMPLE = Path(__file__).resolve().parent.parent / "captures" / "sample-mint-browser"


def test_round_trip_keeps_requests(tmp_path: Path) -> None:
    records, _ = read_all(HAR / "tweasel" / "android_first-run.har")
    har = records_to_har(records)
    out = tmp_path / "out.har"
    out.write_text(json.dumps(har))
    again, report = read_all(out)
    assert report.warnings == []
    assert [(r.method, r.url, r.request_body) for r in again] == [
        (r.method, r.url, r.request_body) for r in records
    ]


@pytest.mark.skipif(not (SAMPLE / "flows.mitm").exists(), reason="sample capture not generated")
def test_cli_export_writes_findings_as_comments(tmp_path: Path) -> None:
    out = tmp_path / "sample.har"
    assert main(["export", str(SAMPLE), "--har", str(out), "-q"]) == 0
    har = json.loads(out.read_text())
    entries = har["log"]["entries"]
    assert har["log"]["version"] == "1.2" and entries
    commented = [e for e in entries if e["comment"]]
    assert any(
        "form>base64>gzip>json" in e["comment"] and "sa.api.intl.miui.com" in e["request"]["url"]
        for e in commented
    )
    again, _ = read_all(out)
    assert len([r for r in again if isinstance(r, HttpRecord)]) == len(entries)


def test_cli_export_bad_input_exit_2(tmp_path: Path, capsys) -> None:
    assert main(["export", str(tmp_path / "missing.har"), "--har", str(tmp_path / "o.har"), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert "missing.har" in err and "\n" not in err
