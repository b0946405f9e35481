"""Payloads sent but not read weaken "consistent" (DESIGN.md "Claims": inconclusive with the reason,
e.g. opaque payloads): a body no decoder opened, or a request whose decoding stopped early (a bound,
or a decoder error). Real captures through the real pipeline; the decoder error is injected."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from phonehome.analysis.claims import parse_claims
from phonehome.analysis.cli.main import main
from phonehome.analysis.decode import request as decode_request_module
from phonehome.analysis.pipeline import analyze
from phonehome.analysis.verdicts.claims import CONSISTENT, CONTRADICTED, INCONCLUSIVE, judge_claims
from phonehome.analysis.verdicts.coverage import coverage
from tests.support_report import PROFILE, VISITED, browsing_flows, encrypted_batch, http_flow, write_capture

T0 = 1_700_000_000.0
SOURCE = 'source = { who = "Vendor", where = "blog", when = "2020-05-02" }'
TRACKER = "sa.tracker.example"


def _nested(depth: int, leaf: dict | None = None) -> bytes:
    """A JSON body nested deeper than the decoder follows (Limits.max_nesting is 64)."""
    body: object = leaf or {"url": VISITED[0]}
    for _ in range(depth):
        body = {"next": body}
    return json.dumps(body).encode()


def _opaque(url: str, app: str, mode: str, ts: float, size: int):
    """A request whose body no decoder opens (an SDK's encrypted batch)."""
    body = encrypted_batch(size)
    return http_flow(url, app=app, mode=mode, ts=ts, body=body, content_type="application/octet-stream")


@pytest.fixture(scope="module")
def capture(tmp_path_factory) -> Path:
    """com.a: normal mode leaks to the tracker; in incognito the tracker gets two opaque batches.
    com.b: only opaque bodies. com.c: one body nested too deep to decode to the end."""
    flows = browsing_flows("com.a", "normal", T0)
    flows.append(http_flow(VISITED[0], app="com.a", mode="incognito", ts=T0 + 100))
    for i in range(2):
        flows.append(_opaque(f"https://{TRACKER}/log", "com.a", "incognito", T0 + 101 + i, 600 + i))
    flows.append(_opaque("https://vault.example/up", "com.b", "normal", T0 + 200, 900))
    deep = http_flow("https://deep.example/up", app="com.c", mode="normal", ts=T0 + 300, body=_nested(80))
    flows.append(deep)
    # com.d: nothing links normal and incognito; an opaque body only in a third mode
    for i, mode in enumerate(("normal", "incognito")):
        flows.append(http_flow(f"https://d.example/page-{i}", app="com.d", mode=mode, ts=T0 + 400 + i))
    flows.append(_opaque("https://d.example/up", "com.d", "incognito-optout", T0 + 410, 700))
    # com.e: a token beside content nested past the decoder's bound
    token = {"distinct_id": "f3a9c2e17b5d4e08a6c1", "blob": json.loads(_nested(80))}
    flows.append(
        http_flow(
            "https://e.example/track",
            app="com.e",
            mode="normal",
            ts=T0 + 500,
            body=json.dumps(token).encode(),
        )
    )
    return write_capture(tmp_path_factory.mktemp("unread") / "cap", flows, profile=PROFILE)


@pytest.fixture(scope="module")
def analysis(capture):
    return analyze([capture])


def _claims(*claims: tuple[str, str]) -> list:
    text = "\n".join(
        f'[[claim]]\nid = "{cid}"\ntype = "{body.split()[0]}"\n'
        + "\n".join(body.split("\n")[1:])
        + f'\nparaphrase = "p"\n{SOURCE}\n'
        for cid, body in claims
    )
    return [parse_claims(text)]


def _judge(analysis, *claims: tuple[str, str]) -> dict:
    a = analysis
    verdicts = judge_claims(_claims(*claims), a.findings, a.flows, a.contacts)
    return {f"{v.claim.id}/{v.app}": v for v in verdicts}


def test_opaque_payloads_in_the_claims_mode_make_no_upload_inconclusive(analysis):
    opaque_ids = set(analysis.flows.loc[analysis.flows["opaque_bytes"] > 0, "flow_id"])
    tracker_ids = set(analysis.flows.loc[analysis.flows["host"] == TRACKER, "flow_id"])
    verdicts = _judge(
        analysis,
        ("incognito", 'no_upload\nmode = "incognito"\ndata_types = ["url"]\napp = "com.a"'),
        (
            "elsewhere",
            'no_upload\nmode = "incognito"\ndata_types = ["url"]\napp = "com.a"\ndestination = "x.example"',
        ),
        ("normal", 'no_upload\nmode = "normal"\ndata_types = ["url"]\napp = "com.a"'),
        ("contact", 'no_contact\nmode = "incognito"\ndestination = "ads.example"\napp = "com.a"'),
    )
    unread = verdicts["incognito/com.a"]
    assert (unread.verdict, unread.reason) == (INCONCLUSIVE, "payloads not read")
    assert "2 request(s) to sa.tracker.example" in unread.why
    assert {i.removeprefix("flow:") for i in unread.finding_ids} == opaque_ids & tracker_ids
    assert len(unread.finding_ids) == 2
    # elsewhere nothing went unread; a leak seen stays a leak; contacts are not hidden by payloads
    assert verdicts["elsewhere/com.a"].verdict == CONSISTENT
    assert verdicts["normal/com.a"].verdict == CONTRADICTED
    assert verdicts["contact/com.a"].verdict == CONSISTENT


def test_unread_payloads_weaken_unlinkable_and_anonymous_but_not_for_another_app(analysis):
    verdicts = _judge(
        analysis,
        ("link", 'unlinkable\nmodes = ["normal", "incognito"]'),
        ("anon", 'anonymous\ndestination = "vault.example"'),
    )
    assert verdicts["link/com.a"].reason == "payloads not read"  # the Android ID went in normal only
    assert verdicts["anon/com.b"].reason == "payloads not read"
    assert verdicts["anon/com.a"].verdict == CONSISTENT  # com.a sent nothing to vault.example
    untested = verdicts["link/com.b"]
    assert (untested.verdict, untested.reason) == (INCONCLUSIVE, "mode not tested")


def test_encrypted_fits_opaque_bodies_but_not_decoding_that_stopped(analysis):
    verdicts = _judge(
        analysis,
        ("enc-b", 'encrypted\napp = "com.b"'),
        ("enc-c", 'encrypted\napp = "com.c"'),
    )
    assert verdicts["enc-b/com.b"].verdict == CONSISTENT
    stopped = verdicts["enc-c/com.c"]
    assert (stopped.verdict, stopped.reason) == (INCONCLUSIVE, "payloads not read")
    assert "deep.example" in stopped.why


def test_decoding_that_stopped_is_a_coverage_hole_with_its_bytes(analysis):
    flows = analysis.flows
    stopped = flows["host"].isin(["deep.example", "e.example"])
    assert flows.loc[stopped, "decode_truncated"].tolist() == [True, True]
    assert not flows.loc[~stopped, "decode_truncated"].any()
    cov = coverage(flows, analysis.contacts)
    rows = cov[cov["reason"] == "decode_incomplete"]
    assert rows[["app", "mode", "host", "kind", "count"]].values.tolist() == [
        ["com.c", "normal", "deep.example", "decode", 1],
        ["com.e", "normal", "e.example", "decode", 1],
    ]
    deep = flows[flows["host"] == "deep.example"]
    assert int(rows["bytes"].iloc[0]) == int(deep["request_size"].iloc[0]) > 0
    # the URL sits deeper than the bound: not found, which is exactly what the hole warns about
    assert analysis.findings[analysis.findings["host"] == "deep.example"].empty


def test_report_and_analyze_say_so(capture, tmp_path, capsys):
    out = tmp_path / "r.md"
    claims = tmp_path / "claims.toml"
    claims.write_text(
        f'app = "com.a"\n[[claim]]\ntype = "no_upload"\nmode = "incognito"\ndata_types = ["url"]\n'
        f'paraphrase = "p"\n{SOURCE}\n'
    )
    assert main(["report", str(capture), "--claims", str(claims), "-q", "-o", str(out)]) == 0
    tables = out.parent / f"{out.stem}_tables"
    table = pd.read_parquet(tables / "claims.parquet")
    assert table["reason"].tolist() == ["payloads not read"]
    cov = pd.read_parquet(tables / "coverage.parquet")
    assert {"opaque_payload", "decode_incomplete"} <= set(cov["reason"])
    text = out.read_text(encoding="utf-8")
    assert "1 request(s) not fully decoded to deep.example" in text
    capsys.readouterr()
    assert main(["analyze", str(capture), "-q", "-o", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert "phonehome: 2 request(s) not fully decoded" in err


def test_a_decoder_error_is_a_hole_not_a_silent_loss(tmp_path, monkeypatch, capsys):
    """A bug in a decoder must not lose the run, nor pass for "nothing sent": the request counts as
    not fully decoded, its claims turn inconclusive, and analyze says so."""
    flows = browsing_flows("com.a", "normal", T0) + browsing_flows("com.a", "incognito", T0 + 100)
    capture = write_capture(tmp_path / "cap", flows, profile=PROFILE)
    secret = "9c2f41a7e3b5d810-secret"

    def broken_body(walker, record):
        if record.request_body:
            raise ValueError(secret)

    monkeypatch.setattr(decode_request_module, "_body", broken_body)
    a = analyze([capture], workers=1)
    posts = a.flows[a.flows["method"] == "POST"]
    assert len(posts) == 4 and posts["decode_truncated"].all()
    assert not a.flows.loc[a.flows["method"] != "POST", "decode_truncated"].any()
    assert a.findings[a.findings["host"] == TRACKER].empty  # the tracker's bodies were never read
    (verdict,) = judge_claims(
        _claims(("x", 'no_upload\nmode = "incognito"\ndata_types = ["search_query"]')),
        a.findings,
        a.flows,
        a.contacts,
    )
    assert (verdict.verdict, verdict.reason) == (INCONCLUSIVE, "payloads not read")
    assert secret not in verdict.why
    assert main(["analyze", str(capture), "-q", "-j", "1", "-o", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert "phonehome: 4 request(s) not fully decoded" in err and secret not in err


def test_redact_withholds_a_request_not_fully_decoded(tmp_path, monkeypatch):
    """What was not examined cannot be scrubbed: under --redact such a request keeps its method
    and host only. Here the query decoder fails (an injected bug), so an e-mail address in the
    query, one in a header and one nested past the decoder's bound in the body were never found;
    each would otherwise be shared in the "redacted" HAR and tables."""
    import base64

    from phonehome.analysis.export import WITHHELD_UNREAD_BODY
    from phonehome.analysis.redact import WITHHELD

    emails = [f"tester.{where}@example.org" for where in ("query", "header", "body")]
    flows = browsing_flows("com.a", "normal", T0)
    deep = http_flow(
        f"https://deep.example/up?u={base64.b64encode(emails[0].encode()).decode()}",
        app="com.a",
        mode="normal",
        ts=T0 + 50,
        body=_nested(80, {"email": emails[2]}),
    )
    deep.request.headers["X-Contact"] = base64.b64encode(emails[1].encode()).decode()
    flows.append(deep)
    cap = write_capture(tmp_path / "cap", flows, profile=PROFILE)

    def broken_query(walker, record):
        if record.query:
            raise ValueError("a decoder bug")

    monkeypatch.setattr(decode_request_module, "_query", broken_query)
    plain, redacted = tmp_path / "plain.har", tmp_path / "redacted.har"
    assert main(["export", str(cap), "--har", str(plain), "-q"]) == 0
    assert main(["export", str(cap), "--har", str(redacted), "-q", "--redact"]) == 0
    assert all(
        base64.b64encode(e.encode()).decode() in plain.read_text() or e in plain.read_text() for e in emails
    )
    text = redacted.read_text()
    assert not any(e in text or base64.b64encode(e.encode()).decode() in text for e in emails)
    entries = json.loads(text)["log"]["entries"]
    (entry,) = [e for e in entries if "deep.example" in e["request"]["url"]]
    assert entry["request"]["url"] == f"https://deep.example/{WITHHELD}?{WITHHELD}"
    assert entry["request"]["postData"]["text"] == WITHHELD_UNREAD_BODY.decode()
    headers = {h["name"]: h["value"] for h in entry["request"]["headers"]}
    assert headers["X-Contact"] == WITHHELD
    # the requests that were fully decoded keep their scrubbed URLs and bodies
    tracker = [e for e in entries if e["request"]["url"].startswith(f"https://{TRACKER}/log")]
    assert len(tracker) == 2 and all(WITHHELD not in e["request"]["url"] for e in tracker)
    # the tables of analyze --redact withhold the same URL
    out = tmp_path / "out"
    assert main(["analyze", str(cap), "-q", "--redact", "-o", str(out)]) == 0
    flows_table = pd.read_parquet(out / "flows.parquet")
    url = flows_table.loc[flows_table["host"] == "deep.example", "url"].item()
    assert url == f"https://deep.example/{WITHHELD}?{WITHHELD}"
    assert flows_table["url"].str.contains(WITHHELD, regex=False).sum() == 1


def test_a_decoder_error_note_names_type_and_place_never_the_value(monkeypatch):
    from phonehome.analysis.decode import codecs
    from phonehome.analysis.decode.request import decode_request
    from phonehome.analysis.records import Labels
    from phonehome.analysis.sources.flow_record import http_record

    secret = "c2VjcmV0LXZhbHVl-9c2f41a7e3b5d810"

    def broken(*args, **kwargs):
        raise ValueError(f"cannot decode {secret}")

    monkeypatch.setattr(codecs, "unbase64", broken)
    flow = http_flow(f"https://t.example/log?id={secret}", app="a", mode="normal", ts=T0)
    decoded = decode_request(http_record(flow, "test", Labels(None, None, "normal", None)))
    assert decoded.truncated
    (note,) = [n for n in decoded.notes if n.startswith("internal error")]
    assert note.startswith("internal error in query: ValueError at test_claims_unread.py:")
    assert secret not in note


def test_unread_payloads_count_only_in_the_modes_a_claim_is_about(analysis):
    verdicts = _judge(
        analysis,
        ("pair", 'unlinkable\nmodes = ["normal", "incognito"]\napp = "com.d"'),
        ("optout", 'unlinkable\nmodes = ["normal", "incognito-optout"]\napp = "com.d"'),
    )
    assert verdicts["pair/com.d"].verdict == CONSISTENT  # the opaque body went in a third mode
    assert verdicts["optout/com.d"].reason == "payloads not read"


def test_random_token_beside_unread_content_is_inconclusive(analysis):
    e = analysis.findings[analysis.findings["app"] == "com.e"]
    assert "f3a9c2e17b5d4e08a6c1" in set(e["value"])  # the token itself was read
    verdicts = _judge(analysis, ("token", 'random_token\nfield = "distinct_id"\napp = "com.e"'))
    token = verdicts["token/com.e"]
    assert (token.verdict, token.reason) == (INCONCLUSIVE, "payloads not read")
    assert "e.example" in token.why and len(token.finding_ids) == 1


def test_report_redact_scrubs_a_host_name_in_the_claims(tmp_path):
    """Verdict sentences name hosts; a host name may hold an identifier, which the redacted report
    must show as its tag in the claims table as everywhere else."""
    from tests.support_report import ANDROID_ID

    flows = browsing_flows("com.a", "normal", T0)
    flows.append(http_flow(VISITED[0], app="com.a", mode="incognito", ts=T0 + 99))
    host = f"{ANDROID_ID}.sync.example"
    flows.append(_opaque(f"https://{host}/up", "com.a", "incognito", T0 + 100, 700))
    cap = write_capture(tmp_path / "cap", flows, profile=PROFILE)
    claims = tmp_path / "claims.toml"
    claims.write_text(
        f'app = "com.a"\n[[claim]]\ntype = "no_upload"\nmode = "incognito"\ndata_types = ["url"]\n'
        f'paraphrase = "p"\n{SOURCE}\n'
    )
    for redact in (False, True):
        out = tmp_path / f"r-{redact}.md"
        args = ["report", str(cap), "--claims", str(claims), "-q", "-o", str(out)]
        assert main(args + ["--redact"] * redact) == 0
        why = pd.read_parquet(out.parent / f"{out.stem}_tables" / "claims.parquet")["why"].iloc[0]
        assert ("sync.example" in why) and ((ANDROID_ID in why) is not redact), why
        assert (ANDROID_ID in out.read_text(encoding="utf-8")) is not redact


def test_coverage_reads_decode_truncated_as_written_and_tolerates_bare_frames():
    from phonehome.analysis.verdicts.coverage import incomplete_mask

    text = pd.DataFrame({"decode_truncated": ["False", "True", "", None]})  # as read back from CSV
    assert incomplete_mask(text).tolist() == [False, True, False, False]
    bare = pd.DataFrame({"flow_id": ["1"], "opaque_bytes": [100], "decode_truncated": [True]})
    assert coverage(bare, pd.DataFrame()).empty


def test_redacted_claims_link_to_the_evidence_of_a_host_holding_an_identifier(tmp_path):
    """Evidence ids hash the host; redaction changes a host that holds an identifier, so the
    claims' ids are taken as the redacted evidence table has them, and the link resolves."""
    from tests.support_report import ANDROID_ID

    flows = browsing_flows("com.a", "normal", T0)
    flows.append(http_flow(VISITED[0], app="com.a", mode="incognito", ts=T0 + 99))
    body = json.dumps({"android_id": ANDROID_ID}).encode()
    host = f"{ANDROID_ID}.sync.example"
    flows.append(http_flow(f"https://{host}/up", app="com.a", mode="incognito", ts=T0 + 100, body=body))
    cap = write_capture(tmp_path / "cap", flows, profile=PROFILE)
    claims = tmp_path / "claims.toml"
    claims.write_text(
        'app = "com.a"\n[[claim]]\ntype = "no_upload"\nmode = "incognito"\n'
        f'data_types = ["device_id.android_id"]\nparaphrase = "p"\n{SOURCE}\n'
    )
    out = tmp_path / "r.html"
    assert main(["report", str(cap), "--claims", str(claims), "-q", "--redact", "-o", str(out)]) == 0
    tables = out.parent / f"{out.stem}_tables"
    claim = pd.read_parquet(tables / "claims.parquet").iloc[0]
    groups = pd.read_parquet(tables / "evidence.parquet")
    assert claim["verdict"] == CONTRADICTED and claim["evidence_ids"]
    linked = groups[groups["evidence_id"].isin(claim["evidence_ids"].split())]
    (shown,) = set(linked["host"])
    assert shown.startswith("redacted-") and shown.endswith(".sync.example")
    html = out.read_text(encoding="utf-8")
    assert ANDROID_ID not in html
    assert all(f'href="#{i}"' in html and f'id="{i}"' in html for i in claim["evidence_ids"].split())


def test_export_redact_withholds_what_a_response_echoes_of_an_unread_request(tmp_path, monkeypatch):
    from phonehome.analysis.redact import WITHHELD

    email = "tester.echo@example.org"
    flow = http_flow(f"https://deep.example/up?email={email}", app="com.a", mode="normal", ts=T0)
    flow.response.headers["Location"] = f"https://deep.example/next?email={email}"
    flow.response.headers["Content-Type"] = "text/plain"
    cap = write_capture(tmp_path / "cap", [flow], profile=PROFILE)

    def broken_query(walker, record):
        raise ValueError("a decoder bug")

    monkeypatch.setattr(decode_request_module, "_query", broken_query)
    out = tmp_path / "r.har"
    assert main(["export", str(cap), "--har", str(out), "-q", "--redact"]) == 0
    text = out.read_text()
    assert email not in text
    (entry,) = json.loads(text)["log"]["entries"]
    headers = {h["name"].lower(): h["value"] for h in entry["response"]["headers"]}
    assert headers["location"] == WITHHELD and headers["content-type"] == "text/plain"


def test_incomplete_mask_on_nullable_booleans():
    from phonehome.analysis.findings import incomplete_mask

    for dtype in ("boolean", "bool[pyarrow]", object):
        frame = pd.DataFrame({"decode_truncated": pd.Series([True, None, False], dtype=dtype)})
        assert incomplete_mask(frame).tolist() == [True, False, False], dtype
