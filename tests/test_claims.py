"""Claims files and their verdicts: the sample's vendor statements against its traffic."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from phonehome.analysis.claims import ClaimsError, load_claims, parse_claims
from phonehome.analysis.cli.main import main
from phonehome.analysis.verdicts.claims import (
    CONSISTENT,
    CONTRADICTED,
    INCONCLUSIVE,
    claims_table,
    declared_outcomes,
    judge_claims,
    known_identifiers,
)

SOURCE = 'source = { who = "Vendor", where = "blog", when = "2020-05-02" }'


def _verdicts(sample_analysis, sample_capture: Path) -> dict:
    claims = load_claims(sample_capture / "claims.toml")
    known = known_identifiers(sample_analysis.profile.values)
    a = sample_analysis
    return {v.claim.id: v for v in judge_claims([claims], a.findings, a.flows, a.contacts, known)}


def _ids(findings: pd.DataFrame) -> set[str]:
    return {f"{f}#{p}" for f, p in zip(findings["flow_id"], findings["field"], strict=True)}


def test_sample_vendor_claims_are_contradicted_by_the_right_findings(sample_analysis, sample_capture):
    verdicts = _verdicts(sample_analysis, sample_capture)
    f = sample_analysis.findings
    all_ids = _ids(f)
    for claim_id in (
        "incognito-no-upload",
        "incognito-unlinkable",
        "anonymous-statistics",
        "random-token",
        "aggregated-statistics",
    ):
        verdict = verdicts[claim_id]
        assert verdict.verdict == CONTRADICTED, (claim_id, verdict.why)
        assert verdict.finding_ids and set(verdict.finding_ids) <= all_ids, claim_id
        assert verdict.app == "com.mi.globalbrowser.mini"
    incognito_sa = f[(f["mode"] == "incognito") & (f["host"] == "sa.api.intl.miui.com")]
    # no_upload: exactly the incognito URL and search findings sent to the vendor
    upload = incognito_sa[incognito_sa["data_type"].isin(["url", "search_query"])]
    assert set(verdicts["incognito-no-upload"].finding_ids) == _ids(upload)
    assert "sa.api.intl.miui.com" in verdicts["incognito-no-upload"].why
    assert (
        "connect.facebook.net" not in verdicts["incognito-no-upload"].why
    )  # a page's Referer is not the vendor
    # unlinkable: the distinct_id and the Android ID are among the values sent in both modes
    linked = f[
        f["flow_id"].astype(str).add("#").add(f["field"]).isin(verdicts["incognito-unlinkable"].finding_ids)
    ]
    assert set(linked["mode"]) == {"normal", "incognito"}
    assert {"device_id.other", "device_id.android_id"} <= set(linked["data_type"])
    # anonymous: hardware identifiers (the IMEI as an md5) and the persistent distinct_id
    anonymous = f[
        f["flow_id"].astype(str).add("#").add(f["field"]).isin(verdicts["anonymous-statistics"].finding_ids)
    ]
    assert set(anonymous["host"]) == {"sa.api.intl.miui.com"}
    assert {"device_id.imei", "device_id.android_id", "device_id.other"} <= set(anonymous["data_type"])
    assert any(field.endswith("imei_md5") for field in anonymous["field"])
    # random_token: the distinct_id travels beside the Android ID and keeps its value across modes
    token = verdicts["random-token"]
    assert "device_id.android_id" in token.why and "incognito, incognito-optout, normal" in token.why
    token_rows = f[f["flow_id"].astype(str).add("#").add(f["field"]).isin(token.finding_ids)]
    assert set(token_rows[token_rows["field"].str.endswith("distinct_id")]["mode"]) == {
        "normal",
        "incognito",
        "incognito-optout",
    }
    # aggregated: single-event records each pairing a URL/search with an identifier
    aggregated = f[
        f["flow_id"].astype(str).add("#").add(f["field"]).isin(verdicts["aggregated-statistics"].finding_ids)
    ]
    assert {"url", "device_id.other"} <= set(aggregated["data_type"])
    assert "single-event record" in verdicts["aggregated-statistics"].why
    # the encoded chain is not encryption
    assert verdicts["encrypted"].verdict == CONTRADICTED
    assert "form+base64+gzip+json" in verdicts["encrypted"].why


def test_claims_about_what_was_not_seen_are_inconclusive(sample_analysis, sample_capture):
    verdicts = _verdicts(sample_analysis, sample_capture)
    pinned = verdicts["security-check-anonymous"]
    assert (pinned.verdict, pinned.reason) == (INCONCLUSIVE, "hosts not decrypted")
    assert "api.sec.intl.miui.com" in pinned.why and not pinned.finding_ids
    shared = verdicts["not-shared-with-sensors"]
    assert shared.verdict == INCONCLUSIVE and "claimant's host name" in shared.reason
    assert "sa.api.intl.miui.com" in shared.why and "cannot be seen" in shared.why


def test_consistent_only_where_coverage_allows(sample_analysis):
    """Nothing seen is 'consistent' only when nothing went unseen: incognito had no undecrypted host,
    normal mode had one (pinned), so the same claim about normal mode stays inconclusive."""
    claims = "\n".join(
        f"""
