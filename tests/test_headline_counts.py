"""Browsing headlines with counts (issue 19): "k of n" of the known test inputs used in a mode, else
distinct values, and whether an identifier sent with them also appears in the baseline mode."""

from __future__ import annotations

import dataclasses

from phonehome.analysis.report.tables import build_report
from phonehome.analysis.verdicts import comparison, coverage
from phonehome.analysis.verdicts.frames import normalised
from phonehome.analysis.verdicts.headlines import headlines

SA = "sa.api.intl.miui.com"


def _browsing(report_headlines, mode: str) -> list[str]:
    return [h.text for h in report_headlines if h.kind == "browsing" and h.mode == mode and SA in h.text]


def test_sample_headlines_count_the_known_inputs_of_each_mode(sample_analysis):
    report = build_report(sample_analysis)
    assert _browsing(report.headlines, "incognito") == [
        "In incognito mode, visited URLs and search terms left the device to sa.api.intl.miui.com (Xiaomi), "
        "form+base64+gzip+json-encoded: 1 of 1 visited URL and 1 of 1 search, with an identifier that also "
        "appears in normal mode."
    ]
    # the baseline links to nothing: no identifier clause
    assert _browsing(report.headlines, "normal") == [
        "In normal mode, visited URLs and search terms left the device to sa.api.intl.miui.com (Xiaomi), "
        "form+base64+gzip+json-encoded: 2 of 2 visited URLs and 1 of 1 search."
    ]


def test_without_known_inputs_the_headline_counts_distinct_values(sample_analysis):
    report = build_report(dataclasses.replace(sample_analysis, profile=None))
    (incognito,) = _browsing(report.headlines, "incognito")
    assert incognito.endswith(
        ": 1 distinct visited URL and 1 distinct search, with an identifier that also appears in normal mode."
    )


def test_an_input_used_in_the_mode_but_not_sent_counts_in_the_denominator(sample_analysis):
    a = sample_analysis
    findings, flows, contacts = normalised(a.findings), normalised(a.flows), normalised(a.contacts)
    urls = list(a.profile.values["urls"])
    # a page script fetched in incognito (a request of the mode) that the SDK never reported
    known = {"urls": [*urls, "https://www.example.net/static/app.js"], "search_terms": []}
    pairs = comparison.study_pairs(findings, flows, contacts, ())
    lines = headlines(findings, flows, contacts, coverage.coverage(flows, contacts), pairs, known)
    (incognito,) = _browsing(lines, "incognito")
    assert ": 1 of 2 visited URLs and 1 distinct search, with an identifier" in incognito
