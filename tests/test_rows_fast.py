"""rows.add_finding_rows makes exactly the rows the straightforward per-cell code made.

Issue 20, round four: the request's own columns (session ... url) are made safe and shared once
per run of equal heads, and the ASCII test of the other seven cells is one test of their
concatenation. The reference below is the code it replaced (every cell through _safe_row, app
None as "", every shared column through the share function), run on the findings of real
captures and on hand-made findings with non-ASCII text, lone surrogates, changing heads and a
cell that is not a string.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest

from phonehome.analysis import rows as R
from phonehome.analysis.classify import classify_request
from phonehome.analysis.decode import decode_request
from phonehome.analysis.findings import Finding
from phonehome.analysis.records import HttpRecord, Labels, SourceReport
from phonehome.analysis.sources import read_source

ROOT = Path(__file__).resolve().parent.parent
CAPTURES = [
    ROOT / "captures" / "sample-mint-browser",
    *sorted((ROOT / "tests" / "data" / "real").glob("*.mitm")),
    *sorted((ROOT / "tests" / "data" / "real").glob("*.har")),
]


def reference_rows(findings: list[Finding], strings: dict) -> list[tuple]:
    """The loop add_http ran before (ff9fe04)."""
    share = strings.setdefault
    out = []
    for finding in findings:
        row = list(R._safe_row(R._finding_row(finding)))
        if row[R._APP] is None:
            row[R._APP] = ""
        for i in R._FINDING_SHARED:
            row[i] = share(row[i], row[i])
        out.append(tuple(row))
    return out


def _both(findings: list[Finding]) -> tuple[list[tuple], list[tuple], dict, dict]:
    expected_strings: dict = {}
    strings: dict = {}
    expected = reference_rows(findings, expected_strings)
    got: list[tuple] = []
    R.add_finding_rows(findings, strings.setdefault, got)
    return expected, got, expected_strings, strings


def _same(expected: list[tuple], got: list[tuple]) -> None:
    assert len(got) == len(expected)
    for e, g in zip(expected, got, strict=True):
        assert g == e
        assert [type(c) for c in g] == [type(c) for c in e]


@pytest.mark.parametrize("capture", CAPTURES, ids=lambda p: p.name)
def test_real_captures_findings_give_the_reference_rows(capture):
    collector = R.RowCollector()
    records = [
        r
        for r in read_source(capture, Labels(None, None, "normal", None), SourceReport(str(capture)))
        if isinstance(r, HttpRecord)
    ]
    assert records
    total = 0
    for record in records:
        endpoint = collector.endpoint(record.host, record.labels.app)
        findings = classify_request(record, decode_request(record), endpoint)
        expected, got, expected_strings, strings = _both(findings)
        _same(expected, got)
        assert strings.keys() == expected_strings.keys()
        total += len(got)
    assert total or capture.suffix == ".har", "the sample and the dumps have findings"


BASE = Finding(
    session="s",
    app="app",
    mode="normal",
    flow_id="f1",
    timestamp=1.5,
    method="POST",
    host="h.example",
    site="example",
    owner="Owner",
    category="analytics",
    party="third",
    url="https://h.example/p",
    location="body",
    field="body.id",
    encodings="json",
    data_type="device.android_id",
    value="abc",
    confidence="high",
    evidence="known-value",
)


def test_hand_made_findings_give_the_reference_rows():
    v = dataclasses.replace
    findings = [
        BASE,
        v(BASE, value="caf\u00e9", field="body.caf\u00e9"),  # non-ASCII, valid UTF-8: kept as is
        v(BASE, value="bad\udcff byte", field="body.x\ud800"),  # lone surrogates: escaped
        v(BASE, app=None),  # a new head: app None becomes ""
        v(BASE, host="h\udc80.example", flow_id="f2"),  # a head with a lone surrogate
        BASE,  # the first head again, after others
        v(BASE, evidence=None),  # a tail cell that is not a string
        v(BASE, timestamp=float("nan")),
        v(BASE, timestamp=float("nan")),  # a different NaN object: the head is rebuilt
        v(BASE, encodings="form>base64>gzip>json", value="x" * 300),
        v(BASE, session="s\u00e9", url="https://h.example/\u00e9", location="query"),
    ]
    expected, got, expected_strings, strings = _both(findings)
    assert got[2][R.FINDINGS_COLUMNS.index("value")] == "bad\\xff byte"
    assert got[3][R._APP] == ""
    ts = R.FINDINGS_COLUMNS.index("timestamp")
    for e, g in zip(expected, got, strict=True):  # NaN != NaN: compare the rest, and NaN as NaN
        if isinstance(e[ts], float) and math.isnan(e[ts]):
            assert math.isnan(g[ts])
            e, g = e[:ts] + e[ts + 1 :], g[:ts] + g[ts + 1 :]
        assert g == e and [type(c) for c in g] == [type(c) for c in e]
    assert strings.keys() == expected_strings.keys()


def test_shared_columns_hold_the_shared_string_objects():
    """The memory point of sharing: equal strings of a shared column are one object."""
    first = dataclasses.replace(BASE, value="".join(["ab", "c"]), field="".join(["body.", "id"]))
    second = dataclasses.replace(BASE, value="".join(["a", "bc"]), field="".join(["bo", "dy.id"]))
    assert first.value is not second.value
    _expected, got, _es, _s = _both([first, second])
    for column in ("value", "field", "host", "session"):
        i = R.FINDINGS_COLUMNS.index(column)
        assert got[0][i] is got[1][i], column
