"""`phonehome plan` and canary recall: plans, their checklist, and recall through a real mitmdump."""

from __future__ import annotations

import base64
import gzip
import json
import signal
import zlib
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests

from phonehome.analysis.cli.main import main
from phonehome.analysis.pipeline import analyze
from phonehome.analysis.plan import (
    CANARY_HOSTS,
    PlanError,
    checklist,
    load_plan,
    make_plan,
    merge_plan_canaries,
    write_plan,
)
from phonehome.analysis.profile import Profile
from phonehome.analysis.verdicts.canaries import ANY_DESTINATION, canary_recall
from tests.support_proxy import ROOT, mitmdump, tls_upstream

RECORDER = ROOT / "addons" / "recorder.py"
REDIRECT = ROOT / "tests" / "support_redirect_addon.py"
NAV = {  # a typed address: the user's own navigation (markers refuse anything else)
    "Accept": "text/html,application/xhtml+xml",
    "Sec-Fetch-Site": "none",
    "Sec-Fetch-Mode": "navigate",
    "Sec-Fetch-Dest": "document",
}


def test_plan_has_unique_canaries_and_a_marker_before_each_step() -> None:
    plan = make_plan(["normal", " Private ", "incognito-optout"], urls=3, searches=2, app="com.t")
    assert plan.modes == ["normal", "incognito", "incognito-optout"]  # synonyms normalised, order kept
    assert len(plan.canaries) == 15
    tokens = [c.token for c in plan.canaries]
    assert len(set(tokens)) == 15 and all(len(t) == 10 and t.isalnum() and t.islower() for t in tokens)
    for canary in plan.canaries:
        assert canary.token in canary.value
        if canary.kind == "url":
            assert canary.value.startswith(tuple(f"https://{h}/?phc=" for h in CANARY_HOSTS))
    assert plan.steps[0].text == "http://phonehome.mark/app/com.t"
    # every canary step follows its mode's marker and then a phase marker of the same mode
    mode_marker = phase_marker = None
    for step in plan.steps:
        if step.action == "marker" and "/mode/" in step.text:
            mode_marker, phase_marker = step.text.rsplit("/", 1)[1], None
        elif step.action == "marker" and "/phase/" in step.text:
            phase_marker = step.text.rsplit("/", 1)[1]
        elif step.action in ("open", "search"):
            canary = next(c for c in plan.canaries if c.value == step.text)
            assert (mode_marker, phase_marker) == (canary.mode, canary.phase)
    text = checklist(plan)
    for canary in plan.canaries:
        assert canary.value in text
    assert "http://phonehome.mark/mode/incognito-optout" in text and "wait 120 seconds" in text


def test_plan_round_trips_and_merges_into_the_profile(tmp_path: Path) -> None:
    plan = make_plan(["normal", "incognito"], urls=2, searches=1)
    write_plan(plan, tmp_path / "plan.json")
    assert oct((tmp_path / "plan.json").stat().st_mode & 0o777) == "0o600"
    loaded = load_plan(tmp_path / "plan.json")
    assert loaded.canaries == plan.canaries
    profile = merge_plan_canaries(Profile({"urls": ["https://a.example/"], "android_id": "x"}), [tmp_path])
    assert profile.values["urls"] == ["https://a.example/"] + [c.value for c in plan.canaries_of(kind="url")]
    assert profile.values["search_terms"] == [c.value for c in plan.canaries_of(kind="search_query")]
    assert profile.values["android_id"] == "x"
    (tmp_path / "other").mkdir()
    assert merge_plan_canaries(None, [tmp_path / "other"]) is None  # no plan: nothing invented


