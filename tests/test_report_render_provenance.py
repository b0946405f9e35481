"""The provenance footer (issue 19): versions, date, every input with its SHA-256 and size, the options,
and a visible redaction notice — checked in the DOM Chromium builds from `phonehome report`'s output."""

from __future__ import annotations

import hashlib
import re
import shutil
from importlib import metadata
from pathlib import Path

from mitmproxy.version import VERSION as MITMPROXY_VERSION

from phonehome.analysis.cli.main import main
from tests.test_report_render import Dom, chromium_dom, needs_chromium

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "captures" / "sample-mint-browser"


def footer_inputs(dom: str) -> dict[str, tuple[str, int, str]]:
    """path -> (role, size, sha256) from the footer's input table."""
    footer = dom.split('<footer id="provenance">')[1]
    table = footer.split('<table class="inputs">')[1].split("</table>")[0]
    rows = {}
    for row in table.split("<tr>")[2:]:
        cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        path, role, size, digest = cells
        rows[path] = (role, int(size.replace(",", "")), digest)
    return rows


@needs_chromium
def test_footer_hashes_and_sizes_match_the_inputs(tmp_path):
    capture = tmp_path / "cap"
    shutil.copytree(SAMPLE, capture)
    page = tmp_path / "r.html"
    assert main(["report", str(capture), "-q", "-o", str(page)]) == 0
    dom = chromium_dom(page, tmp_path)
    rows = footer_inputs(dom)
    files = sorted(p for p in capture.iterdir() if p.is_file())
    assert {Path(p).name for p in rows} == {p.name for p in files}
    for path, (_role, size, digest) in rows.items():
        data = Path(path).read_bytes()
        assert size == len(data), path
        assert digest == hashlib.sha256(data).hexdigest(), path
    assert rows[str(capture / "flows.mitm")][0] == "capture"
    assert rows[str(capture / "profile.json")][0] == "profile"
    footer = " ".join(Dom(dom.split('<footer id="provenance">')[1]).text)
    assert metadata.version("phonehome") in footer and MITMPROXY_VERSION in footer
    assert re.search(r"Built\s*\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S+", footer)
    assert re.search(r"Option --redact\s*no", footer)


@needs_chromium
def test_redacted_report_shows_the_notice_and_short_paths(tmp_path):
    page = tmp_path / "r.html"
    assert main(["report", str(SAMPLE), "-q", "--redact", "-o", str(page)]) == 0
    dom = chromium_dom(page, tmp_path)
    assert 'id="redaction-notice"' in dom and "Redacted report." in dom.split("<main>")[0]
    assert re.search(r"Option --redact\s*</dt><dd>yes", dom)
    rows = footer_inputs(dom)
    assert "sample-mint-browser/flows.mitm" in rows  # the folder and the file, not the home path
    assert not [p for p in rows if p.startswith("/")]


def test_markdown_footer_lists_inputs_with_hashes(tmp_path):
    out = tmp_path / "r.md"
    assert main(["report", str(SAMPLE), "-q", "-o", str(out)]) == 0
    md = out.read_text(encoding="utf-8")
    footer = md.split("## How this report was made")[1]
    digest = hashlib.sha256((SAMPLE / "flows.mitm").read_bytes()).hexdigest()
    assert f"`{digest}`" in footer
    assert f"`{MITMPROXY_VERSION}`" in footer
