"""Verdicts through the command line: modes (spellings, not tested, declared), apps apart, coverage.

Captures are built with mitmproxy's own flow objects and FlowWriter (tests/support_report.py), read
by the real pipeline, and judged by `phonehome report`; the assertions read the tables it wrote.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from phonehome.analysis.cli.main import main
from phonehome.analysis.pipeline import analyze
from phonehome.analysis.report import build_report
from tests.support_report import (
    PROFILE,
    browsing_flows,
    encrypted_batch,
    http_flow,
    tls_failure,
    write_capture,
)

T0 = 1_700_000_000.0


def report_tables(tmp_path: Path, *captures: Path, extra: tuple[str, ...] = ()) -> tuple[str, dict]:
    """Run `phonehome report` to Markdown; (report text, {table name: DataFrame from Parquet})."""
    out = tmp_path / f"report-{len(list(tmp_path.glob('report-*.md')))}.md"
    assert main(["report", *map(str, captures), "-q", "-o", str(out), *extra]) == 0
    tables = {p.stem: pd.read_parquet(p) for p in (out.parent / f"{out.stem}_tables").glob("*.parquet")}
    return out.read_text(encoding="utf-8"), tables


@pytest.mark.parametrize(
    "spelling", ["Incognito", "INCOGNITO", "incognito%20tab", "private", " Private Tab "]
)
def test_incognito_spellings_compare_as_incognito(tmp_path: Path, spelling: str):
    # flows labelled as a phone keyboard or a tester would have typed the mode
    flows = browsing_flows("com.a", "normal", T0) + browsing_flows("com.a", spelling, T0 + 100)
    capture = write_capture(tmp_path / "cap", flows, profile=PROFILE)
    text, tables = report_tables(tmp_path, capture)
    cmp = tables["comparison"]
    assert set(cmp["mode"]) == {"incognito"}
    tracker = cmp[cmp["host"] == "sa.tracker.example"].set_index("data_type")
    assert tracker.loc["url", "status"] == "sent in both (normal and incognito)"
    assert tracker.loc["url", ["baseline_requests", "mode_requests"]].tolist() == [2, 2]
    assert not cmp["status"].str.contains("vanish|not tested").any()
    assert "In incognito mode, visited URLs and search terms left the device to sa.tracker.example" in text
    assert spelling.strip() not in set(tables["findings"]["mode"]) - {"incognito"}


def test_mode_option_spelling_labels_unlabelled_flows(tmp_path: Path):
    capture = write_capture(tmp_path / "cap", browsing_flows(None, "", T0), profile=PROFILE)
    for flow_mode in ("--mode", "Private"), ("--mode", "Incognito"):
        _, tables = report_tables(tmp_path, capture, extra=flow_mode)
        assert set(tables["flows"]["mode"]) == {"incognito"}
        # only incognito traffic: the baseline is what was not tested, never "vanishes"
        assert set(tables["comparison"]["status"]) == {"only in incognito (normal not tested)"}


def test_normal_only_capture_says_incognito_not_tested(tmp_path: Path):
    capture = write_capture(tmp_path / "cap", browsing_flows("com.a", "normal", T0), profile=PROFILE)
    text, tables = report_tables(tmp_path, capture)
    cmp = tables["comparison"]
    assert len(cmp) and set(cmp["status"]) == {"incognito not tested"}
    assert (cmp["mode_requests"] == 0).all() and (cmp["baseline_requests"] > 0).all()
    assert "Incognito mode was not tested" in text
    assert "vanish" not in text.lower() and "not sent in incognito" not in text


def test_declared_mode_without_traffic_is_not_tested(tmp_path: Path):
    flows = browsing_flows("com.a", "normal", T0) + browsing_flows("com.a", "incognito", T0 + 100)
    capture = write_capture(tmp_path / "cap", flows, profile=PROFILE)
    report = build_report(analyze([capture]), modes=("Incognito OptOut",))
    assert report.pairs == [("normal", "incognito"), ("normal", "incognito-optout")]
    optout = report.comparison[report.comparison["mode"] == "incognito-optout"]
    assert len(optout) and set(optout["status"]) == {"incognito-optout not tested"}
    assert any(h.kind == "not_tested" and h.mode == "incognito-optout" for h in report.headlines)


def test_declared_mode_with_traffic_is_compared_to_normal(tmp_path: Path):
    flows = browsing_flows("com.a", "normal", T0) + browsing_flows("com.a", "incognito", T0 + 100)
    flows += [http_flow("https://clinic.example/optout", app="com.a", mode="incognito-optout", ts=T0 + 300)]
    capture = write_capture(tmp_path / "cap", flows, profile=PROFILE)
    _, tables = report_tables(tmp_path, capture)
    optout = tables["comparison"][tables["comparison"]["mode"] == "incognito-optout"]
    tracker = optout[optout["host"] == "sa.tracker.example"]
    # tested (it has traffic), the tracker never contacted in it: not seen, with the reason
    assert set(tracker["status"]) == {"not seen in incognito-optout"}
    assert tracker["caveat"].str.contains("not contacted").all()


def test_two_apps_in_one_run_equal_their_single_app_runs(tmp_path: Path):
    a = browsing_flows("com.a", "normal", T0) + browsing_flows("com.a", "incognito", T0 + 100)
    b = browsing_flows("com.b", "normal", T0 + 200, tracker="t.other.example")
    a_events = [
        tls_failure("pin.a.example", app="com.a", mode="incognito", ts=T0 + 150, error="bad certificate")
    ]
    only_a = write_capture(tmp_path / "a", a, a_events, PROFILE)
    only_b = write_capture(tmp_path / "b", b, profile=PROFILE)
    both = write_capture(tmp_path / "ab", a + b, a_events, PROFILE)
    _, ta = report_tables(tmp_path, only_a)
    _, tb = report_tables(tmp_path, only_b)
    text, tab = report_tables(tmp_path, both)
    for name in ("comparison", "linkable", "matrix", "coverage"):
        for app, single in (("com.a", ta), ("com.b", tb)):
            mine = tab[name][tab[name]["app"] == app].reset_index(drop=True)
            alone = single[name].reset_index(drop=True)
            if name == "linkable":
                # the Android ID is sent by both apps: it links them, a link no single-app run shows
                assert set(mine["other_apps"]) == {"com.b" if app == "com.a" else "com.a"}
                mine = (
                    mine.loc[mine["links_modes"].astype(bool)]
                    .drop(columns="other_apps")
                    .reset_index(drop=True)
                )
                alone = (
                    alone.loc[alone["links_modes"].astype(bool)]
                    .drop(columns="other_apps")
                    .reset_index(drop=True)
                )
            pd.testing.assert_frame_equal(mine, alone, check_dtype=False)
    overview = tab["overview"]
    assert set(overview["app"]) == {"com.a", "com.b"}
    assert set(overview.loc[overview["app"] == "com.b", "modes"]) == {"normal"}
    assert "one capture holds traffic of 2 apps (com.a, com.b)" in text
    report = build_report(analyze([both]))
    assert report.apps == ["com.a", "com.b"]
    alone_a = build_report(analyze([only_a]))
    assert [(h.mode, h.text) for h in report.headlines_for("com.a")] == [
        (h.mode, h.text) for h in alone_a.headlines
    ]
    assert any(h.kind == "not_tested" and h.mode == "incognito" for h in report.headlines_for("com.b"))


UNKNOWN_CA = (
    "The client does not trust the proxy's certificate for {host} "
    "(OpenSSL Error([('SSL routines', '', 'tlsv1 alert unknown ca')]))"
)
CLOSED = (
    "The client disconnected during the handshake. If this happens consistently for {host}, "
    "this may indicate that the client does not trust the proxy's certificate."
)


def test_ca_not_trusted_on_first_run_is_not_called_pinning(tmp_path: Path):
    # first run: the CA is not installed yet; every host fails, nothing is decrypted
    events = [
        tls_failure(h, app="com.a", mode=m, ts=T0 + i, error=UNKNOWN_CA.format(host=h))
        for i, (h, m) in enumerate(
            [("a.example", "normal"), ("b.example", "normal"), ("a.example", "incognito")]
        )
    ]
    events.append(
        tls_failure("c.example", app="com.a", mode="incognito", ts=T0 + 9, error=CLOSED.format(host="c"))
    )
    capture = write_capture(tmp_path / "cap", [], events)
    text, tables = report_tables(tmp_path, capture)
    cov = tables["coverage"]
    assert set(cov["reason"]) == {"ca_not_trusted"}
    assert "pinning suspected" not in text
    # and incognito is not "clean": it says what was not seen
    assert (
        "In incognito mode, no visited URLs or search terms were found in the 0 decrypted request(s), "
        "but not everything was seen: 2 host(s) not decrypted (CA not trusted" in text
    )


def test_pinning_suspected_when_other_hosts_were_decrypted(tmp_path: Path):
    flows = browsing_flows("com.a", "normal", T0) + browsing_flows("com.a", "incognito", T0 + 100)
    events = [
        tls_failure("pin.example", app="com.a", mode="incognito", ts=T0 + 150, error=CLOSED.format(host="p")),
        tls_failure(
            "pin.example", app="com.a", mode="incognito", ts=T0 + 160, error=UNKNOWN_CA.format(host="p")
        ),
        # decrypted too: refused once, not pinning
        tls_failure("clinic.example", app="com.a", mode="normal", ts=T0 + 20, error=CLOSED.format(host="c")),
        # before anything was decrypted: could be the CA being installed, or pinning
        tls_failure("early.example", app="com.a", mode="normal", ts=T0 - 50, error=CLOSED.format(host="e")),
    ]
    capture = write_capture(tmp_path / "cap", flows, events, PROFILE)
    _, tables = report_tables(tmp_path, capture)
    reasons = dict(zip(tables["coverage"]["host"], tables["coverage"]["reason"], strict=True))
    assert reasons == {
        "pin.example": "pinning_suspected",
        "clinic.example": "partly_decrypted",
        "early.example": "undetermined",
    }
    pin = tables["coverage"].set_index("host").loc["pin.example"]
    assert pin["count"] == 2 and pin["mode"] == "incognito" and "sa.tracker.example" in pin["detail"]


def test_incognito_with_holes_never_reads_as_nothing_sent(tmp_path: Path):
    # incognito: only a navigation decrypted, the tracker pinned: "not seen", with what was not seen
    flows = browsing_flows("com.a", "normal", T0)
    flows.append(http_flow("https://clinic.example/visit-1", app="com.a", mode="incognito", ts=T0 + 100))
    events = [tls_failure("sa.tracker.example", app="com.a", mode="incognito", ts=T0 + 101, error="bad cert")]
    capture = write_capture(tmp_path / "cap", flows, events, PROFILE)
    text, tables = report_tables(tmp_path, capture)
    tracker = tables["comparison"][tables["comparison"]["host"] == "sa.tracker.example"]
    assert set(tracker["status"]) == {"not seen in incognito"}
    # decrypted in normal mode, refused in incognito: not pinning, but unseen in incognito
    assert (
        tracker["caveat"]
        .str.contains("not decrypted (refused at times: sa.tracker.example)", regex=False)
        .all()
    )
    assert (
        "but not everything was seen: 1 host(s) not decrypted (refused at times: sa.tracker.example)" in text
    )
    # with every incognito host decrypted, the same absence may be stated
    clean = write_capture(tmp_path / "clean", flows, profile=PROFILE)
    text, tables = report_tables(tmp_path, clean)
    assert "every connection the proxy saw in incognito mode was decrypted" in text
    assert set(tables["comparison"]["status"]) >= {"not seen in incognito"}  # tracker not contacted


def test_every_headline_and_comparison_row_links_to_its_findings(tmp_path: Path):
    flows = browsing_flows("com.a", "normal", T0) + browsing_flows("com.a", "incognito", T0 + 100)
    capture = write_capture(tmp_path / "cap", flows, profile=PROFILE)
    report = build_report(analyze([capture]))
    evidence = report.evidence
    for headline in report.headlines:
        for key in headline.evidence_ids:
            rows = evidence[evidence["evidence_id"] == key]
            assert len(rows) and set(rows["app"]) == {headline.app} and set(rows["mode"]) == {headline.mode}
    for row in report.comparison.itertuples():
        keys = row.evidence_id.split()
        assert len(keys) == (row.baseline_requests > 0) + (row.mode_requests > 0)
        rows = evidence[evidence["evidence_id"].isin(keys)]
        assert set(rows["host"]) == {row.host} and set(rows["data_type"]) == {row.data_type}
        assert rows[rows["mode"] == row.mode]["url"].nunique() <= row.mode_requests or row.mode_requests == 0


def test_opaque_payloads_and_quic_are_counted_and_gate_the_headline(tmp_path: Path):
    from mitmproxy.test import tflow

    flows = browsing_flows("com.a", "normal", T0)
    flows.append(http_flow("https://clinic.example/visit-1", app="com.a", mode="incognito", ts=T0 + 100))
    for i in range(2):  # the tracker gets the incognito events, but encrypted
        flows.append(
            http_flow(
                "https://sa.tracker.example/log",
                app="com.a",
                mode="incognito",
                ts=T0 + 101 + i,
                body=encrypted_batch(600),
                content_type="application/octet-stream",
            )
        )
    quic = tflow.tudpflow()
    quic.server_conn.address = ("142.250.1.1", 443)
    quic.client_conn.sni = "quic.example"
    quic.metadata["phonehome"] = {"session": "run", "app": "com.a", "mode": "incognito", "phase": None}
    stun = tflow.tudpflow()
    stun.server_conn.address = ("198.51.100.7", 3478)
    stun.client_conn.sni = None
    stun.metadata["phonehome"] = quic.metadata["phonehome"]
    capture = write_capture(tmp_path / "cap", [*flows, quic, stun], profile=PROFILE)
    text, tables = report_tables(tmp_path, capture)
    cov = tables["coverage"].set_index("reason")
    assert cov.loc["opaque_payload", "host"] == "sa.tracker.example"
    assert cov.loc["opaque_payload", ["count", "bytes"]].tolist() == [2, 1200]
    assert cov.loc["opaque_payload", "mode"] == "incognito"
    assert cov.loc["quic", "host"] == "quic.example" and cov.loc["quic", "detail"] == "port 443"
    assert cov.loc["udp", "host"] == "198.51.100.7" and cov.loc["udp", "detail"] == "port 3478"
    tracker = tables["comparison"][tables["comparison"]["host"] == "sa.tracker.example"]
    assert set(tracker["status"]) == {"not seen in incognito"}  # never "not sent": it may be inside
    assert tracker["caveat"].str.contains("2 opaque payload(s), 1.2 kB", regex=False).all()
    assert (
        "In incognito mode, no visited URLs or search terms were found in the 3 decrypted request(s), "
        "but not everything was seen: 1 QUIC (UDP 443) connection(s) to quic.example; "
        "1 other UDP connection(s) to 198.51.100.7; "
        "2 opaque payload(s), 1.2 kB, to sa.tracker.example." in text
    )


def test_modes_declared_in_session_json_are_compared_even_without_traffic(tmp_path: Path):
    import json

    flows = browsing_flows("com.a", "normal", T0) + browsing_flows("com.a", "incognito", T0 + 100)
    capture = write_capture(tmp_path / "cap", flows, profile=PROFILE)
    session = {"schema": 1, "session": "run", "modes": ["normal", "incognito", "Incognito OptOut"]}
    (capture / "session.json").write_text(json.dumps(session))
    text, tables = report_tables(tmp_path, capture)
    optout = tables["comparison"][tables["comparison"]["mode"] == "incognito-optout"]
    assert len(optout) and set(optout["status"]) == {"incognito-optout not tested"}
    assert "Incognito-optout mode was not tested" in text


def test_referer_only_destinations_are_one_headline_not_one_each(tmp_path: Path):
    flows = browsing_flows("com.a", "incognito", T0)
    for i in range(12):  # the visited page loads its parts from 12 hosts, each told the page (Referer)
        part = http_flow(f"https://cdn{i}.example/app.js", app="com.a", mode="incognito", ts=T0 + 50 + i)
        part.request.headers["Referer"] = PROFILE["urls"][0]
        flows.append(part)
    capture = write_capture(tmp_path / "cap", flows, profile=PROFILE)
    report = build_report(analyze([capture]))
    browsing = [h for h in report.headlines if h.kind == "browsing" and h.mode == "incognito"]
    assert [h.text.split(" left the device to ")[-1] for h in browsing[:1]] == [
        "sa.tracker.example, json-encoded: 2 of 2 visited URLs and 1 of 1 search."
    ]
    assert len(browsing) == 2
    assert browsing[1].text.startswith(
        "In incognito mode, visited URLs were also sent in Referer headers to 12 host(s)"
    )
    assert "and 6 more" in browsing[1].text and len(browsing[1].evidence_ids) == 6
    assert set(
        report.evidence.loc[report.evidence["evidence_id"].isin(browsing[1].evidence_ids), "field"]
    ) == {"header.referer"}


def test_a_dns_lookup_without_decrypted_traffic_is_a_hole(tmp_path: Path):
    from mitmproxy.test import tflow

    flows = browsing_flows("com.a", "normal", T0)
    flows.append(http_flow("https://clinic.example/visit-1", app="com.a", mode="incognito", ts=T0 + 100))
    lookup = tflow.tdnsflow(resp=True)
    lookup.request.questions[0].name = "sa.tracker.example"
    lookup.metadata["phonehome"] = {"session": "run", "app": "com.a", "mode": "incognito", "phase": None}
    capture = write_capture(tmp_path / "cap", [*flows, lookup], profile=PROFILE)
    text, tables = report_tables(tmp_path, capture)
    assert tables["coverage"][["host", "mode", "reason"]].values.tolist() == [
        ["sa.tracker.example", "incognito", "dns_only"]
    ]
    tracker = tables["comparison"][tables["comparison"]["host"] == "sa.tracker.example"]
    assert set(tracker["status"]) == {"not seen in incognito"}
    assert "1 host(s) looked up but never seen in decrypted traffic (sa.tracker.example)" in text
    assert "every connection the proxy saw" not in text