[[claim]]
type = "{kind}"
mode = "{mode}"
{extra}
paraphrase = "p"
{SOURCE}
"""
        for kind, mode, extra in (
            ("no_contact", "incognito", 'owner = "Google"'),
            ("no_upload", "incognito", 'data_types = ["contact"]'),
            ("no_upload", "normal", 'data_types = ["contact.phone"]'),
            ("no_contact", "guest", 'owner = "Facebook"'),
        )
    )
    a = sample_analysis
    verdicts = judge_claims([parse_claims(claims)], a.findings, a.flows, a.contacts)
    assert [v.verdict for v in verdicts] == [CONSISTENT, CONSISTENT, INCONCLUSIVE, INCONCLUSIVE]
    assert verdicts[2].reason == "hosts not decrypted" and "api.sec.intl.miui.com" in verdicts[2].why
    assert verdicts[3].reason == "mode not tested"
    assert all(not v.finding_ids for v in verdicts)


def test_declared_data_types_give_four_outcomes(sample_analysis):
    claims = parse_claims(
        f"""
[[claim]]
type = "declared"
collected = ["url", "device_id.android_id", "location.gps", "contact.phone"]
shared = []
paraphrase = "Store data-safety label."
{SOURCE}
"""
    )
    outcomes = declared_outcomes(claims.claims[0], sample_analysis.findings)
    assert "device_id.imei" in outcomes["seen but undeclared"]
    assert outcomes["declared and seen"] == ["device_id.android_id", "location.gps", "url"]
    assert outcomes["declared, not seen"] == ["contact.phone"]
    assert "location.wifi" in outcomes["neither"]
    a = sample_analysis
    (verdict,) = judge_claims([claims], a.findings, a.flows, a.contacts)
    assert verdict.verdict == CONTRADICTED and "seen but undeclared: " in verdict.why


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ('[[claim]]\ntype = "no_upload"\nmode = "incognito\n', 3, "not valid TOML"),
        (
            f'app = "x"\n\n[[claim]]\ntype = "no_uplod"\nmode = "incognito"\n{SOURCE}\n',
            4,
            "did you mean 'no_upload'",
        ),
        (
            f'[[claim]]\ntype = "no_upload"\nparaphrase = "p"\nmdoe = "incognito"\n{SOURCE}\n',
            4,
            "did you mean 'mode'",
        ),
        (
            f'[[claim]]\ntype = "unlinkable"\nparaphrase = "p"\nmodes = ["normal"]\n{SOURCE}\n',
            4,
            "two different modes",
        ),
        (
            '[[claim]]\ntype = "anonymous"\nparaphrase = "p"\nsource = { who = "V", when = "2020" }\n',
            4,
            "'where'",
        ),
        (f'[[claim]]\ntype = "no_upload"\nparaphrase = "p"\n{SOURCE}\n', 1, "lacks 'mode'"),
        (
            f'[[claim]]\ntype = "anonymous"\nparaphrase = "p"\n{SOURCE}\n\n[[claim]]\ntype = "no_upload"\n'
            f'mode = "incognito"\ndata_types = ["url", "imei"]\nparaphrase = "p"\n{SOURCE}\n',
            9,
            "unknown data type 'imei'",
        ),
    ],
)
def test_a_malformed_claims_file_is_one_line_naming_file_and_line(
    tmp_path, capsys, sample_capture, text, line, words
):
    path = tmp_path / "claims.toml"
    path.write_text(text)
    with pytest.raises(ClaimsError) as error:
        load_claims(path)
    assert str(error.value).startswith(f"{path}: line {line}")
    assert words in str(error.value)
    assert (
        main(["report", str(sample_capture), "--claims", str(path), "-o", str(tmp_path / "r.md"), "-q"]) == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"phonehome: error: {error.value}"]
    assert "\n" not in str(error.value)


def test_report_puts_claims_first_and_demo_shows_them(tmp_path, capsys):
    assert main(["demo", "-o", str(tmp_path), "-q"]) == 0
    markdown = (tmp_path / "report.md").read_text()
    assert markdown.index("# Claims vs observations") < markdown.index("# Normal vs")
    section = markdown.split("# Claims vs observations", 1)[1].split("# Normal vs", 1)[0]
    # one list per claim (the renderer writes tables of sentences as lists): "- verdict: `...`"
    cells = re.findall(r"^\s*- verdict: `(contradicted|consistent|inconclusive)`$", section, re.M)
    assert cells.count("contradicted") >= 5 and "inconclusive" in cells
    assert "sa.api.intl.miui.com" in section and "blog.mi.com" in section
    html = (tmp_path / "report.html").read_text()
    claims_html = html[html.rindex("Claims vs observations") :].split("Normal vs", 1)[0]
    assert "contradicted" in claims_html
    links = set(re.findall(r'href="#(ev-[0-9a-f]{12})"', claims_html))  # each verdict links its evidence
    assert links and links <= set(re.findall(r'id="(ev-[0-9a-f]{12})"', html))
    tables = sorted(p.name for p in (tmp_path / "report_tables").glob("claims.*"))
    assert tables and claims_table([]).columns.tolist()[0] == "app"


@pytest.fixture(scope="module")
def optout_sample(tmp_path_factory, sample_capture):
    """The sample with its incognito-optout phase (make_sample.py --optout) and the same claims."""
    import shutil
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("optout") / "sample-mint-browser"
    script = sample_capture.parent / "make_sample.py"
    subprocess.run([sys.executable, str(script), "--optout", str(out)], check=True, timeout=60)
    shutil.copy(sample_capture / "claims.toml", out / "claims.toml")
    from phonehome.analysis.pipeline import analyze

    return out, analyze([out])


def test_opt_out_is_not_tested_without_its_mode(tmp_path, sample_capture):
    """The sample without its opt-out phase (make_sample.py --no-optout), with the same claims."""
    import shutil
    import subprocess
    import sys

    out = tmp_path / "sample-mint-browser"
    script = sample_capture.parent / "make_sample.py"
    subprocess.run([sys.executable, str(script), "--no-optout", str(out)], check=True, timeout=60)
    shutil.copy(sample_capture / "claims.toml", out / "claims.toml")
    from phonehome.analysis.pipeline import analyze

    verdict = _verdicts(analyze([out]), out)["incognito-optout"]
    assert (verdict.verdict, verdict.reason) == (INCONCLUSIVE, "mode not tested")


def test_opt_out_compares_the_opted_out_mode_with_the_mode_it_silences(optout_sample):
    capture, analysis = optout_sample
    verdict = _verdicts(analysis, capture)["incognito-optout"]
    assert verdict.verdict == CONSISTENT, verdict.why  # no URL or search left with the switch off
    assert "3 (destination, data type) pairs sent in incognito" in verdict.why
    everything = parse_claims(
        f'[[claim]]\ntype = "opt_out_effective"\nmode = "incognito-optout"\nparaphrase = "p"\n{SOURCE}\n'
    )
    a = analysis
    (strict,) = judge_claims([everything], a.findings, a.flows, a.contacts)
    assert strict.verdict == CONTRADICTED  # the synthetic SDK still reports its identifiers
    ids = a.findings["flow_id"].astype(str).add("#").add(a.findings["field"])
    rows = a.findings[ids.isin(strict.finding_ids)]
    assert set(rows["mode"]) == {"incognito-optout"} and "device_id.android_id" in set(rows["data_type"])
    # the vendor's claims keep their verdicts with the extra mode
    verdicts = _verdicts(analysis, capture)
    for claim_id in ("incognito-no-upload", "incognito-unlinkable", "anonymous-statistics", "random-token"):
        assert verdicts[claim_id].verdict == CONTRADICTED, claim_id


def test_tls_min_uses_each_flows_negotiated_version(sample_analysis, sample_capture):
    assert "tls_version" in sample_analysis.flows.columns  # recorded per flow in flows.parquet
    verdict = _verdicts(sample_analysis, sample_capture)["tls-1.2"]
    assert verdict.verdict == CONSISTENT and "TLSv1.2" in verdict.why
    a = sample_analysis
    vendor_wide = parse_claims(
        f'[[claim]]\ntype = "tls_min"\nversion = "1.2"\ndestination = "miui.com"\n'
        f'paraphrase = "p"\n{SOURCE}\n'
    )
    (verdict,) = judge_claims([vendor_wide], a.findings, a.flows, a.contacts)  # the pinned host is miui.com
    assert (verdict.verdict, verdict.reason) == (INCONCLUSIVE, "hosts not decrypted")
    assert "api.sec.intl.miui.com" in verdict.why
    stricter = parse_claims(
        f'[[claim]]\ntype = "tls_min"\nversion = "TLSv1.3"\ndestination = "miui.com"\n'
        f'paraphrase = "p"\n{SOURCE}\n'
    )
    (verdict,) = judge_claims([stricter], a.findings, a.flows, a.contacts)
    vendor = a.flows[a.flows["host"].str.endswith(".miui.com")]
    assert verdict.verdict == CONTRADICTED and "TLSv1.2" in verdict.why
    assert set(verdict.finding_ids) == {f"flow:{f}" for f in vendor["flow_id"]}
    unknown = a.flows.assign(tls_version="")  # e.g. a HAR: no TLS version recorded
    (verdict,) = judge_claims([stricter], a.findings, unknown, a.contacts)
    assert verdict.verdict == INCONCLUSIVE and "no negotiated TLS version" in verdict.why


def test_a_bad_claims_file_fails_before_the_capture_is_read(tmp_path, capsys):
    (tmp_path / "claims.toml").write_text("[[claim]]\ntype = 3\n")
    missing = tmp_path / "no-such-capture"  # would fail too, but only once reading starts
    assert (
        main(
            ["report", str(missing), "--claims", str(tmp_path / "claims.toml"), "-o", str(tmp_path / "r.md")]
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1 and f"{tmp_path / 'claims.toml'}: line 2" in err[0] and "no-such-capture" not in err[0]
    )


def test_a_claims_file_in_another_format_is_refused_not_ignored(tmp_path, capsys, sample_capture):
    import shutil

    capture = tmp_path / "cap"
    shutil.copytree(sample_capture, capture)
    (capture / "claims.toml").unlink()
    (capture / "claims.yaml").write_text("claims: []\n")
    assert main(["report", str(capture), "-o", str(tmp_path / "r.md"), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        f"phonehome: error: {capture / 'claims.yaml'}: claims files are TOML"
    )


def test_every_type_in_the_docs_parses_and_is_judged(sample_analysis):
    """docs/claims.md gives one example per claim type: each parses and gets a verdict."""
    from phonehome.analysis.claims import CLAIM_TYPES

    docs = (Path(__file__).resolve().parent.parent / "docs" / "claims.md").read_text()
    examples = re.findall(r"```toml\n(\[\[claim\]\].*?)```", docs, flags=re.S)
    claims = parse_claims("\n".join(examples), "docs/claims.md")
    assert sorted({c.type for c in claims.claims}) == sorted(CLAIM_TYPES)
    a = sample_analysis
    verdicts = judge_claims([claims], a.findings, a.flows, a.contacts)
    assert {v.verdict for v in verdicts} <= {CONTRADICTED, CONSISTENT, INCONCLUSIVE} and len(verdicts) == 11
    assert all(v.why and v.reason for v in verdicts)
