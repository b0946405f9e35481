"""The rendered report as a reader gets it: structure checked in headless Chromium's DOM, and Markdown.

Issue 19: story first per app, a table of contents, every headline and comparison row linking to an
anchor that exists, readable local times, plain-language names with the codes kept, captured text
isolated (bidi) and inert, evidence grouped instead of one row per finding.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from phonehome.analysis.report import build_report, render_html, render_markdown, write_report
from tests.support_report import XSS_PAYLOADS, analysis_of, finding

CHROMIUM = "/usr/bin/chromium"
needs_chromium = pytest.mark.skipif(
    not os.path.exists(CHROMIUM), reason="needs Debian chromium: apt-get install -y chromium"
)
RLO = "\u202e"


@pytest.fixture(autouse=True)
def utc(monkeypatch):
    """Times are rendered in the local zone of the machine: pin it for the assertions."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def chromium_dom(page: Path, tmp_path: Path) -> str:
    """The DOM after Chromium loaded the page (scripts would have run by then; none may exist)."""
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
            f"--user-data-dir={tmp_path / 'chrome'}",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "<h1>" in result.stdout, result.stderr[-500:]
    return result.stdout


class Dom(HTMLParser):
    """Ids, links, and the text of elements by tag, from a DOM dump."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.ids: list[str] = []
        self.links: list[tuple[str, str]] = []  # (href, class)
        self.text: list[str] = []
        self.tags: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if attrs.get("id"):
            self.ids.append(attrs["id"])
        if tag == "a":
            self.links.append((attrs.get("href", ""), attrs.get("class", "")))

    def handle_data(self, data):
        self.text.append(data)


def two_modes():
    return analysis_of(
        [
            finding("normal", "sa.api.intl.miui.com", "url", "https://news.example/a"),
            finding("incognito", "sa.api.intl.miui.com", "url", "https://bank.example/b"),
            finding("incognito", "sa.api.intl.miui.com", "search_query", "hiv test"),
            finding("normal", "sa.api.intl.miui.com", "device_id.imei", "861234567890123"),
            finding("incognito", "sa.api.intl.miui.com", "device_id.imei", "861234567890123"),
            finding(
                "normal", "tracking-host-with-hyphens.example.com", "device_id.android_id", "3f9a2c41b7d05e18"
            ),
        ],
        contacts=[
            {"mode": "normal", "host": "pinned.example.com", "kind": "tls_failed", "detail": "bad cert"}
        ],
    )


@needs_chromium
def test_every_link_resolves_and_headlines_link_to_their_evidence(tmp_path):
    page = tmp_path / "r.html"
    write_report(build_report(two_modes()), page)
    dom = Dom(chromium_dom(page, tmp_path))
    assert "script" not in dom.tags
    internal = [href for href, _ in dom.links if href.startswith("#")]
    assert internal, "the page links within itself"
    assert not [h for h in internal if h[1:] not in dom.ids], "every #link has its anchor"
    assert len(dom.ids) == len(set(dom.ids)), "anchors are unique"
    evidence_links = [href for href, cls in dom.links if cls == "evidence-link"]
    # a headline with evidence ids links to each group; one without (e.g. "not tested") to the app's evidence
    assert evidence_links and all(
        re.fullmatch(r"#(ev|cv)-[0-9a-f]{12}|#app-.*-evidence", h) for h in evidence_links
    )
    assert sum(h.startswith("#ev-") for h in evidence_links) >= 4
    assert "contents" in dom.ids  # the table of contents
    # the incognito headline (first, the story) links to the incognito url group of that host
    html = page.read_text(encoding="utf-8")
    first = html.split('class="headline"')[1].split("</p>")[0]
    assert "In incognito mode" in first and 'href="#ev-' in first


@needs_chromium
def test_comparison_rows_link_to_each_modes_group(tmp_path):
    page = tmp_path / "r.html"
    write_report(build_report(two_modes()), page)
    html = chromium_dom(page, tmp_path)
    comparison = re.split(r'<h3 id="[^"]*-comparison">', html)[1].split("</table>")[0]
    rows = [r for r in comparison.split("<tr")[2:]]  # skip the header row
    assert rows and all('href="#ev-' in r for r in rows), "every comparison row links to evidence"
    imei = next(r for r in rows if "device_id.imei" in r)
    assert re.search(r'href="#ev-[0-9a-f]{12}">normal<', imei) and re.search(r'">incognito<', imei)


@needs_chromium
def test_times_are_readable_with_zone_and_no_epoch_seconds(tmp_path):
    page = tmp_path / "r.html"
    write_report(build_report(two_modes()), page)
    text = " ".join(Dom(chromium_dom(page, tmp_path)).text)
    assert re.search(r"\b2023-11-14 22:13:\d\d UTC\b", text)
    assert not re.search(r"\b1700000\d{3}(\.\d+)?\b", text), "no raw Unix timestamps"


def test_plain_language_names_keep_the_codes():
    html = render_html(build_report(two_modes()), plots=False)
    assert "IMEI (the phone&#39;s hardware number)" in html and "device_id.imei" in html
    assert "search terms" in html and "search_query" in html
    assert "matches a value of the test phone (profile)" in html  # evidence words for known-value


def test_evidence_is_grouped_not_one_row_per_finding():
    findings = [
        finding("normal", "sa.api.intl.miui.com", "url", f"https://e.example/{i}", flow_id=f"f{i}")
        for i in range(50)
    ]
    report = build_report(analysis_of(findings))
    html = render_html(report, plots=False)
    assert html.count('<article class="group"') == 1
    assert "50 findings in 50 requests, 50 distinct values." in html
    assert "https://e.example/49" not in html  # the rows are in the CSV, not in the page


def test_host_and_number_cells_do_not_break_inside_words():
    html = render_html(build_report(two_modes()), plots=False)
    assert '<td class="keep">tracking-host-with-hyphens.example.com</td>' in html
    assert re.search(r'<td class="num">\d+</td>', html)
    css = (Path(__file__).resolve().parent.parent / "analysis/report/templates/report.css").read_text()
    assert "td.keep,th.keep,td.num,th.num{white-space:nowrap}" in css
    assert "word-break:normal" in css and "overflow-wrap:normal" in css


@needs_chromium
def test_rtl_override_in_app_label_cannot_reverse_the_title(tmp_path):
    app = f"com.evil{RLO}moc.elgoog"
    report = build_report(
        analysis_of([finding("normal", "h.example.com", "url", "https://a.example/", app=app)])
    )
    page = tmp_path / "r.html"
    write_report(report, page)
    dom = chromium_dom(page, tmp_path)
    title = dom.split("<title>")[1].split("</title>")[0]
    assert RLO not in title and "&lt;U+202E&gt;" in title  # shown, not obeyed (analysis.sharing's marker)
    h1 = dom.split("<h1>")[1].split("</h1>")[0]
    assert h1.startswith("<bdi>") and h1.endswith("</bdi>")
    css = dom.split("<style>")[1].split("</style>")[0]
    assert "unicode-bidi:isolate" in css


def test_markdown_shows_captured_text_as_inline_code():
    report = build_report(
        analysis_of([finding("normal", p, "url", "https://a.example/") for p in XSS_PAYLOADS])
    )
    md = render_markdown(report)
    for line in md.splitlines():
        # outside code spans, no link syntax, no raw HTML and no bare URL can survive
        outside = re.sub(r"(`+)(?:(?!\1).)*?\1", "", line)
        assert not re.search(r"(?<!\\)\]\(", outside) and "<" not in outside, line
        assert not re.search(r"(?<!\\)https?://", outside), line
    assert "| ``\\| pipe \\| `tick` newline ** bold ** [link](http://evil)`` |" in md  # a whole cell


def test_markdown_has_the_html_sections():
    md = render_markdown(build_report(two_modes()))
    order = [
        "### What left the device",
        "### Normal vs each other mode",
        "### Evidence",
        "## How this report was made",
    ]
    positions = [md.index(h) for h in order]
    assert positions == sorted(positions)
    assert re.search(r"#### `ev-[0-9a-f]{12}`: incognito mode, `sa\.api\.intl\.miui\.com \(Xiaomi\)`", md)


@needs_chromium
def test_redacted_report_says_so_at_the_top_and_in_the_footer(tmp_path):
    page = tmp_path / "r.html"
    write_report(build_report(two_modes(), redact=True), page)
    dom = chromium_dom(page, tmp_path)
    assert 'id="redaction-notice"' in dom
    top = dom.split('id="redaction-notice"')[1].split("</p>")[0]
    assert "Redacted report." in top
    assert dom.split('<footer id="provenance">')[1].count("Redacted report.") == 1
    assert "861234567890123" not in dom
    plain = tmp_path / "plain.html"
    write_report(build_report(two_modes()), plain)
    assert "redaction-notice" not in plain.read_text(encoding="utf-8")


def test_claims_render_as_cards_with_evidence_links_and_bounded_cells():
    # a Section the renderer knows nothing special about: rows of sentences become cards
    report = build_report(two_modes())
    ev = report.evidence
    incognito_url = ev[(ev["mode"] == "incognito") & (ev["data_type"] == "url")]["evidence_id"].iloc[0]
    report.claims = pd.DataFrame(
        [
            {
                "app": "com.example.browser",
                "claim": "incognito-no-upload",
                "paraphrase": "Browsing in incognito mode is not collected: nothing visited is uploaded.",
                "source": "A vendor spokesperson, statement to a newspaper, 2020-04-30 <https://news.example/x>",
                "verdict": "contradicted",
                "finding_ids": "; ".join(f"flow-{i}#body.data_list[{i}].properties.$url" for i in range(40)),
                "evidence_ids": incognito_url,
            }
        ]
    )
    html = render_html(report, plots=False)
    section = html.split("Claims vs observations</h3>")[1].split("<h3")[0]
    assert '<div class="card">' in section and "<table" not in section
    assert f'href="#{incognito_url}"' in section and f'id="{incognito_url}"' in html
    assert "characters in all; the table&#39;s CSV has them" in section
    assert "flow-39#" not in section  # cut: the CSV holds the whole cell
