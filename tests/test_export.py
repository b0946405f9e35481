"""HAR export: records + findings -> HAR 1.2 that our own (mitmproxy-based) reader reads back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from phonehome.analysis.cli.main import main
from phonehome.analysis.export import records_to_har
from phonehome.analysis.records import HttpRecord
from tests.support_sources import HAR, read_all

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


@pytest.mark.skipif(not (SAMPLE / "flows.mitm").exists(), reason="sample capture not generated")
def test_cli_export_redact_leaves_no_identifier_or_credential(tmp_path: Path) -> None:
    import base64

    from phonehome.analysis.export import WITHHELD_BODY

    plain, redacted = tmp_path / "plain.har", tmp_path / "redacted.har"
    assert main(["export", str(SAMPLE), "--har", str(plain), "-q"]) == 0
    assert main(["export", str(SAMPLE), "--har", str(redacted), "-q", "--redact"]) == 0
    assert redacted.stat().st_mode & 0o077 == 0, "a HAR holds the tester's identifiers: user-only"
    profile = json.loads((SAMPLE / "profile.json").read_text())
    secrets = [profile["android_id"], profile["imei"][0], profile["advertising_id"], profile["email"]]
    plain_text, text = plain.read_text(), redacted.read_text()
    assert any(s in plain_text for s in secrets), "the unredacted export does carry them"
    for secret in secrets:
        assert secret not in text, secret
        assert base64.b64encode(secret.encode()).decode() not in text
    entries = json.loads(text)["log"]["entries"]
    headers = [(h["name"].lower(), h["value"]) for e in entries for h in e["request"]["headers"]]
    credentials = [v for name, v in headers if name in ("cookie", "authorization")]
    assert credentials and all(v.startswith("redacted-") for v in credentials)
    sensors = [e for e in entries if e["request"]["url"].startswith("https://sa.api.intl.miui.com/")]
    assert sensors and all(WITHHELD_BODY.decode() in e["request"]["postData"]["text"] for e in sensors), (
        "encoded identifiers cannot be scrubbed in place, so the body is withheld"
    )
    assert len(entries) == len(json.loads(plain_text)["log"]["entries"])


@pytest.mark.skipif(not (SAMPLE / "flows.mitm").exists(), reason="sample capture not generated")
def test_cli_export_of_overlapping_captures_has_each_request_once(tmp_path: Path) -> None:
    first, merged = tmp_path / "first.har", tmp_path / "merged.har"
    assert main(["export", str(SAMPLE), "--har", str(first), "-q"]) == 0
    assert main(["export", str(SAMPLE), str(first), "--har", str(merged), "-q"]) == 0
    entries = json.loads(merged.read_text())["log"]["entries"]
    assert len(entries) == len(json.loads(first.read_text())["log"]["entries"]) == 22
    assert sum(1 for e in entries if e["comment"]) >= 10, "findings still attached to the kept copies"