def test_plan_command_writes_plan_and_prints_checklist(tmp_path: Path, capsys) -> None:
    out = tmp_path / "p" / "plan.json"
    assert main(["plan", "--modes", "normal,incognito", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    plan = json.loads(out.read_text())
    assert plan["modes"] == ["normal", "incognito"] and len(plan["canaries"]) == 10
    assert all(c["value"] in printed for c in plan["canaries"])
    assert main(["plan", "--urls", "0", "--searches", "0", "-o", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "at least one canary" in err[0]
    assert not (tmp_path / "x.json").exists()
    before = out.read_text()  # a plan in use is never overwritten by accident
    assert main(["plan", "-q", "-o", str(out)]) == 2
    assert out.read_text() == before and "--force" in capsys.readouterr().err
    assert main(["plan", "-q", "--force", "-o", str(out)]) == 0 and out.read_text() != before


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"schema": 1,\n "canaries": [}', "line 2"),
        (
            '{"schema": 1, "canaries": [{"id": "a", "mode": "normal", "kind": "url", "token": "abcdefgh"}]}',
            "lacks 'value'",
        ),
        ('{"schema": 9, "canaries": []}', "schema"),
    ],
)
def test_a_broken_plan_is_one_line_naming_the_file(
    tmp_path: Path, capsys, content: str, expected: str
) -> None:
    (tmp_path / "plan.json").write_text(content)
    with pytest.raises(PlanError, match=expected) as error:
        load_plan(tmp_path / "plan.json")
    assert str(tmp_path / "plan.json") in str(error.value)
    capture = tmp_path / "cap"
    capture.mkdir()
    (capture / "flows.mitm").write_bytes(b"")
    (capture / "plan.json").write_text(content)
    assert main(["analyze", str(capture), "-o", str(tmp_path / "out"), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(capture / "plan.json") in err[0] and expected in err[0]


def _sensors_batch(events: list[dict]) -> bytes:
    """Sensors Analytics' wire format: form data_list=base64(gzip(JSON list))."""
    packed = base64.b64encode(gzip.compress(json.dumps(events).encode(), mtime=0)).decode()
    return urlencode({"crc": str(zlib.crc32(packed.encode())), "gzip": "1", "data_list": packed}).encode()


def _event(props: dict) -> dict:
    return {"type": "track", "event": "page_view", "distinct_id": "7c1e", "properties": props}


def test_canary_recall_through_a_real_mitmdump(tmp_path: Path) -> None:
    """A tester follows a plan through the real recorder: recall counts exactly the canaries the
    'browser' sent on, per mode and destination, and names the rest."""
    plan = make_plan(["normal", "incognito"], urls=3, searches=2, app="com.t.browser")
    urls = {m: [c.value for c in plan.canaries_of(m, "url")] for m in plan.modes}
    terms = {m: [c.value for c in plan.canaries_of(m, "search_query")] for m in plan.modes}
    confdir, out = tmp_path / "conf", tmp_path / "caps"
    opts = ["--set", f"phonehome_dir={out}", "--set", "phonehome_session=canary"]
    with tls_upstream(tmp_path) as up, mitmdump(confdir, up, [RECORDER, REDIRECT], opts) as (port, proc):
        with requests.Session() as s:
            s.trust_env = False
            s.proxies = {"http": f"http://127.0.0.1:{port}", "https": f"http://127.0.0.1:{port}"}
            s.verify = str(confdir / "mitmproxy-ca-cert.pem")
            analytics = "https://sa.api.intl.miui.com/sa?project=browser"
            form = {"Content-Type": "application/x-www-form-urlencoded"}
            for step in plan.steps:  # the tester: markers, canary pages, searches (no waiting)
                if step.action == "marker" or step.action == "open":
                    s.get(step.text, headers=NAV).raise_for_status()
                elif step.action == "search":
                    s.get("https://www.bing.com/search", params={"q": step.text}, headers=NAV)
            # the "browser's" analytics, labelled by the last marker (incognito): it reports all three
            # normal URLs, one normal search and two incognito URLs; a token from no plan goes along
            events = [_event({"$url": u}) for u in urls["normal"]]
            events += [_event({"search_word": terms["normal"][0]})]
            events += [_event({"$url": u}) for u in urls["incognito"][:2]]
            events += [_event({"$url": "https://example.com/?phc=zzzzzzzzzz"})]
            s.post(analytics, data=_sensors_batch(events), headers=form).raise_for_status()
            # and a third party receives one incognito URL in a plain query string
            s.get("https://tracker.example.net/p", params={"u": urls["incognito"][2]}).raise_for_status()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
    capture = out / "canary"
    write_plan(plan, capture / "plan.json")
    analysis = analyze([capture])
    recall = canary_recall([load_plan(capture / "plan.json")], analysis.findings, analysis.flows)
    assert set(recall["app"]) == {"com.t.browser"}
    overall = recall[recall["destination"] == ANY_DESTINATION].set_index(["mode", "canaries"])
    assert overall.loc[("normal", "canary URLs"), "seen"] == 3
    assert overall.loc[("normal", "canary searches"), "seen"] == 1
    assert overall.loc[("incognito", "canary URLs"), "seen"] == 3
    assert overall.loc[("incognito", "canary searches"), "seen"] == 0
    assert (overall["planned"] == [3, 2, 3, 2]).all()
    assert overall.loc[("normal", "canary searches"), "not_seen"] == f"normal-search-2 ({terms['normal'][1]})"
    assert overall.loc[("incognito", "canary searches"), "not_seen"].count("incognito-search-") == 2
    sentence = overall.loc[("normal", "canary URLs"), "summary"]
    assert sentence.startswith("com.t.browser: 3 of 3 canary URLs opened in normal left the device, ")
    assert "to sa.api.intl.miui.com (Xiaomi), form+base64+gzip+json" in sentence
    per_host = recall[recall["destination"] != ANY_DESTINATION].set_index(["mode", "canaries", "destination"])
    assert per_host.loc[("incognito", "canary URLs", "sa.api.intl.miui.com"), "seen"] == 2
    assert per_host.loc[("incognito", "canary URLs", "tracker.example.net"), "seen"] == 1
    assert per_host.loc[("incognito", "canary URLs", "tracker.example.net"), "encodings"] == "plain"
    # the batch went out while the recorder was labelled incognito: said, not hidden
    assert overall.loc[("normal", "canary URLs"), "sent_in"] == "incognito"
    # the decoy token from no plan counts nowhere; the canary pages' own loads are navigation
    assert "zzzzzzzzzz" not in " ".join(recall["finding_ids"]) + " ".join(recall["summary"])
    assert not any(h.startswith("example.") for h in recall["destination"])
    # each flow carries the TLS version it negotiated upstream (the loopback server: TLS 1.2 or 1.3)
    assert set(analysis.flows["tls_version"]) <= {"TLSv1.2", "TLSv1.3"} and len(analysis.flows) >= 10
    # the canaries reached the classifier as known values (merged from plan.json)
    assert analysis.profile is not None and set(urls["normal"]) <= set(analysis.profile.values["urls"])
