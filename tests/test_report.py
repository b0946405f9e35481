"""Report tables, renderers, redaction and CLI, on hand-built data and on the bundled sample capture."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from phonehome.analysis.cli.main import main
from phonehome.analysis.redact import tag
from phonehome.analysis.report import build_report, render_html, render_markdown, write_report
from phonehome.analysis.report.markdown import md_text
from tests.support_report import XSS_PAYLOADS, analysis_of, finding

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "captures" / "sample-mint-browser"
CHROMIUM = "/usr/bin/chromium"
IMEI = "861234567890123"
TOKEN = "Bearer eyJhbGciOiJIUzI1NiJ9.e30.secretsig"


@pytest.fixture(scope="module")
def sample_analysis():
    from phonehome.analysis.pipeline import analyze

    return analyze([SAMPLE])


def small():
    return analysis_of(
        [
            finding("normal", "sa.api.intl.miui.com", "url", "https://news.example/a"),
            finding("incognito", "sa.api.intl.miui.com", "url", "https://bank.example/b"),
            finding("incognito", "sa.api.intl.miui.com", "search_query", "hiv test"),
            finding("normal", "sa.api.intl.miui.com", "device_id.imei", IMEI),
            finding("incognito", "sa.api.intl.miui.com", "device_id.imei", IMEI),
            finding("normal", "ads.example.com", "location.gps", "52.5,13.4", encodings=""),
            finding(
                "normal",
                "api.example.com",
                "token",
                TOKEN,
                location="header",
                field="header.Authorization",
                encodings="",
            ),
        ],
        contacts=[
            {
                "session": "s1",
                "app": "com.example.browser",
                "mode": "normal",
                "host": "pinned.example.com",
                "kind": "tls_failed",
                "detail": "bad cert",
                "timestamp": 1_700_000_100.0,
            },
            {"mode": "incognito", "host": "dnsonly.example.com", "kind": "dns"},
            {"mode": "normal", "host": "sa.api.intl.miui.com", "kind": "dns"},
        ],
    )


def test_comparison_sent_in_both_only_in_incognito_and_not_seen():
    cmp = build_report(small()).comparison.set_index(["host", "data_type"])
    assert set(cmp["app"]) == {"com.example.browser"}
    assert cmp.loc[("sa.api.intl.miui.com", "url"), "status"] == "sent in both (normal and incognito)"
    assert cmp.loc[("sa.api.intl.miui.com", "search_query"), "status"] == "only in incognito"
    # incognito was tested, but ads.example.com was not contacted in it: not seen, never "vanishes"
    row = cmp.loc[("ads.example.com", "location.gps")]
    assert row["status"] == "not seen in incognito" and "not contacted" in row["caveat"]
    imei = cmp.loc[("sa.api.intl.miui.com", "device_id.imei"), ["baseline_requests", "mode_requests"]]
    assert imei.tolist() == [1, 1]
    assert not cmp["status"].str.contains("vanish").any()


def test_linkable_is_the_value_seen_in_both_modes():
    linkable = build_report(small()).linkable
    assert linkable["value"].tolist() == [IMEI]
    assert linkable.iloc[0]["modes"] == "normal, incognito" and linkable.iloc[0]["links_modes"]


def test_constants_sent_in_both_modes_link_nothing(sample_analysis):
    report = build_report(sample_analysis)
    assert not report.linkable.empty
    assert not set(report.linkable["data_type"]) & {"device.model", "device.os_version", "app.id"}
    assert {"device_id.android_id", "device_id.other"} <= set(report.linkable["data_type"])


def test_headline_names_browsing_data_destination_and_encoding():
    lines = [str(h) for h in build_report(small()).headlines]
    assert lines[0].startswith("In incognito mode, visited URLs and search terms left the device")
    assert "sa.api.intl.miui.com (Xiaomi)" in lines[0]
    assert "base64" in lines[0] and "gzip" in lines[0]


def test_coverage_lists_pinned_and_dns_only_but_not_dns_of_decrypted_host():
    cov = build_report(small()).coverage
    assert set(zip(cov["host"], cov["kind"], cov["reason"], strict=True)) == {
        ("pinned.example.com", "tls_failed", "pinning_suspected"),  # other HTTPS hosts were decrypted before
        ("dnsonly.example.com", "dns", "dns_only"),
    }


def test_matrix_counts_per_mode():
    m = build_report(small()).matrix
    row = m[(m["mode"] == "incognito") & (m["data_type"] == "device_id.imei")]
    assert row["count"].tolist() == [1]
    assert m["count"].sum() == 7


def test_redaction_covers_every_format(tmp_path):
    report = build_report(small(), redact=True)
    written = write_report(report, tmp_path / "r.html")
    written += write_report(report, tmp_path / "r.md")
    assert tag(IMEI) in render_markdown(report)
    for path in written:
        if path.suffix == ".parquet":
            text = pd.read_parquet(path).to_csv()
        else:
            text = path.read_text(encoding="utf-8")
        assert IMEI not in text, path
        assert "secretsig" not in text, path
    # browsing data stays readable: the point of the report
    assert "hiv test" in (tmp_path / "r.md").read_text(encoding="utf-8")
    # the same value gets the same tag in both modes, so linkability still shows
    assert report.linkable["value"].tolist() == [tag(IMEI)]


def test_files_are_user_only(tmp_path):
    written = write_report(build_report(small()), tmp_path / "out" / "r.html")
    for path in written:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(written[1].parent.stat().st_mode) & 0o077 == 0
    names = {p.name for p in written}
    assert {"findings.csv", "findings.parquet", "comparison.csv", "coverage.parquet"} <= names


@pytest.mark.parametrize("payload", XSS_PAYLOADS)
def test_markdown_cell_is_one_inert_line(payload):
    cell = md_text(payload)
    assert "\n" not in cell
    assert "<" not in cell and ">" not in cell
    assert "|" not in cell.replace("\\|", "")
    assert "`" not in cell.replace("\\`", "")


def test_markdown_table_rows_keep_their_column_count():
    # issue 19: evidence rows are grouped (the full rows are in the CSV), so the payloads go where a
    # table has one row each: as destinations of the mode comparison
    report = build_report(
        analysis_of([finding("normal", p, "url", "https://a.example/") for p in XSS_PAYLOADS])
    )
    md = render_markdown(report)
    section = md.split("### Normal vs each other mode")[1].split("\n### ")[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    widths = {len(line.replace("\\|", "").split("|")) for line in rows}
    assert len(rows) == len(XSS_PAYLOADS) + 2 and len(widths) == 1


def test_html_escapes_payloads_and_has_no_script():
    html = render_html(
        build_report(analysis_of([finding("normal", "h.example.com", "url", p) for p in XSS_PAYLOADS]))
    )
    assert "<script" not in html.lower()
    assert "onerror=" not in html.replace("onerror=&quot;", "")
    assert "&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;" in html  # Jinja2's autoescape
    assert "Content-Security-Policy" in html and "default-src 'none'" in html


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian chromium: apt-get install -y chromium")
def test_chromium_renders_payloads_inert(tmp_path):
    report = build_report(analysis_of([finding("normal", "h.example.com", "url", p) for p in XSS_PAYLOADS]))
    page = tmp_path / "r.html"
    write_report(report, page)
    profile = tmp_path / "chrome"
    result = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=90,
    )
    dom = result.stdout
    assert "<h1>" in dom, result.stderr[-500:]
    assert "pwned" not in dom.split("</title>")[0]  # document.title unchanged
    assert 'id="injected"' not in dom and 'id="jslink"' not in dom and 'id="cssinj"' not in dom
    assert "<script" not in dom.lower()
    assert "&lt;script&gt;" in dom  # the payload is shown as text


def test_sample_report_tables_and_headline(sample_analysis):
    report = build_report(sample_analysis)
    assert any(
        line.text.startswith("In incognito mode")
        and "sa.api.intl.miui.com (Xiaomi)" in line.text
        and "visited URLs" in line.text
        and "search terms" in line.text
        and line.app == "com.mi.globalbrowser.mini"
        and line.evidence_id
        for line in report.headlines
    )
    cmp = report.comparison
    sa = cmp[
        (cmp["host"] == "sa.api.intl.miui.com")
        & cmp["data_type"].isin(["url", "search_query"])
        & (cmp["mode"] == "incognito")
    ]
    assert set(sa["data_type"]) == {"url", "search_query"} and (sa["mode_requests"] > 0).all()
    assert (report.linkable["modes"] == "normal, incognito").any()
    assert set(report.coverage["kind"]) <= {"tls_failed", "sni_only", "dns", "tcp"}
    assert "tls_failed" in set(report.coverage["kind"])
    assert list(report.evidence.columns[:5]) == ["app", "mode", "timestamp", "method", "url"]
    # every evidence id a headline or comparison row names is a group of the evidence table
    groups = set(report.evidence["evidence_id"])
    linked = {i for h in report.headlines for i in h.evidence_ids if i.startswith("ev-")}
    linked |= {i for cell in report.comparison["evidence_id"] for i in cell.split()}
    assert linked and linked <= groups
    assert len(report.evidence) == len(sample_analysis.findings)


def test_report_cli_writes_html_md_and_tables(tmp_path, capsys):
    assert main(["report", str(SAMPLE), "-q", "-o", str(tmp_path / "r.md")]) == 0
    md = (tmp_path / "r.md").read_text(encoding="utf-8")
    assert md.startswith("# phonehome report") and "sa.api.intl.miui.com" in md
    assert (tmp_path / "r_tables" / "matrix.parquet").exists()
    assert main(["report", str(SAMPLE), "-q", "--redact", "-o", str(tmp_path / "r.html")]) == 0
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and "data:image/png;base64," in html
    assert "redacted-" in html


def test_report_cli_bad_input_is_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.mitm"
    bad.write_bytes(b"not a dump at all")
    assert main(["report", str(bad), "-q", "-o", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.mitm" in err[0]


def test_demo_says_where_the_report_is(tmp_path, capsys):
    assert main(["demo", "-q", "-o", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    assert str((tmp_path / "demo" / "report.html").resolve()) in out
    assert (tmp_path / "demo" / "report.md").exists()


def test_console_script_demo(tmp_path):
    exe = shutil.which("phonehome") or str(Path(os.sys.executable).parent / "phonehome")
    if not os.path.exists(exe):
        pytest.skip("console script not installed")
    result = subprocess.run(
        [exe, "demo", "-q", "-o", "d"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "d" / "report.html").exists()
