"""The classifier: endpoints, field types, known values, navigation, persistence, precision."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from phonehome.analysis.classify import (
    EndpointClassifier,
    EndpointListError,
    KnownValues,
    classify_endpoint,
    classify_request,
    mark_persistence,
    site_of,
)
from phonehome.analysis.cli.main import main
from phonehome.analysis.decode import decode_request
from phonehome.analysis.findings import DATA_TYPES, FINDINGS_COLUMNS, findings_frame
from phonehome.analysis.profile import Profile
from tests.corpus.evaluate import evaluate, overall
from tests.corpus.sdk_corpus import PROFILE, _record, cases

# -- endpoints --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "site"),
    [
        ("sa.api.intl.miui.com", "miui.com"),
        ("www.bbc.co.uk", "bbc.co.uk"),
        ("metrics1.data.hicloud.com", "hicloud.com"),
        ("a.b.example.com.au", "example.com.au"),
        ("203.0.113.7", "203.0.113.7"),
    ],
)
def test_site_is_the_registrable_domain(host: str, site: str):
    assert site_of(host) == site


def test_vendor_and_sdk_endpoints_are_known():
    expected = {
        "sa.api.intl.miui.com": ("Xiaomi", "analytics"),
        "tracking.intl.miui.com": ("Xiaomi", "telemetry"),
        "data.mistat.intl.xiaomi.com": ("Xiaomi", "analytics"),
        "app-measurement.com": ("Google", "analytics"),
        "firebase-settings.crashlytics.com": ("Google", "crash_reporting"),
        "graph.facebook.com": ("Facebook", "analytics"),
        "app.adjust.com": ("Adjust", "analytics"),
        "t.appsflyer.com": ("AppsFlyer", "analytics"),
        "api2.branch.io": ("Branch", "analytics"),
        "unityads.unity3d.com": ("Unity", "advertising"),
        "ms.applovin.com": ("AppLovin", "advertising"),
        "outcome-ssp.supersonicads.com": ("ironSource", "advertising"),
        "onesignal.com": ("OneSignal", "push"),
        "startup.mobile.yandex.net": ("Yandex", "analytics"),
        "ulogs.umeng.com": ("Alibaba (Umeng)", "analytics"),
        "sdk.sensorsdata.cn": ("Sensors Data", "analytics"),
        "metrics2.data.hicloud.com": ("Huawei", "telemetry"),
        "dc.di.atlas.samsung.com": ("Samsung", "telemetry"),
        "dc.oppomobile.com": ("Oppo", "telemetry"),
        "sessions.bugsnag.com": ("Bugsnag (SmartBear)", "crash_reporting"),
    }
    for host, (owner, category) in expected.items():
        endpoint = classify_endpoint(host)
        assert (endpoint.owner, endpoint.category) == (owner, category), host
    assert classify_endpoint("www.example.org").owner == ""
    assert classify_endpoint("www.example.org").category == "unknown"


def test_party_is_relative_to_the_app():
    assert classify_endpoint("sa.api.intl.miui.com", "com.mi.globalbrowser.mini").party == "first"
    assert classify_endpoint("graph.facebook.com", "com.mi.globalbrowser.mini").party == "third"
    assert classify_endpoint("api.example.com", "com.example.shop").party == "first"
    assert classify_endpoint("api.example.com", "org.other.app").party == "third"
    assert classify_endpoint("graph.facebook.com", "com.facebook.katana").party == "first"


def test_user_lists_in_three_formats(tmp_path: Path):
    hosts = tmp_path / "hosts.txt"
    hosts.write_text("# my list\n0.0.0.0 tracker.example-ads.net\nbeacon.example.org\n")
    disconnect = tmp_path / "services.json"
    disconnect.write_text(json.dumps({"categories": {"Advertising": [
        {"AdCo": {"https://adco.example/": ["adco.example", "adco-cdn.example"]}}]}}))  # fmt: skip
    tds = tmp_path / "tds.json"
    tracker = {"owner": {"name": "Metrics Inc", "displayName": "Metrics"}, "categories": ["Analytics"]}
    tds.write_text(json.dumps({"trackers": {"metrics.example.io": tracker}, "entities": {}}))
    classifier = EndpointClassifier([hosts, disconnect, tds])
    assert classifier.lookup("x.tracker.example-ads.net").source == "user list hosts.txt"
    assert classifier.classify("s.adco-cdn.example").owner == "AdCo"
    assert classifier.classify("s.adco-cdn.example").category == "advertising"
    metrics = classifier.classify("api.metrics.example.io")
    assert (metrics.owner, metrics.category) == ("Metrics", "analytics")
    # a hosts entry for a domain we know keeps our owner
    hosts.write_text("0.0.0.0 sa.api.intl.miui.com\n")
    assert EndpointClassifier([hosts]).classify("sa.api.intl.miui.com").owner == "Xiaomi"


def test_bad_user_list_is_a_clear_error(tmp_path: Path, sample_capture: Path, capsys):
    bad = tmp_path / "list.json"
    bad.write_text("{nope")
    with pytest.raises(EndpointListError, match=r"list\.json"):
        EndpointClassifier([bad])
    assert main(["analyze", str(sample_capture), "--endpoints", str(bad), "-o", str(tmp_path / "o")]) == 2
    assert "list.json" in capsys.readouterr().err


def test_endpoints_option_changes_owners(tmp_path: Path, sample_capture: Path):
    tds = tmp_path / "tds.json"
    tds.write_text(
        json.dumps({"trackers": {"example.org": {"owner": {"name": "Example Org"}, "categories": []}}})
    )
    out = tmp_path / "o"
    assert main(["analyze", str(sample_capture), "--endpoints", str(tds), "-o", str(out), "-q"]) == 0
    flows = pd.read_parquet(out / "flows.parquet")
    assert set(flows.loc[flows["site"] == "example.org", "owner"]) == {"Example Org"}


# -- fields ------------------------------------------------------------------------------------


def findings_for(record, profile=None):
    return classify_request(
        record, decode_request(record), classify_endpoint(record.host, "com.example.app"), profile
    )


def test_corpus_precision_and_recall():
    """Figures measured on the labelled SDK corpus (benchmarks/bench_classify.py prints them)."""
    without, _ = evaluate(None)
    with_profile, mistakes = evaluate(PROFILE)
    p0, r0 = overall(without)
    p1, r1 = overall(with_profile)
    assert p0 >= 0.95 and p1 >= 0.95, mistakes
    assert r0 >= 0.85, mistakes
    assert r1 >= 0.93 and r1 > r0, mistakes


def test_noise_is_not_a_finding():
    noise = next(c for c in cases() if c.name == "noise")
    assert findings_for(noise.record) == []
    assert findings_for(noise.record, PROFILE) == []


@settings(max_examples=200, deadline=None)
@given(
    key=st.sampled_from(
        ["nonce", "request_id", "crc", "ts", "event_id", "trace_id", "signature", "_track_id"]
    ),
    value=st.one_of(
        st.uuids().map(str),
        st.integers(10**12, 10**13).map(str),
        st.binary(min_size=8, max_size=24).map(lambda b: b.hex()),
    ),
)
def test_per_request_noise_never_becomes_an_identifier(key: str, value: str):
    record = _record(1, "POST", "https://t.example.io/e", {"Content-Type": "application/json"},
                     json.dumps({key: value}).encode())  # fmt: skip
    assert findings_for(record) == []


@settings(max_examples=200, deadline=None)
@given(st.integers(1_000_000_000_000, 1_999_999_999_999))
def test_timestamps_are_not_imeis_or_phones(ms: int):
    record = _record(1, "GET", f"https://t.example.io/e?t={ms}&time={ms}&n={ms}123")
    types = {f.data_type for f in findings_for(record)}
    assert not types & {"device_id.imei", "contact.phone"}


def test_every_data_type_is_in_the_vocabulary():
    for case in cases():
        for finding in findings_for(case.record, PROFILE):
            assert finding.data_type in DATA_TYPES
            assert set(finding.evidence.split("+")) <= {
                "known-value",
                "schema",
                "key-name",
                "value-shape",
                "persistence",
            }
            assert finding.confidence in ("high", "medium", "low")


# -- known values --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "form"),
    [
        ("9C2F41A7E3B5D810", "plain"),
        ("id%3D9c2f41a7e3b5d810", "plain"),
        (hashlib.md5(b"9c2f41a7e3b5d810").hexdigest().upper(), "md5-hex"),
        (hashlib.sha1(b"9c2f41a7e3b5d810").hexdigest(), "sha1-hex"),
        (base64.b64encode(hashlib.sha256(b"9c2f41a7e3b5d810").digest()).decode(), "sha256-base64"),
        (b"9c2f41a7e3b5d810".hex(), "hex"),
    ],
)
def test_known_value_forms(sent: str, form: str):
    matches = KnownValues(PROFILE).find(f"xx{sent}yy")
    assert [(m.data_type, m.form) for m in matches] == [("device_id.android_id", form)]


@pytest.mark.parametrize("prefix", [b"", b"a", b"ab", b"abc", b'{"k":"', b"\x00\x01"])
def test_known_value_inside_base64_at_any_alignment(prefix: bytes):
    blob = base64.b64encode(prefix + b"device=9c2f41a7e3b5d810&x=1").decode()
    assert [m.data_type for m in KnownValues(PROFILE).find(blob)] == ["device_id.android_id"]
    urlsafe = base64.urlsafe_b64encode(prefix + b"\xfb\xff" + b"9c2f41a7e3b5d810").decode().rstrip("=")
    assert [m.data_type for m in KnownValues(PROFILE).find(urlsafe)] == ["device_id.android_id"]


@pytest.mark.parametrize("mac", ["3c:5a:b4:12:9e:7d", "3C-5A-B4-12-9E-7D", "3c5ab4129e7d", "3C5AB4129E7D"])
def test_mac_in_any_notation(mac: str):
    assert [m.data_type for m in KnownValues(PROFILE).find(mac)] == ["device_id.mac"]


def test_short_profile_values_do_not_match_by_accident():
    profile = Profile.from_dict({"serial": "abc", "android_id": "9c2f41a7e3b5d810"})
    assert KnownValues(profile).find("abcabc labcd") == []


def test_location_known_value_near_the_profile():
    record = _record(1, "GET", "https://ads.example.net/bid?lat=52.5201&lon=13.4049&slot=3")
    found = {(f.data_type, f.evidence.split("+")[0]) for f in findings_for(record, PROFILE)}
    assert ("location.gps", "known-value") in found


# -- navigation: never cry wolf -------------------------------------------------------------------


def test_a_page_load_is_not_a_leak_of_its_own_url_or_query():
    nav = {"Accept": "text/html", "Sec-Fetch-Mode": "navigate"}
    record = _record(
        1, "GET", "https://www.google.com/search?q=cheap+flights+berlin&url=https://x.example/", nav
    )
    assert findings_for(record, PROFILE) == []


def test_referer_counts_only_across_sites():
    same = _record(
        1, "GET", "https://cdn.example.com/a.js", {"Referer": "https://www.example.com/private?id=1"}
    )
    other = _record(
        2, "GET", "https://px.tracker.net/a.gif", {"Referer": "https://www.example.com/private?id=1"}
    )
    assert findings_for(same) == []
    assert [(f.data_type, f.location) for f in findings_for(other)] == [("url", "header")]


def test_sample_headline_and_navigation(sample_analysis):
    f = sample_analysis.findings
    assert list(f.columns) == list(FINDINGS_COLUMNS)
    xiaomi = f[f["host"] == "sa.api.intl.miui.com"]
    for mode in ("normal", "incognito"):
        in_mode = xiaomi[xiaomi["mode"] == mode]
        assert {"url", "search_query"} <= set(in_mode["data_type"]), mode
        assert set(in_mode.loc[in_mode["data_type"] == "url", "encodings"]) == {"form>base64>gzip>json"}
    assert (xiaomi["owner"] == "Xiaomi").all() and (xiaomi["party"] == "first").all()
    # the searches themselves, on google.com and bing.com, are navigation
    assert not f["host"].isin(["www.google.com", "www.bing.com", "www.example.net", "www.example.org"]).any()
    # the Referer to facebook leaks the page in both modes
    fb = f[(f["host"] == "connect.facebook.net") & (f["data_type"] == "url")]
    assert set(fb["mode"]) == {"normal", "incognito"}


def test_sample_incognito_is_linkable_to_normal(sample_analysis):
    f = sample_analysis.findings
    linked = f[f["evidence"].str.contains("persistence")]
    assert {"device_id.android_id", "device_id.other", "device_id.advertising_id"} <= set(linked["data_type"])
    distinct = linked[linked["field"].str.endswith("distinct_id")]
    assert set(distinct["mode"]) == {"normal", "incognito", "incognito-optout"}
    assert distinct["value"].nunique() == 1
    # constants recur too, but link nothing
    assert (
        not f[f["data_type"].isin(["device.model", "device.os_version", "app.id"])]["evidence"]
        .str.contains("persistence")
        .any()
    )


# -- persistence ---------------------------------------------------------------------------------


def test_persistence_needs_recurrence_across_sessions_or_modes():
    from phonehome.analysis.findings import Finding

    def row(session: str, mode: str, dtype: str, value: str, conf: str = "low") -> Finding:
        return Finding(session, "app", mode, "id", 0.0, "GET", "h", "h", "", "unknown", "third", "u", "body",
                       "body.x", "", dtype, value, conf, "key-name+value-shape")  # fmt: skip

    uid = str(uuid.uuid4())
    frame = findings_frame([
        row("s1", "normal", "device_id.other", uid), row("s1", "incognito", "device_id.other", uid),
        row("s1", "normal", "device_id.other", "only-once-0a9f8e7c6b5a"),
        row("s1", "normal", "device.os_version", "13"), row("s2", "normal", "device.os_version", "13"),
        row("s1", "normal", "device_id.other", "4.3.2"), row("s2", "normal", "device_id.other", "4.3.2"),
    ])  # fmt: skip
    marked = mark_persistence(frame)
    linked = marked["evidence"].str.endswith("+persistence")
    assert linked.tolist() == [True, True, False, False, False, False, False]
    assert marked.loc[linked, "confidence"].tolist() == ["medium", "medium"]
    assert mark_persistence(findings_frame()).empty


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("192.168.1.23", True),
        ("10.0.0.7", True),
        ("127.0.0.1", True),
        ("fe80::1c2e:7fff:fe00:1", True),
        ("::1", True),
        ("::ffff:192.168.0.5", True),
        ("8.8.8.8", False),
        ("0.0.0.0", False),
        ("2001:4860:4860::8888", False),
        ("192.168.1", False),
        ("1699999999999", False),
        ("10.0.0.7.5", False),
        ("12:30", False),
    ],
)
def test_local_ip_shape(value: str, expected: bool):
    from phonehome.analysis.classify.shapes import local_ip

    assert local_ip(value) is expected
