"""One test per classifier rule and schema feature added for real traffic (issue 17).

Each builds a small request in a real SDK's wire format (or the shape the rule is about) and
checks both the finding it must produce and the false alarm it must not.
"""

from __future__ import annotations

import gzip
import json
from urllib.parse import quote, urlencode

import pytest

from phonehome.analysis.classify import classify_endpoint, classify_request
from phonehome.analysis.classify.fields import suffix_key
from phonehome.analysis.classify.known import KnownValues
from phonehome.analysis.classify.schemas import SchemaError, compile_pattern, parse_schemas, shipped_schemas
from phonehome.analysis.decode import decode_request
from phonehome.analysis.profile import Profile
from phonehome.analysis.records import HttpRecord, Labels

AAID = "38400000-8cf0-11bd-b23e-10b96e40000d"
ANDROID_ID = "9c2f41a7e3b5d810"
JSON = {"Content-Type": "application/json"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def record(url: str, headers: dict | None = None, body: bytes = b"", method: str | None = None) -> HttpRecord:
    scheme, rest = url.split("://", 1)
    host, _, path = rest.partition("/")
    return HttpRecord(
        source="test",
        flow_id="f1",
        labels=Labels(session="s", app="com.example.app"),
        timestamp=1.0,
        method=method or ("POST" if body else "GET"),
        scheme=scheme,
        host=host,
        port=443,
        path="/" + path,
        request_headers=tuple((headers or {}).items()),
        request_body=body,
    )


def found(rec: HttpRecord, profile: Profile | None = None) -> dict[tuple[str, str], tuple[str, str]]:
    """(field, data type) -> (value, evidence)."""
    endpoint = classify_endpoint(rec.host, "com.example.app")
    return {
        (f.field, f.data_type): (f.value, f.evidence)
        for f in classify_request(rec, decode_request(rec), endpoint, profile)
    }


# -- schemas --------------------------------------------------------------------------------------


def test_every_shipped_schema_names_its_source_and_known_types():
    vocabulary = {
        "url", "search_query", "device_id.imei", "device_id.android_id", "device_id.advertising_id",
        "device_id.oaid", "device_id.serial", "device_id.mac", "device_id.imsi", "device_id.iccid",
        "device_id.other", "token", "user_id", "location.gps", "location.wifi", "contact.email",
        "contact.phone", "network.local_ip", "device.model", "device.os_version", "app.id",
        "app.installed_list",
    }  # fmt: skip
    schemas = shipped_schemas()
    assert len(schemas) >= 20
    for schema in schemas:
        assert len(schema.source) > 30 and schema.hosts, schema.id
        assert {rule.data_type for rule in schema.fields} <= vocabulary, schema.id


def test_field_patterns():
    assert compile_pattern("body.events[*].device.id").fullmatch("body.events[3].device.id")
    assert compile_pattern("body.events[*].device.id").fullmatch("body.events.device.id")
    assert not compile_pattern("body.events[*].device.id").fullmatch("body.events[3].device.idx")
    assert compile_pattern("*.gps_adid").fullmatch("query.gps_adid")
    assert not compile_pattern("*.gps_adid").fullmatch("body.x.gps_adid")
    assert compile_pattern("**.header.imei").fullmatch("body.content[0].header.imei")
    assert compile_pattern("**.header.imei").fullmatch("header.imei")


def test_malformed_schema_names_the_entry():
    with pytest.raises(SchemaError, match="entry broken"):
        parse_schemas({"endpoints": [{"id": "broken", "hosts": ["x.com"], "source": "s", "fields": [{}]}]})
    with pytest.raises(SchemaError, match="unknown shape"):
        parse_schemas(
            {"endpoints": [{"id": "b", "hosts": ["x"], "source": "s", "fields": [{"field": "a", "type": "url",
                                                                                 "shape": "odd"}]}]}
        )  # fmt: skip


def test_facebook_extinfo_positions_by_schema():
    extinfo = json.dumps(
        ["a2", "com.example.app", 7, "1.0", "13", "Pixel 7", "en_US", "CET", "Carrier", 1080]
    )
    body = urlencode(
        {"extinfo": extinfo, "anon_id": "XZ7b0e4c2a-91d3-4f6e-a8b5-3c2d1e0f9a87", "advertiser_id": AAID}
    )
    got = found(record("https://graph.facebook.com/v16.0/123456/activities", FORM, body.encode()))
    assert got[("body.extinfo[1]", "app.id")] == ("com.example.app", "schema")
    assert got[("body.extinfo[4]", "device.os_version")] == ("13", "schema")
    assert got[("body.extinfo[5]", "device.model")] == ("Pixel 7", "schema")
    assert "schema" in got[("body.advertiser_id", "device_id.advertising_id")][1]
    # the carrier and the screen width are not identifiers
    assert not [k for k in got if k[0] in ("body.extinfo[8]", "body.extinfo[9]")]
    # the same array elsewhere means nothing
    assert not found(record("https://api.example.com/v1/x", FORM, urlencode({"extinfo": extinfo}).encode()))


def test_bugsnag_notifier_homepage_is_not_a_visited_url():
    body = {"notifier": {"name": "Android Bugsnag Notifier", "url": "https://bugsnag.com"},
            "device": {"id": "ad2140b6-25f1-42d7-b45c-4c0e224ca64f", "model": "Pixel 7"},
            "breadcrumbs": [{"url": "https://shop.example.com/cart"}]}  # fmt: skip
    got = found(record("https://sessions.bugsnag.com/", JSON, json.dumps(body).encode()))
    assert not [k for k in got if k[0] == "body.notifier.url"]
    assert ("body.device.id", "device_id.other") in got
    assert ("body.breadcrumbs[0].url", "url") in got  # a real URL in the same payload still counts


def test_app_measurement_blob_advertising_id_without_profile():
    def pb(num: int, val: bytes) -> bytes:
        return bytes([num << 3 | 2, len(val)]) + val

    blob = pb(1, pb(14, b"com.example.app") + pb(19, AAID.encode()))
    got = found(record("https://app-measurement.com/a", FORM, blob))
    assert any(t == "device_id.advertising_id" and v == (AAID, "schema") for (_, t), v in got.items())
    # the same blob elsewhere: no schema, no guess
    assert not found(record("https://api.example.com/a", FORM, blob))


# -- generic rules --------------------------------------------------------------------------------


def test_vendor_prefixed_headers_are_read_by_their_known_suffix():
    assert suffix_key("x-crashlytics-installation-id") == "installationid"
    assert suffix_key("x-crashlytics-device-model") == "devicemodel"
    assert suffix_key("wrvUserID") == "userid"
    assert suffix_key("advertiser_id_collection_enabled") == ""
    assert suffix_key("car_model") == ""  # one generic word is not enough
    headers = {"X-Crashlytics-Installation-ID": "4c1f2e9d8b7a6c5d4e3f2a1b0c9d8e7f",
               "X-Crashlytics-Device-Model": "Pixel 7", "X-Android-Package": "com.example.app"}  # fmt: skip
    got = found(record("https://api.example-sdk.io/v1/settings", headers))
    assert ("header.x-crashlytics-installation-id", "device_id.other") in got
    assert ("header.x-crashlytics-device-model", "device.model") in got
    assert ("header.x-android-package", "app.id") in got


def test_product_model_in_page_data_is_not_a_device_model():
    body = {"product": {"model": "XPS 13", "price": 999}, "device": {"model": "Pixel 7"}}
    got = found(record("https://shop.example.com/api/view", JSON, json.dumps(body).encode()))
    assert ("body.device.model", "device.model") in got
    assert ("body.product.model", "device.model") not in got


def test_imei_needs_device_context():
    imei = "356938035643809"
    got = found(
        record("https://px.example-ads.com/p", JSON, json.dumps({"pixel_id": imei, "dev": imei}).encode())
    )
    assert ("body.pixel_id", "device_id.imei") not in got
    assert ("body.dev", "device_id.imei") in got


def test_sixteen_hex_is_an_android_id_only_under_a_device_key():
    body = {"cid": "7d5a6fd0d53a566b", "deviceId": "7d5a6fd0d53a566b"}
    got = found(record("https://t.example-analytics.com/c", JSON, json.dumps(body).encode()))
    assert ("body.cid", "device_id.android_id") not in got
    assert ("body.deviceId", "device_id.android_id") in got


def test_identifier_families():
    body = {
        "advertisingTrackingId": AAID, "aifa": AAID, "rdid": AAID, "GPID": AAID, "device_aaid": AAID,
        "fid": "cR_7l8wZTbKNNDGCqk9r9C", "uid": "1550877338208-2569651653562673536",
        "application_package_name": "tld.sample.app",
    }  # fmt: skip
    got = found(record("https://sdk.example-ads.com/init", JSON, json.dumps(body).encode()))
    for key in ("advertisingTrackingId", "aifa", "rdid", "GPID", "device_aaid"):
        assert (f"body.{key}", "device_id.advertising_id") in got, key
    assert ("body.fid", "device_id.other") in got
    assert ("body.uid", "device_id.other") in got or ("body.uid", "user_id") in got
    assert ("body.application_package_name", "app.id") in got


def test_self_describing_token_shapes():
    fcm = (
        "eRJdHM9vsSY:APA91bE6lYR7OwAkLHWMGRPYPG9p9X3mnCeziP8sA7rmLoQ4Tk9WOoBRoQZo0IgpyeOry-A6tVveCttII_43fTB4"
    )
    headers = {"Cookie": "d=xoxd-ekKbs8IHIKMWUnFlBjwKmIViLmYd; _ga=GA1.2.1478153842.1693348042"}
    body = {"1": fcm, "2": "ya29.a0AfB_byDg8-jTAQMiRXx-Dq3J1Pnb5NHe2LPWoocBcEIJr"}
    got = found(record("https://sync.example.com/command", {**headers, **JSON}, json.dumps(body).encode()))
    assert ("body.1", "token") in got and ("body.2", "token") in got
    assert ("cookie.d", "token") in got
    assert ("cookie._ga", "device_id.other") in got


def test_data_inside_a_url_value_recursively():
    inner = "https://app.example.com/activate?email=" + quote("jane@example.org")
    url = "https://r.example-ads.com/c?dl=" + quote(quote(inner, safe=""), safe="")
    got = found(record(url))
    assert any(t == "contact.email" and v[0] == "jane@example.org" for (_, t), v in got.items()), got


def test_emails_and_ids_in_free_text():
    body = {
        "message": "Sent reset link to jane@example.org today",
        "breadcrumb": "(I) Consent: Executing query, deviceId=7d5a6fd0d53a566b, consent=granted",
    }
    got = found(record("https://logs.example-sdk.io/ingest", JSON, json.dumps(body).encode()))
    assert got[("body.message", "contact.email")][0] == "jane@example.org"
    assert got[("body.breadcrumb", "device_id.android_id")][0] == "7d5a6fd0d53a566b"


def test_one_identifier_per_field_known_value_wins():
    profile = Profile.from_dict({"android_id": ANDROID_ID})
    body = {"device_id": ANDROID_ID, "visitor": "x"}
    got = found(record("https://t.example-analytics.com/e", JSON, json.dumps(body).encode()), profile)
    types = {t for (field, t) in got if field == "body.device_id"}
    assert types == {"device_id.android_id"}
    assert "known-value" in got[("body.device_id", "device_id.android_id")][1]


def test_known_value_used_as_a_json_key():
    profile = Profile.from_dict({"android_id": ANDROID_ID})
    body = {"counters": {ANDROID_ID: 3}}
    got = found(record("https://t.example-analytics.com/e", JSON, json.dumps(body).encode()), profile)
    assert any(t == "device_id.android_id" for (_, t) in got), got


def test_gzip_body_still_reaches_the_schema():
    body = gzip.compress(json.dumps({"device": {"id": "ad2140b6-25f1-42d7-b45c-4c0e224ca64f"}}).encode())
    got = found(record("https://sessions.bugsnag.com/", {**JSON, "Content-Encoding": "gzip"}, body))
    assert "schema" in got[("body.device.id", "device_id.other")][1]


def test_known_values_compile_once_per_profile():
    profile = Profile.from_dict({"android_id": ANDROID_ID})
    assert KnownValues(profile).find(f"x{ANDROID_ID}y")


# -- known values: hash chains, truncations, joined identifiers ---------------------------------------


def test_known_value_hash_chains_truncations_and_joins():
    import base64
    import hashlib

    imei, mac, email = "356938035643809", "3c:5a:b4:12:9e:7d", "jane@example.org"
    known = KnownValues(Profile.from_dict({"imei": [imei], "mac": [mac], "email": email}))

    def md5(text: str) -> str:
        return hashlib.md5(text.encode()).hexdigest()

    def forms(value: str) -> set[tuple[str, str]]:
        return {(m.profile_key, m.form) for m in known.find_all(["noise", f"v={value}&x=1"])[1]}

    assert forms(hashlib.sha256(md5(email).encode()).hexdigest()) == {("email", "sha256-of-md5-hex")}
    truncated = base64.urlsafe_b64encode(hashlib.sha1(imei.encode()).digest()).decode()[:16]
    assert forms(truncated) == {("imei", "sha1-base64-truncated")}
    assert forms(md5(imei)[:16]) == {("imei", "md5-hex-truncated")}
    joined = md5(imei + "_" + mac.upper())
    assert forms(joined) == {("imei", "joined-hash-hex"), ("mac", "joined-hash-hex")}
    # a digest of something else is nothing
    assert forms(md5(imei + "_x")) == set()
    assert forms(hashlib.sha256(b"other").hexdigest()) == set()


# -- Sensors Analytics ----------------------------------------------------------------------------


def _sensors_body(events: list, crc: str | None = None, mode: str = "1") -> bytes:
    import base64

    packed = base64.b64encode(gzip.compress(json.dumps(events).encode(), mtime=0)).decode()
    from phonehome.analysis.classify.sensors import java_string_hash

    return urlencode(
        {"crc": crc or str(java_string_hash(packed)), "gzip": mode, "data_list": packed}
    ).encode()


def test_java_string_hash_matches_java():
    from phonehome.analysis.classify.sensors import java_string_hash

    assert java_string_hash("") == 0
    assert java_string_hash("hello") == 99162322  # "hello".hashCode() in Java
    assert java_string_hash("Hello, World") == -505841268


def test_sensors_crc_verified_keeps_high_confidence_and_a_wrong_crc_lowers_it():
    from phonehome.analysis.classify.sensors import read_batch

    events = [{"type": "track", "distinct_id": "7b0e4c2a-91d3-4f6e-a8b5-3c2d1e0f9a87",
               "properties": {"$model": "Pixel 7", "$url": "https://www.example.com/clinic"}}]  # fmt: skip
    url = "https://sa.api.intl.miui.com/sa?project=global"
    good = record(url, FORM, _sensors_body(events))
    bad = record(url, FORM, _sensors_body(events, crc="12345"))
    assert read_batch(good).crc_ok is True and read_batch(bad).crc_ok is False
    confidence = {
        name: {
            f.data_type: f.confidence
            for f in classify_request(r, decode_request(r), classify_endpoint(r.host))
        }
        for name, r in (("good", good), ("bad", bad))
    }
    assert confidence["good"]["device.model"] == "high"
    assert confidence["bad"]["device.model"] == "medium"


def test_sensors_track_signup_links_anonymous_id_to_login():
    events = [{"type": "track_signup", "event": "$SignUp", "distinct_id": "user-8812",
               "original_id": "7b0e4c2a-91d3-4f6e-a8b5-3c2d1e0f9a87", "properties": {}}]  # fmt: skip
    got = found(record("https://sa.api.intl.miui.com/sa?project=global", FORM, _sensors_body(events)))
    assert got[("body.data_list[0].distinct_id", "user_id")][0] == "user-8812"
    assert ("body.data_list[0].distinct_id", "device_id.other") not in got
    assert ("body.data_list[0].original_id", "device_id.other") in got


def test_sensors_encrypted_batch_ekey_is_a_pseudonym():
    from phonehome.analysis.classify.sensors import read_batch

    data = json.dumps(
        [{"ekey": "kq3ZbPg9w0aXn1TQ8nTzYkJ2cVx4Y2FbZ0h1RmJqZQ==", "pkv": 3, "payloads": ["dGVzdA=="]}]
    )
    rec = record(
        "https://sa.api.intl.miui.com/sa?project=global",
        FORM,
        urlencode({"gzip": "9", "data_list": data}).encode(),
    )
    batch = read_batch(rec)
    assert batch.encrypted and batch.ekey.startswith("kq3Z")
    got = found(rec)
    assert any(t == "device_id.other" and v[0] == batch.ekey for (_, t), v in got.items()), got


def test_xiaomi_tracking_base64url_value_and_onetrack_headers():
    import base64
    import hashlib

    imei, mac = "356938035643809", "3c:5a:b4:12:9e:7d"
    inner = {"header": {"imei_md5": hashlib.md5(imei.encode()).hexdigest(),
                        "mac_md5": hashlib.md5(mac.encode()).hexdigest(), "model": "Redmi Note 8",
                        "package": "com.mi.globalbrowser"},
             "events": [{"url": "https://www.example.com/clinic"}]}  # fmt: skip
    value = base64.urlsafe_b64encode(json.dumps(inner).encode()).decode().rstrip("=")
    headers = {**FORM, "OT_sender": "com.mi.globalbrowser", "OT_SID": "8f14e45fceea167a"}
    rec = record("https://tracking.intl.miui.com/track/v4", headers, urlencode({"value": value}).encode())
    got = {(field.rsplit(".", 1)[-1], t) for field, t in found(rec)}
    assert {("imei_md5", "device_id.imei"), ("mac_md5", "device_id.mac"), ("model", "device.model"),
            ("package", "app.id"), ("ot_sender", "app.id"), ("url", "url")} <= got, got  # fmt: skip
    # with the profile, the md5s are the phone's own IMEI and MAC
    profile = Profile.from_dict({"imei": [imei], "mac": [mac]})
    evidence = {t: v[1] for (field, t), v in found(rec, profile).items() if field.endswith("_md5")}
    assert "known-value" in evidence["device_id.imei"] and "known-value" in evidence["device_id.mac"]


def test_suffix_key_does_not_make_any_id_an_advertising_id():
    query = "_kua_aa_id=2D04C4FB051D59BB-400019030002A4C0&partner_gaid=38400000-8cf0-11bd-b23e-10b96e40000d"
    got = found(record(f"https://beacon.example-dmp.net/pixel?{query}"))
    assert ("query._kua_aa_id", "device_id.advertising_id") not in got
    assert ("query.partner_gaid", "device_id.advertising_id") in got


def test_base64_json_inside_a_nested_url_parameter():
    import base64

    state = base64.urlsafe_b64encode(json.dumps({"email": "jane@example.org", "step": 2}).encode()).decode()
    inner = "https://app.example.com/continue?state=" + state
    got = found(record("https://r.example-ads.com/c?u=" + quote(inner, safe="")))
    assert any(t == "contact.email" and v[0] == "jane@example.org" for (_, t), v in got.items()), got


def test_phone_in_free_text_needs_its_plus():
    body = {
        "note": "call me on +49 151 2345 6789 after five",
        "log": "took 1699999999123 ms for 4915123456789",
    }
    got = found(record("https://logs.example-sdk.io/ingest", JSON, json.dumps(body).encode()))
    assert got[("body.note", "contact.phone")][0] == "+49 151 2345 6789"
    assert ("body.log", "contact.phone") not in got


def test_identifier_cookies_under_opaque_names_but_not_timestamps_or_session_state():
    cookies = (
        "bcookie=v=2&f1f6b4d7-8f3a-4544-8211-941dfcbb3536; visitor=w0-9565e4bc-17ed-41d6-8c0a-178dbbffc8eb; "
        "RMID=007f0101480b55e20bb8000c; UIDR=1424574942; eud=1440877502415; "
        "_ga_X1=GS1.1.1693313101.3.1.1693314156.0.0.0; lang=v=2&lang=en-us; _dycst=w.c.ss.fst.frv1.frs."
    )
    got = found(record("https://px.example-ads.com/p.gif", {"Cookie": cookies}))
    ids = {field for field, t in got if t == "device_id.other"}
    assert {"cookie.bcookie", "cookie.visitor", "cookie.RMID"} <= ids, got
    assert not ids & {"cookie.UIDR", "cookie.eud", "cookie._ga_X1", "cookie._dycst"}, ids
    assert not [k for k in got if k[0].startswith("cookie.lang")]
